/**
 * claimLimit: how many tasks a pool's next claim asks for, as a table. Without
 * prefetch a claim fills the free slots; with prefetch the pool holds up to
 * `concurrency + prefetch` tasks claimed in halves, so the next half is
 * claimed while the last one runs, and no claim is due for less than a
 * quarter of that room.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Pool from "../../src/internal/dispatcher/pool.ts"
import type * as Task from "../../src/Task.ts"

const poolWith = (concurrency: number, prefetch: number, held: number): Pool.Pool => {
  const pools = Effect.runSync(Pool.make({ queues: [{ queue: "default", concurrency }], prefetch, names: ["t"] }))
  const pool = pools.all[0]!
  for (let i = 0; i < held; i++) {
    pool.running.set(String(i), {
      task: { id: String(i) } as Task.Claimed,
      claimedAt: 0,
      handler: undefined,
      timedOut: false,
      cancelRequested: false,
      leaseLost: false
    })
  }
  return pool
}

describe("claimLimit", () => {
  const rows: ReadonlyArray<readonly [string, number, number, number, number]> = [
    // [what, concurrency, prefetch, tasks held, limit]
    ["no prefetch, all slots free: fill them", 4, 0, 0, 4],
    ["no prefetch, one slot free", 4, 0, 3, 1],
    ["no prefetch, all slots busy: nothing", 4, 0, 4, 0],
    ["prefetch, empty: a half (of 64 + 256)", 64, 256, 0, 160],
    ["prefetch, one half held: the other half, while it runs", 64, 256, 160, 160],
    ["prefetch, full: nothing", 64, 256, 320, 0],
    ["prefetch, room under a quarter: nothing yet", 64, 256, 250, 0],
    ["prefetch, room of exactly a quarter: that much", 64, 256, 240, 80],
    ["odd sizes round up", 1, 2, 0, 2],
    ["odd sizes, last task held: the room", 1, 2, 2, 1]
  ]
  for (const [what, concurrency, prefetch, held, limit] of rows) {
    it(what, () => {
      expect(Pool.claimLimit(poolWith(concurrency, prefetch, held))).toBe(limit)
    })
  }
})
