/**
 * The dispatcher's hot path against a real Postgres: timeouts as timers that
 * interrupt the handler, per-run log annotations without a context copy
 * (`Telemetry.annotateFiber`), the `(id, lease_epoch, lease_owner)` fence of
 * `finish` and `heartbeat`, and the completer's backpressure.
 *
 * One node (primary, with this file's tasks) on one fresh database serves the
 * file; the log test builds a second node (JSON logs) in its own scope, and
 * the lease and completer tests drive `LeaseSql` and `Completer` by hand on
 * queues no node serves, under node rows of their own.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import * as Crypto from "node:crypto"
import * as ApplicationModule from "../../src/ApplicationModule.ts"
import * as AuditEvents from "../../src/AuditEvents.ts"
import { AuditLog } from "../../src/AuditLog.ts"
import * as Completer from "../../src/internal/dispatcher/completer.ts"
import * as Pool from "../../src/internal/dispatcher/pool.ts"
import * as LeaseSql from "../../src/internal/sql/leases.ts"
import * as Task from "../../src/Task.ts"
import * as TaskOutcome from "../../src/TaskOutcome.ts"
import { TaskQueue } from "../../src/TaskQueue.ts"
import * as Kit from "../support/kit.ts"

// ---------------------------------------------------------------------------
// Tasks of the shared node. Handlers run in this process: they record what
// happened to them in memory, with the time, for the test to read.

interface Phase {
  readonly attempt: number
  readonly phase: string
  /** performance.now() */
  readonly at: number
}
const phases = new Map<string, Array<Phase>>()
const mark = (ctx: Task.Context, phase: string) =>
  Effect.sync(() => {
    const list = phases.get(ctx.id) ?? []
    list.push({ attempt: ctx.attempt, phase, at: performance.now() })
    phases.set(ctx.id, list)
  })
const phasesOf = (id: string) => phases.get(id) ?? []

/** Never ends by itself: only its timeout ends it. */
const Hang = Task.define({
  name: "dispatcher.hang",
  payload: Schema.Struct({}),
  timeout: "300 millis",
  retry: { maxAttempts: 2, backoff: () => Duration.millis(10) }
})
/**
 * Ends well within its timeout, either without suspending at all or after one
 * short suspension. Its timeout (333 ms) is one no other timer of the test
 * process uses, so the test can watch its timers.
 */
const quickTimeoutMs = 333
const Quick = Task.define({
  name: "dispatcher.quick",
  payload: Schema.Struct({ suspend: Schema.Boolean }),
  timeout: Duration.millis(quickTimeoutMs),
  retry: { maxAttempts: 1 }
})
/** A handler that throws while building its effect (not inside it). */
const Throws = Task.define({ name: "dispatcher.throws", payload: Schema.Struct({}), retry: { maxAttempts: 1 } })
/** Enqueues a follow-up task from inside its run (the node has no trace exporter). */
const Chain = Task.define({ name: "dispatcher.chain", payload: Schema.Struct({}), result: Schema.Struct({ child: Schema.String }) })
/** Other work that takes a while, to let time pass while the test waits on rows. */
const Slow = Task.define({ name: "dispatcher.slow", payload: Schema.Struct({ ms: Schema.Int }) })

const DispatcherTasks = ApplicationModule.make({
  name: "dispatcher-tasks",
  tasks: [
    Task.handler(Hang, (_p, ctx) =>
      mark(ctx, "started").pipe(
        Effect.andThen(Effect.never),
        Effect.onInterrupt(() => mark(ctx, "interrupted")),
        Effect.ensuring(mark(ctx, "finalized"))
      )
    ),
    Task.handler(Quick, ({ suspend }, ctx) =>
      mark(ctx, "started").pipe(
        // A suspension makes the executor arm the timeout timer (a run that ends at once never does).
        Effect.andThen(suspend ? Effect.sleep("5 millis") : Effect.void),
        Effect.andThen(mark(ctx, "done")),
        Effect.onInterrupt(() => mark(ctx, "interrupted")),
        Effect.ensuring(mark(ctx, "finalized"))
      )
    ),
    Task.handler(Throws, (): Effect.Effect<void> => {
      throw new Error("thrown before any effect")
    }),
    Task.handler(Chain, () =>
      Effect.map(
        Effect.flatMap(TaskQueue, (q) => q.enqueue(Slow, { ms: 1 })),
        (child) => ({ child: child.id })
      )
    ),
    Task.handler(Slow, ({ ms }, ctx) =>
      mark(ctx, "started").pipe(Effect.andThen(Effect.sleep(Duration.millis(ms))), Effect.andThen(mark(ctx, "done")))
    )
  ]
})

// ---------------------------------------------------------------------------
// Tasks of the JSON-logging node (the shared node does not know them, so never claims them).

const Chatty = Task.define({ name: "dispatcher.chatty", payload: Schema.Struct({}) })
const SyncLog = Task.define({ name: "dispatcher.sync_log", payload: Schema.Struct({}) })
const Linger = Task.define({ name: "dispatcher.linger", payload: Schema.Struct({}), timeout: "10 minutes" })
const Poke = Task.define({ name: "dispatcher.poke", payload: Schema.Struct({}) })
/** Completed by the poke run, at once: a fiber waiting on it resumes inside the run's first step. */
const poked = Deferred.makeUnsafe<string>()

const LogTasks = ApplicationModule.make({
  name: "dispatcher-log-tasks",
  tasks: [
    Task.handler(Chatty, (_p, ctx) =>
      Effect.gen(function* () {
        // Before any suspension: the run is still being started.
        yield* Effect.logInfo(`chatty ${ctx.id}: at start`)
        yield* Effect.sleep("20 millis")
        yield* Effect.logInfo(`chatty ${ctx.id}: after sleep`)
      })
    ),
    // Never suspends: the run ends inside the call that starts it.
    Task.handler(SyncLog, (_p, ctx) => Effect.logInfo(`sync ${ctx.id}: only line`)),
    Task.handler(Poke, (_p, ctx) => Deferred.succeed(poked, ctx.id)),
    Task.handler(Linger, (_p, ctx) =>
      Effect.logInfo(`linger ${ctx.id}: started`).pipe(
        Effect.andThen(Effect.never),
        Effect.onInterrupt(() => Effect.logInfo(`linger ${ctx.id}: interrupted`))
      )
    )
  ]
})

// ---------------------------------------------------------------------------

const TestNode = Kit.node({
  modules: [DispatcherTasks],
  env: {
    ASTERFORGE_WORKER_CONCURRENCY: "4",
    ASTERFORGE_TELEMETRY_LOG_LEVEL: "none"
  }
}).pipe(Layer.provideMerge(Kit.database("dispatcher")))

const { taskInfo: get, taskFinished: finished } = Kit
const auditFor = (id: string) =>
  Kit.queryDb<{ code: string; details: Record<string, unknown> }>("SELECT code, details FROM audit_events WHERE subject = $1 ORDER BY id", [
    `task:${id}`
  ])

/** A node row in status `status` whose heartbeat promise is long, so the liveness lane leaves it (and its leases) alone. */
const insertNode = (status: "running" | "stopped") =>
  Effect.gen(function* () {
    const id = Crypto.randomUUID()
    yield* Kit.queryDb(
      `INSERT INTO nodes (id, name, mode, host, pid, version, status, heartbeat_interval_ms)
       VALUES ($1, $2, 'worker', 'test-host', 1, '0.0.0', $3, 3600000)`,
      [id, `dispatcher-test-${id.slice(0, 8)}`, status]
    )
    return id
  })

interface LeaseRow {
  readonly state: string
  readonly owner: string | null
  readonly epoch: number
  readonly expires: Date | null
  readonly attempt: number
  readonly result: unknown
  readonly errors: ReadonlyArray<unknown>
  readonly finished: Date | null
}
const leaseRow = (id: string) =>
  Effect.map(
    Kit.queryDb<LeaseRow>(
      `SELECT state, lease_owner::text AS owner, lease_epoch AS epoch, lease_expires_at AS expires, attempt, result, errors,
              finished_at AS finished
       FROM tasks WHERE id = $1`,
      [id]
    ),
    (rows) => rows[0]!
  )

/** One JSON log line as the node's logger writes it. */
type LogLine = Record<string, unknown> & { readonly message: string }

/**
 * Captures the JSON log lines written to this process's stderr (where the
 * in-process nodes' loggers write) until the scope closes; anything else is
 * passed through.
 */
const captureLogLines = Effect.acquireRelease(
  Effect.sync(() => {
    const lines: Array<LogLine> = []
    const original = process.stderr.write
    const parse = (line: string): LogLine | undefined => {
      try {
        const v = JSON.parse(line) as unknown
        return typeof v === "object" && v !== null && typeof (v as { message?: unknown }).message === "string" ? (v as LogLine) : undefined
      } catch {
        return undefined
      }
    }
    process.stderr.write = ((chunk: unknown, ...rest: Array<unknown>) => {
      const text = typeof chunk === "string" ? chunk : Buffer.isBuffer(chunk) ? chunk.toString("utf8") : String(chunk)
      let other = ""
      for (const line of text.split("\n")) {
        if (line === "") continue
        const parsed = parse(line)
        if (parsed === undefined) other += `${line}\n`
        else lines.push(parsed)
      }
      return other === "" ? true : (original as (...args: Array<unknown>) => boolean).call(process.stderr, other, ...rest)
    }) as typeof process.stderr.write
    const restore = () => {
      process.stderr.write = original
    }
    return { lines, restore }
  }),
  (capture) => Effect.sync(capture.restore)
)

/**
 * Watches the timers this process arms with a delay of `ms` while the scope is
 * open (a run's timeout timer is armed for what is left of its timeout: up to
 * 50 ms less): how many, and which of them fired.
 */
const watchTimers = (ms: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const armed: Array<{ fired: boolean }> = []
      const original = globalThis.setTimeout
      const watched = (callback: (...args: Array<unknown>) => void, delay?: number, ...args: Array<unknown>) => {
        if (delay === undefined || delay > ms || delay < ms - 50) return original(callback, delay, ...args)
        const timer = { fired: false }
        armed.push(timer)
        return original(
          (...a: Array<unknown>) => {
            timer.fired = true
            callback(...a)
          },
          delay,
          ...args
        )
      }
      globalThis.setTimeout = watched as unknown as typeof globalThis.setTimeout
      const restore = () => {
        globalThis.setTimeout = original
      }
      return { armed, restore }
    }),
    (watch) => Effect.sync(watch.restore)
  )

const succeededWith = (definition: Task.Definition, task: Task.Claimed, actor: string) =>
  TaskOutcome.ofRun(
    definition,
    task,
    { _tag: "Exited", exit: Exit.void, cancelRequested: false, stopping: false, context: { callbackToken: "unused" } },
    actor
  )

layer(TestNode, { excludeTestServices: true })("dispatcher", (it) => {
  describe("defects", () => {
    it.effect("a handler that throws while building its effect fails the run as a defect; the pool runs on", () =>
      Effect.gen(function* () {
        const q = yield* TaskQueue
        const { id } = yield* q.enqueue(Throws, {})
        const t = yield* finished(id)
        expect(t.state).toBe("failed")
        expect(t.errors.map((e) => [e.tag, e.message])).toEqual([["Defect", "thrown before any effect"]])
        // The same pool still runs work after it.
        const after = yield* q.enqueue(Slow, { ms: 1 })
        expect((yield* finished(after.id)).state).toBe("succeeded")
      })
    )
  })

  describe("tracing off without an exporter", () => {
    it.effect("a task enqueued by a run stores no traceparent (no-op spans are not propagated)", () =>
      Effect.gen(function* () {
        const q = yield* TaskQueue
        const { id } = yield* q.enqueue(Chain, {})
        const parent = yield* finished(id)
        expect(parent.state).toBe("succeeded")
        const child = (parent.result as { child: string }).child
        expect((yield* finished(child)).state).toBe("succeeded")
        const [row] = yield* Kit.queryDb<{ traceparent: string | null }>("SELECT traceparent FROM tasks WHERE id = $1", [child])
        expect(row).toEqual({ traceparent: null })
      })
    )
  })

  describe("timeouts", () => {
    it.effect("a handler that outlives its timeout is interrupted (finalizers run) and the attempt fails as a timeout", () =>
      Effect.gen(function* () {
        const q = yield* TaskQueue
        const { id } = yield* q.enqueue(Hang, {})
        const t = yield* finished(id)
        expect(t.state).toBe("failed")
        expect(t.attempt).toBe(2)
        expect(t.leaseOwner).toBeNull()
        // Attempt 1 timed out and was retried (retryable), attempt 2 timed out and failed.
        expect(t.errors.map((e) => [e.tag, e.code, e.attempt, e.message])).toEqual([
          ["Timeout", TaskOutcome.timeoutCode, 1, "timed out after 300ms"],
          ["Timeout", TaskOutcome.timeoutCode, 2, "timed out after 300ms"]
        ])
        // Each run's interruption ran the handler's onInterrupt and its finalizer.
        const seen = phasesOf(id)
        expect(seen.map((p) => [p.attempt, p.phase])).toEqual([
          [1, "started"],
          [1, "interrupted"],
          [1, "finalized"],
          [2, "started"],
          [2, "interrupted"],
          [2, "finalized"]
        ])
        for (const attempt of [1, 2]) {
          const started = seen.find((p) => p.attempt === attempt && p.phase === "started")!.at
          const ended = seen.find((p) => p.attempt === attempt && p.phase === "finalized")!.at
          console.log(
            `dispatcher.hang attempt ${attempt}: interrupted ${(ended - started).toFixed(1)} ms after it started (timeout 300 ms)`
          )
          // Not early (a lower bound only, with slack: a Node timer counts from the event loop's cached
          // time, which a busy turn of the loop leaves behind the moment the timer is armed).
          expect(ended - started).toBeGreaterThanOrEqual(250)
        }
        const audit = yield* Kit.eventually(
          Effect.map(auditFor(id), (a) => (a.length > 0 ? a : undefined)),
          "the failure to be audited"
        )
        expect(audit).toEqual([
          {
            code: "task.failed",
            details: expect.objectContaining({ exhausted: true, attempt: 2, tag: "Timeout", code: TaskOutcome.timeoutCode })
          }
        ])
      })
    )

    it.effect("a handler that ends in time succeeds, and its timer never fires after it ended", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const q = yield* TaskQueue
          const timers = yield* watchTimers(quickTimeoutMs)
          const suspended = yield* q.enqueue(Quick, { suspend: true })
          const immediate = yield* q.enqueue(Quick, { suspend: false })
          for (const { id } of [suspended, immediate]) {
            const t = yield* finished(id)
            expect(t.state).toBe("succeeded")
          }
          // The run that suspended armed its timeout timer (one that ends at once needs none).
          expect(timers.armed.length).toBeGreaterThanOrEqual(1)
          // Over twice the timeout of other work, started after both ended, before the test looks again.
          const startedAt = performance.now()
          const other = yield* q.enqueue(Slow, { ms: 2 * quickTimeoutMs + 50 })
          expect((yield* finished(other.id)).state).toBe("succeeded")
          console.log(
            `waited ${(performance.now() - startedAt).toFixed(0)} ms of other work after the quick tasks ended; ` +
              `${timers.armed.length} timeout timer(s) armed, ${timers.armed.filter((t) => t.fired).length} fired`
          )
          expect(timers.armed.map((t) => t.fired)).toEqual(timers.armed.map(() => false))
          for (const { id } of [suspended, immediate]) {
            const t = yield* get(id)
            expect(t.state).toBe("succeeded")
            expect(t.errors).toEqual([])
            expect(t.attempt).toBe(1)
            expect(t.leaseOwner).toBeNull()
            expect(phasesOf(id).map((p) => p.phase)).toEqual(["started", "done", "finalized"])
            expect(yield* auditFor(id)).toEqual([])
          }
        })
      )
    )
  })

  describe("log annotations", () => {
    it.effect(
      "every line a run logs carries its task_id and task, from its first synchronous line on; the dispatcher's own lines do not",
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            // Installed first, released last: it sees the node start and stop.
            const { lines } = yield* captureLogLines
            const node = yield* Layer.build(
              Kit.node({
                mode: "worker",
                modules: [LogTasks],
                env: {
                  ASTERFORGE_TELEMETRY_LOG_FORMAT: "json",
                  ASTERFORGE_TELEMETRY_LOG_LEVEL: "info",
                  ASTERFORGE_WORKER_CONCURRENCY: "4"
                }
              })
            )
            const q = Context.get(node, TaskQueue)
            const line = (message: string) =>
              Kit.eventually(
                Effect.sync(() => lines.find((l) => l.message === message)),
                `the log line "${message}"`
              )

            // A fiber of the node's, not of any run, woken by a run: its lines are not the run's.
            Effect.runForkWith(node)(Effect.flatMap(Deferred.await(poked), (id) => Effect.logInfo(`woken by run ${id}`)))
            const poke = yield* q.enqueue(Poke, {})
            const woken = yield* line(`woken by run ${poke.id}`)
            expect(woken).not.toHaveProperty("task_id")
            expect(woken).not.toHaveProperty("task")

            const linger = yield* q.enqueue(Linger, {})
            const chatty = [yield* q.enqueue(Chatty, {}), yield* q.enqueue(Chatty, {})]
            const sync = [yield* q.enqueue(SyncLog, {}), yield* q.enqueue(SyncLog, {})]
            for (const { id } of [...chatty, ...sync]) {
              const t = yield* Kit.eventually(
                Effect.map(q.get(id), (t) => (t.state === "succeeded" ? t : undefined)),
                `task ${id} to succeed`
              )
              expect(t.errors).toEqual([])
            }
            for (const { id } of chatty) {
              expect(yield* line(`chatty ${id}: at start`)).toMatchObject({ level: "info", task_id: id, task: "dispatcher.chatty" })
              expect(yield* line(`chatty ${id}: after sleep`)).toMatchObject({ level: "info", task_id: id, task: "dispatcher.chatty" })
            }
            for (const { id } of sync) {
              expect(yield* line(`sync ${id}: only line`)).toMatchObject({ level: "info", task_id: id, task: "dispatcher.sync_log" })
            }

            // A cancel: the dispatcher logs it (not the run), then the run logs its interruption.
            expect(yield* line(`linger ${linger.id}: started`)).toMatchObject({ task_id: linger.id, task: "dispatcher.linger" })
            expect((yield* q.cancel(linger.id)).state).toBe("running")
            const cancelled = yield* Kit.eventually(
              Effect.map(q.get(linger.id), (t) => (t.state === "cancelled" ? t : undefined)),
              `task ${linger.id} to be cancelled`
            )
            expect(cancelled.errors.map((e) => e.tag)).toEqual(["Cancelled"])
            expect(yield* line(`linger ${linger.id}: interrupted`)).toMatchObject({ task_id: linger.id, task: "dispatcher.linger" })
            const cancelling = yield* line(`cancelling task ${linger.id} on request`)
            expect(cancelling).not.toHaveProperty("task_id")
            expect(cancelling).not.toHaveProperty("task")

            const started = lines.find((l) => l.message.startsWith("dispatcher started"))
            expect(started).toMatchObject({ component: "dispatcher" })
            expect(started).not.toHaveProperty("task_id")
            expect(started).not.toHaveProperty("task")

            // No annotation leaks: only the runs' own lines carry a task_id, and always their own.
            const annotated = lines.filter((l) => l.task_id !== undefined)
            expect(annotated.length).toBe(2 * chatty.length + sync.length + 2)
            // No exporter: no span ids on any line (the dispatcher's spans are no-ops).
            expect(lines.filter((l) => "trace_id" in l || "span_id" in l)).toEqual([])
            for (const l of annotated) {
              expect(l.message).toMatch(/^(chatty|sync|linger) \d+: /)
              expect(l.message.split(" ")[1]).toBe(`${String(l.task_id)}:`)
            }
            console.log(`captured ${lines.length} JSON log lines; a run's line: ${JSON.stringify(annotated[0])}`)
          })
        )
    )
  })

  describe("lease fence", () => {
    const Fence = Task.define({ name: "dispatcher.fence", payload: Schema.Struct({}) })
    /** One available task on a queue of its own (no node serves `fence_*`), claimed by `owner`. */
    const claimedBy = (owner: string, queue: string) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const [task] = yield* LeaseSql.claim(sql, { queue, names: [Fence.name], limit: 1, owner, leaseMs: 60_000 })
        return task!
      })
    const available = (queue: string) =>
      Effect.map(
        Kit.queryDb<{ id: string }>(
          `INSERT INTO tasks (name, queue, state, max_attempts, payload) VALUES ($1, $2, 'available', 3, '{}') RETURNING id::text AS id`,
          [Fence.name, queue]
        ),
        (rows) => rows[0]!.id
      )
    const done = (id: string, epoch: number, by: string): LeaseSql.Finish => ({ id, epoch, state: "succeeded", result: { by } })
    const finish = (owner: string, rows: ReadonlyArray<LeaseSql.Finish>) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) => Effect.map(LeaseSql.finish(sql, owner, rows), (refused) => refused.map((r) => r.id)))
    const heartbeat = (owner: string, ids: ReadonlyArray<string>) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) => LeaseSql.heartbeat(sql, { owner, ids, leaseMs: 3_600_000 }))

    it.effect(
      "finish writes only under the same (id, lease_epoch, lease_owner) and returns the refused ids; heartbeat extends only the owner's",
      () =>
        Effect.gen(function* () {
          const a = yield* insertNode("running")
          const b = yield* insertNode("running")
          const stopped = yield* insertNode("stopped")

          // A node that is not running claims nothing.
          yield* available("fence_0")
          expect(
            yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
              LeaseSql.claim(sql, { queue: "fence_0", names: [Fence.name], limit: 1, owner: stopped, leaseMs: 60_000 })
            )
          ).toEqual([])

          // 1. Claimed by A: B's finish and heartbeat change nothing; A's heartbeat extends; A's finish is accepted once.
          const id1 = yield* available("fence_1")
          const t1 = yield* claimedBy(a, "fence_1")
          expect(t1.id).toBe(id1)
          const claimed = yield* leaseRow(id1)
          expect(claimed).toMatchObject({ state: "running", owner: a, epoch: t1.leaseEpoch, attempt: 1 })

          expect(yield* heartbeat(b, [id1])).toEqual([])
          expect(yield* finish(b, [done(id1, t1.leaseEpoch, "B")])).toEqual([id1])
          expect(yield* leaseRow(id1)).toEqual(claimed)
          // The right owner under an old epoch is refused too.
          expect(yield* finish(a, [done(id1, t1.leaseEpoch - 1, "A")])).toEqual([id1])
          expect(yield* leaseRow(id1)).toEqual(claimed)

          expect(yield* heartbeat(a, [id1])).toEqual([{ id: id1, cancelRequested: false }])
          const extended = yield* leaseRow(id1)
          expect(extended.expires!.getTime()).toBeGreaterThan(claimed.expires!.getTime())
          expect({ ...extended, expires: null }).toEqual({ ...claimed, expires: null })

          expect(yield* finish(a, [done(id1, t1.leaseEpoch, "A")])).toEqual([])
          const written = yield* leaseRow(id1)
          expect(written).toMatchObject({ state: "succeeded", owner: null, expires: null, epoch: t1.leaseEpoch, result: { by: "A" } })
          expect(written.finished).not.toBeNull()
          // A late duplicate of the same finish is refused: the lease ended with the first.
          expect(yield* finish(a, [done(id1, t1.leaseEpoch, "A again")])).toEqual([id1])
          expect(yield* leaseRow(id1)).toEqual(written)
          expect(yield* heartbeat(a, [id1])).toEqual([])

          // 2. Claimed by A, then rescued (owner cleared, state available, epoch unchanged): A's late finish is refused.
          const id2 = yield* available("fence_2")
          const t2 = yield* claimedBy(a, "fence_2")
          expect(t2.id).toBe(id2)
          yield* Kit.queryDb(
            "UPDATE tasks SET state = 'available', lease_owner = NULL, lease_expires_at = NULL, attempt = attempt - 1 WHERE id = $1",
            [id2]
          )
          const rescued = yield* leaseRow(id2)
          expect(rescued).toMatchObject({ state: "available", owner: null, epoch: t2.leaseEpoch })
          expect(yield* heartbeat(a, [id2])).toEqual([])
          expect(yield* finish(a, [done(id2, t2.leaseEpoch, "A")])).toEqual([id2])
          expect(yield* leaseRow(id2)).toEqual(rescued)

          // ...then claimed again by B (the epoch moves on): A's finish under the old epoch is refused, and so is
          // A's under the new one (not its lease); A's heartbeat extends nothing. B's finish is accepted.
          const t2b = yield* claimedBy(b, "fence_2")
          expect(t2b.id).toBe(id2)
          expect(t2b.leaseEpoch).toBe(t2.leaseEpoch + 1)
          const reclaimed = yield* leaseRow(id2)
          expect(reclaimed).toMatchObject({ state: "running", owner: b, epoch: t2b.leaseEpoch })
          expect(yield* finish(a, [done(id2, t2.leaseEpoch, "A")])).toEqual([id2])
          expect(yield* finish(a, [done(id2, t2b.leaseEpoch, "A")])).toEqual([id2])
          expect(yield* heartbeat(a, [id2])).toEqual([])
          expect(yield* leaseRow(id2)).toEqual(reclaimed)

          // 3. One batch, one current row and one stale row: only the stale id comes back, only the current row changes.
          const id3 = yield* available("fence_3")
          const t3 = yield* claimedBy(a, "fence_3")
          expect(yield* finish(a, [done(id3, t3.leaseEpoch, "A"), done(id2, t2.leaseEpoch, "A")])).toEqual([id2])
          expect(yield* leaseRow(id3)).toMatchObject({ state: "succeeded", owner: null, result: { by: "A" } })
          expect(yield* leaseRow(id2)).toEqual(reclaimed)

          // Heartbeat by B over a mixed list: only the rows B owns come back.
          expect(yield* heartbeat(b, [id1, id2, id3])).toEqual([{ id: id2, cancelRequested: false }])
          expect(yield* finish(b, [done(id2, t2b.leaseEpoch, "B")])).toEqual([])
          expect(yield* leaseRow(id2)).toMatchObject({ state: "succeeded", owner: null, result: { by: "B" } })
        })
    )
  })

  describe("completer backpressure", () => {
    const Backpressure = Task.define({ name: "dispatcher.backpressure", payload: Schema.Struct({}) })
    const queue = "backpressure"

    it.effect("a full completer holds outcomes (offer is false), takes them in order once there is room, and complete waits", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const audit = yield* AuditLog
          const owner = yield* insertNode("running")
          const actor = AuditEvents.actors.node(owner)
          const extra = 3
          // One in the writer, a full buffer, `extra` held, one waiting in `complete`.
          const total = 1 + Completer.capacity + extra + 1

          const setUpStart = performance.now()
          yield* Kit.queryDb(
            `INSERT INTO tasks (name, queue, state, max_attempts, payload)
             SELECT $1, $2, 'available', 1, '{}' FROM generate_series(1, $3::int)`,
            [Backpressure.name, queue, total]
          )
          const tasks = yield* LeaseSql.claim(sql, { queue, names: [Backpressure.name], limit: total, owner, leaseMs: 3_600_000 })
          expect(tasks.length).toBe(total)
          console.log(`inserted and claimed ${total} rows in ${(performance.now() - setUpStart).toFixed(0)} ms`)
          const ids = tasks.map((t) => t.id)
          const [first, ...rest] = tasks
          const buffered = rest.slice(0, Completer.capacity)
          const held = rest.slice(Completer.capacity, Completer.capacity + extra)
          const waiting = rest[Completer.capacity + extra]!

          // Another session locks every row: the completer's finish statement waits on it.
          const locked = yield* Deferred.make<number>()
          const unlock = yield* Deferred.make<void>()
          yield* sql
            .withTransaction(
              Effect.gen(function* () {
                const rows = yield* sql`SELECT id FROM tasks WHERE queue = ${queue} FOR UPDATE`
                yield* Deferred.succeed(locked, rows.length)
                yield* Deferred.await(unlock)
              })
            )
            .pipe(Effect.forkScoped)
          expect(yield* Deferred.await(locked)).toBe(total)

          const pools = yield* Pool.make({ queues: [{ queue, concurrency: 1 }], prefetch: 0, names: [Backpressure.name] })
          const completer = yield* Completer.make({ sql, audit, actor, owner, pools, pollInterval: Duration.seconds(1) })
          const outcome = (task: Task.Claimed) => succeededWith(Backpressure, task, actor)
          const blockedFinishes = Effect.map(
            Kit.queryDb<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
                 AND query LIKE '%jsonb_to_recordset%'`
            ),
            (r) => r[0]!.n
          )
          const writerBlocked = Kit.eventually(
            Effect.map(blockedFinishes, (n) => (n > 0 ? n : undefined)),
            "the completer's finish to wait on the row locks"
          )

          // The first outcome goes to the writer, whose statement then waits on the locks. (An offer to an idle
          // writer resumes it within the offer call, and it takes the whole buffer as a batch: so the buffer is
          // filled only once the writer is busy, and then `capacity` is exactly what it takes.)
          const taken: Array<string> = []
          const onTaken = (id: string) => () => {
            taken.push(id)
          }
          expect(completer.offer(first!, outcome(first!), onTaken(first!.id))).toBe(true)
          expect(yield* writerBlocked).toBe(1)

          // Synchronously, capacity + extra more: the buffer takes `capacity`, the rest are held.
          const offered = yield* Effect.sync(() => [...buffered, ...held].map((t) => completer.offer(t, outcome(t), onTaken(t.id))))
          expect(offered.slice(0, Completer.capacity).every((ok) => ok)).toBe(true)
          expect(offered.slice(Completer.capacity)).toEqual(held.map(() => false))
          expect(taken).toEqual([])
          expect([...completer.unwritten()].sort()).toEqual([first!, ...buffered, ...held].map((t) => t.id).sort())

          // complete() on a full completer waits.
          const completing = yield* completer.complete(waiting, outcome(waiting)).pipe(
            Effect.tap(() => Effect.sync(() => taken.push(waiting.id))),
            Effect.forkScoped
          )
          // Still blocked (so still full) after that round trip: nothing held was let go, complete still waits.
          expect(yield* blockedFinishes).toBe(1)
          expect(taken).toEqual([])
          expect(completing.pollUnsafe()).toBeUndefined()
          expect(new Set(completer.unwritten())).toEqual(new Set(ids))

          const releasedAt = performance.now()
          yield* Deferred.succeed(unlock, undefined)
          expect(yield* Fiber.join(completing)).toBe(true)
          // Once there was room, the held outcomes were taken in the order offered, then the waiting complete.
          expect(taken).toEqual([...held.map((t) => t.id), waiting.id])

          const doneCount = Effect.map(
            Kit.queryDb<{ n: number }>(
              "SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::bigint[]) AND state = 'succeeded' AND lease_owner IS NULL",
              [ids]
            ),
            (r) => r[0]!.n
          )
          yield* Kit.eventually(
            Effect.map(doneCount, (n) => (n === total && [...completer.unwritten()].length === 0 ? n : undefined)),
            `all ${total} completions to be written`,
            60_000
          )
          console.log(`${total} completions written ${(performance.now() - releasedAt).toFixed(0)} ms after the locks were released`)
          yield* completer.close(Duration.seconds(5))
          // Closed: an offer is dropped (true, never written) and complete says false.
          expect(yield* completer.complete(first!, outcome(first!))).toBe(false)
        })
      )
    )
  })
})
