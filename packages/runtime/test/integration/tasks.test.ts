/**
 * The task queue in one process against a real Postgres: transactional
 * enqueue, unique keys, ordering, every failure class, timeouts, versioned
 * payloads, fencing, and callbacks over real HTTP.
 */
import { Effect, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { TaskQueue, type TaskInfo } from "../../src/TaskQueue.ts"
import * as T from "../fixtures/test-tasks.ts"
import { freshDatabase, query, type TestDatabase } from "../support/database.ts"
import { eventually, startNode, type TestNode } from "../support/node.ts"

let db: TestDatabase
let node: TestNode
let baseUrl: string

beforeAll(async () => {
  db = await freshDatabase("tasks")
  node = await startNode({ url: db.url, modules: [T.TestTasks], env: {
    ASTERFORGE_WORKER_CONCURRENCY: "4",
    ASTERFORGE_TELEMETRY_LOG_LEVEL: "none",
    // Heartbeats would notice a lost lease first (tested separately); here the late completion must meet the fence.
    ASTERFORGE_WORKER_HEARTBEAT_INTERVAL: "1h",
    ASTERFORGE_WORKER_LEASE_DURATION: "3h"
  } })
  await query(db.url, T.createRunsTable)
  baseUrl = node.baseUrl
})
afterAll(async () => {
  await node?.close()
  await db?.drop()
})

const queue = <A, E>(f: (q: TaskQueue["Service"]) => Effect.Effect<A, E>) => node.run(Effect.flatMap(TaskQueue, f))
const get = (id: string) => queue((q) => q.get(id))
const until = (id: string, predicate: (t: TaskInfo) => boolean, what: string) =>
  eventually(async () => {
    const t = await get(id)
    return predicate(t) ? t : undefined
  }, `task ${id} ${what}`)
const finished = (id: string) => until(id, (t) => ["succeeded", "failed", "cancelled"].includes(t.state), "to finish")
const runs = (id: string) => query<{ attempt: number; phase: string; note: string | null; node_id: string }>(db.url, "SELECT attempt, phase, note, node_id FROM test_task_runs WHERE task_id = $1 ORDER BY seq", [id])
const auditFor = (id: string) => query<{ code: string; details: Record<string, unknown> }>(db.url, "SELECT code, details FROM audit_events WHERE subject = $1 ORDER BY id", [`task:${id}`])

describe("enqueue", () => {
  it("inside a rolled-back transaction leaves no task; inside a committed one, the task exists", async () => {
    const before = (await query<{ n: number }>(db.url, "SELECT count(*)::int AS n FROM tasks"))[0]!.n
    const attempt = await node.run(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const q = yield* TaskQueue
      return yield* sql.withTransaction(Effect.gen(function*() {
        yield* q.enqueue(T.Record, { key: "rolled-back" })
        return yield* Effect.fail("the app's own write failed" as const)
      })).pipe(Effect.flip)
    }))
    expect(attempt).toBe("the app's own write failed")
    expect((await query<{ n: number }>(db.url, "SELECT count(*)::int AS n FROM tasks"))[0]!.n).toBe(before)

    const committed = await node.run(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const q = yield* TaskQueue
      return yield* sql.withTransaction(q.enqueue(T.Record, { key: "committed" }))
    }))
    expect((await finished(committed.id)).state).toBe("succeeded")
  })

  it("an invalid payload or unknown task is a typed error and inserts nothing", async () => {
    const before = (await query<{ n: number }>(db.url, "SELECT count(*)::int AS n FROM tasks"))[0]!.n
    const invalid = await queue((q) => q.enqueue(T.Record, { key: 42 } as never).pipe(Effect.flip))
    expect(invalid.reason._tag).toBe("TaskPayloadInvalid")
    expect(invalid.message).toMatch(/invalid payload for task "test.record": key: Expected string/)
    expect(invalid.isRetryable).toBe(false)
    const unknown = await queue((q) => q.enqueueByName("no.such.task", {}).pipe(Effect.flip))
    expect(unknown.reason._tag).toBe("TaskUnknown")
    const badOptions = await queue((q) => q.enqueue(T.Record, { key: "x" }, { maxAttempts: 0 }).pipe(Effect.flip))
    expect(badOptions.reason._tag).toBe("TaskOptionsInvalid")
    expect((await query<{ n: number }>(db.url, "SELECT count(*)::int AS n FROM tasks"))[0]!.n).toBe(before)
  })

  it("a unique key returns the unfinished holder; once it finished, the key is free again", async () => {
    const first = await queue((q) => q.enqueue(T.Sleep, { ms: 300 }, { uniqueKey: "report:2026-11" }))
    const second = await queue((q) => q.enqueue(T.Sleep, { ms: 300 }, { uniqueKey: "report:2026-11" }))
    expect(second).toEqual({ id: first.id, existing: true })
    const many = await queue((q) => q.enqueueMany(T.Record, [{ key: "a" }, { key: "b" }, { key: "c" }], { uniqueKey: undefined }))
    expect(new Set(many.map((m) => m.id)).size).toBe(3)
    await finished(first.id)
    const third = await queue((q) => q.enqueue(T.Sleep, { ms: 1 }, { uniqueKey: "report:2026-11" }))
    expect(third.existing).toBe(false)
    expect(third.id).not.toBe(first.id)
  })

  it("enqueueMany keeps input order and maps keyed duplicates to their holder", async () => {
    const r = await queue((q) => Effect.gen(function*() {
      const holder = yield* q.enqueue(T.Sleep, { ms: 500 }, { uniqueKey: "batch-key" })
      const batch = yield* q.enqueueMany(T.Sleep, [{ ms: 1 }, { ms: 2 }], { uniqueKey: undefined })
      const withKey = yield* q.enqueueMany(T.Sleep, [{ ms: 3 }], { uniqueKey: "batch-key" })
      return { holder, batch, withKey }
    }))
    expect(r.withKey).toEqual([{ id: r.holder.id, existing: true }])
    const payloads = await Promise.all(r.batch.map((b) => get(b.id).then((t) => t.payload)))
    expect(payloads).toEqual([{ ms: 1 }, { ms: 2 }])
  })
})

describe("ordering", () => {
  it("runs by priority (lower first), and never before run_at", async () => {
    // One transaction, so the dispatcher sees all three at once.
    const ids = await node.run(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const q = yield* TaskQueue
      return yield* sql.withTransaction(Effect.all([
        q.enqueue(T.Record, { key: "p5" }, { priority: 5, queue: "ordered" }),
        q.enqueue(T.Record, { key: "p1" }, { priority: 1, queue: "ordered" }),
        q.enqueue(T.Record, { key: "p3" }, { priority: 3, queue: "ordered" })
      ]))
    }))
    // Queue "ordered" has no pool on this node yet: start one with concurrency 1 to observe order.
    const ordered = await startNode({ url: db.url, mode: "worker", modules: [T.TestTasks], env: { ASTERFORGE_WORKER_QUEUES: "ordered=1", ASTERFORGE_TELEMETRY_LOG_LEVEL: "none" } })
    try {
      for (const e of ids) await finished(e.id)
      const order = await query<{ task_id: string }>(db.url, `SELECT task_id::text FROM test_task_runs WHERE task_id = ANY($1::bigint[]) ORDER BY seq`, [ids.map((e) => e.id)])
      expect(order.map((o) => o.task_id)).toEqual([ids[1]!.id, ids[2]!.id, ids[0]!.id])
    } finally {
      await ordered.close()
    }

    const later = await queue((q) => q.enqueue(T.Record, { key: "later" }, { delay: "1500 millis" }))
    expect((await get(later.id)).state).toBe("scheduled")
    const done = await finished(later.id)
    const [ran] = await query<{ ok: boolean }>(db.url, "SELECT min(r.at) >= t.run_at AS ok FROM test_task_runs r JOIN tasks t ON t.id = r.task_id WHERE r.task_id = $1 GROUP BY t.run_at", [later.id])
    expect(done.state).toBe("succeeded")
    expect(ran?.ok).toBe(true)
  })
})

describe("failure classes", () => {
  it("retryable: retried with backoff until max attempts, then failed with structured details", async () => {
    const { id } = await queue((q) => q.enqueue(T.Flaky, { failTimes: 10 }))
    const t = await finished(id)
    expect(t.state).toBe("failed")
    expect(t.attempt).toBe(3)
    expect(t.errors.map((e) => [e.tag, e.attempt, e.code])).toEqual([["Retryable", 1, "test.flaky"], ["Retryable", 2, "test.flaky"], ["Retryable", 3, "test.flaky"]])
    expect(t.errors[0]!.message).toBe("attempt 1 failed")
    // Backoff (50 ms, then 100 ms) is a lower bound between attempts.
    const starts = await query<{ at: Date }>(db.url, "SELECT at FROM test_task_runs WHERE task_id = $1 ORDER BY seq", [id])
    expect(starts[1]!.at.getTime() - starts[0]!.at.getTime()).toBeGreaterThanOrEqual(50)
    expect(starts[2]!.at.getTime() - starts[1]!.at.getTime()).toBeGreaterThanOrEqual(100)
    const audit = await auditFor(id)
    expect(audit).toEqual([{ code: "task.failed", details: expect.objectContaining({ exhausted: true, attempt: 3, tag: "Retryable", code: "test.flaky" }) }])
  })

  it("retryable that recovers: succeeds with its result stored as JSON", async () => {
    const { id } = await queue((q) => q.enqueue(T.Flaky, { failTimes: 1 }))
    const t = await finished(id)
    expect(t.state).toBe("succeeded")
    expect(t.result).toEqual({ attempt: 2 })
    expect(t.errors).toHaveLength(1)
  })

  it("terminal: failed at once, one attempt", async () => {
    const { id } = await queue((q) => q.enqueue(T.Refuse, {}))
    const t = await finished(id)
    expect(t.state).toBe("failed")
    expect(t.attempt).toBe(1)
    expect(t.errors).toEqual([expect.objectContaining({ tag: "Terminal", message: "refusing on purpose", code: "test.refused", attempt: 1 })])
    expect(await runs(id)).toHaveLength(1)
  })

  it("snooze: runs again later without consuming an attempt", async () => {
    const { id } = await queue((q) => q.enqueue(T.Nap, {}))
    const t = await finished(id)
    expect(t.state).toBe("succeeded")
    expect(t.attempt).toBe(1)
    expect((await runs(id)).map((r) => r.attempt)).toEqual([1, 1])
  })

  it("a defect is retryable, with the stack kept for administrators", async () => {
    const { id } = await queue((q) => q.enqueue(T.Crash, {}))
    const t = await finished(id)
    expect(t.state).toBe("failed")
    expect(t.attempt).toBe(2)
    expect(t.errors[0]).toMatchObject({ tag: "Defect", message: "boom: a bug in the handler", attempt: 1 })
    expect(t.errors[0]!.stack).toContain("boom: a bug in the handler")
  })

  it("timeout: the handler is interrupted and the attempt fails as a timeout", async () => {
    const { id } = await queue((q) => q.enqueue(T.Hang, {}))
    const t = await finished(id)
    expect(t.state).toBe("failed")
    expect(t.errors).toEqual([expect.objectContaining({ tag: "Timeout", message: "timed out after 200ms", code: "task.timeout" })])
    expect((await runs(id)).map((r) => r.phase)).toEqual(["started", "interrupted"])
  })

  it("a payload that no longer decodes is terminal at once, with the reason", async () => {
    const [row] = await query<{ id: string }>(db.url, `INSERT INTO tasks (name, queue, state, max_attempts, payload) VALUES ('test.record', 'default', 'available', 25, '{"key": 42}') RETURNING id::text`)
    await query(db.url, "SELECT pg_notify('asterforge_tasks', 'default')")
    const t = await finished(row!.id)
    expect(t.state).toBe("failed")
    expect(t.attempt).toBe(1)
    expect(t.errors).toEqual([expect.objectContaining({ tag: "PayloadInvalid", message: expect.stringContaining("key: Expected string") })])
    expect(await runs(row!.id)).toEqual([])
  })

  it("an old row written under payload version 1 still decodes under version 2", async () => {
    const [row] = await query<{ id: string }>(db.url, `INSERT INTO tasks (name, queue, state, max_attempts, payload, payload_version) VALUES ('test.versioned', 'default', 'available', 3, '{"first": "Ada", "last": "Lovelace"}', 1) RETURNING id::text`)
    await query(db.url, "SELECT pg_notify('asterforge_tasks', 'default')")
    const t = await finished(row!.id)
    expect(t.state).toBe("succeeded")
    expect(t.result).toEqual({ greeting: "hello Ada Lovelace" })
    const fresh = await queue((q) => q.enqueue(T.Greet, { fullName: "Grace Hopper" }))
    expect((await get(fresh.id)).payloadVersion).toBe(2)
    expect((await finished(fresh.id)).result).toEqual({ greeting: "hello Grace Hopper" })
  })

  it("a deadline that passed before the task ran fails it without running", async () => {
    const { id } = await queue((q) => q.enqueue(T.Record, { key: "late" }, { delay: "300 millis", deadline: new Date(Date.now() + 100) }))
    const t = await finished(id)
    expect(t.state).toBe("failed")
    expect(t.errors[0]?.tag).toBe("DeadlineExceeded")
    expect(await runs(id)).toEqual([])
  })
})

describe("fencing", () => {
  it("a completion whose lease epoch moved on is rejected and audited", async () => {
    const { id } = await queue((q) => q.enqueue(T.Sleep, { ms: 700 }))
    await eventually(async () => ((await runs(id)).length > 0 ? true : undefined), "the task to start")
    // What a rescue plus a re-claim by another node does to the row.
    const other = "00000000-0000-0000-0000-00000000beef"
    await query(db.url, "UPDATE tasks SET lease_epoch = lease_epoch + 1, lease_owner = $2 WHERE id = $1", [id, other])
    const audit = await eventually(async () => {
      const a = await auditFor(id)
      return a.some((e) => e.code === "task.stale_result_rejected") ? a : undefined
    }, "the stale result to be rejected")
    expect(audit.find((e) => e.code === "task.stale_result_rejected")?.details).toMatchObject({ name: "test.sleep", outcome: "success" })
    const t = await get(id)
    expect(t.state).toBe("running")
    expect(t.leaseOwner).toBe(other)
    expect((await runs(id)).map((r) => r.phase)).toEqual(["started", "finished"])
  })
})

describe("lease loss", () => {
  it("a node whose lease was taken over stops the handler at its next heartbeat and writes nothing", async () => {
    const watcher = await startNode({ url: db.url, mode: "worker", modules: [T.TestTasks], env: {
      ASTERFORGE_WORKER_QUEUES: "leases=1",
      ASTERFORGE_WORKER_HEARTBEAT_INTERVAL: "200ms",
      ASTERFORGE_WORKER_LEASE_DURATION: "2s",
      ASTERFORGE_TELEMETRY_LOG_LEVEL: "none"
    } })
    try {
      const { id } = await queue((q) => q.enqueue(T.Sleep, { ms: 60_000 }, { queue: "leases" }))
      await eventually(async () => ((await runs(id)).length > 0 ? true : undefined), "the task to start")
      const other = "00000000-0000-0000-0000-00000000cafe"
      await query(db.url, "UPDATE tasks SET lease_epoch = lease_epoch + 1, lease_owner = $2 WHERE id = $1", [id, other])
      await eventually(async () => ((await runs(id)).some((r) => r.phase === "interrupted") ? true : undefined), "the handler to be interrupted")
      const t = await get(id)
      expect(t.state).toBe("running")
      expect(t.leaseOwner).toBe(other)
      expect((await auditFor(id)).map((a) => a.code)).toEqual([])
    } finally {
      await watcher.close()
    }
  })
})

describe("admin operations", () => {
  it("cancel a waiting task at once; retry a failed one with a fresh budget; both audited", async () => {
    const scheduled = await queue((q) => q.enqueue(T.Record, { key: "never" }, { delay: "1 hour" }))
    expect(await queue((q) => q.cancel(scheduled.id, "user:alice"))).toEqual({ id: scheduled.id, state: "cancelled" })
    const again = await queue((q) => q.cancel(scheduled.id).pipe(Effect.flip))
    expect(again.reason._tag).toBe("TaskStateConflict")

    const { id } = await queue((q) => q.enqueue(T.Refuse, {}))
    await finished(id)
    const retried = await queue((q) => q.retry(id, "user:alice"))
    expect(retried.attempt).toBe(0)
    const t = await finished(id)
    expect(t.state).toBe("failed")
    expect(t.attempt).toBe(1)
    expect((await auditFor(id)).map((a) => a.code)).toEqual(["task.failed", "task.retried", "task.failed"])
    expect((await auditFor(scheduled.id)).map((a) => a.code)).toEqual(["task.cancelled"])
    const missing = await queue((q) => q.get("999999999").pipe(Effect.flip))
    expect(missing.reason._tag).toBe("TaskNotFound")
  })

  it("cancel interrupts a handler running on this node", async () => {
    const { id } = await queue((q) => q.enqueue(T.Sleep, { ms: 60_000 }))
    await eventually(async () => ((await runs(id)).length > 0 ? true : undefined), "the task to start")
    expect((await queue((q) => q.cancel(id))).state).toBe("running")
    const t = await finished(id)
    expect(t.state).toBe("cancelled")
    expect((await runs(id)).map((r) => r.phase)).toEqual(["started", "interrupted"])
    expect((await auditFor(id)).map((a) => a.code)).toEqual(["task.cancelled"])
  })

  it("list pages by id, newest first, with filters", async () => {
    const page = await queue((q) => q.list({ state: ["failed"] }, { limit: 2 }))
    expect(page.tasks.length).toBe(2)
    expect(page.tasks.every((t) => t.state === "failed")).toBe(true)
    expect(Number(page.tasks[0]!.id)).toBeGreaterThan(Number(page.tasks[1]!.id))
    const next = await queue((q) => q.list({ state: ["failed"] }, { limit: 2, before: page.next! }))
    expect(Number(next.tasks[0]!.id)).toBeLessThan(Number(page.tasks[1]!.id))
  })
})

describe("callbacks", () => {
  const parked = async () => {
    const { id } = await queue((q) => q.enqueue(T.Await, {}))
    const t = await until(id, (t) => t.state === "waiting_callback", "to wait for its callback")
    const [run] = await runs(id)
    return { id, token: run!.note!, task: t }
  }
  const post = (token: string, body: unknown) =>
    fetch(`${baseUrl}/callbacks/${token}`, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) })

  it("a result resumes the task exactly once; bad bodies are 400 and change nothing", async () => {
    const { id, token } = await parked()
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)

    const notJson = await post(token, "{nope")
    expect(notJson.status).toBe(400)
    const wrongShape = await post(token, { result: { ok: "yes" } })
    expect(wrongShape.status).toBe(400)
    expect((await wrongShape.json() as { error: string }).error).toContain("does not match the result schema")
    expect((await get(id)).state).toBe("waiting_callback")

    const ok = await post(token, { result: { ok: true } })
    expect(ok.status).toBe(200)
    expect(await ok.json()).toEqual({ id, state: "succeeded" })
    expect((await get(id)).result).toEqual({ ok: true })
    const twice = await post(token, { result: { ok: true } })
    expect(twice.status).toBe(404)
    expect((await auditFor(id)).map((a) => a.code)).toEqual(["task.callback_received"])
  })

  it("an error fails the attempt: retried while attempts remain, failed when not retryable", async () => {
    const a = await parked()
    const retry = await post(a.token, { error: { message: "upstream said later" } })
    expect(await retry.json()).toEqual({ id: a.id, state: "retryable" })
    // It runs again, parks again with a new token.
    await eventually(async () => ((await runs(a.id)).length === 2 ? true : undefined), "the second attempt")
    const second = (await runs(a.id))[1]!.note!
    expect(second).not.toBe(a.token)
    await until(a.id, (t) => t.state === "waiting_callback", "to park again")
    const fail = await post(second, { error: { message: "declined", retryable: false, code: "test.declined" } })
    expect(await fail.json()).toEqual({ id: a.id, state: "failed" })
    const t = await get(a.id)
    expect(t.errors.map((e) => [e.tag, e.message, e.code])).toEqual([["CallbackError", "upstream said later", null], ["CallbackError", "declined", "test.declined"]])
    expect((await post("not-a-token", { result: { ok: true } })).status).toBe(404)
  })
})

describe("worker status", () => {
  it("readiness lists each queue's concurrency, running and free slots", async () => {
    const ready = await fetch(`${baseUrl}/health/ready`)
    const body = await ready.json() as { checks: Array<{ name: string; data?: { queues: Record<string, { concurrency: number; free: number }> } }> }
    const dispatcher = body.checks.find((c) => c.name === "dispatcher")
    expect(dispatcher?.data?.queues.default).toMatchObject({ concurrency: 4 })
    expect(Schema.is(Schema.Int)(dispatcher?.data?.queues.default?.free)).toBe(true)
  })
})
