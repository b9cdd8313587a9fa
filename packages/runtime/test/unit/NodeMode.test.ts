/** The role each mode plays: what `Runtime.layer` reads to choose a node's layers. */
import { describe, expect, it } from "@effect/vitest"
import * as NodeMode from "../../src/NodeMode.ts"

describe("NodeMode.roleFor", () => {
  it.each([
    { mode: "primary", inlineWorker: true, role: { fullApi: true, dispatches: true, runsLanes: true } },
    { mode: "primary", inlineWorker: false, role: { fullApi: true, dispatches: false, runsLanes: true } },
    { mode: "follower", inlineWorker: true, role: { fullApi: true, dispatches: false, runsLanes: false } },
    { mode: "follower", inlineWorker: false, role: { fullApi: true, dispatches: false, runsLanes: false } },
    { mode: "maintenance", inlineWorker: true, role: { fullApi: false, dispatches: false, runsLanes: true } },
    { mode: "maintenance", inlineWorker: false, role: { fullApi: false, dispatches: false, runsLanes: true } },
    // worker.inline is the primary's inline worker only: a dedicated worker always dispatches.
    { mode: "worker", inlineWorker: true, role: { fullApi: false, dispatches: true, runsLanes: false } },
    { mode: "worker", inlineWorker: false, role: { fullApi: false, dispatches: true, runsLanes: false } }
  ] as const)("$mode with inlineWorker = $inlineWorker", ({ mode, inlineWorker, role }) => {
    expect(NodeMode.roleFor(mode, { inlineWorker })).toEqual(role)
  })

  it("covers every mode", () => {
    expect(Object.keys(NodeMode.roles).sort()).toEqual([...NodeMode.names].sort())
  })
})
