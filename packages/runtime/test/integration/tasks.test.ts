/**
 * The task queue in one process against a real Postgres: transactional
 * enqueue, unique keys, ordering, every failure class, timeouts, versioned
 * payloads, fencing, and callbacks over real HTTP.
 *
 * One node (primary, with the test tasks) on one fresh database serves the
 * whole file; tests that need a second node build it in their own scope.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { TaskQueue } from "../../src/TaskQueue.ts"
import * as T from "../fixtures/test-tasks.ts"
import * as Kit from "../support/kit.ts"

const TestNode = Kit.node({
  modules: [T.TestTasks],
  env: {
    ASTERFORGE_WORKER_CONCURRENCY: "4",
    ASTERFORGE_TELEMETRY_LOG_LEVEL: "none",
    // Heartbeats would notice a lost lease first (tested separately); here the late completion must meet the fence.
    ASTERFORGE_WORKER_HEARTBEAT_INTERVAL: "1h",
    ASTERFORGE_WORKER_LEASE_DURATION: "3h"
  }
}).pipe(Layer.provideMerge(Kit.setUp(T.createTables)), Layer.provideMerge(Kit.database("tasks")))

const { taskInfo: get, untilTask: until, taskFinished: finished } = Kit
const runs = (id: string) =>
  Kit.queryDb<{ attempt: number; phase: string; note: string | null; node_id: string }>(
    "SELECT attempt, phase, note, node_id FROM test_task_runs WHERE task_id = $1 ORDER BY seq",
    [id]
  )
const started = (id: string) =>
  Kit.eventually(
    Effect.map(runs(id), (r) => (r.length > 0 ? true : undefined)),
    "the task to start"
  )
const auditFor = (id: string) =>
  Kit.queryDb<{ code: string; details: Record<string, unknown> }>("SELECT code, details FROM audit_events WHERE subject = $1 ORDER BY id", [
    `task:${id}`
  ])
const taskCount = Effect.map(Kit.queryDb<{ n: number }>("SELECT count(*)::int AS n FROM tasks"), (r) => r[0]!.n)
const openLatch = (latch: string) => Kit.queryDb(T.openLatch, [latch])

/** POSTs to the node's callback route. */
const post = (token: string, body: unknown) =>
  Effect.flatMap(Kit.NodeAddress, ({ baseUrl }) =>
    Effect.promise(async () => {
      const res = await fetch(`${baseUrl}/callbacks/${token}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body)
      })
      const text = await res.text()
      return { status: res.status, json: () => JSON.parse(text) as unknown }
    })
  )

layer(TestNode, { excludeTestServices: true })("task queue", (it) => {
  describe("enqueue", () => {
    it.effect("inside a rolled-back transaction leaves no task; inside a committed one, the task exists", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const q = yield* TaskQueue
        const before = yield* taskCount
        const attempt = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* q.enqueue(T.Record, { key: "rolled-back" })
              return yield* Effect.fail("the app's own write failed" as const)
            })
          )
          .pipe(Effect.flip)
        expect(attempt).toBe("the app's own write failed")
        expect(yield* taskCount).toBe(before)

        const committed = yield* sql.withTransaction(q.enqueue(T.Record, { key: "committed" }))
        expect((yield* finished(committed.id)).state).toBe("succeeded")
      })
    )

    it.effect("an invalid payload or unknown task is a typed error and inserts nothing", () =>
      Effect.gen(function* () {
        const q = yield* TaskQueue
        const before = yield* taskCount
        const invalid = yield* q.enqueue(T.Record, { key: 42 } as never).pipe(Effect.flip)
        expect(invalid.reason._tag).toBe("TaskPayloadInvalid")
        expect(invalid.message).toMatch(/invalid payload for task "test.record": key: Expected string/)
        expect(invalid.isRetryable).toBe(false)
        const unknown = yield* q.enqueueByName("no.such.task", {}).pipe(Effect.flip)
        expect(unknown.reason._tag).toBe("TaskUnknown")
        const badOptions = yield* q.enqueue(T.Record, { key: "x" }, { maxAttempts: 0 }).pipe(Effect.flip)
        expect(badOptions.reason._tag).toBe("TaskOptionsInvalid")
        expect(yield* taskCount).toBe(before)
      })
    )

    it.effect("a unique key returns the unfinished holder; once it finished, the key is free again", () =>
      Effect.gen(function* () {
        const q = yield* TaskQueue
        // The holder runs until its latch opens: unfinished for as long as the test needs.
        const latch = "unique-key-holder"
        const first = yield* q.enqueue(T.Hold, { latch }, { uniqueKey: "report:2026-11" })
        const second = yield* q.enqueue(T.Hold, { latch }, { uniqueKey: "report:2026-11" })
        expect(second).toEqual({ id: first.id, existing: true })
        const many = yield* q.enqueueMany(T.Record, [{ key: "a" }, { key: "b" }, { key: "c" }], { uniqueKey: undefined })
        expect(new Set(many.map((m) => m.id)).size).toBe(3)
        yield* openLatch(latch)
        yield* finished(first.id)
        const third = yield* q.enqueue(T.Sleep, { ms: 1 }, { uniqueKey: "report:2026-11" })
        expect(third.existing).toBe(false)
        expect(third.id).not.toBe(first.id)
      })
    )

    it.effect("enqueueMany keeps input order and maps keyed duplicates to their holder", () =>
      Effect.gen(function* () {
        const q = yield* TaskQueue
        const latch = "batch-key-holder"
        const holder = yield* q.enqueue(T.Hold, { latch }, { uniqueKey: "batch-key" })
        const batch = yield* q.enqueueMany(T.Sleep, [{ ms: 1 }, { ms: 2 }], { uniqueKey: undefined })
        const withKey = yield* q.enqueueMany(T.Hold, [{ latch }], { uniqueKey: "batch-key" })
        expect(withKey).toEqual([{ id: holder.id, existing: true }])
        const payloads = yield* Effect.forEach(batch, (b) => Effect.map(get(b.id), (t) => t.payload))
        expect(payloads).toEqual([{ ms: 1 }, { ms: 2 }])
        yield* openLatch(latch)
        yield* finished(holder.id)
      })
    )

    it.effect("enqueueEach stores each task's own options and the defaults for the rest; a repeated key in the batch is its holder", () =>
      Effect.gen(function* () {
        const q = yield* TaskQueue
        // A queue no pool serves: the rows stay as the insert wrote them.
        const queue = "stored-options"
        const deadline = new Date(Date.now() + 86_400_000)
        const placed = yield* q.enqueueEach(T.Record, [
          { payload: { key: "plain" }, options: { queue } },
          {
            payload: { key: "every-option" },
            options: {
              queue,
              priority: 7,
              delay: "1 hour",
              maxAttempts: 5,
              uniqueKey: "stored-options-key",
              deadline,
              metadata: { source: "test" }
            }
          },
          { payload: { key: "same-key" }, options: { queue, uniqueKey: "stored-options-key" } }
        ])
        expect(placed[0]?.existing).toBe(false)
        expect(placed[1]?.existing).toBe(false)
        expect(placed[2]).toEqual({ id: placed[1]!.id, existing: true })
        const rows = yield* Kit.queryDb<Record<string, unknown>>(
          `SELECT payload, state, priority, max_attempts, unique_key, metadata, deadline,
                  run_at > now() + interval '50 minutes' AS later, run_at <= now() AS due
           FROM tasks WHERE queue = $1 ORDER BY id`,
          [queue]
        )
        expect(rows).toEqual([
          {
            payload: { key: "plain" },
            state: "available",
            priority: 0,
            max_attempts: T.Record.retry.maxAttempts,
            unique_key: null,
            metadata: {},
            deadline: null,
            later: false,
            due: true
          },
          {
            payload: { key: "every-option" },
            state: "scheduled",
            priority: 7,
            max_attempts: 5,
            unique_key: "stored-options-key",
            metadata: { source: "test" },
            deadline,
            later: true,
            due: false
          }
        ])
      })
    )
  })

  describe("ordering", () => {
    it.effect("runs by priority (lower first), and never before run_at", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const q = yield* TaskQueue
        // One transaction, so the dispatcher sees all three at once.
        const ids = yield* sql.withTransaction(
          Effect.all([
            q.enqueue(T.Record, { key: "p5" }, { priority: 5, queue: "ordered" }),
            q.enqueue(T.Record, { key: "p1" }, { priority: 1, queue: "ordered" }),
            q.enqueue(T.Record, { key: "p3" }, { priority: 3, queue: "ordered" })
          ])
        )
        // Queue "ordered" has no pool on this node: a second node with concurrency 1 for it shows the order.
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* Layer.build(
              Kit.node({
                mode: "worker",
                modules: [T.TestTasks],
                env: { ASTERFORGE_WORKER_QUEUES: "ordered=1", ASTERFORGE_TELEMETRY_LOG_LEVEL: "none" }
              })
            )
            for (const e of ids) yield* finished(e.id)
            const order = yield* Kit.queryDb<{ task_id: string }>(
              `SELECT task_id::text FROM test_task_runs WHERE task_id = ANY($1::bigint[]) ORDER BY seq`,
              [ids.map((e) => e.id)]
            )
            expect(order.map((o) => o.task_id)).toEqual([ids[1]!.id, ids[2]!.id, ids[0]!.id])
          })
        )

        const later = yield* q.enqueue(T.Record, { key: "later" }, { delay: "1500 millis" })
        expect((yield* get(later.id)).state).toBe("scheduled")
        const done = yield* finished(later.id)
        const [ran] = yield* Kit.queryDb<{ ok: boolean }>(
          "SELECT min(r.at) >= t.run_at AS ok FROM test_task_runs r JOIN tasks t ON t.id = r.task_id WHERE r.task_id = $1 GROUP BY t.run_at",
          [later.id]
        )
        expect(done.state).toBe("succeeded")
        expect(ran?.ok).toBe(true)
      })
    )
  })

  describe("failure classes", () => {
    it.effect("retryable: retried with backoff until max attempts, then failed with structured details", () =>
      Effect.gen(function* () {
        const { id } = yield* Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Flaky, { failTimes: 10 }))
        const t = yield* finished(id)
        expect(t.state).toBe("failed")
        expect(t.attempt).toBe(3)
        expect(t.errors.map((e) => [e.tag, e.attempt, e.code])).toEqual([
          ["Retryable", 1, "test.flaky"],
          ["Retryable", 2, "test.flaky"],
          ["Retryable", 3, "test.flaky"]
        ])
        expect(t.errors[0]!.message).toBe("attempt 1 failed")
        // Backoff (50 ms, then 100 ms) is a lower bound between attempts.
        const starts = yield* Kit.queryDb<{ at: Date }>("SELECT at FROM test_task_runs WHERE task_id = $1 ORDER BY seq", [id])
        expect(starts[1]!.at.getTime() - starts[0]!.at.getTime()).toBeGreaterThanOrEqual(50)
        expect(starts[2]!.at.getTime() - starts[1]!.at.getTime()).toBeGreaterThanOrEqual(100)
        const audit = yield* auditFor(id)
        expect(audit).toEqual([
          { code: "task.failed", details: expect.objectContaining({ exhausted: true, attempt: 3, tag: "Retryable", code: "test.flaky" }) }
        ])
      })
    )

    it.effect("retryable that recovers: succeeds with its result stored as JSON", () =>
      Effect.gen(function* () {
        const { id } = yield* Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Flaky, { failTimes: 1 }))
        const t = yield* finished(id)
        expect(t.state).toBe("succeeded")
        expect(t.result).toEqual({ attempt: 2 })
        expect(t.errors).toHaveLength(1)
      })
    )

    it.effect("terminal: failed at once, one attempt", () =>
      Effect.gen(function* () {
        const { id } = yield* Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Refuse, {}))
        const t = yield* finished(id)
        expect(t.state).toBe("failed")
        expect(t.attempt).toBe(1)
        expect(t.errors).toEqual([
          expect.objectContaining({ tag: "Terminal", message: "refusing on purpose", code: "test.refused", attempt: 1 })
        ])
        expect(yield* runs(id)).toHaveLength(1)
      })
    )

    it.effect("snooze: runs again later without consuming an attempt", () =>
      Effect.gen(function* () {
        const { id } = yield* Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Nap, {}))
        const t = yield* finished(id)
        expect(t.state).toBe("succeeded")
        expect(t.attempt).toBe(1)
        expect((yield* runs(id)).map((r) => r.attempt)).toEqual([1, 1])
      })
    )

    it.effect("a defect is retryable, with the stack kept for administrators", () =>
      Effect.gen(function* () {
        const { id } = yield* Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Crash, {}))
        const t = yield* finished(id)
        expect(t.state).toBe("failed")
        expect(t.attempt).toBe(2)
        expect(t.errors[0]).toMatchObject({ tag: "Defect", message: "boom: a bug in the handler", attempt: 1 })
        expect(t.errors[0]!.stack).toContain("boom: a bug in the handler")
      })
    )

    it.effect("timeout: the handler is interrupted and the attempt fails as a timeout", () =>
      Effect.gen(function* () {
        const { id } = yield* Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Hang, {}))
        const t = yield* finished(id)
        expect(t.state).toBe("failed")
        expect(t.errors).toEqual([expect.objectContaining({ tag: "Timeout", message: "timed out after 200ms", code: "task.timeout" })])
        expect((yield* runs(id)).map((r) => r.phase)).toEqual(["started", "interrupted"])
      })
    )

    it.effect("a payload that no longer decodes is terminal at once, with the reason", () =>
      Effect.gen(function* () {
        const [row] = yield* Kit.queryDb<{ id: string }>(
          `INSERT INTO tasks (name, queue, state, max_attempts, payload) VALUES ('test.record', 'default', 'available', 25, '{"key": 42}') RETURNING id::text`
        )
        yield* Kit.queryDb("SELECT pg_notify('asterforge_tasks', 'default')")
        const t = yield* finished(row!.id)
        expect(t.state).toBe("failed")
        expect(t.attempt).toBe(1)
        expect(t.errors).toEqual([
          expect.objectContaining({ tag: "PayloadInvalid", message: expect.stringContaining("key: Expected string") })
        ])
        expect(yield* runs(row!.id)).toEqual([])
      })
    )

    it.effect("an old row written under payload version 1 still decodes under version 2", () =>
      Effect.gen(function* () {
        const [row] = yield* Kit.queryDb<{ id: string }>(
          `INSERT INTO tasks (name, queue, state, max_attempts, payload, payload_version) VALUES ('test.versioned', 'default', 'available', 3, '{"first": "Ada", "last": "Lovelace"}', 1) RETURNING id::text`
        )
        yield* Kit.queryDb("SELECT pg_notify('asterforge_tasks', 'default')")
        const t = yield* finished(row!.id)
        expect(t.state).toBe("succeeded")
        expect(t.result).toEqual({ greeting: "hello Ada Lovelace" })
        const fresh = yield* Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Greet, { fullName: "Grace Hopper" }))
        expect((yield* get(fresh.id)).payloadVersion).toBe(2)
        expect((yield* finished(fresh.id)).result).toEqual({ greeting: "hello Grace Hopper" })
      })
    )

    it.effect("a deadline that passed before the task ran fails it without running", () =>
      Effect.gen(function* () {
        const { id } = yield* Effect.flatMap(TaskQueue, (q) =>
          q.enqueue(T.Record, { key: "late" }, { delay: "300 millis", deadline: new Date(Date.now() + 100) })
        )
        const t = yield* finished(id)
        expect(t.state).toBe("failed")
        expect(t.errors[0]?.tag).toBe("DeadlineExceeded")
        expect(yield* runs(id)).toEqual([])
      })
    )
  })

  describe("fencing", () => {
    it.effect("a completion whose lease epoch moved on is rejected and audited", () =>
      Effect.gen(function* () {
        // Held until the row has moved on: the completion can only come after the takeover.
        const latch = "fencing"
        const { id } = yield* Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Hold, { latch }))
        yield* started(id)
        // What a rescue plus a re-claim by another node does to the row.
        const other = "00000000-0000-0000-0000-00000000beef"
        yield* Kit.queryDb("UPDATE tasks SET lease_epoch = lease_epoch + 1, lease_owner = $2 WHERE id = $1", [id, other])
        yield* openLatch(latch)
        const audit = yield* Kit.eventually(
          Effect.map(auditFor(id), (a) => (a.some((e) => e.code === "task.stale_result_rejected") ? a : undefined)),
          "the stale result to be rejected"
        )
        expect(audit.find((e) => e.code === "task.stale_result_rejected")?.details).toMatchObject({ name: "test.hold", outcome: "success" })
        const t = yield* get(id)
        expect(t.state).toBe("running")
        expect(t.leaseOwner).toBe(other)
        expect((yield* runs(id)).map((r) => r.phase)).toEqual(["started", "finished"])
      })
    )
  })

  describe("lease loss", () => {
    it.effect("a node whose lease was taken over stops the handler at its next heartbeat and writes nothing", () =>
      Effect.gen(function* () {
        yield* Layer.build(
          Kit.node({
            mode: "worker",
            modules: [T.TestTasks],
            env: {
              ASTERFORGE_WORKER_QUEUES: "leases=1",
              ASTERFORGE_WORKER_HEARTBEAT_INTERVAL: "200ms",
              ASTERFORGE_WORKER_LEASE_DURATION: "2s",
              ASTERFORGE_TELEMETRY_LOG_LEVEL: "none"
            }
          })
        )
        const { id } = yield* Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Sleep, { ms: 60_000 }, { queue: "leases" }))
        yield* started(id)
        const other = "00000000-0000-0000-0000-00000000cafe"
        yield* Kit.queryDb("UPDATE tasks SET lease_epoch = lease_epoch + 1, lease_owner = $2 WHERE id = $1", [id, other])
        yield* Kit.eventually(
          Effect.map(runs(id), (r) => (r.some((x) => x.phase === "interrupted") ? true : undefined)),
          "the handler to be interrupted"
        )
        const t = yield* get(id)
        expect(t.state).toBe("running")
        expect(t.leaseOwner).toBe(other)
        expect((yield* auditFor(id)).map((a) => a.code)).toEqual([])
      })
    )
  })

  describe("admin operations", () => {
    it.effect("cancel a waiting task at once; retry a failed one with a fresh budget; both audited", () =>
      Effect.gen(function* () {
        const q = yield* TaskQueue
        const scheduled = yield* q.enqueue(T.Record, { key: "never" }, { delay: "1 hour" })
        expect(yield* q.cancel(scheduled.id, "user:alice")).toEqual({ id: scheduled.id, state: "cancelled" })
        const again = yield* q.cancel(scheduled.id).pipe(Effect.flip)
        expect(again.reason._tag).toBe("TaskStateConflict")

        const { id } = yield* q.enqueue(T.Refuse, {})
        yield* finished(id)
        const retried = yield* q.retry(id, "user:alice")
        expect(retried.attempt).toBe(0)
        const t = yield* finished(id)
        expect(t.state).toBe("failed")
        expect(t.attempt).toBe(1)
        expect((yield* auditFor(id)).map((a) => a.code)).toEqual(["task.failed", "task.retried", "task.failed"])
        expect((yield* auditFor(scheduled.id)).map((a) => a.code)).toEqual(["task.cancelled"])
        const missing = yield* q.get("999999999").pipe(Effect.flip)
        expect(missing.reason._tag).toBe("TaskNotFound")
      })
    )

    it.effect("cancel interrupts a handler running on this node", () =>
      Effect.gen(function* () {
        const q = yield* TaskQueue
        const { id } = yield* q.enqueue(T.Sleep, { ms: 60_000 })
        yield* started(id)
        expect((yield* q.cancel(id)).state).toBe("running")
        const t = yield* finished(id)
        expect(t.state).toBe("cancelled")
        expect((yield* runs(id)).map((r) => r.phase)).toEqual(["started", "interrupted"])
        expect((yield* auditFor(id)).map((a) => a.code)).toEqual(["task.cancelled"])
      })
    )

    it.effect("list pages by id, newest first, with filters", () =>
      Effect.gen(function* () {
        const q = yield* TaskQueue
        const page = yield* q.list({ state: ["failed"] }, { limit: 2 })
        expect(page.tasks.length).toBe(2)
        expect(page.tasks.every((t) => t.state === "failed")).toBe(true)
        expect(Number(page.tasks[0]!.id)).toBeGreaterThan(Number(page.tasks[1]!.id))
        const next = yield* q.list({ state: ["failed"] }, { limit: 2, before: page.next! })
        expect(Number(next.tasks[0]!.id)).toBeLessThan(Number(page.tasks[1]!.id))
      })
    )
  })

  describe("callbacks", () => {
    const parked = Effect.gen(function* () {
      const { id } = yield* Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Await, {}))
      const task = yield* until(id, (t) => t.state === "waiting_callback", "to wait for its callback")
      const [run] = yield* runs(id)
      return { id, token: run!.note!, task }
    })

    it.effect("a result resumes the task exactly once; bad bodies are 400 and change nothing", () =>
      Effect.gen(function* () {
        const { id, token } = yield* parked
        expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)

        const notJson = yield* post(token, "{nope")
        expect(notJson.status).toBe(400)
        const wrongShape = yield* post(token, { result: { ok: "yes" } })
        expect(wrongShape.status).toBe(400)
        expect(wrongShape.json()).toEqual({
          error: {
            tag: "TaskResultInvalid",
            message: expect.stringContaining("does not match the result schema"),
            details: expect.stringContaining("ok")
          }
        })
        expect((yield* get(id)).state).toBe("waiting_callback")

        const ok = yield* post(token, { result: { ok: true } })
        expect(ok.status).toBe(200)
        expect(ok.json()).toEqual({ id, state: "succeeded" })
        expect((yield* get(id)).result).toEqual({ ok: true })
        const twice = yield* post(token, { result: { ok: true } })
        expect(twice.status).toBe(404)
        expect((yield* auditFor(id)).map((a) => a.code)).toEqual(["task.callback_received"])
      })
    )

    it.effect("an error fails the attempt: retried while attempts remain, failed when not retryable", () =>
      Effect.gen(function* () {
        const a = yield* parked
        const retry = yield* post(a.token, { error: { message: "upstream said later" } })
        expect(retry.json()).toEqual({ id: a.id, state: "retryable" })
        // It runs again, parks again with a new token.
        yield* Kit.eventually(
          Effect.map(runs(a.id), (r) => (r.length === 2 ? true : undefined)),
          "the second attempt"
        )
        const second = (yield* runs(a.id))[1]!.note!
        expect(second).not.toBe(a.token)
        yield* until(a.id, (t) => t.state === "waiting_callback", "to park again")
        const fail = yield* post(second, { error: { message: "declined", retryable: false, code: "test.declined" } })
        expect(fail.json()).toEqual({ id: a.id, state: "failed" })
        const t = yield* get(a.id)
        expect(t.errors.map((e) => [e.tag, e.message, e.code])).toEqual([
          ["CallbackError", "upstream said later", null],
          ["CallbackError", "declined", "test.declined"]
        ])
        expect((yield* post("not-a-token", { result: { ok: true } })).status).toBe(404)
      })
    )
  })

  describe("worker status", () => {
    it.effect("readiness lists each queue's concurrency, running and free slots", () =>
      Effect.gen(function* () {
        const { baseUrl } = yield* Kit.NodeAddress
        const body = yield* Effect.promise(
          async () =>
            (await fetch(`${baseUrl}/health/ready`)).json() as Promise<{
              checks: Array<{ name: string; data?: { queues: Record<string, { concurrency: number; free: number }> } }>
            }>
        )
        const dispatcher = body.checks.find((c) => c.name === "dispatcher")
        expect(dispatcher?.data?.queues.default).toMatchObject({ concurrency: 4 })
        expect(Schema.is(Schema.Int)(dispatcher?.data?.queues.default?.free)).toBe(true)
      })
    )
  })
})
