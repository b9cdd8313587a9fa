/**
 * The task queue across real processes: two dispatchers never run a task
 * twice, cancel reaches the process running the handler, SIGTERM hands running
 * tasks straight back, and followers and maintenance nodes never claim.
 */
import { Effect } from "effect"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { TaskQueue } from "../../src/TaskQueue.ts"
import * as T from "../fixtures/test-tasks.ts"
import { eventually, freshDatabase, query, startNode, type FreshDatabase, type TestNode } from "../support/kit.ts"
import { fixture, spawnNode, type Spawned } from "../support/process.ts"

let db: FreshDatabase
/** An in-process follower: the test's own TaskQueue client (enqueue works in every mode). */
let client: TestNode
const running: Array<Spawned> = []

beforeAll(async () => {
  db = await freshDatabase("task_procs")
  client = await startNode({ url: db.url, mode: "follower", modules: [T.TestTasks], env: { ASTERFORGE_TELEMETRY_LOG_LEVEL: "none" } })
  for (const statement of T.createTables) await query(db.url, statement)
})
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()))
  await query(db.url, "DELETE FROM tasks")
  await query(db.url, "DELETE FROM test_task_runs")
})
afterAll(async () => {
  await client?.close()
  await db?.drop()
})

const spawnTasksNode = (mode: string, env: Record<string, string> = {}) => {
  const p = spawnNode(fixture("tasks-app.ts"), ["start"], {
    DATABASE_URL: db.url,
    ASTERFORGE_MODE: mode,
    ASTERFORGE_SERVER_PORT: "0",
    ...env
  })
  running.push(p)
  return p
}
const queue = <A, E>(f: (q: TaskQueue["Service"]) => Effect.Effect<A, E>) => client.run(Effect.flatMap(TaskQueue, f))
const count = async (sqlText: string, params: ReadonlyArray<unknown> = []) => (await query<{ n: number }>(db.url, sqlText, params))[0]!.n

describe("across processes", () => {
  it("two dispatcher processes over 2,000 tasks (one claiming ahead with prefetch): each task runs exactly once", async () => {
    const a = spawnTasksNode("worker", { ASTERFORGE_WORKER_CONCURRENCY: "16" })
    const b = spawnTasksNode("worker", { ASTERFORGE_WORKER_CONCURRENCY: "16", ASTERFORGE_WORKER_PREFETCH: "32" })
    await Promise.all([a.baseUrl(), b.baseUrl()])
    // In chunks, while both are already claiming: they compete for every chunk.
    for (let i = 0; i < 20; i++) {
      await queue((q) =>
        q.enqueueMany(
          T.Record,
          Array.from({ length: 100 }, (_, j) => ({ key: `k${i * 100 + j}` }))
        )
      )
    }
    await eventually(
      async () => ((await count("SELECT count(*)::int AS n FROM tasks WHERE state = 'succeeded'")) === 2000 ? true : undefined),
      "2,000 tasks to succeed",
      60_000
    )
    expect(await count("SELECT count(*)::int AS n FROM test_task_runs")).toBe(2000)
    expect(await count("SELECT count(DISTINCT task_id)::int AS n FROM test_task_runs")).toBe(2000)
    // Both processes took part.
    const perNode = await query<{ node_id: string; n: number }>(
      db.url,
      "SELECT node_id, count(*)::int AS n FROM test_task_runs GROUP BY node_id"
    )
    expect(perNode).toHaveLength(2)
    expect(await count("SELECT count(*)::int AS n FROM tasks WHERE attempt <> 1")).toBe(0)
  })

  it("cancel interrupts a handler running in another process", async () => {
    const worker = spawnTasksNode("worker")
    await worker.baseUrl()
    const { id } = await queue((q) => q.enqueue(T.Sleep, { ms: 120_000 }))
    await eventually(
      async () => ((await count("SELECT count(*)::int AS n FROM test_task_runs WHERE task_id = $1", [id])) > 0 ? true : undefined),
      "the task to start"
    )
    expect((await queue((q) => q.cancel(id, "user:test"))).state).toBe("running")
    const t = await eventually(async () => {
      const t = await queue((q) => q.get(id))
      return t.state === "cancelled" ? t : undefined
    }, "the cancellation to be recorded")
    expect(t.leaseOwner).toBeNull()
    const phases = await query<{ phase: string }>(db.url, "SELECT phase FROM test_task_runs WHERE task_id = $1 ORDER BY seq", [id])
    expect(phases.map((p) => p.phase)).toEqual(["started", "interrupted"])
    worker.kill("SIGTERM")
    expect((await worker.exited).code).toBe(0)
    const audit = await query<{ code: string }>(db.url, "SELECT code FROM audit_events WHERE subject = $1 ORDER BY id", [`task:${id}`])
    expect(audit.map((a) => a.code)).toEqual(["task.cancelled"])
  })

  it("SIGTERM a worker running 50 long tasks: exit 0, all back to available with unchanged attempts, claimed by the next worker at once", async () => {
    const first = spawnTasksNode("worker", { ASTERFORGE_WORKER_CONCURRENCY: "50", ASTERFORGE_SHUTDOWN_GRACE: "1s" })
    await first.baseUrl()
    const ids = (
      await queue((q) =>
        q.enqueueMany(
          T.Sleep,
          Array.from({ length: 50 }, () => ({ ms: 120_000 }))
        )
      )
    ).map((e) => e.id)
    await eventually(
      async () => ((await count("SELECT count(*)::int AS n FROM test_task_runs WHERE phase = 'started'")) === 50 ? true : undefined),
      "50 tasks to start"
    )
    expect(await count("SELECT count(*)::int AS n FROM tasks WHERE state = 'running' AND attempt = 1")).toBe(50)

    first.kill("SIGTERM")
    expect(await first.exited, first.output).toEqual({ code: 0, signal: null })
    // Straight back: available, lease cleared, the attempt given back. Nobody has to wait for a lease to expire.
    const rows = await query<{ state: string; attempt: number; lease_owner: string | null; lease_expires_at: Date | null }>(
      db.url,
      "SELECT state, attempt, lease_owner, lease_expires_at FROM tasks WHERE id = ANY($1::bigint[])",
      [ids]
    )
    expect(rows).toHaveLength(50)
    expect(rows.every((r) => r.state === "available" && r.attempt === 0 && r.lease_owner === null && r.lease_expires_at === null)).toBe(
      true
    )
    expect(await count("SELECT count(*)::int AS n FROM test_task_runs WHERE phase = 'interrupted'")).toBe(50)
    expect(await count("SELECT count(*)::int AS n FROM audit_events WHERE code = 'task.interrupted'")).toBe(50)

    const second = spawnTasksNode("worker", { ASTERFORGE_WORKER_CONCURRENCY: "50" })
    await second.baseUrl()
    await eventually(
      async () => ((await count("SELECT count(*)::int AS n FROM tasks WHERE state = 'running' AND attempt = 1")) === 50 ? true : undefined),
      "the second worker to claim all 50"
    )
    const owners = await query<{ lease_owner: string }>(
      db.url,
      "SELECT DISTINCT lease_owner::text FROM tasks WHERE id = ANY($1::bigint[])",
      [ids]
    )
    expect(owners).toHaveLength(1)
  })

  it("prefetch: tasks claimed ahead wait for a slot; a cancel settles one without running it; SIGTERM hands them straight back", async () => {
    const worker = spawnTasksNode("worker", {
      ASTERFORGE_WORKER_CONCURRENCY: "2",
      ASTERFORGE_WORKER_PREFETCH: "3",
      ASTERFORGE_SHUTDOWN_GRACE: "1s"
    })
    await worker.baseUrl()
    const ids = (
      await queue((q) =>
        q.enqueueMany(
          T.Sleep,
          Array.from({ length: 6 }, () => ({ ms: 120_000 }))
        )
      )
    ).map((e) => e.id)
    // Two slots run; three more are leased to this node and wait; the sixth stays for others.
    await eventually(
      async () => ((await count("SELECT count(*)::int AS n FROM tasks WHERE state = 'running'")) === 5 ? true : undefined),
      "five tasks to be claimed"
    )
    await eventually(
      async () => ((await count("SELECT count(*)::int AS n FROM test_task_runs WHERE phase = 'started'")) === 2 ? true : undefined),
      "two to start"
    )
    expect(await count("SELECT count(*)::int AS n FROM tasks WHERE state = 'available'")).toBe(1)
    const waiting = await query<{ id: string }>(
      db.url,
      "SELECT id::text AS id FROM tasks t WHERE state = 'running' AND NOT EXISTS (SELECT 1 FROM test_task_runs r WHERE r.task_id = t.id) ORDER BY id"
    )
    expect(waiting).toHaveLength(3)

    // Cancelling a waiting task settles it at once: cancelled, and its handler never runs.
    const cancelled = waiting[0]!.id
    await queue((q) => q.cancel(cancelled, "user:test"))
    const t = await eventually(async () => {
      const t = await queue((q) => q.get(cancelled))
      return t.state === "cancelled" ? t : undefined
    }, "the waiting task to be cancelled")
    expect(t.leaseOwner).toBeNull()
    expect(await count("SELECT count(*)::int AS n FROM test_task_runs WHERE task_id = $1", [cancelled])).toBe(0)

    worker.kill("SIGTERM")
    expect(await worker.exited, worker.output).toEqual({ code: 0, signal: null })
    const rows = await query<{ state: string; attempt: number; lease_owner: string | null }>(
      db.url,
      "SELECT state, attempt, lease_owner FROM tasks WHERE id = ANY($1::bigint[]) AND id <> $2",
      [ids, cancelled]
    )
    expect(rows).toHaveLength(5)
    expect(rows.every((r) => r.state === "available" && r.attempt === 0 && r.lease_owner === null)).toBe(true)
    // Only the two that ran were started and interrupted; the prefetched ones never ran.
    expect(await count("SELECT count(*)::int AS n FROM test_task_runs WHERE phase = 'started'")).toBe(2)
    expect(await count("SELECT count(*)::int AS n FROM test_task_runs WHERE phase = 'interrupted'")).toBe(2)
    const subjects = ids.map((id) => `task:${id}`)
    expect(
      await count("SELECT count(*)::int AS n FROM audit_events WHERE code = 'task.interrupted' AND subject = ANY($1::text[])", [subjects])
    ).toBe(2)
    expect(
      await count("SELECT count(*)::int AS n FROM audit_events WHERE code = 'task.cancelled' AND subject = ANY($1::text[])", [subjects])
    ).toBe(1)
  })

  it("follower and maintenance nodes never claim; a worker then runs the same tasks", async () => {
    const follower = spawnTasksNode("follower")
    const maintenance = spawnTasksNode("maintenance")
    await Promise.all([follower.baseUrl(), maintenance.baseUrl()])
    const ids = (
      await queue((q) =>
        q.enqueueMany(
          T.Record,
          Array.from({ length: 20 }, (_, i) => ({ key: `f${i}` }))
        )
      )
    ).map((e) => e.id)
    // Give them every chance: several poll intervals and the NOTIFY of the enqueue.
    await new Promise((r) => setTimeout(r, 2500))
    expect(
      await count("SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::bigint[]) AND state = 'available' AND lease_epoch = 0", [ids])
    ).toBe(20)
    expect(follower.output).not.toContain("dispatcher started")
    expect(maintenance.output).not.toContain("dispatcher started")

    spawnTasksNode("worker")
    await eventually(
      async () =>
        (await count("SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::bigint[]) AND state = 'succeeded'", [ids])) === 20
          ? true
          : undefined,
      "a worker to run them"
    )
  })

  it("a primary with DISABLE_INLINE_WORKER=1 does not claim", async () => {
    const primary = spawnTasksNode("primary", { DISABLE_INLINE_WORKER: "1" })
    const base = await primary.baseUrl()
    const { id } = await queue((q) => q.enqueue(T.Record, { key: "no-inline" }))
    await new Promise((r) => setTimeout(r, 1500))
    expect((await queue((q) => q.get(id))).state).toBe("available")
    const ready = (await (await fetch(`${base}/health/ready`)).json()) as { role: { dispatches: boolean } }
    expect(ready.role.dispatches).toBe(false)
  })
})
