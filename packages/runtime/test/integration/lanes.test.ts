/**
 * The built-in maintenance lanes against a real Postgres: each lane's
 * `runOnce` does exactly its job (rows changed as specified, others untouched,
 * counts, audit rows, notifications, bounded batches), a stale epoch makes
 * every writing lane of the built-in list change nothing (a lane that declares
 * it writes nothing changes nothing either way), a failed or timed-out pass is
 * a typed error, and the maintenance loop retries a failing lane with its
 * backoff (on the TestClock).
 *
 * Services come from a follower core (no dispatcher, no lanes), shared by the
 * whole file, so nothing but the lane under test touches the rows; tests take
 * leadership themselves.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Clock, Context, Effect, Layer, Metric, Queue, type Scope } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import { PgClient } from "@effect/sql-pg"
import * as Crypto from "node:crypto"
import * as AuditLog from "../../src/AuditLog.ts"
import * as LaneSql from "../../src/internal/sql/laneLeaders.ts"
import * as LeaseSql from "../../src/internal/sql/leases.ts"
import * as Lane from "../../src/Lane.ts"
import * as Lanes from "../../src/lanes/index.ts"
import {
  AuditRetention,
  CallbackRescuer,
  DeadlineRescuer,
  LeaseRescuer,
  LoginFlowCleaner,
  NodeLiveness,
  Promoter,
  Pruner,
  QueueStats,
  SessionCleaner,
  SystemHealth
} from "../../src/lanes/index.ts"
import * as Leadership from "../../src/Leadership.ts"
import { NodeRegistry } from "../../src/NodeRegistry.ts"
import * as Maintenance from "../../src/Maintenance.ts"
import * as Telemetry from "../../src/Telemetry.ts"
import * as Kit from "../support/kit.ts"

const Services = Kit.core({ mode: "follower", env: { ASTERFORGE_TELEMETRY_LOG_LEVEL: "none" } }).pipe(
  Layer.provideMerge(Kit.database("lanes"))
)

// ---------------------------------------------------------------------------
// helpers

const flushAudit = Effect.flatMap(AuditLog.AuditLog, (a) => a.flush)

/** Empty tables: the previous test's buffered audit events are flushed first; the follower's own node row (mode 'follower') stays. */
const reset = flushAudit.pipe(
  Effect.andThen(
    Kit.queryDb(`DO $$ BEGIN
    TRUNCATE tasks, queue_stats, audit_events, lane_leaders RESTART IDENTITY;
    DELETE FROM nodes WHERE mode <> 'follower';
  END $$`)
  )
)

/** Becomes the lane's leader (a new epoch) and returns the context a leader passes to runOnce. */
const lead = (lane: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* LaneSql.takeOver(sql, lane, Crypto.randomUUID())
    return Lane.context(sql, lane, Number(row!.epoch))
  })

/** Lanes here need only what the follower core provides. */
type CoreLane = Lane.Lane<unknown, Layer.Success<typeof Services>>

const runLane = (lane: CoreLane, ctx: Lane.Context) => lane.runOnce(ctx)

/** Leads the lane and runs one pass. */
const pass = (lane: CoreLane) => Effect.flatMap(lead(lane.name), (ctx) => runLane(lane, ctx))

/** Runs `effect`, then returns the payloads NOTIFYed on asterforge_tasks meanwhile (up to a marker sent after it). */
const withNotifications = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const pg = yield* PgClient.PgClient
      const notifications = yield* pg.listen("asterforge_tasks")
      const result = yield* effect
      const marker = `end-of-test-${Crypto.randomUUID()}`
      yield* pg.notify("asterforge_tasks", marker)
      const payloads: Array<string> = []
      while (true) {
        const n = yield* Queue.take(notifications).pipe(Effect.timeout("10 seconds"))
        if (n.payload === marker) break
        payloads.push(n.payload)
      }
      return { result, notified: payloads.sort() }
    })
  )

/** Times are offsets from the database's now(), as intervals: "-1 hour". */
interface TaskSpec {
  readonly label: string
  readonly state: string
  readonly queue?: string
  readonly name?: string
  readonly run_at?: string
  readonly attempt?: number
  readonly max_attempts?: number
  readonly lease_owner?: string
  readonly lease_expires_at?: string
  readonly lease_epoch?: number
  readonly deadline?: string
  readonly callback_token_hash?: string
  readonly callback_expires_at?: string
  readonly cancel_requested_at?: string
  readonly finished_at?: string
  readonly created_at?: string
}

/** Inserts tasks in one statement; returns label -> id. The label is kept in metadata. */
const insertTasks = (specs: ReadonlyArray<TaskSpec>) =>
  Kit.queryDb<{ label: string; id: string }>(
    `
    INSERT INTO tasks (name, queue, state, run_at, attempt, max_attempts, payload, metadata, lease_owner, lease_expires_at,
                       lease_epoch, deadline, callback_token_hash, callback_expires_at, cancel_requested_at, finished_at, created_at)
    SELECT coalesce(name, 'test.task'), coalesce(queue, 'default'), state, now() + coalesce(run_at, '0'), coalesce(attempt, 0),
           coalesce(max_attempts, 3), '{}', jsonb_build_object('label', label), lease_owner, now() + lease_expires_at,
           coalesce(lease_epoch, 0), now() + deadline, callback_token_hash, now() + callback_expires_at, now() + cancel_requested_at,
           now() + finished_at, now() + coalesce(created_at, '0')
    FROM jsonb_to_recordset($1::jsonb) AS r(label text, state text, queue text, name text, run_at interval, attempt int,
      max_attempts int, lease_owner uuid, lease_expires_at interval, lease_epoch int, deadline interval, callback_token_hash text,
      callback_expires_at interval, cancel_requested_at interval, finished_at interval, created_at interval)
    RETURNING metadata->>'label' AS label, id::text AS id`,
    [JSON.stringify(specs)]
  ).pipe(Effect.map((rows): Record<string, string> => Object.fromEntries(rows.map((r) => [r.label, r.id]))))

interface ErrorEntry {
  tag: string
  message: string
  code: null
  attempt: number
  at: string
}
interface TaskState {
  state: string
  attempt: number
  lease_owner: string | null
  lease_expires_at: string | null
  lease_epoch: number
  callback_token_hash: string | null
  callback_expires_at: string | null
  finished: boolean
  /** run_at was moved to (about) now: later than ten minutes ago. */
  run_at_recent: boolean
  errors: Array<ErrorEntry>
}

/** Every task by label: the columns lanes change, and the whole row (to prove a row untouched). */
const tasks = Kit.queryDb<TaskState & { label: string; row: unknown }>(`
    SELECT metadata->>'label' AS label, state, attempt, lease_owner::text AS lease_owner, lease_expires_at::text AS lease_expires_at,
           lease_epoch, callback_token_hash, callback_expires_at::text AS callback_expires_at, finished_at IS NOT NULL AS finished,
           run_at > now() - interval '10 minutes' AS run_at_recent, errors, to_jsonb(t) AS row
    FROM tasks t ORDER BY id`).pipe(
  Effect.map((rows) => ({
    byLabel: Object.fromEntries(rows.map((r) => [r.label, r])) as Record<string, TaskState & { row: unknown }>,
    rows: Object.fromEntries(rows.map((r) => [r.label, r.row])) as Record<string, unknown>
  }))
)

const laneAudit = flushAudit.pipe(
  Effect.andThen(
    Kit.queryDb<{ code: string; actor: string; subject: string; details: Record<string, unknown> }>(
      "SELECT code, actor, subject, details FROM audit_events WHERE actor LIKE 'lane:%' ORDER BY id"
    )
  )
)

const counterValue = (metric: Metric.Metric<number, Metric.CounterState<number>>, attributes?: Record<string, string>) =>
  Effect.map(Metric.value(attributes ? Metric.withAttributes(metric, attributes) : metric), (s) => Number(s.count))

const gaugeValue = (metric: Metric.Metric<number, Metric.GaugeState<number>>, attributes?: Record<string, string>) =>
  Effect.map(Metric.value(attributes ? Metric.withAttributes(metric, attributes) : metric), (s) => Number(s.value))

const expectErrorEntry = (entry: ErrorEntry | undefined, tag: string, attempt: number) => {
  expect(entry).toMatchObject({ tag, code: null, attempt })
  expect(entry!.message.length).toBeGreaterThan(0)
  expect(new Date(entry!.at).toISOString()).toBe(entry!.at)
}

layer(Services, { excludeTestServices: true })("lanes", (it) => {
  /** `it.effect` on empty tables (see `reset`). */
  const test = (name: string, body: () => Effect.Effect<unknown, unknown, Layer.Success<typeof Services> | Scope.Scope>) =>
    it.effect(name, () => Effect.andThen(reset, body()))

  describe("promotion", () => {
    test("moves due scheduled/retryable tasks to available, notifies each affected queue once, leaves the rest", () =>
      Effect.gen(function* () {
        yield* insertTasks([
          { label: "due-a1", state: "scheduled", queue: "a", run_at: "-1 minute" },
          { label: "due-a2", state: "scheduled", queue: "a", run_at: "-2 seconds" },
          { label: "due-b", state: "retryable", queue: "b", run_at: "-1 hour", attempt: 1 },
          { label: "future", state: "scheduled", queue: "c", run_at: "1 hour" },
          { label: "future-retry", state: "retryable", queue: "c", run_at: "10 minutes", attempt: 1 },
          { label: "running", state: "running", queue: "c", run_at: "-1 hour", attempt: 1, lease_expires_at: "1 minute" },
          {
            label: "waiting",
            state: "waiting_callback",
            queue: "c",
            run_at: "-1 hour",
            callback_token_hash: "t1",
            callback_expires_at: "1 hour"
          },
          { label: "done", state: "succeeded", queue: "c", run_at: "-1 hour", finished_at: "-1 minute" }
        ])
        const before = yield* tasks
        const { result, notified } = yield* withNotifications(pass(Promoter.make()))
        expect(result).toEqual({ promoted: 3 })
        expect(notified).toEqual(["a", "b"])
        const after = yield* tasks
        for (const label of ["due-a1", "due-a2", "due-b"]) expect(after.byLabel[label]!.state, label).toBe("available")
        expect(after.byLabel["due-b"]!.attempt).toBe(1)
        for (const label of ["future", "future-retry", "running", "waiting", "done"])
          expect(after.rows[label], label).toEqual(before.rows[label])
      }))

    test("works in bounded batches: batchSize rows per statement, at most maxBatchesPerPass statements", () =>
      Effect.gen(function* () {
        yield* insertTasks(Array.from({ length: 5 }, (_, i) => ({ label: `due-${i}`, state: "scheduled", run_at: `-${i + 1} minutes` })))
        expect(yield* pass(Promoter.make({ batchSize: 2, maxBatchesPerPass: 2 }))).toEqual({ promoted: 4 })
        const after = yield* tasks
        // Oldest due first: the most recently due one is left for the next pass.
        expect(
          Object.entries(after.byLabel)
            .filter(([, t]) => t.state === "scheduled")
            .map(([l]) => l)
        ).toEqual(["due-0"])
        expect(yield* pass(Promoter.make({ batchSize: 2, maxBatchesPerPass: 2 }))).toEqual({ promoted: 1 })
        expect(yield* pass(Promoter.make({ batchSize: 2, maxBatchesPerPass: 2 }))).toEqual({ promoted: 0 })
      }))
  })

  describe("lease rescue", () => {
    test("expired leases: available again, failed when out of attempts, cancelled when requested; late results refused", () =>
      Effect.gen(function* () {
        const owner = Crypto.randomUUID()
        const ids = yield* insertTasks([
          {
            label: "retry",
            state: "running",
            queue: "q1",
            attempt: 1,
            max_attempts: 3,
            lease_owner: owner,
            lease_expires_at: "-5 seconds",
            lease_epoch: 4,
            run_at: "-1 hour"
          },
          {
            label: "exhausted",
            state: "running",
            queue: "q2",
            name: "test.exhausted",
            attempt: 3,
            max_attempts: 3,
            lease_owner: owner,
            lease_expires_at: "-1 minute",
            lease_epoch: 7
          },
          {
            label: "cancel",
            state: "running",
            queue: "q3",
            attempt: 1,
            lease_owner: owner,
            lease_expires_at: "-1 second",
            cancel_requested_at: "-2 seconds",
            lease_epoch: 2
          },
          { label: "healthy", state: "running", queue: "q1", attempt: 1, lease_owner: owner, lease_expires_at: "1 minute", lease_epoch: 1 },
          { label: "not-running", state: "available", queue: "q1", lease_expires_at: "-1 hour" }
        ])
        const before = yield* tasks
        const rescuesBefore = yield* counterValue(Telemetry.metrics.leaseRescues, { outcome: "available" })
        const { result, notified } = yield* withNotifications(pass(LeaseRescuer.make()))
        expect(result).toEqual({ rescued: 1, failed: 1, cancelled: 1 })
        expect(notified).toEqual(["q1"])
        expect(yield* counterValue(Telemetry.metrics.leaseRescues, { outcome: "available" })).toBe(rescuesBefore + 1)

        const after = yield* tasks
        const retry = after.byLabel["retry"]!
        expect(retry).toMatchObject({
          state: "available",
          attempt: 1,
          lease_owner: null,
          lease_expires_at: null,
          lease_epoch: 4,
          finished: false,
          run_at_recent: true
        })
        expect(retry.errors).toHaveLength(1)
        expectErrorEntry(retry.errors[0], "LeaseExpired", 1)
        expect(retry.errors[0]!.message).toContain(owner)

        const exhausted = after.byLabel["exhausted"]!
        expect(exhausted).toMatchObject({
          state: "failed",
          attempt: 3,
          lease_owner: null,
          lease_expires_at: null,
          lease_epoch: 7,
          finished: true
        })
        expectErrorEntry(exhausted.errors[0], "LeaseExpired", 3)

        const cancel = after.byLabel["cancel"]!
        expect(cancel).toMatchObject({ state: "cancelled", attempt: 1, lease_owner: null, finished: true })
        expectErrorEntry(cancel.errors[0], "LeaseExpired", 1)

        for (const label of ["healthy", "not-running"]) expect(after.rows[label], label).toEqual(before.rows[label])

        expect(yield* laneAudit).toEqual([
          {
            code: "task.failed",
            actor: "lane:lease_rescue",
            subject: `task:${ids["exhausted"]}`,
            details: {
              name: "test.exhausted",
              attempt: 3,
              tag: "LeaseExpired",
              message: expect.stringContaining("lease expired"),
              code: null,
              exhausted: true
            }
          }
        ])

        // The crashed worker comes back with its result: refused, the row stays as the rescue left it.
        const sql = yield* SqlClient.SqlClient
        const refused = yield* LeaseSql.finish(sql, owner, [
          {
            id: ids["retry"]!,
            epoch: 4,
            state: "succeeded"
          }
        ])
        expect(refused).toEqual([{ id: ids["retry"]! }])
        expect((yield* tasks).rows["retry"]).toEqual(after.rows["retry"])
      }))

    test("rescues at most batchSize x maxBatchesPerPass per pass", () =>
      Effect.gen(function* () {
        yield* insertTasks(
          Array.from({ length: 5 }, (_, i) => ({
            label: `r${i}`,
            state: "running",
            attempt: 1,
            lease_owner: Crypto.randomUUID(),
            lease_expires_at: `-${i + 1} seconds`
          }))
        )
        expect(yield* pass(LeaseRescuer.make({ batchSize: 2, maxBatchesPerPass: 1 }))).toEqual({ rescued: 2, failed: 0, cancelled: 0 })
        const after = yield* tasks
        // Longest expired first.
        expect(["r3", "r4"].map((l) => after.byLabel[l]!.state)).toEqual(["available", "available"])
        expect(["r0", "r1", "r2"].map((l) => after.byLabel[l]!.state)).toEqual(["running", "running", "running"])
      }))
  })

  describe("deadline rescue", () => {
    test("fails unfinished, not running tasks past their deadline; clears callback tokens; audits each", () =>
      Effect.gen(function* () {
        const ids = yield* insertTasks([
          { label: "scheduled", state: "scheduled", run_at: "1 hour", deadline: "-1 second" },
          { label: "available", state: "available", deadline: "-1 minute" },
          { label: "retryable", state: "retryable", attempt: 2, deadline: "-1 hour" },
          {
            label: "waiting",
            state: "waiting_callback",
            attempt: 1,
            deadline: "-1 second",
            callback_token_hash: "tok-deadline",
            callback_expires_at: "1 hour"
          },
          {
            label: "running",
            state: "running",
            attempt: 1,
            deadline: "-1 hour",
            lease_owner: Crypto.randomUUID(),
            lease_expires_at: "1 minute"
          },
          { label: "future", state: "available", deadline: "1 hour" },
          { label: "no-deadline", state: "available" },
          { label: "finished", state: "succeeded", deadline: "-1 hour", finished_at: "-2 hours" }
        ])
        const before = yield* tasks
        expect(yield* pass(DeadlineRescuer.make())).toEqual({ failed: 4 })
        const after = yield* tasks
        for (const label of ["scheduled", "available", "retryable", "waiting"]) {
          const t = after.byLabel[label]!
          expect(t, label).toMatchObject({ state: "failed", finished: true, callback_token_hash: null, callback_expires_at: null })
          expect(t.errors, label).toHaveLength(1)
          expectErrorEntry(t.errors[0], "DeadlineExceeded", before.byLabel[label]!.attempt)
        }
        expect(after.byLabel["waiting"]!.errors[0]!.message).toContain("waiting for a callback")
        for (const label of ["running", "future", "no-deadline", "finished"]) expect(after.rows[label], label).toEqual(before.rows[label])

        const audit = yield* laneAudit
        expect(audit.map((a) => [a.code, a.actor, a.subject]).sort()).toEqual(
          ["scheduled", "available", "retryable", "waiting"].map((l) => ["task.failed", "lane:deadline_rescue", `task:${ids[l]}`]).sort()
        )
        expect(audit.find((a) => a.subject === `task:${ids["retryable"]}`)!.details).toMatchObject({
          name: "test.task",
          attempt: 2,
          tag: "DeadlineExceeded"
        })
      }))
  })

  describe("callback rescue", () => {
    test("timed-out callbacks: retryable now while attempts remain, else failed; tokens cleared; queues notified", () =>
      Effect.gen(function* () {
        const ids = yield* insertTasks([
          {
            label: "retry",
            state: "waiting_callback",
            queue: "hooks",
            attempt: 1,
            max_attempts: 3,
            run_at: "-1 hour",
            callback_token_hash: "tok-1",
            callback_expires_at: "-1 second"
          },
          {
            label: "exhausted",
            state: "waiting_callback",
            queue: "other",
            name: "test.hook",
            attempt: 3,
            max_attempts: 3,
            callback_token_hash: "tok-2",
            callback_expires_at: "-1 minute"
          },
          {
            label: "waiting",
            state: "waiting_callback",
            queue: "hooks",
            attempt: 1,
            callback_token_hash: "tok-3",
            callback_expires_at: "1 hour"
          }
        ])
        const before = yield* tasks
        const { result, notified } = yield* withNotifications(pass(CallbackRescuer.make()))
        expect(result).toEqual({ retried: 1, failed: 1 })
        expect(notified).toEqual(["hooks"])
        const after = yield* tasks
        expect(after.byLabel["retry"]).toMatchObject({
          state: "retryable",
          attempt: 1,
          callback_token_hash: null,
          callback_expires_at: null,
          finished: false,
          run_at_recent: true
        })
        expectErrorEntry(after.byLabel["retry"]!.errors[0], "CallbackTimeout", 1)
        expect(after.byLabel["exhausted"]).toMatchObject({
          state: "failed",
          attempt: 3,
          callback_token_hash: null,
          callback_expires_at: null,
          finished: true
        })
        expectErrorEntry(after.byLabel["exhausted"]!.errors[0], "CallbackTimeout", 3)
        expect(after.rows["waiting"]).toEqual(before.rows["waiting"])
        expect(yield* laneAudit).toEqual([
          {
            code: "task.failed",
            actor: "lane:callback_rescue",
            subject: `task:${ids["exhausted"]}`,
            details: {
              name: "test.hook",
              attempt: 3,
              tag: "CallbackTimeout",
              message: expect.stringMatching(/^no callback before /),
              code: null,
              exhausted: true
            }
          }
        ])
      }))
  })

  describe("pruning", () => {
    test("deletes finished tasks past their state's retention, oldest first, in bounded batches", () =>
      Effect.gen(function* () {
        yield* insertTasks([
          { label: "succeeded-old", state: "succeeded", finished_at: "-25 hours" },
          { label: "succeeded-recent", state: "succeeded", finished_at: "-23 hours" },
          { label: "failed-old", state: "failed", finished_at: "-8 days" },
          { label: "failed-recent", state: "failed", finished_at: "-6 days" },
          { label: "cancelled-old", state: "cancelled", finished_at: "-9 days" },
          { label: "cancelled-recent", state: "cancelled", finished_at: "-2 days" },
          { label: "available-old", state: "available", created_at: "-30 days", run_at: "-30 days" },
          { label: "scheduled-old", state: "scheduled", created_at: "-30 days", run_at: "1 day" }
        ])
        expect(yield* pass(Pruner.make({ batchSize: 2, maxBatchesPerPass: 1 }))).toEqual({ deleted: 2 })
        expect(Object.keys((yield* tasks).byLabel)).not.toContain("cancelled-old")
        expect(Object.keys((yield* tasks).byLabel)).not.toContain("failed-old")
        expect(yield* pass(Pruner.make())).toEqual({ deleted: 1 })
        expect(Object.keys((yield* tasks).byLabel).sort()).toEqual([
          "available-old",
          "cancelled-recent",
          "failed-recent",
          "scheduled-old",
          "succeeded-recent"
        ])
        expect(yield* pass(Pruner.make())).toEqual({ deleted: 0 })
      }))
  })

  describe("audit retention", () => {
    test("deletes audit events older than the retention, in bounded batches", () =>
      Effect.gen(function* () {
        yield* Kit.queryDb(`INSERT INTO audit_events (code, actor, subject, at) VALUES
        ('test.old', 'test', 'old-1', now() - interval '91 days'), ('test.old', 'test', 'old-2', now() - interval '100 days'),
        ('test.old', 'test', 'old-3', now() - interval '365 days'), ('test.kept', 'test', 'kept-1', now() - interval '89 days'),
        ('test.kept', 'test', 'kept-2', now())`)
        expect(yield* pass(AuditRetention.make({ batchSize: 2, maxBatchesPerPass: 1 }))).toEqual({ deleted: 2 })
        expect(yield* pass(AuditRetention.make())).toEqual({ deleted: 1 })
        const left = yield* Kit.queryDb<{ subject: string }>("SELECT subject FROM audit_events WHERE actor = 'test' ORDER BY subject")
        expect(left.map((r) => r.subject)).toEqual(["kept-1", "kept-2"])
      }))
  })

  describe("session and login flow cleanup", () => {
    test("delete expired admin sessions and OIDC login flows only, in bounded batches", () =>
      Effect.gen(function* () {
        yield* Kit.queryDb(`INSERT INTO control_sessions (id, csrf_token, actor, role, source, absolute_expires_at, expires_at) VALUES
        ('idle-expired', 'c', 'token:a', 'viewer', 'api_token', now() + interval '1 hour', now() - interval '1 second'),
        ('absolute-expired', 'c', 'token:a', 'viewer', 'api_token', now() - interval '1 hour', now() - interval '1 hour'),
        ('old', 'c', 'token:a', 'viewer', 'api_token', now() - interval '2 days', now() - interval '2 days'),
        ('live', 'c', 'token:a', 'viewer', 'api_token', now() + interval '1 hour', now() + interval '10 minutes')`)
        expect(yield* pass(SessionCleaner.make({ batchSize: 2, maxBatchesPerPass: 1 }))).toEqual({ deleted: 2 })
        expect(yield* pass(SessionCleaner.make())).toEqual({ deleted: 1 })
        expect((yield* Kit.queryDb<{ id: string }>("SELECT id FROM control_sessions")).map((r) => r.id)).toEqual(["live"])

        yield* Kit.queryDb(`INSERT INTO control_login_flows (state, nonce, code_verifier, redirect_to, expires_at) VALUES
        ('expired', 'n', 'v', '/admin/', now() - interval '1 second'), ('pending', 'n', 'v', '/admin/', now() + interval '10 minutes')`)
        expect(yield* pass(LoginFlowCleaner.make())).toEqual({ deleted: 1 })
        expect((yield* Kit.queryDb<{ state: string }>("SELECT state FROM control_login_flows")).map((r) => r.state)).toEqual(["pending"])
      }))
  })

  describe("queue stats", () => {
    test("recomputes counts per queue and state, deletes vanished groups, sets the depth gauge", () =>
      Effect.gen(function* () {
        yield* insertTasks([
          { label: "a-avail-1", state: "available", queue: "a", created_at: "-2 hours" },
          { label: "a-avail-2", state: "available", queue: "a", created_at: "-1 minute" },
          { label: "a-running", state: "running", queue: "a", attempt: 1, lease_expires_at: "1 minute" },
          { label: "b-scheduled", state: "scheduled", queue: "b", run_at: "1 hour" },
          { label: "b-retryable", state: "retryable", queue: "b", attempt: 1 },
          { label: "b-waiting", state: "waiting_callback", queue: "b", callback_token_hash: "tok-qs", callback_expires_at: "1 hour" },
          { label: "a-done-1", state: "succeeded", queue: "a", finished_at: "-1 hour" },
          { label: "a-done-2", state: "succeeded", queue: "a", finished_at: "-23 hours" },
          { label: "b-failed-old", state: "failed", queue: "b", finished_at: "-30 hours" }
        ])
        yield* Kit.queryDb("INSERT INTO queue_stats (queue, state, count) VALUES ('gone', 'available', 7), ('a', 'available', 99)")
        yield* Metric.update(Metric.withAttributes(Telemetry.metrics.queueDepth, { queue: "gone", state: "available" }), 7)

        expect(yield* pass(QueueStats.make())).toEqual({ groups: 6 })
        const stats = yield* Kit.queryDb<{ queue: string; state: string; count: string; oldest: boolean | null; has_oldest: boolean }>(`
        SELECT queue, state, count::text AS count, oldest_at IS NOT NULL AS has_oldest,
               (SELECT oldest_at = min(created_at) FROM tasks t WHERE t.queue = s.queue AND t.state = s.state) AS oldest
        FROM queue_stats s ORDER BY queue, state`)
        expect(stats.map((s) => [s.queue, s.state, s.count, s.has_oldest])).toEqual([
          ["a", "available", "2", true],
          ["a", "running", "1", true],
          ["a", "succeeded", "2", false],
          ["b", "retryable", "1", true],
          ["b", "scheduled", "1", true],
          ["b", "waiting_callback", "1", true]
        ])
        expect(stats.filter((s) => s.has_oldest).every((s) => s.oldest === true)).toBe(true)
        expect(yield* gaugeValue(Telemetry.metrics.queueDepth, { queue: "a", state: "available" })).toBe(2)
        expect(yield* gaugeValue(Telemetry.metrics.queueDepth, { queue: "b", state: "waiting_callback" })).toBe(1)
        expect(yield* gaugeValue(Telemetry.metrics.queueDepth, { queue: "gone", state: "available" })).toBe(0)

        // Another pass after the work moved on: the emptied group goes, the gauge follows.
        yield* Kit.queryDb("DELETE FROM tasks WHERE queue = 'b' AND state = 'retryable'")
        expect(yield* pass(QueueStats.make())).toEqual({ groups: 5 })
        const again = yield* Kit.queryDb<{ queue: string; state: string; count: string }>(
          "SELECT queue, state, count::text AS count FROM queue_stats WHERE queue = 'b' ORDER BY state"
        )
        expect(again.map((s) => [s.state, s.count])).toEqual([
          ["scheduled", "1"],
          ["waiting_callback", "1"]
        ])
        expect(yield* gaugeValue(Telemetry.metrics.queueDepth, { queue: "b", state: "retryable" })).toBe(0)
      }))

    test("recounts finished groups at most once per finishedRefresh, and at once under a new epoch", () =>
      Effect.gen(function* () {
        yield* insertTasks([
          { label: "avail", state: "available", queue: "a" },
          { label: "done", state: "succeeded", queue: "a", finished_at: "-1 minute" }
        ])
        const lane = QueueStats.make({ finishedRefresh: "1 hour" })
        const ctx = yield* lead(lane.name)
        const counts = Effect.map(
          Kit.queryDb<{ state: string; count: string }>("SELECT state, count::text AS count FROM queue_stats WHERE queue = 'a'"),
          (rows) => Object.fromEntries(rows.map((r) => [r.state, r.count]))
        )
        expect(yield* runLane(lane, ctx)).toEqual({ groups: 2 })
        expect(yield* counts).toEqual({ available: "1", succeeded: "1" })

        yield* insertTasks([
          { label: "avail-2", state: "available", queue: "a" },
          { label: "done-2", state: "failed", queue: "a", finished_at: "-1 minute" }
        ])
        // Same leadership, within the refresh: unfinished groups move, finished ones are kept as they were.
        expect(yield* runLane(lane, ctx)).toEqual({ groups: 1 })
        expect(yield* counts).toEqual({ available: "2", succeeded: "1" })
        // A new epoch recounts everything.
        expect(yield* runLane(lane, yield* lead(lane.name))).toEqual({ groups: 3 })
        expect(yield* counts).toEqual({ available: "2", failed: "1", succeeded: "1" })
      }))
  })

  describe("node liveness", () => {
    const insertNode = (id: string, status: string, heartbeat: string, stopped: string | null, heartbeatIntervalMs = 5000) =>
      Kit.queryDb(
        `INSERT INTO nodes (id, name, mode, host, pid, version, status, started_at, heartbeat_at, stopped_at, heartbeat_interval_ms)
        VALUES ($1, $2, 'primary', 'test-host', 1234, '0.0.0', $3, now() - interval '30 days', now() + $4::interval, now() + $5::interval, $6)`,
        [id, `node-${status}`, status, heartbeat, stopped, heartbeatIntervalMs]
      )

    test("declares silent nodes dead, releases their running tasks at once with the attempt given back, removes long-gone rows", () =>
      Effect.gen(function* () {
        const silent = Crypto.randomUUID()
        const alive = Crypto.randomUUID()
        const stoppedOld = Crypto.randomUUID()
        const deadOld = Crypto.randomUUID()
        const stoppedRecent = Crypto.randomUUID()
        yield* insertNode(silent, "running", "-20 seconds", null)
        yield* insertNode(alive, "running", "-2 seconds", null)
        yield* insertNode(stoppedOld, "stopped", "-8 days", "-8 days")
        yield* insertNode(deadOld, "dead", "-9 days", "-8 days")
        yield* insertNode(stoppedRecent, "stopped", "-1 day", "-1 day")
        yield* insertTasks([
          // Leases still valid for a minute: released without waiting for them to expire.
          {
            label: "retry",
            state: "running",
            queue: "n1",
            attempt: 1,
            max_attempts: 3,
            lease_owner: silent,
            lease_expires_at: "1 minute",
            lease_epoch: 3
          },
          {
            label: "exhausted",
            state: "running",
            queue: "n2",
            name: "test.last",
            attempt: 2,
            max_attempts: 2,
            lease_owner: silent,
            lease_expires_at: "1 minute"
          },
          {
            label: "cancel",
            state: "running",
            queue: "n3",
            attempt: 1,
            lease_owner: silent,
            lease_expires_at: "1 minute",
            cancel_requested_at: "-1 second"
          },
          { label: "alive-task", state: "running", queue: "n1", attempt: 1, lease_owner: alive, lease_expires_at: "1 minute" },
          { label: "waiting", state: "available", queue: "n1" }
        ])
        const before = yield* tasks
        const deadBefore = yield* counterValue(Telemetry.metrics.nodesDeclaredDead)

        const { result, notified } = yield* withNotifications(pass(NodeLiveness.make()))
        expect(result).toEqual({ dead: 1, released: 3, removed: 2 })
        // The verdict is on the node, not on the tasks: both go back to available, none fails.
        expect(notified).toEqual(["n1", "n2"])
        expect(yield* counterValue(Telemetry.metrics.nodesDeclaredDead)).toBe(deadBefore + 1)

        const nodes = yield* Kit.queryDb<{ id: string; status: string; stopped: boolean }>(
          "SELECT id::text AS id, status, stopped_at IS NOT NULL AS stopped FROM nodes WHERE mode <> 'follower'"
        )
        expect(Object.fromEntries(nodes.map((n) => [n.id, [n.status, n.stopped]]))).toEqual({
          [silent]: ["dead", true],
          [alive]: ["running", false],
          [stoppedRecent]: ["stopped", true]
        })
        // This process's own row is fresh and untouched.
        expect((yield* Kit.queryDb<{ status: string }>("SELECT status FROM nodes WHERE mode = 'follower'")).map((n) => n.status)).toEqual([
          "running"
        ])

        const after = yield* tasks
        expect(after.byLabel["retry"]).toMatchObject({
          state: "available",
          attempt: 0,
          lease_owner: null,
          lease_expires_at: null,
          lease_epoch: 3,
          finished: false
        })
        expectErrorEntry(after.byLabel["retry"]!.errors[0], "NodeDead", 1)
        expect(after.byLabel["exhausted"]).toMatchObject({ state: "available", attempt: 1, lease_owner: null, finished: false })
        expectErrorEntry(after.byLabel["exhausted"]!.errors[0], "NodeDead", 2)
        expect(after.byLabel["cancel"]).toMatchObject({ state: "cancelled", lease_owner: null, finished: true })
        for (const label of ["alive-task", "waiting"]) expect(after.rows[label], label).toEqual(before.rows[label])

        const audit = yield* laneAudit
        expect(audit.map((a) => [a.code, a.subject])).toEqual([["node.declared_dead", `node:${silent}`]])
        expect(audit[0]!.details).toMatchObject({ name: "node-running", host: "test-host", pid: 1234, mode: "primary" })

        // Nothing left to do on the next pass.
        expect(yield* pass(NodeLiveness.make())).toEqual({ dead: 0, released: 0, removed: 0 })
      }))

    test("judges each node by its own heartbeat period, not the judge's", () =>
      Effect.gen(function* () {
        const slow = Crypto.randomUUID()
        const quick = Crypto.randomUUID()
        // Both silent for 20 s: three of the slow node's 10 s beats have not passed, three of the quick node's 5 s have.
        yield* insertNode(slow, "running", "-20 seconds", null, 10_000)
        yield* insertNode(quick, "running", "-20 seconds", null, 5_000)
        expect(yield* pass(NodeLiveness.make())).toEqual({ dead: 1, released: 0, removed: 0 })
        const rows = yield* Kit.queryDb<{ id: string; status: string }>("SELECT id::text AS id, status FROM nodes WHERE id IN ($1, $2)", [
          slow,
          quick
        ])
        expect(Object.fromEntries(rows.map((r) => [r.id, r.status]))).toEqual({ [slow]: "running", [quick]: "dead" })
        // With four missed beats as the rule, 18 s of silence is not enough even for a 5 s node.
        yield* insertNode(Crypto.randomUUID(), "running", "-18 seconds", null, 5_000)
        expect(yield* pass(NodeLiveness.make({ missedHeartbeats: 4 }))).toEqual({ dead: 0, released: 0, removed: 0 })
      }))

    test("after its own heartbeat failed, judges a node only once it has been writing for a whole window of that node", () =>
      Effect.gen(function* () {
        const slow = Crypto.randomUUID()
        const quick = Crypto.randomUUID()
        // Both silent for a minute (the database was away); this node has been writing again for 12 s.
        yield* insertNode(slow, "running", "-60 seconds", null, 5_000)
        yield* insertNode(quick, "running", "-60 seconds", null, 2_000)
        const recovered = Layer.succeed(
          NodeRegistry,
          NodeRegistry.of({ lastHeartbeatFailureAt: Effect.succeed(Date.now() - 12_000), declaredDead: Effect.succeed(false) })
        )
        // 3 x 5 s = 15 s has not been watched yet; 3 x 2 s = 6 s has.
        expect(yield* pass(NodeLiveness.make()).pipe(Effect.provide(recovered))).toEqual({ dead: 1, released: 0, removed: 0 })
        const rows = yield* Kit.queryDb<{ id: string; status: string }>("SELECT id::text AS id, status FROM nodes WHERE id IN ($1, $2)", [
          slow,
          quick
        ])
        expect(Object.fromEntries(rows.map((r) => [r.id, r.status]))).toEqual({ [slow]: "running", [quick]: "dead" })
      }))
  })

  describe("system health", () => {
    test("measures the database round trip and reads the unfinished depth from queue_stats, writing nothing", () =>
      Effect.gen(function* () {
        yield* Kit.queryDb(`INSERT INTO queue_stats (queue, state, count) VALUES
        ('a', 'available', 3), ('a', 'running', 2), ('b', 'waiting_callback', 1), ('a', 'succeeded', 40), ('b', 'failed', 5)`)
        const before = yield* Kit.queryDb("SELECT * FROM queue_stats ORDER BY queue, state")
        expect(yield* pass(SystemHealth.make())).toEqual({ checked: 1 })
        const snapshot = SystemHealth.lastSnapshot()
        expect(snapshot?.queueDepth).toBe(6)
        expect(snapshot?.dbLatencyMs).toBeGreaterThanOrEqual(0)
        expect(snapshot?.at).toBeInstanceOf(Date)
        expect(yield* gaugeValue(Telemetry.metrics.dbLatency)).toBeCloseTo(snapshot!.dbLatencyMs / 1000, 6)
        expect(yield* Kit.queryDb("SELECT * FROM queue_stats ORDER BY queue, state")).toEqual(before)
      }))
  })

  describe("lane definitions", () => {
    it("builtIn lists every lane once, with its interval; options are validated by name", () => {
      const lanes = Lanes.builtIn(Lanes.defaults)
      expect(lanes.map((l) => l.name)).toEqual([
        "promotion",
        "lease_rescue",
        "deadline_rescue",
        "callback_rescue",
        "pruning",
        "audit_retention",
        "queue_stats",
        "node_liveness",
        "system_health",
        "session_cleanup",
        "login_flow_cleanup"
      ])
      // Each lane's options are the configuration section named after it.
      expect(Lanes.sections.map((s) => s.section)).toEqual(lanes.map((l) => `maintenance.${l.name}`))
      expect(() => Promoter.make({ batchSize: 0 })).toThrow(/maintenance\.promotion.*batchSize.*Expected a value between 1 and 100000/)
      expect(() => Pruner.make({ succeededRetention: "soon" })).toThrow(/succeededRetention.*Expected a duration/)
      expect(() => NodeLiveness.make({ missedHeartbeats: 1 })).toThrow(/missedHeartbeats/)
      expect(() => QueueStats.make({ intervall: "1 second" } as never)).toThrow(/unknown option intervall/)
    })
  })

  describe("passes", () => {
    test("a failed or timed-out pass is a RuntimeError LanePassFailed naming the lane, with the failure as cause", () =>
      Effect.gen(function* () {
        const boom = new Error("boom")
        const failing = Lane.make({ name: "test.failing", interval: "1 second", runOnce: () => Effect.fail(boom) })
        const slow = Lane.make({ name: "test.slow", interval: "1 second", timeout: "50 millis", runOnce: () => Effect.never })
        const failed = yield* Effect.flip(Lane.pass(failing, yield* lead(failing.name)))
        expect(failed.reason).toMatchObject({ _tag: "LanePassFailed", lane: "test.failing", message: "boom", cause: boom })
        const timedOut = yield* Effect.flip(Lane.pass(slow, yield* lead(slow.name)))
        expect(timedOut.reason).toMatchObject({ _tag: "LanePassFailed", lane: "test.slow", message: "pass timed out after 50ms" })
      }))
  })

  describe("maintenance loop", () => {
    // On the TestClock: the backoff is waited out in virtual time, and each pass records the virtual time it ran at.
    test("a failing pass never stops its lane: it runs again after the failure backoff, doubling, until it succeeds", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const passesAt: Array<number> = []
          const lane = Lane.make({
            name: "test_flaky_lane",
            interval: "1 second",
            jitter: 0,
            runOnce: () =>
              Effect.gen(function* () {
                passesAt.push(yield* Clock.currentTimeMillis)
                if (passesAt.length <= 3) return yield* Effect.fail(new Error(`pass ${passesAt.length} failed`))
                return { done: 1 }
              })
          })
          const maintenance = Context.get(
            yield* Layer.build(Maintenance.layer([lane]).pipe(Layer.provide(Leadership.layerAlways))),
            Maintenance.Maintenance
          )
          const status = Effect.map(maintenance.status, (all) => all.find((s) => s.lane === lane.name)!)
          // Leadership is a real row in lane_leaders; once taken, the lane waits out its start stagger (virtual time).
          yield* Kit.eventually(
            Effect.map(status, (s) => (s.leader ? true : undefined)),
            "the lane to be led"
          )

          yield* TestClock.adjust("1 second") // the stagger is at most one interval: pass 1 fails
          yield* TestClock.adjust("6 seconds") // backoff 2 s, pass 2 fails; backoff 4 s, pass 3 fails; next in 8 s
          expect(passesAt).toHaveLength(3)
          expect(yield* status).toMatchObject({ leader: true, consecutive_failures: 3, last_error: "pass 3 failed" })

          yield* TestClock.adjust("8 seconds") // pass 4 succeeds
          const recovered = yield* Kit.eventually(
            Effect.map(status, (s) => (s.consecutive_failures === 0 ? s : undefined)),
            "the lane to recover"
          )
          expect(recovered).toMatchObject({ leader: true, last_error: null, last_counts: { done: 1 } })
          // Failure backoff doubles from the interval: 2 s, 4 s, 8 s.
          expect(passesAt.slice(1, 4).map((t, i) => t - passesAt[i]!)).toEqual([2000, 4000, 8000])
        })
      ).pipe(Effect.provide(TestClock.layer())))
  })

  describe("fencing", () => {
    test("with a stale epoch, every writing lane changes nothing; with the current one, each acts; a lane that writes nothing never does", () =>
      Effect.gen(function* () {
        const silent = Crypto.randomUUID()
        yield* Kit.queryDb(
          `INSERT INTO nodes (id, name, mode, host, pid, version, status, heartbeat_at)
        VALUES ($1, 'silent', 'primary', 'h', 1, '0', 'running', now() - interval '1 hour'),
               ($2, 'long-gone', 'primary', 'h', 2, '0', 'stopped', now() - interval '30 days')`,
          [silent, Crypto.randomUUID()]
        )
        yield* insertTasks([
          { label: "due", state: "scheduled", run_at: "-1 minute" },
          {
            label: "expired-lease",
            state: "running",
            attempt: 3,
            max_attempts: 3,
            lease_owner: Crypto.randomUUID(),
            lease_expires_at: "-1 minute"
          },
          { label: "past-deadline", state: "available", deadline: "-1 minute" },
          {
            label: "callback-timeout",
            state: "waiting_callback",
            attempt: 3,
            max_attempts: 3,
            callback_token_hash: "tok-fence",
            callback_expires_at: "-1 minute"
          },
          { label: "old-success", state: "succeeded", finished_at: "-2 days" },
          { label: "dead-node-task", state: "running", attempt: 3, max_attempts: 3, lease_owner: silent, lease_expires_at: "1 hour" }
        ])
        yield* Kit.queryDb("INSERT INTO audit_events (code, actor, at) VALUES ('test.ancient', 'test', now() - interval '1 year')")
        yield* Kit.queryDb("INSERT INTO queue_stats (queue, state, count) VALUES ('vanished', 'available', 1)")
        yield* Kit.queryDb(
          `INSERT INTO control_sessions (id, csrf_token, actor, role, source, absolute_expires_at, expires_at)
           VALUES ('expired-session', 'csrf', 'token:test', 'viewer', 'api_token', now() - interval '1 minute', now() - interval '1 minute')`
        )
        yield* Kit.queryDb(
          `INSERT INTO control_login_flows (state, nonce, code_verifier, redirect_to, expires_at)
           VALUES ('expired-flow', 'n', 'v', '/admin/', now() - interval '1 minute')`
        )

        // Every built-in lane, as a node starts them: a lane added to the list is held to this test at once.
        const lanes: ReadonlyArray<CoreLane> = Lanes.builtIn(Lanes.defaults)
        const everything = flushAudit.pipe(
          Effect.andThen(
            Effect.forEach(
              [
                "SELECT to_jsonb(t) AS r FROM tasks t ORDER BY id",
                "SELECT to_jsonb(e) AS r FROM audit_events e ORDER BY id",
                "SELECT to_jsonb(q) AS r FROM queue_stats q ORDER BY queue, state",
                "SELECT to_jsonb(n) AS r FROM nodes n WHERE mode <> 'follower' ORDER BY id",
                "SELECT to_jsonb(s) AS r FROM control_sessions s ORDER BY id",
                "SELECT to_jsonb(f) AS r FROM control_login_flows f ORDER BY state"
              ],
              (q) => Kit.queryDb(q)
            )
          )
        )
        const before = yield* everything
        const current: Array<Lane.Context> = []
        for (const lane of lanes) {
          const stale = yield* lead(lane.name)
          current.push(yield* lead(lane.name))
          const counts = yield* runLane(lane, stale)
          if (lane.writes)
            expect(
              Object.values(counts).every((n) => n === 0),
              `${lane.name} with a stale epoch: ${JSON.stringify(counts)}`
            ).toBe(true)
        }
        expect(yield* everything).toEqual(before)

        // The same fixtures give every writing lane work under its current epoch: the stale runs could have changed something.
        for (const [i, lane] of lanes.entries()) {
          const untouched = lane.writes ? undefined : yield* everything
          const counts = yield* runLane(lane, current[i]!)
          if (lane.writes)
            expect(
              Object.values(counts).some((n) => n > 0),
              `${lane.name} with the current epoch: ${JSON.stringify(counts)}`
            ).toBe(true)
          else expect(yield* everything, `${lane.name} declares it writes nothing`).toEqual(untouched)
        }
      }))
  })
})
