/**
 * The README's downstream example, run as a real process: its route, its
 * health check, and its background work placed by node role.
 */
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, freshDatabase, query, type FreshDatabase } from "../support/kit.ts"
import { pollHttp, repoRoot, spawnNode } from "../support/process.ts"

const example = Path.join(repoRoot, "packages/runtime/examples/downstream-app.ts")
let db: FreshDatabase
beforeAll(async () => {
  db = await freshDatabase("example")
})
afterAll(async () => {
  await db.drop()
})

const runExample = async (mode: "primary" | "follower") => {
  const app = spawnNode(example, ["start"], { DATABASE_URL: db.url, ASTERFORGE_SERVER_PORT: "0", ASTERFORGE_MODE: mode })
  try {
    const base = await app.baseUrl()
    const ready = JSON.parse((await pollHttp(`${base}/health/ready`, (s) => s === 200)).body)
    const created = await fetch(`${base}/orders`, { method: "POST" })
    const body = created.status === 201 ? ((await created.json()) as { id: string }) : undefined
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
    const [order] = await query<{ subject: string }>(
      db.url,
      "SELECT subject FROM audit_events WHERE code = 'order.created' AND node_id = $1",
      [r.ready.node.id]
    )
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

describe("tasks example app", () => {
  it("enqueues in the same transaction as the app's write, and runs the task", async () => {
    await query(db.url, "CREATE TABLE IF NOT EXISTS signups (email text PRIMARY KEY)")
    const app = spawnNode(Path.join(repoRoot, "packages/runtime/examples/tasks-app.ts"), ["start"], {
      DATABASE_URL: db.url,
      ASTERFORGE_SERVER_PORT: "0"
    })
    try {
      const base = await app.baseUrl()
      const ok = await fetch(`${base}/signups/ada@example.org`, { method: "POST" })
      expect(ok.status).toBe(202)
      const { id } = (await ok.json()) as { id: string }
      await pollTask(id, "succeeded")
      // The second signup finds the app's own row: no second task, and a refusal in the node's shape.
      const dup = await fetch(`${base}/signups/ada@example.org`, { method: "POST" })
      expect(dup.status).toBe(409)
      expect(await dup.json()).toEqual({ error: { tag: "AlreadySignedUp", message: "ada@example.org has signed up already" } })
      const [n] = await query<{ n: number }>(
        db.url,
        "SELECT count(*)::int AS n FROM tasks WHERE name = 'mail.send_welcome' AND payload->>'email' = 'ada@example.org'"
      )
      expect(n?.n).toBe(1)
      const bad = await fetch(`${base}/signups/bob@invalid.example`, { method: "POST" })
      const failed = await pollTask(((await bad.json()) as { id: string }).id, "failed")
      expect(failed.errors[0]).toMatchObject({ tag: "Terminal", code: "mail.undeliverable" })
      app.kill("SIGTERM")
      expect((await app.exited).code).toBe(0)
    } finally {
      await app.stop()
    }
  })
})

const pollTask = (id: string, state: string) =>
  eventually(async () => {
    const [row] = await query<{ state: string; errors: Array<Record<string, unknown>> }>(
      db.url,
      "SELECT state, errors FROM tasks WHERE id = $1",
      [id]
    )
    return row?.state === state ? row : undefined
  }, `task ${id} to reach ${state}`)
