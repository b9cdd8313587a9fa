/**
 * Graceful shutdown with real processes and real signals: the audit buffer
 * reaches the table, the node row is marked stopped, readiness flips first,
 * and a hanging finalizer cannot keep the process alive.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freshDatabase, query, type FreshDatabase } from "../support/kit.ts"
import { fixture, pollHttp, spawnCli, spawnNode, trackProcesses } from "../support/process.ts"

let db: FreshDatabase
const track = trackProcesses()

beforeAll(async () => {
  db = await freshDatabase("shutdown")
})
afterAll(async () => {
  await db.drop()
})

describe("audit buffer on stop signals", () => {
  it.each(["SIGTERM", "SIGINT"] as const)("every event whose record() returned is in the table after %s", async (signal) => {
    await query(db.url, "DELETE FROM audit_events").catch(() => undefined)
    const app = track(
      spawnNode(fixture("audit-stress.ts"), ["start"], {
        DATABASE_URL: db.url,
        ASTERFORGE_SERVER_PORT: "0",
        // A small buffer, so the writer is behind when the signal arrives and backpressure is exercised.
        ASTERFORGE_AUDIT_BUFFER_SIZE: "2000",
        ASTERFORGE_AUDIT_BATCH_SIZE: "200"
      })
    )
    // Mid-stream: well after start, while the recorder is still going.
    await app.waitFor(/^recorded 5000$/, 60_000)
    app.kill(signal)
    const exit = await app.exited
    expect(exit, app.output).toEqual({ code: 0, signal: null })

    const lastReturned = Math.max(...app.stdout.flatMap((l) => /^recorded (\d+)$/.exec(l)?.[1] ?? []).map(Number))
    expect(lastReturned).toBeGreaterThanOrEqual(5000)
    const [stats] = await query<{ n: number; distinct_seq: number; max_seq: number; missing: number }>(
      db.url,
      `
      WITH s AS (SELECT (details->>'seq')::int AS seq FROM audit_events WHERE code = 'fixture.recorded')
      SELECT count(*)::int AS n, count(DISTINCT seq)::int AS distinct_seq, max(seq)::int AS max_seq,
             (SELECT count(*)::int FROM generate_series(1, $1::int) g WHERE g NOT IN (SELECT seq FROM s)) AS missing
      FROM s`,
      [lastReturned]
    )
    expect(stats!.missing).toBe(0)
    expect(stats!.n).toBe(stats!.distinct_seq) // nothing written twice
    expect(stats!.max_seq).toBeGreaterThanOrEqual(lastReturned)
    // The node's own lifecycle events were flushed too, after everything else.
    const lifecycle = await query<{ code: string }>(db.url, "SELECT code FROM audit_events WHERE code LIKE 'node.%' ORDER BY id")
    expect(lifecycle.map((r) => r.code)).toEqual(["node.started", "node.stopped"])
  })
})

describe("the real CLI", () => {
  it("SIGTERM: exit 0 and the node row marked stopped", async () => {
    const node = track(spawnCli(["start", "--port", "0"], { DATABASE_URL: db.url }))
    const base = await node.baseUrl()
    const ready = await pollHttp(`${base}/health/ready`, (s) => s === 200)
    const nodeId = JSON.parse(ready.body).node.id as string
    const [before] = await query<{ status: string }>(db.url, "SELECT status FROM nodes WHERE id = $1", [nodeId])
    expect(before?.status).toBe("running")

    node.kill("SIGTERM")
    expect(await node.exited, node.output).toEqual({ code: 0, signal: null })
    const [after] = await query<{ status: string; stopped_at: Date | null }>(db.url, "SELECT status, stopped_at FROM nodes WHERE id = $1", [
      nodeId
    ])
    expect(after?.status).toBe("stopped")
    expect(after?.stopped_at).not.toBeNull()
    const events = await query<{ code: string }>(db.url, "SELECT code FROM audit_events WHERE subject = $1 ORDER BY id", [`node:${nodeId}`])
    expect(events.map((e) => e.code)).toEqual(["node.started", "node.stopped"])
  })

  it("readiness turns 503 at once while HTTP keeps serving through drain_delay", async () => {
    const node = track(spawnCli(["start", "--port", "0", "--set", "shutdown.drain_delay=3s"], { DATABASE_URL: db.url }))
    const base = await node.baseUrl()
    await pollHttp(`${base}/health/ready`, (s) => s === 200)
    node.kill("SIGTERM")
    const draining = await pollHttp(`${base}/health/ready`, (s) => s === 503, 2_500)
    const report = JSON.parse(draining.body)
    expect(report.draining).toBe(true)
    expect(report.checks.find((c: { name: string }) => c.name === "draining").status).toBe("fail")
    // Still serving during the drain delay: liveness answers.
    const live = await fetch(`${base}/health`)
    expect(live.status).toBe(200)
    expect(await node.exited).toEqual({ code: 0, signal: null })
  })

  it("a finalizer that hangs is cut off by the watchdog with a non-zero exit", async () => {
    const app = track(
      spawnNode(fixture("hanging-finalizer.ts"), ["start"], {
        DATABASE_URL: db.url,
        ASTERFORGE_SERVER_PORT: "0",
        ASTERFORGE_SHUTDOWN_TIMEOUT: "2s",
        ASTERFORGE_SHUTDOWN_GRACE: "1s"
      })
    )
    await app.baseUrl()
    app.kill("SIGTERM")
    const exit = await app.exited
    expect(exit.code).toBe(70)
    expect(app.output).toContain("stuck finalizer entered")
    expect(app.output).toContain("shutdown did not finish within 2000 ms of SIGTERM")
  })
})
