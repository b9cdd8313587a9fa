/**
 * The completer: writes task outcomes in batches, one statement per batch.
 *
 * - Bounded: when writes fall behind, finished runs wait in `complete` holding
 *   their slot, so the claim loop slows down instead of piling up running rows
 *   and memory (backpressure).
 * - Every row is guarded by `(id, lease_epoch)`: an outcome whose lease moved on
 *   is refused, counted, logged and audited as a stale result; an accepted one
 *   gets its own audit event recorded.
 * - A retry or snooze due before the next poll wakes its pool then, rather than
 *   up to a poll interval late.
 * - Transient database trouble keeps the batch and retries it; the leases
 *   protect the rows meanwhile. `close` writes what is left, within a budget.
 */
import { Cause, Duration, Effect, Fiber, Metric, Option, Queue, Schedule, type Scope } from "effect"
import type { SqlClient } from "effect/sql"
import * as AuditEvents from "../../AuditEvents.ts"
import type { AuditLogShape } from "../../AuditLog.ts"
import type * as Task from "../../Task.ts"
import type * as TaskOutcome from "../../TaskOutcome.ts"
import * as Telemetry from "../../Telemetry.ts"
import * as LeaseSql from "../sql/leases.ts"
import { type Pools, wake } from "./pool.ts"

/** One claimed task's outcome, waiting to be written. */
interface Completion {
  readonly task: Task.Claimed
  readonly outcome: TaskOutcome.Outcome
}

/** The batch writer of task outcomes. */
export interface Completer {
  /** Queues an outcome for writing; waits while the buffer is full (false once closed). */
  readonly complete: (task: Task.Claimed, outcome: TaskOutcome.Outcome) => Effect.Effect<boolean>
  /** Takes no more outcomes and waits up to `budget` for the rest to be written. */
  readonly close: (budget: Duration.Duration) => Effect.Effect<void>
  /** Ids of tasks whose outcome is queued or being written: still this node's (reconciliation leaves them). */
  readonly unwritten: () => Iterable<string>
}

const capacity = 2048
const maxBatch = 1000

/** Starts the writer fiber in the current scope; `close` ends it. */
export const make = (options: {
  readonly sql: SqlClient.SqlClient
  readonly audit: AuditLogShape
  readonly actor: string
  readonly pools: Pools
  readonly pollInterval: Duration.Duration
}): Effect.Effect<Completer, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { sql, audit, actor, pools } = options
    const pollMs = Duration.toMillis(options.pollInterval)
    const scope = yield* Effect.scope
    const completions = yield* Queue.bounded<Completion, Cause.Done>(capacity)
    // Counted per id: a task's outcome may be queued again (a retry run) before the first is written.
    const unwritten = new Map<string, number>()
    const written = (batch: ReadonlyArray<Completion>) => {
      for (const { task } of batch) {
        const n = unwritten.get(task.id) ?? 0
        if (n <= 1) unwritten.delete(task.id)
        else unwritten.set(task.id, n - 1)
      }
    }

    const writeBatch = (batch: ReadonlyArray<Completion>) =>
      Effect.gen(function* () {
        const accepted = yield* LeaseSql.finish(
          sql,
          batch.map((c) => LeaseSql.finishRow(c.task, c.outcome))
        )
        const ok = new Set(accepted.map((r) => r.id))
        for (const { task, outcome } of batch) {
          if (!ok.has(task.id)) {
            yield* Metric.update(Telemetry.metrics.staleResultsRejected, 1)
            yield* Effect.logWarning(`stale result for task ${task.id} refused: its lease epoch ${task.leaseEpoch} is no longer current`)
            yield* audit.record(
              AuditEvents.taskStaleResultRejected({
                actor,
                subject: task.id,
                details: { name: task.name, epoch: task.leaseEpoch, outcome: outcome.metric }
              })
            )
          } else if (outcome.audit !== undefined) {
            yield* audit.record(outcome.audit)
          }
        }
        for (const { task, outcome } of batch) {
          const delay = outcome.delayMs
          const pool = pools.byQueue.get(task.queue)
          if (pool && delay !== null && delay > 0 && delay < pollMs && ok.has(task.id)) {
            const due = Effect.sleep(Duration.millis(delay)).pipe(
              Effect.andThen(
                Effect.sync(() => {
                  pool.maybeMore = true
                })
              ),
              Effect.andThen(wake(pool))
            )
            yield* Effect.forkIn(due, scope)
          }
        }
      }).pipe(Effect.withSpan(Telemetry.spans.complete, { attributes: { "asterforge.batch_size": batch.length } }))

    const writeUntilDone = (batch: ReadonlyArray<Completion>) =>
      writeBatch(batch).pipe(
        Effect.tapCause((cause) => Effect.logWarning(`writing ${batch.length} task completion(s) failed; retrying`, cause)),
        Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])),
        Effect.orDie
      )

    const writer = yield* Effect.forkScoped(
      Effect.gen(function* () {
        while (true) {
          const batch = yield* Queue.takeBetween(completions, 1, maxBatch)
          yield* writeUntilDone(batch).pipe(Effect.ensuring(Effect.sync(() => written(batch))))
        }
      }).pipe(
        Effect.catchIf(Cause.isDone, () => Effect.void),
        Telemetry.component("dispatcher")
      )
    )

    return {
      complete: (task, outcome) =>
        Effect.suspend(() => {
          const completion = { task, outcome }
          unwritten.set(task.id, (unwritten.get(task.id) ?? 0) + 1)
          // Refused once closed: never written, so not held either.
          return Effect.tap(Queue.offer(completions, completion), (queued) =>
            queued ? Effect.void : Effect.sync(() => written([completion]))
          )
        }),
      unwritten: () => unwritten.keys(),
      close: (budget) =>
        Effect.gen(function* () {
          yield* Queue.end(completions)
          const joined = yield* Fiber.join(writer).pipe(Effect.timeoutOption(budget))
          if (Option.isNone(joined)) {
            yield* Effect.logError(
              "task completions could not all be written before the shutdown deadline; their leases will expire and the tasks be rescued"
            )
          }
        })
    }
  })
