/**
 * Dispatcher: claims tasks, runs their handlers with bounded concurrency, and
 * records what happened, under leases.
 *
 * - One claim loop per queue. It claims only as many tasks as it has free
 *   slots (backpressure), plus `worker.prefetch` ahead that wait on this node
 *   for a slot, in one statement. LISTEN/NOTIFY wakes it as soon as work
 *   arrives or a slot frees up; `worker.poll_interval` is the backstop.
 * - Each handler runs in its own fiber under the task's timeout. Whatever it
 *   ends with (success, a typed failure, a defect, an interruption) becomes an
 *   outcome; outcomes are written in batches by one completion writer, each
 *   guarded by `(id, lease_epoch)` so a stale worker's late result is refused.
 * - One heartbeat statement per node extends every lease it holds, and doubles
 *   as the backstop for cancellations whose NOTIFY was missed.
 * - A failing claim loop is restarted with backoff and counted; a failing or
 *   defecting handler never stops its pool.
 * - On shutdown: stop claiming, hand prefetched tasks back at once, give
 *   running handlers `shutdown.grace`, then interrupt the rest and hand their
 *   tasks straight back to `available` without using an attempt, so another
 *   node can take them at once; pending completions are written before the
 *   audit log flushes.
 */
import { Cause, Context, Duration, Effect, Exit, Fiber, FiberSet, Layer, Metric, Option, Queue, Schedule } from "effect"
import { identity } from "effect/Function"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import * as Crypto from "node:crypto"
import type { RuntimeServices } from "./ApplicationModule.ts"
import * as AuditEvents from "./AuditEvents.ts"
import { type AuditEvent, AuditLog } from "./AuditLog.ts"
import { HealthRegistry, fail as healthFail, pass as healthPass } from "./Health.ts"
import * as LeaseSql from "./internal/sql/leases.ts"
import { NodeIdentity } from "./NodeIdentity.ts"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import type { Problem } from "./RuntimeError.ts"
import * as Shutdown from "./Shutdown.ts"
import { ConfigInvalid, RuntimeError } from "./RuntimeError.ts"
import * as Task from "./Task.ts"
import { TaskRegistry } from "./TaskRegistry.ts"
import * as Telemetry from "./Telemetry.ts"

/** The most handlers one process runs at once, over all its queues. */
export const maxConcurrencyPerProcess = 64

const queueName = { pattern: /^[a-z0-9_.-]{1,64}$/i, describe: "1-64 characters of [a-z0-9_.-]" }

/**
 * `[worker]`: how a dispatching node claims and runs tasks.
 *
 * @category config
 */
export const Config = ConfigSection.make("worker", {
  inline: ConfigSection.key(ConfigSchema.Boolean, {
    default: true,
    doc: "primary nodes also run the task dispatcher",
    aliases: [{ name: "DISABLE_INLINE_WORKER", shown: "DISABLE_INLINE_WORKER=1", map: (s) => (s.trim() === "1" ? false : undefined) }]
  }),
  concurrency: ConfigSection.key(ConfigSchema.Int(1, maxConcurrencyPerProcess), {
    default: 4,
    doc: "handlers run at once per queue, unless worker.queues says otherwise"
  }),
  prefetch: ConfigSection.key(ConfigSchema.Int(0, 256), {
    default: 0,
    doc: "tasks per queue claimed ahead of a free slot (helps many short tasks; idle until a slot frees, so keep 0 for long ones)"
  }),
  queues: ConfigSection.key(ConfigSchema.NamedValues(ConfigSchema.Int(1, maxConcurrencyPerProcess), queueName), {
    default: "",
    doc: "per-queue concurrency overrides, e.g. \"default=8,mail=2\"; listed queues are served even with no registered task"
  }),
  pollInterval: ConfigSection.key(ConfigSchema.Duration({ minimum: "10 millis", maximum: "1 hour" }), {
    default: "1 second",
    doc: "claim attempt when no NOTIFY arrived (the backstop)"
  }),
  leaseDuration: ConfigSection.key(ConfigSchema.Duration({ minimum: "1 second", maximum: "1 day" }), {
    default: "15 seconds",
    doc: "a claimed task is rescued if its lease is not extended in this time"
  }),
  heartbeatInterval: ConfigSection.key(ConfigSchema.Duration({ minimum: "100 millis", maximum: "12 hours" }), {
    default: "5 seconds",
    doc: "how often one statement extends every lease this node holds"
  })
}, {
  check: (c) => [
    ...(Duration.isLessThan(Duration.times(c.heartbeatInterval, 2), c.leaseDuration)
      ? []
      : [{ key: "worker.heartbeat_interval", message: "must be less than half of worker.lease_duration, or healthy leases expire between heartbeats" }]),
    ...queuePlan(c, []).problems
  ]
})
export type Config = ConfigSection.TypeOf<typeof Config>

/**
 * The pools a dispatcher runs: one per queue that registered tasks use or
 * `worker.queues` lists, each with its concurrency. The total is bounded per
 * process; the check runs before anything starts (`Runtime` calls this with
 * the modules' queues), not after connecting.
 */
export const queuePlan = (
  worker: { readonly concurrency: number; readonly queues: ReadonlyMap<string, number> },
  registeredQueues: ReadonlyArray<string>
): { readonly pools: ReadonlyArray<{ readonly queue: string; readonly concurrency: number }>; readonly problems: ReadonlyArray<Problem> } => {
  const pools = [...new Set([...registeredQueues, ...worker.queues.keys()])]
    .map((queue) => ({ queue, concurrency: worker.queues.get(queue) ?? worker.concurrency }))
  const total = pools.reduce((n, p) => n + p.concurrency, 0)
  return {
    pools,
    problems: total <= maxConcurrencyPerProcess ? [] : [{
      key: "worker.concurrency",
      message: `concurrency over all queues is ${total} (${pools.map((p) => `${p.queue}=${p.concurrency}`).join(", ")}); at most ${maxConcurrencyPerProcess} per process: lower worker.concurrency / worker.queues or run more worker processes`
    }]
  }
}

export interface QueueStatus {
  readonly queue: string
  readonly concurrency: number
  readonly running: number
  readonly free: number
  readonly restarts: number
  readonly lastError: string | null
}

export interface DispatcherShape {
  readonly status: Effect.Effect<ReadonlyArray<QueueStatus>>
}

export class Dispatcher extends Context.Service<Dispatcher, DispatcherShape>()("@asterforge/runtime/Dispatcher") {}

/** Outcome labels of `asterforge_tasks_finished_total`. */
type Outcome = "success" | "retry" | "terminal" | "snooze" | "timeout" | "interrupted" | "cancelled" | "callback"

interface Running {
  readonly row: LeaseSql.Claimed
  readonly claimedAt: number
  handler: Fiber.Fiber<unknown, unknown> | undefined
  /** Set before interrupting for a cancel, so the interruption is recorded as a cancellation. */
  cancelRequested: boolean
  /** Set when the heartbeat finds the lease gone: the result would be refused, so none is written. */
  leaseLost: boolean
}

interface Pool {
  readonly queue: string
  readonly concurrency: number
  /** Tasks claimed ahead of a free slot, so the next claim overlaps the handlers of this one. */
  readonly prefetch: number
  readonly names: ReadonlyArray<string>
  /** Every task this node holds a lease on in this queue: started, or waiting in `ready`. */
  readonly running: Map<string, Running>
  /** Claimed, not started yet: started in claim order as slots free up. */
  readonly ready: Array<Running>
  /** Handlers running now (at most `concurrency`). */
  active: number
  readonly wake: Queue.Queue<void>
  /** The last claim filled every free slot: more work may be waiting. */
  maybeMore: boolean
  readonly metrics: Readonly<Record<"claimed" | "wait" | "duration" | "inFlight" | "restarts", Metric.Metric<number, any>>>
  restarts: number
  lastError: string | null
}

interface Completion {
  readonly finish: LeaseSql.Finish
  readonly name: string
  readonly queue: string
  readonly outcome: Outcome
  /** Recorded once the write is accepted (failed, cancelled, interrupted). */
  readonly audit?: AuditEvent
}

const timeoutCode = "task.timeout"

const errorDetail = (tag: string, message: string, code: string | null | undefined, attempt: number, stack?: string): Task.ErrorDetail => ({
  tag,
  message,
  code: code ?? null,
  attempt,
  at: new Date().toISOString(),
  ...(stack ? { stack } : {})
})

const finishFor = (row: LeaseSql.Claimed, patch: Partial<LeaseSql.Finish> & Pick<LeaseSql.Finish, "state">): LeaseSql.Finish => ({
  id: row.id,
  epoch: row.lease_epoch,
  result: null,
  error: null,
  delay_ms: null,
  attempt_delta: 0,
  callback_token: null,
  callback_timeout_ms: null,
  ...patch
})

/**
 * Maps a handler's exit to the task's next state. Pure, so the rules read in
 * one place: retry while attempts remain, terminal at once, snooze and release
 * give the attempt back, a defect is retryable with its details kept.
 */
export const decide = (
  definition: Task.Definition,
  row: LeaseSql.Claimed,
  exit: Exit.Exit<unknown, Task.Failure>,
  flags: { readonly cancelRequested: boolean; readonly stopping: boolean; readonly callbackToken: () => string; readonly actor: string }
): Omit<Completion, "name" | "queue"> => {
  const subject = row.id
  const failed = (detail: Task.ErrorDetail, exhausted: boolean) =>
    AuditEvents.taskFailed({
      actor: flags.actor,
      subject,
      details: { name: definition.name, attempt: row.attempt, tag: detail.tag, message: detail.message, code: detail.code, exhausted }
    })
  const retryOrFail = (detail: Task.ErrorDetail, delay: Duration.Duration | undefined, outcome: Outcome): Omit<Completion, "name" | "queue"> => {
    if (row.attempt >= row.max_attempts) {
      return {
        finish: finishFor(row, { state: "failed", error: detail }),
        outcome,
        audit: failed(detail, true)
      }
    }
    const wait = delay ?? definition.retry.backoff(row.attempt)
    return { finish: finishFor(row, { state: "retryable", error: detail, delay_ms: Duration.toMillis(wait) }), outcome }
  }

  if (Exit.isSuccess(exit)) {
    const encoded = Task.encodeResult(definition, exit.value)
    if (encoded._tag === "Failure") {
      return retryOrFail(errorDetail("ResultInvalid", `handler result does not match the result schema: ${encoded.failure}`, null, row.attempt), undefined, "retry")
    }
    return { finish: finishFor(row, { state: "succeeded", result: encoded.success ?? null }), outcome: "success" }
  }
  const cause = exit.cause
  if (Cause.hasInterruptsOnly(cause)) {
    if (flags.cancelRequested) {
      return {
        finish: finishFor(row, { state: "cancelled", error: errorDetail("Cancelled", "cancelled while running", null, row.attempt) }),
        outcome: "cancelled",
        audit: AuditEvents.taskCancelled({ actor: flags.actor, subject, details: { name: definition.name, previous: "running", attempt: row.attempt } })
      }
    }
    // Shutdown (or any interruption we did not ask for): give the task back at once, attempt unused.
    return {
      finish: finishFor(row, { state: "available", delay_ms: 0, attempt_delta: -1 }),
      outcome: "interrupted",
      audit: AuditEvents.taskInterrupted({ actor: flags.actor, subject, details: { name: definition.name, attempt: row.attempt, reason: flags.stopping ? "shutdown" : "interrupted" } })
    }
  }
  const failure = cause.reasons.find(Cause.isFailReason)?.error
  if (failure !== undefined) {
    switch (failure._tag) {
      case "Terminal": {
        const detail = errorDetail("Terminal", failure.message, failure.code, row.attempt)
        return { finish: finishFor(row, { state: "failed", error: detail }), outcome: "terminal", audit: failed(detail, false) }
      }
      case "Retryable": {
        const timedOut = failure.code === timeoutCode
        return retryOrFail(errorDetail(timedOut ? "Timeout" : "Retryable", failure.message, failure.code, row.attempt), failure.delay, timedOut ? "timeout" : "retry")
      }
      case "Snooze":
        return { finish: finishFor(row, { state: "scheduled", delay_ms: Duration.toMillis(failure.duration), attempt_delta: -1 }), outcome: "snooze" }
      case "AwaitCallback":
        return {
          finish: finishFor(row, { state: "waiting_callback", callback_token: flags.callbackToken(), callback_timeout_ms: Duration.toMillis(failure.timeout) }),
          outcome: "callback"
        }
    }
  }
  // A defect: retryable, with what an administrator needs to find it.
  const defect = cause.reasons.find(Cause.isDieReason)?.defect
  const message = defect instanceof Error ? defect.message : String(defect ?? Cause.pretty(cause))
  const stack = defect instanceof Error ? defect.stack : Cause.pretty(cause)
  return retryOrFail(errorDetail("Defect", message, null, row.attempt, stack), undefined, "retry")
}

/** A task that fails before its handler runs: its deadline passed, or its payload no longer decodes. */
export const failBeforeRun = (definition: Task.Definition, row: LeaseSql.Claimed, tag: string, message: string, actor: string): Omit<Completion, "name" | "queue"> => {
  const detail = errorDetail(tag, message, null, row.attempt)
  return {
    finish: finishFor(row, { state: "failed", error: detail }),
    outcome: "terminal",
    audit: AuditEvents.taskFailed({ actor, subject: row.id, details: { name: definition.name, attempt: row.attempt, tag, message, code: null, exhausted: false } })
  }
}

const tokenBytes = 32
/** Unguessable: 256 random bits, URL-safe. */
export const newCallbackToken = (): string => Crypto.randomBytes(tokenBytes).toString("base64url")

export const layer: Layer.Layer<
  Dispatcher,
  RuntimeError,
  RuntimeServices | TaskRegistry | ConfigSection.Tag<"worker"> | ConfigSection.Tag<"shutdown"> | ConfigSection.Tag<"telemetry">
> = Layer.effect(
  Dispatcher,
  Effect.gen(function*() {
    const config = { worker: yield* Config, shutdown: yield* Shutdown.Config, telemetry: yield* Telemetry.Config }
    const sql = yield* SqlClient.SqlClient
    const pg = yield* PgClient.PgClient
    const node = yield* NodeIdentity
    const audit = yield* AuditLog
    const health = yield* HealthRegistry
    const registry = yield* TaskRegistry
    // Handlers need the runtime's services; the fibers they run in are forked from this layer's
    // context, so they inherit them without a per-task provide.
    yield* Effect.context<RuntimeServices>()
    const leaseMs = Duration.toMillis(config.worker.leaseDuration)
    const pollMs = Duration.toMillis(config.worker.pollInterval)
    const actor = AuditEvents.actors.node(node.id)
    const layerScope = yield* Effect.scope

    // ---- pools ------------------------------------------------------------
    const plan = queuePlan(config.worker, registry.queues)
    if (plan.problems.length > 0) return yield* new RuntimeError({ reason: new ConfigInvalid({ problems: plan.problems }) })
    const pools = new Map<string, Pool>()
    for (const { queue, concurrency } of plan.pools) {
      pools.set(queue, {
        queue,
        concurrency,
        prefetch: config.worker.prefetch,
        // Any registered task may be enqueued on any queue (the `queue` option), so every pool knows every name.
        names: registry.names,
        running: new Map(),
        ready: [],
        active: 0,
        wake: yield* Queue.sliding<void>(1),
        maybeMore: true,
        metrics: {
          claimed: Metric.withAttributes(Telemetry.metrics.tasksClaimed, { queue }),
          wait: Metric.withAttributes(Telemetry.metrics.taskWait, { queue }),
          duration: Metric.withAttributes(Telemetry.metrics.taskDuration, { queue }),
          inFlight: Metric.withAttributes(Telemetry.metrics.tasksInFlight, { queue }),
          restarts: Metric.withAttributes(Telemetry.metrics.workerRestarts, { queue })
        },
        restarts: 0,
        lastError: null
      })
    }
    let stopping = false
    const wake = (pool: Pool) => Queue.offer(pool.wake, undefined)
    // Labelled metrics are built once per label set: building one per update showed in profiles.
    const finishedMetrics = new Map<string, Metric.Metric<number, any>>()
    const finished = (queue: string, task: string, outcome: Outcome) => {
      const key = `${queue}\u0000${task}\u0000${outcome}`
      let m = finishedMetrics.get(key)
      if (m === undefined) {
        m = Metric.withAttributes(Telemetry.metrics.tasksFinished, { queue, task, outcome })
        finishedMetrics.set(key, m)
      }
      return m
    }
    const inFlight = (pool: Pool) => Metric.update(pool.metrics.inFlight, pool.active)

    // ---- completion writer --------------------------------------------------
    // Bounded: when writes fall behind, finished handlers wait here holding their slot, so the
    // claim loop slows down instead of piling up running rows and memory.
    const completions = yield* Queue.bounded<Completion, Cause.Done>(2048)

    const writeBatch = (batch: ReadonlyArray<Completion>) =>
      Effect.gen(function*() {
        const accepted = yield* LeaseSql.finish(sql, batch.map((c) => c.finish))
        const ok = new Set(accepted.map((r) => r.id))
        for (const c of batch) {
          if (!ok.has(c.finish.id)) {
            yield* Metric.update(Telemetry.metrics.staleResultsRejected, 1)
            yield* Effect.logWarning(`stale result for task ${c.finish.id} refused: its lease epoch ${c.finish.epoch} is no longer current`)
            yield* audit.record(AuditEvents.taskStaleResultRejected({
              actor,
              subject: c.finish.id,
              details: { name: c.name, epoch: c.finish.epoch, outcome: c.outcome }
            }))
          } else if (c.audit !== undefined) {
            yield* audit.record(c.audit)
          }
        }
        // A retry or snooze due before the next poll: wake the pool then, rather than up to a poll interval late.
        for (const c of batch) {
          const delay = c.finish.delay_ms
          const pool = pools.get(c.queue)
          if (pool && delay !== null && delay > 0 && delay < pollMs && ok.has(c.finish.id)) {
            yield* Effect.forkIn(Effect.sleep(Duration.millis(delay)).pipe(Effect.andThen(Effect.sync(() => { pool.maybeMore = true })), Effect.andThen(wake(pool))), layerScope)
          }
        }
      }).pipe(Effect.withSpan(Telemetry.spans.complete, { attributes: { "asterforge.batch_size": batch.length } }))

    // Transient database trouble: keep the batch and retry; the leases protect the rows meanwhile.
    const writeUntilDone = (batch: ReadonlyArray<Completion>) =>
      writeBatch(batch).pipe(
        Effect.tapCause((cause) => Effect.logWarning(`writing ${batch.length} task completion(s) failed; retrying`, cause)),
        Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])),
        Effect.orDie
      )

    const writer = yield* Effect.forkScoped(
      Effect.gen(function*() {
        while (true) {
          const batch = yield* Queue.takeBetween(completions, 1, 1000)
          yield* writeUntilDone(batch)
        }
      }).pipe(Effect.catchIf(Cause.isDone, () => Effect.void), Telemetry.component("dispatcher"))
    )

    // ---- running one task -----------------------------------------------------
    const handlerFibers = yield* FiberSet.make<void, never>()

    // A span per run costs a worker ~15-20 % of its CPU even when nothing exports it (Effect's own
    // tracer still builds it; measured with pnpm bench), so runs get one only when traces are exported.
    const traced = Option.isSome(config.telemetry.otlpEndpoint)
    const runSpan = (row: LeaseSql.Claimed) =>
      Effect.withSpan(Telemetry.spans.run, {
        // Continues the enqueuer's trace, whichever process enqueued.
        parent: Telemetry.parentFromTraceparent(row.traceparent),
        kind: "consumer",
        attributes: { "messaging.system": "asterforge", "messaging.operation.type": "process", "messaging.destination.name": row.queue, "messaging.message.id": row.id, "asterforge.task.name": row.name, "asterforge.task.attempt": row.attempt }
      }, { captureStackTrace: false }) // a stack per run costs more than a small handler

    const runTask = (pool: Pool, entry: Running) =>
      Effect.gen(function*() {
        const row = entry.row
        const handler = registry.get(row.name)!
        const definition = handler.definition
        // Made on first use: most tasks never park, and 32 random bytes per task add up.
        let token: string | undefined
        const callbackToken = () => (token ??= newCallbackToken())
        const started = performance.now()
        let decided: Omit<Completion, "name" | "queue">
        if (row.deadline_passed) {
          decided = failBeforeRun(definition, row, "DeadlineExceeded", `deadline ${row.deadline?.toISOString()} passed before the task could run`, actor)
        } else {
          const payload = Task.decodePayload(definition, row.payload, row.payload_version)
          if (payload._tag === "Failure") {
            // It will never decode on a retry either: terminal, with the reason.
            decided = failBeforeRun(definition, row, "PayloadInvalid", payload.failure, actor)
          } else {
            const context: Task.Context = {
              id: row.id,
              name: row.name,
              queue: row.queue,
              attempt: row.attempt,
              maxAttempts: row.max_attempts,
              get callbackToken() {
                return callbackToken()
              },
              metadata: row.metadata
            }
            const body = handler.run(payload.success, context).pipe(
              Effect.timeoutOrElse({
                duration: definition.timeout,
                orElse: () => Effect.fail(new Task.Retryable({ message: `timed out after ${Duration.format(definition.timeout)}`, code: timeoutCode }))
              }),
              traced ? runSpan(row) : identity,
              Effect.annotateLogs({ component: "task", task_id: row.id, task: row.name })
            )
            const fiber = yield* Effect.forkChild(body, { startImmediately: true })
            entry.handler = fiber
            const exit = yield* Fiber.await(fiber)
            decided = decide(definition, row, exit, { cancelRequested: entry.cancelRequested, stopping, callbackToken, actor })
          }
        }
        pool.running.delete(row.id)
        pool.active--
        yield* inFlight(pool)
        yield* Metric.update(pool.metrics.duration, (performance.now() - started) / 1000)
        yield* Metric.update(finished(pool.queue, row.name, decided.outcome), 1)
        if (entry.leaseLost) {
          yield* Effect.logWarning(`task ${row.id}: lease lost while running; its result is discarded`)
        } else {
          yield* Queue.offer(completions, { ...decided, name: row.name, queue: row.queue })
        }
        // The claim loop starts what is ready and claims more.
        if (pool.maybeMore || pool.ready.length > 0 || stopping) yield* wake(pool)
      })

    /**
     * A claimed task that never started: cancelled on request, or handed back on
     * shutdown with its attempt unused (it never ran, so nothing is audited).
     */
    const settleUnstarted = (pool: Pool, entry: Running, how: "cancelled" | "released") => {
      const i = pool.ready.indexOf(entry)
      if (i >= 0) pool.ready.splice(i, 1)
      pool.running.delete(entry.row.id)
      const decided = how === "cancelled"
        ? decide(registry.get(entry.row.name)!.definition, entry.row, Exit.interrupt(), { cancelRequested: true, stopping, callbackToken: newCallbackToken, actor })
        : { finish: finishFor(entry.row, { state: "available", delay_ms: 0, attempt_delta: -1 }), outcome: "interrupted" as const }
      return Queue.offer(completions, { ...decided, name: entry.row.name, queue: entry.row.queue })
    }

    /** Starts ready tasks into free slots, oldest claim first. */
    const startReady = (pool: Pool) =>
      Effect.gen(function*() {
        const now = Date.now()
        while (pool.active < pool.concurrency && pool.ready.length > 0 && !stopping) {
          const entry = pool.ready.shift()!
          // Its lease moved on while it waited (rescued elsewhere): not ours to run.
          if (entry.leaseLost) {
            pool.running.delete(entry.row.id)
            continue
          }
          if (entry.row.attempt === 1) {
            yield* Metric.update(pool.metrics.wait, Math.max(0, now - entry.row.created_at.getTime()) / 1000)
          }
          pool.active++
          yield* FiberSet.run(handlerFibers, runTask(pool, entry), { startImmediately: true })
        }
        yield* inFlight(pool)
      })

    // ---- claim loop per queue -----------------------------------------------
    const claimOnce = (pool: Pool) =>
      Effect.gen(function*() {
        yield* startReady(pool)
        // Claim once the ready list is down to half the prefetch (with no prefetch: when a slot is
        // free), enough to fill every slot and the prefetch: a few large claims, not many small ones.
        const limit = pool.concurrency + pool.prefetch - pool.running.size
        if (limit <= 0 || pool.ready.length > pool.prefetch / 2 || pool.names.length === 0) return 0
        const rows = yield* LeaseSql.claim(sql, { queue: pool.queue, names: pool.names, limit, owner: node.id, leaseMs }).pipe(
          Effect.withSpan(Telemetry.spans.claim, { attributes: { "messaging.system": "asterforge", "messaging.destination.name": pool.queue, "messaging.batch.message_count": limit } }, { captureStackTrace: false })
        )
        pool.maybeMore = rows.length === limit
        if (rows.length === 0) return 0
        yield* Metric.update(pool.metrics.claimed, rows.length)
        const now = Date.now()
        for (const row of rows) {
          const entry: Running = { row, claimedAt: now, handler: undefined, cancelRequested: false, leaseLost: false }
          pool.running.set(row.id, entry)
          pool.ready.push(entry)
        }
        yield* startReady(pool)
        return rows.length
      })

    /** Claims while there are free slots and work; otherwise sleeps until NOTIFY, a freed slot, or the poll interval. */
    const claimLoop = (pool: Pool) =>
      Effect.gen(function*() {
        while (!stopping) {
          const claimed = yield* claimOnce(pool)
          pool.lastError = null
          if (claimed > 0 && pool.maybeMore) continue
          yield* Queue.take(pool.wake).pipe(Effect.timeoutOption(config.worker.pollInterval))
        }
      })

    const supervised = (pool: Pool) =>
      claimLoop(pool).pipe(
        Effect.tapCause((cause) =>
          Effect.gen(function*() {
            pool.restarts++
            pool.lastError = Cause.pretty(cause).split("\n")[0] ?? "claim loop failed"
            yield* Metric.update(pool.metrics.restarts, 1)
            yield* Effect.logError(`claim loop of queue ${pool.queue} failed; restarting`, cause)
          })
        ),
        Effect.retry(Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("10 seconds")])),
        Effect.annotateLogs({ component: "dispatcher", queue: pool.queue })
      )

    // ---- cancellation and leases ----------------------------------------------
    const findRunning = (id: string): Running | undefined => {
      for (const pool of pools.values()) {
        const entry = pool.running.get(id)
        if (entry) return entry
      }
      return undefined
    }

    const cancelLocal = (id: string) =>
      Effect.gen(function*() {
        const entry = findRunning(id)
        if (entry === undefined || entry.cancelRequested) return
        entry.cancelRequested = true
        yield* Effect.logInfo(`cancelling task ${id} on request`)
        const pool = pools.get(entry.row.queue)!
        if (pool.ready.includes(entry)) yield* settleUnstarted(pool, entry, "cancelled")
        else if (entry.handler) yield* Fiber.interrupt(entry.handler)
      })

    const heartbeat = Effect.gen(function*() {
      const startedAt = Date.now()
      const ids = [...pools.values()].flatMap((p) => [...p.running.keys()])
      if (ids.length === 0) return
      const held = yield* LeaseSql.heartbeat(sql, { owner: node.id, ids, leaseMs })
      const heldIds = new Set(held.map((r) => r.id))
      for (const r of held) if (r.cancel_requested) yield* cancelLocal(r.id)
      // Running here but no longer leased to us (rescued elsewhere): stop wasting work on it.
      for (const pool of pools.values()) {
        for (const [id, entry] of pool.running) {
          if (!heldIds.has(id) && entry.claimedAt < startedAt && !entry.leaseLost) {
            entry.leaseLost = true
            if (entry.handler) yield* Fiber.interrupt(entry.handler)
          }
        }
      }
    }).pipe(
      Effect.catchCause((cause) => Effect.logWarning("lease heartbeat failed", cause)),
      Telemetry.component("dispatcher")
    )

    // ---- start ------------------------------------------------------------------
    const loops = yield* FiberSet.make<never, never>()
    const notifications = yield* pg.listen("asterforge_tasks").pipe(Effect.orDie)
    const cancels = yield* pg.listen("asterforge_cancel").pipe(Effect.orDie)
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      const n = yield* Queue.take(notifications)
      const pool = pools.get(n.payload)
      if (pool) {
        pool.maybeMore = true
        yield* wake(pool)
      }
    })).pipe(Effect.catchCause((c) => Effect.logError("task notifications stopped; polling continues", c))))
    yield* Effect.forkScoped(Effect.forever(Queue.take(cancels).pipe(Effect.flatMap((n) => cancelLocal(n.payload))))
      .pipe(Effect.catchCause((c) => Effect.logError("cancel notifications stopped; heartbeat backstop continues", c))))
    yield* Effect.forkScoped(heartbeat.pipe(Effect.repeat(Schedule.spaced(config.worker.heartbeatInterval))))
    for (const pool of pools.values()) {
      yield* FiberSet.run(loops, supervised(pool) as Effect.Effect<never>)
    }

    // ---- shutdown ---------------------------------------------------------------
    // Registered last, so it runs first: before the fiber sets and the writer are torn down.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        stopping = true
        yield* FiberSet.clear(loops)
        // Claimed but never started: straight back, so another node can take them during our grace period.
        for (const pool of pools.values()) {
          for (const entry of [...pool.ready]) yield* settleUnstarted(pool, entry, "released")
        }
        const running = () => [...pools.values()].reduce((n, p) => n + p.active, 0)
        if (running() > 0) {
          yield* Effect.logInfo(`draining: waiting up to ${Duration.format(config.shutdown.grace)} for ${running()} running task(s)`)
          yield* FiberSet.awaitEmpty(handlerFibers).pipe(Effect.timeoutOption(config.shutdown.grace))
        }
        const left = [...pools.values()].flatMap((p) => [...p.running.values()])
        if (left.length > 0) {
          yield* Effect.logInfo(`interrupting ${left.length} task(s) still running; they return to available`)
          yield* Effect.forEach(left, (e) => (e.handler ? Fiber.interrupt(e.handler) : Effect.void), { concurrency: "unbounded", discard: true })
          yield* FiberSet.awaitEmpty(handlerFibers)
        }
        yield* Queue.end(completions)
        const budget = Duration.max(Duration.seconds(1), Duration.times(Duration.subtract(config.shutdown.timeout, config.shutdown.grace), 0.5))
        const joined = yield* Fiber.join(writer).pipe(Effect.timeoutOption(budget))
        if (Option.isNone(joined)) yield* Effect.logError("task completions could not all be written before the shutdown deadline; their leases will expire and the tasks be rescued")
      }).pipe(Telemetry.component("dispatcher"))
    )

    const status = Effect.sync(() =>
      [...pools.values()].map((p): QueueStatus => ({
        queue: p.queue,
        concurrency: p.concurrency,
        running: p.active,
        free: p.concurrency - p.active,
        restarts: p.restarts,
        lastError: p.lastError
      })))

    yield* health.register({
      name: "dispatcher",
      check: Effect.map(status, (queues) => {
        const data = { queues: Object.fromEntries(queues.map((q) => [q.queue, { concurrency: q.concurrency, running: q.running, free: q.free, restarts: q.restarts }])) }
        const failing = queues.filter((q) => q.lastError !== null)
        return failing.length > 0
          ? healthFail(`claim loop failing for ${failing.map((q) => `${q.queue} (${q.lastError})`).join(", ")}`, data)
          : stopping ? healthFail("draining", data) : healthPass(undefined, data)
      })
    })
    yield* Effect.logInfo(`dispatcher started: ${[...pools.values()].map((p) => `${p.queue} x${p.concurrency}`).join(", ") || "no queues (no tasks registered)"}`)
      .pipe(Telemetry.component("dispatcher"))

    return Dispatcher.of({ status })
  })
)
