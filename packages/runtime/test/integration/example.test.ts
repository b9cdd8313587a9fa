/**
 * The README's downstream example, run as a real process: its route, its
 * health check, and its background work placed by node role.
 */
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freshDatabase, query, type TestDatabase } from "../support/database.ts"
import { pollHttp, repoRoot, spawnNode } from "../support/process.ts"

const example = Path.join(repoRoot, "packages/runtime/examples/downstream-app.ts")
let db: TestDatabase
beforeAll(async () => {
  db = await freshDatabase("example")
})
afterAll(async () => {
  await db.drop()
})

const runExample = async (mode: "primary" | "follower") => {
  const app = spawnNode(example, [], { DATABASE_URL: db.url, ASTERFORGE_SERVER_PORT: "0", ASTERFORGE_MODE: mode })
  try {
    const base = await app.baseUrl()
    const ready = JSON.parse((await pollHttp(`${base}/health/ready`, (s) => s === 200)).body)
    const created = await fetch(`${base}/orders`, { method: "POST" })
    const body = created.status === 201 ? await created.json() as { id: string } : undefined
    app.kill("SIGTERM")
    expect((await app.exited).code).toBe(0)
    return { ready, created: created.status, orderId: body?.id }
  } finally {
    await app.stop()
  }
}

const auditCodes = async (nodeId: string) =>
  (await query<{ code: string }>(db.url, "SELECT code FROM audit_events WHERE node_id = $1 ORDER BY id", [nodeId])).map((r) => r.code)

describe("downstream example app", () => {
  it("primary: serves the module's route, lists its health check, runs its lane-node background work", async () => {
    const r = await runExample("primary")
    expect(r.created).toBe(201)
    expect(r.ready.checks.find((c: { name: string }) => c.name === "orders")).toMatchObject({ status: "pass", detail: "accepting orders" })
    const codes = await auditCodes(r.ready.node.id)
    expect(codes).toContain("order.report_generated")
    expect(codes).toContain("order.created")
    const [order] = await query<{ subject: string }>(db.url, "SELECT subject FROM audit_events WHERE code = 'order.created' AND node_id = $1", [r.ready.node.id])
    expect(order?.subject).toBe(`order:${r.orderId}`)
  })

  it("follower: same route and checks, but none of the work reserved for lane-running nodes", async () => {
    const r = await runExample("follower")
    expect(r.ready.mode).toBe("follower")
    expect(r.created).toBe(201)
    const codes = await auditCodes(r.ready.node.id)
    expect(codes).toContain("order.created")
    expect(codes).not.toContain("order.report_generated")
    expect(codes).toEqual(expect.arrayContaining(["node.started", "node.stopped"]))
  })
})
