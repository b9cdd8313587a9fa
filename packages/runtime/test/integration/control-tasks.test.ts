/**
 * The admin API's views and actions against real nodes and Postgres: task
 * filters and keyset pages, a task's history, single and bulk actions with
 * their audit rows (the caller as actor), enqueue by name, queues (depth,
 * throughput, pause and resume across nodes), nodes, lanes, the audit trail
 * and the presentation codes.
 */
import { describe, expect, layer } from "@effect/vitest"
import { type Context, Effect, Layer } from "effect"
import { AuditLog } from "../../src/AuditLog.ts"
import { TaskQueue } from "../../src/TaskQueue.ts"
import * as T from "../fixtures/test-tasks.ts"
import * as Admin from "../support/admin.ts"
import * as Kit from "../support/kit.ts"

const env = {
  ASTERFORGE_SECURITY_ADMIN_TOKEN: Admin.adminToken,
  ASTERFORGE_CONTROL_BULK_CAP: "5",
  ASTERFORGE_CONTROL_BULK_BATCH_SIZE: "2",
  ASTERFORGE_MAINTENANCE_QUEUE_STATS_INTERVAL: "200ms",
  ASTERFORGE_WORKER_POLL_INTERVAL: "100ms",
  ASTERFORGE_TELEMETRY_LOG_LEVEL: "none"
}

const TestNode = Kit.node({ modules: [T.TestTasks], env }).pipe(
  Layer.provideMerge(Kit.setUp(T.createTables)),
  Layer.provideMerge(Kit.database("control_tasks"))
)

const flush = Effect.flatMap(AuditLog, (a) => a.flush)
const enqueue = <P>(def: Parameters<TaskQueue["Service"]["enqueue"]>[0], payload: P, options: { queue?: string } = {}) =>
  Effect.flatMap(TaskQueue, (q) => q.enqueue(def as never, payload as never, options))
const stateOf = (id: string) => Effect.map(Admin.get(`/admin/api/tasks/${id}`), (a) => a.json.state as string)
const untilState = (id: string, state: string) =>
  Kit.eventually(
    Effect.map(stateOf(id), (s) => (s === state ? s : undefined)),
    `task ${id} to be ${state}`
  )
const ids = (answer: Admin.Answer) => (answer.json.items as ReadonlyArray<{ id: string }>).map((t) => t.id)

layer(TestNode, { excludeTestServices: true })("admin API: tasks, queues, nodes, lanes, audit", (it) => {
  describe("tasks", () => {
    it.effect("filters by state, queue, name, payload containment, error code and time ranges; pages by keyset, newest first", () =>
      Effect.gen(function* () {
        // Twelve, so ids cross from one digit to two: pages follow the number, never its text.
        const a = yield* Effect.forEach(
          Array.from({ length: 12 }, (_, i) => i + 1),
          (i) => enqueue(T.Record, { key: `page-${i}` }, { queue: "pages" })
        )
        const failed = yield* enqueue(T.Refuse, {})
        yield* untilState(failed.id, "failed")

        const pages: Array<string> = []
        let cursor: string | null = null
        let rounds = 0
        do {
          const page: Admin.Answer = yield* Admin.get(`/admin/api/tasks?queue=pages&limit=5${cursor ? `&cursor=${cursor}` : ""}`)
          expect(page.status).toBe(200)
          pages.push(...ids(page))
          cursor = page.json.next
          rounds++
        } while (cursor !== null && rounds < 10)
        expect(pages).toEqual(a.map((t) => t.id).reverse())
        expect(rounds).toBe(3)

        const byPayload = yield* Admin.get(`/admin/api/tasks?payload=${encodeURIComponent('{"key":"page-3"}')}`)
        expect(ids(byPayload)).toEqual([a[2]!.id])
        expect(ids(yield* Admin.get("/admin/api/tasks?state=failed&name=test.terminal"))).toEqual([failed.id])
        expect(ids(yield* Admin.get("/admin/api/tasks?state=failed&state=cancelled&errorCode=test.refused"))).toEqual([failed.id])
        expect(ids(yield* Admin.get("/admin/api/tasks?errorCode=other.code"))).toEqual([])
        expect(ids(yield* Admin.get("/admin/api/tasks?queue=pages&state=running"))).toEqual([])
        const hourAgo = new Date(Date.now() - 3_600_000).toISOString()
        const soon = new Date(Date.now() + 3_600_000).toISOString()
        expect(ids(yield* Admin.get(`/admin/api/tasks?queue=pages&createdAfter=${hourAgo}&createdBefore=${soon}`))).toHaveLength(12)
        expect(ids(yield* Admin.get(`/admin/api/tasks?queue=pages&createdBefore=${hourAgo}`))).toEqual([])
        expect(ids(yield* Admin.get(`/admin/api/tasks?finishedAfter=${hourAgo}&name=test.terminal`))).toEqual([failed.id])
        const summary = (yield* Admin.get(`/admin/api/tasks?state=failed`)).json.items[0]
        expect(summary).toMatchObject({
          id: failed.id,
          state: "failed",
          lastError: { tag: "Terminal", code: "test.refused", codeText: "refused on purpose" }
        })
        expect(summary).not.toHaveProperty("payload")
      })
    )

    it.effect("a task: payload, result, every attempt's error with its code's text, lease, and its audit trail", () =>
      Effect.gen(function* () {
        const flaky = yield* enqueue(T.Flaky, { failTimes: 5 })
        yield* untilState(flaky.id, "failed")
        yield* flush
        const detail = (yield* Admin.get(`/admin/api/tasks/${flaky.id}`)).json
        expect(detail).toMatchObject({
          id: flaky.id,
          name: "test.flaky",
          payload: { failTimes: 5 },
          attempt: 3,
          maxAttempts: 3,
          leaseEpoch: 3
        })
        expect(detail.errors.map((e: { attempt: number }) => e.attempt)).toEqual([1, 2, 3])
        expect(detail.errors[2]).toMatchObject({ tag: "Retryable", code: "test.flaky", codeText: "the flaky test task failed on purpose" })
        expect(detail.audit.map((e: { code: string }) => e.code)).toEqual(["task.failed"])
        expect(detail.audit[0]).toMatchObject({ title: "Task failed", subject: `task:${flaky.id}` })
        const done = yield* enqueue(T.Greet, { fullName: "Ada" })
        yield* untilState(done.id, "succeeded")
        expect((yield* Admin.get(`/admin/api/tasks/${done.id}`)).json.result).toEqual({ greeting: "hello Ada" })
      })
    )

    it.effect("retry, cancel and delete: 409 when the state forbids it, 404 for unknown ids, each audited with the caller as actor", () =>
      Effect.gen(function* () {
        const operator = yield* Admin.createToken("actions-operator", "operator")
        const admin = yield* Admin.createToken("actions-admin", "admin")
        const waiting = yield* enqueue(T.Record, { key: "waiting" }, { queue: "parked" })
        expect((yield* Admin.post(`/admin/api/tasks/${waiting.id}/retry`, undefined, { token: operator })).status).toBe(409)
        expect((yield* Admin.del(`/admin/api/tasks/${waiting.id}`, { token: admin })).status).toBe(409)
        const cancelled = yield* Admin.post(`/admin/api/tasks/${waiting.id}/cancel`, undefined, { token: operator })
        expect(cancelled.json).toEqual({ id: waiting.id, state: "cancelled" })
        expect((yield* Admin.post(`/admin/api/tasks/${waiting.id}/cancel`, undefined, { token: operator })).status).toBe(409)
        const retried = yield* Admin.post(`/admin/api/tasks/${waiting.id}/retry`, undefined, { token: operator })
        expect(retried.json).toEqual({ id: waiting.id, state: "available" })
        yield* Admin.post(`/admin/api/tasks/${waiting.id}/cancel`, undefined, { token: operator })
        const deleted = yield* Admin.del(`/admin/api/tasks/${waiting.id}`, { token: admin })
        expect(deleted.json).toEqual({ id: waiting.id, state: "cancelled" })
        expect((yield* Admin.get(`/admin/api/tasks/${waiting.id}`)).status).toBe(404)
        for (const path of [`/admin/api/tasks/987654321/retry`, `/admin/api/tasks/987654321/cancel`]) {
          expect((yield* Admin.post(path, undefined, { token: operator })).status).toBe(404)
        }
        yield* flush
        const subject = `task:${waiting.id}`
        expect((yield* Admin.auditRows("task.cancelled")).filter((r) => r.subject === subject).map((r) => r.actor)).toEqual([
          "token:actions-operator",
          "token:actions-operator"
        ])
        expect((yield* Admin.auditRows("task.retried")).filter((r) => r.subject === subject)).toEqual([
          { actor: "token:actions-operator", subject, details: { name: "test.record", previous: "cancelled" } }
        ])
        expect((yield* Admin.auditRows("task.deleted")).filter((r) => r.subject === subject)).toEqual([
          { actor: "token:actions-admin", subject, details: { name: "test.record", state: "cancelled" } }
        ])
      })
    )

    it.effect("enqueue by name: 201 and the task runs; the payload is checked by the task's Schema (422 with the reason); audited", () =>
      Effect.gen(function* () {
        const created = yield* Admin.post("/admin/api/tasks", {
          name: "test.versioned",
          payload: { fullName: "Grace" },
          priority: 5,
          uniqueKey: "grace"
        })
        expect(created.status).toBe(201)
        expect(created.json).toEqual({ id: expect.any(String), existing: false })
        yield* untilState(created.json.id, "succeeded")
        const again = yield* Admin.post("/admin/api/tasks", { name: "test.versioned", payload: { fullName: 7 } })
        expect(again.status).toBe(422)
        expect(again.json.error).toMatchObject({ tag: "TaskPayloadInvalid", message: expect.stringContaining("fullName") })
        yield* flush
        expect(yield* Admin.auditRows("task.enqueued")).toContainEqual({
          actor: "admin_token",
          subject: `task:${created.json.id}`,
          details: { name: "test.versioned", existing: false }
        })
      })
    )

    it.effect("bulk: a dry run counts and samples; the real run is capped by control.bulk_cap, works in batches, is audited once", () =>
      Effect.gen(function* () {
        const tasks = yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8], (i) => enqueue(T.Record, { key: `bulk-${i}` }, { queue: "bulk" }))
        const filter = { queue: "bulk", state: ["available"] }
        const dry = yield* Admin.post("/admin/api/tasks/bulk", { filter, action: "cancel" })
        expect(dry.json).toMatchObject({ action: "cancel", dryRun: true, count: 5, capped: true, cap: 5 })
        expect(dry.json.sample.map((t: { id: string }) => t.id)).toEqual(tasks.map((t) => t.id))
        expect((yield* Admin.get("/admin/api/tasks?queue=bulk&state=cancelled")).json.items).toEqual([])

        const first = yield* Admin.post("/admin/api/tasks/bulk", { filter, action: "cancel", dryRun: false })
        expect(first.json).toMatchObject({ dryRun: false, count: 5, capped: true })
        expect(ids(yield* Admin.get("/admin/api/tasks?queue=bulk&state=cancelled")).sort()).toEqual(
          tasks
            .slice(0, 5)
            .map((t) => t.id)
            .sort()
        )
        const second = yield* Admin.post("/admin/api/tasks/bulk", { filter, action: "cancel", dryRun: false, limit: 10 })
        expect(second.json).toMatchObject({ count: 3, capped: false })

        const retried = yield* Admin.post("/admin/api/tasks/bulk", { filter: { queue: "bulk" }, action: "retry", dryRun: false, limit: 2 })
        expect(retried.json).toMatchObject({ count: 2, capped: true, cap: 2 })
        yield* Admin.post("/admin/api/tasks/bulk", { filter: { queue: "bulk" }, action: "cancel", dryRun: false })
        const deleted = yield* Admin.post("/admin/api/tasks/bulk", { filter: { queue: "bulk" }, action: "delete", dryRun: false })
        expect(deleted.json).toMatchObject({ count: 5, capped: true })
        yield* Admin.post("/admin/api/tasks/bulk", { filter: { queue: "bulk" }, action: "delete", dryRun: false })
        expect((yield* Admin.get("/admin/api/tasks?queue=bulk")).json.items).toEqual([])
        yield* flush
        expect((yield* Admin.auditRows("tasks.bulk_cancelled")).map((r) => r.details)).toEqual([
          { filter, count: 5, capped: true },
          { filter, count: 3, capped: false },
          { filter: { queue: "bulk" }, count: 2, capped: false }
        ])
        expect((yield* Admin.auditRows("tasks.bulk_retried")).map((r) => [r.actor, r.details])).toEqual([
          ["admin_token", { filter: { queue: "bulk" }, count: 2, capped: true }]
        ])
        expect((yield* Admin.auditRows("tasks.bulk_deleted")).map((r) => r.details.count)).toEqual([5, 3])
      })
    )
  })

  describe("queues", () => {
    it.effect(
      "depth by state and throughput per minute; pause stops claims on every node, enqueue still works, readiness shows it; resume restarts them",
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            // A second primary on the same database: a pause must hold for every node.
            const other = yield* Layer.build(Kit.node({ modules: [T.TestTasks], env }))
            const onOther = <A, E>(e: Effect.Effect<A, E, any>) => Effect.provideContext(e, other as Context.Context<any>)
            const operator = yield* Admin.createToken("queues-operator", "operator")
            const paused = yield* Admin.post("/admin/api/queues/default/pause", undefined, { token: operator })
            expect(paused.json).toEqual({ name: "default", paused: true, changed: true })
            const held = yield* Effect.forEach([1, 2, 3, 4], (i) => enqueue(T.Record, { key: `paused-${i}` }))
            yield* onOther(enqueue(T.Record, { key: "paused-other" }))
            // The point is that nothing happens: wait a few poll intervals of both nodes.
            yield* Effect.promise(() => new Promise((r) => setTimeout(r, 1500)))
            expect((yield* Admin.get("/admin/api/tasks?queue=default&state=available")).json.items).toHaveLength(5)
            for (const ready of [yield* Admin.get("/health/ready", {}), yield* onOther(Admin.get("/health/ready", {}))]) {
              const check = ready.json.checks.find((c: { name: string }) => c.name === "queues")
              expect(check).toMatchObject({
                status: "pass",
                detail: "paused: default",
                data: { paused: [{ queue: "default", by: "token:queues-operator" }] }
              })
            }
            const list = yield* Kit.eventually(
              Effect.map(Admin.get("/admin/api/queues?minutes=5"), (a) => {
                const q = a.json.items.find((i: { name: string }) => i.name === "default")
                return q?.depth.available === 5 ? q : undefined
              }),
              "queue_stats to count the held tasks"
            )
            expect(list).toMatchObject({ paused: true, changedBy: "token:queues-operator", oldestAvailableAgeSeconds: expect.any(Number) })
            expect(list.throughput).toHaveLength(5)
            expect(list.throughput.reduce((n: number, m: { succeeded: number }) => n + m.succeeded, 0)).toBeGreaterThan(0)

            expect((yield* Admin.post("/admin/api/queues/default/resume", undefined, { token: operator })).json).toEqual({
              name: "default",
              paused: false,
              changed: true
            })
            for (const t of held) yield* untilState(t.id, "succeeded")
            yield* Kit.eventually(
              Effect.map(Admin.get("/admin/api/tasks?queue=default&state=available"), (a) =>
                a.json.items.length === 0 ? true : undefined
              ),
              "every held task to run"
            )
            const ranOn = yield* Kit.queryDb<{ n: number }>("SELECT count(DISTINCT node_id)::int AS n FROM test_task_runs")
            expect(ranOn[0]!.n).toBeGreaterThanOrEqual(1)
            yield* flush
            expect((yield* Admin.auditRows("queue.paused")).map((r) => [r.actor, r.subject])).toContainEqual([
              "token:queues-operator",
              "queue:default"
            ])
            expect((yield* Admin.auditRows("queue.resumed")).map((r) => r.details)).toContainEqual({ wasPaused: true })
          })
        )
    )
  })

  describe("nodes, lanes, audit, codes", () => {
    it.effect("nodes: mode, role, heartbeat, the leases each holds and the lanes it leads", () =>
      Effect.gen(function* () {
        const latch = `nodes-${Date.now()}`
        const held = yield* enqueue(T.Hold, { latch })
        yield* untilState(held.id, "running")
        const nodes = (yield* Admin.get("/admin/api/nodes")).json.items
        const me = nodes.find((n: { leases: number }) => n.leases > 0)
        expect(me).toMatchObject({
          mode: "primary",
          status: "running",
          role: { fullApi: true, dispatches: true, runsLanes: true },
          leases: 1
        })
        expect(me.lanes).toContain("promotion")
        yield* Kit.queryDb(T.openLatch, [latch])
        yield* untilState(held.id, "succeeded")
        const all = (yield* Admin.get("/admin/api/nodes?all=true")).json.items
        expect(all.some((n: { status: string }) => n.status === "stopped")).toBe(true) // the second node of the queues test
      })
    )

    it.effect("lanes: leader, epoch, last run with its counts and duration, interval, and the last error", () =>
      Effect.gen(function* () {
        const promotion = yield* Kit.eventually(
          Effect.map(Admin.get("/admin/api/lanes"), (a) =>
            a.json.items.find((l: { lane: string; lastRunAt: string | null }) => l.lane === "promotion" && l.lastRunAt)
          ),
          "a promotion pass"
        )
        expect(promotion).toMatchObject({
          leaderStatus: "running",
          epoch: expect.any(Number),
          intervalMs: 200,
          lastCounts: { promoted: expect.any(Number) }
        })
        yield* Kit.queryDb("UPDATE lane_leaders SET last_error = 'boom', last_error_at = now() WHERE lane = 'pruning'")
        const pruning = (yield* Admin.get("/admin/api/lanes")).json.items.find((l: { lane: string }) => l.lane === "pruning")
        expect(pruning).toMatchObject({ lastError: "boom", lastErrorAt: expect.any(String) })
      })
    )

    it.effect("audit: filters by code, actor, subject and time; keyset pages newest first", () =>
      Effect.gen(function* () {
        yield* flush
        const byActor = yield* Admin.get("/admin/api/audit?actor=token:actions-operator")
        expect(byActor.json.items.length).toBeGreaterThanOrEqual(3)
        expect(byActor.json.items.every((e: { actor: string }) => e.actor === "token:actions-operator")).toBe(true)
        const byCode = (yield* Admin.get("/admin/api/audit?code=task.deleted")).json.items
        expect(byCode.map((e: { code: string; title: string }) => [e.code, e.title])).toEqual([["task.deleted", "Task deleted"]])
        const subject = byCode[0].subject
        expect((yield* Admin.get(`/admin/api/audit?subject=${subject}`)).json.items.map((e: { code: string }) => e.code)).toContain(
          "task.deleted"
        )
        const future = new Date(Date.now() + 60_000).toISOString()
        expect((yield* Admin.get(`/admin/api/audit?from=${future}`)).json.items).toEqual([])

        const all: Array<{ readonly id: string; readonly at: string }> = []
        let cursor: string | null = null
        do {
          const page: Admin.Answer = yield* Admin.get(`/admin/api/audit?limit=7${cursor ? `&cursor=${cursor}` : ""}`)
          all.push(...page.json.items)
          cursor = page.json.next
        } while (cursor !== null)
        const [{ n }] = (yield* Kit.queryDb<{ n: number }>("SELECT count(*)::int AS n FROM audit_events")) as [{ n: number }]
        expect(new Set(all.map((e) => e.id)).size).toBe(all.length)
        expect(all.length).toBeGreaterThanOrEqual(n - 5) // nodes may audit meanwhile; never a duplicate or a gap in order
        // Newest first: by the event's time, then by id.
        const key = (e: { readonly id: string; readonly at: string }) => [new Date(e.at).getTime(), Number(e.id)] as const
        for (const [i, e] of all.entries()) {
          if (i === 0) continue
          const [t0, id0] = key(all[i - 1]!)
          const [t1, id1] = key(e)
          expect(t0 > t1 || (t0 === t1 && id0 > id1), `${JSON.stringify(all[i - 1])} before ${JSON.stringify(e)}`).toBe(true)
        }
      })
    )

    it.effect("codes: every audit code the runtime emits, and each registered task's failure codes with their text", () =>
      Effect.gen(function* () {
        const codes = (yield* Admin.get("/admin/api/codes")).json
        const audit = codes.audit.map((c: { code: string }) => c.code)
        for (const code of [
          "task.deleted",
          "tasks.bulk_retried",
          "tasks.bulk_cancelled",
          "tasks.bulk_deleted",
          "queue.paused",
          "queue.resumed",
          "token.created",
          "token.revoked",
          "session.created",
          "login.failed"
        ]) {
          expect(audit).toContain(code)
        }
        expect(codes.tasks).toContainEqual({
          task: "test.flaky",
          queue: "default",
          codes: [{ code: "test.flaky", text: "the flaky test task failed on purpose" }]
        })
        expect(codes.failures.map((f: { tag: string }) => f.tag)).toContain("LeaseExpired")
      })
    )
  })
})
