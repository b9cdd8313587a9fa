/**
 * The completer: writes task outcomes in batches, one statement per batch.
 *
 * - Bounded: when writes fall behind, a finished run's outcome is held with
 *   its slot until there is room (`offer` says so), so the claim loop slows
 *   down instead of piling up running rows and memory (backpressure).
 * - `offer` is plain JavaScript (the executor calls it from a run's exit
 *   observer); the writer is one fiber, woken when the buffer fills from
 *   empty, so outcomes that finish while a batch is written form the next.
 * - Every row is guarded by its lease `(id, lease_epoch, lease_owner)`: an
 *   outcome whose lease moved on is refused, counted, logged and audited as a
 *   stale result; an accepted one gets its own audit event recorded.
 * - A retry or snooze due before the next poll wakes its pool then, rather than
 *   up to a poll interval late.
 * - Transient database trouble keeps the batch and retries it; the heartbeat
 *   keeps extending the leases of outcomes not written yet, and the fence
 *   refuses a write whose lease was lost anyway. `close` writes what is left,
 *   within a budget.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as SqlClient from "effect/sql/SqlClient"
import * as AuditEvents from "../../AuditEvents.ts"
import type { AuditLogShape } from "../../AuditLog.ts"
import type * as Task from "../../Task.ts"
import type * as TaskOutcome from "../../TaskOutcome.ts"
import * as Telemetry from "../../Telemetry.ts"
import * as LeaseSql from "../sql/leases.ts"
import { type Pools, wakeUnsafe } from "./pool.ts"

/** One claimed task's outcome, waiting to be written. */
interface Completion {
  readonly task: Task.Claimed
  readonly outcome: TaskOutcome.Outcome
}

/** The batch writer of task outcomes. */
export interface Completer {
  /**
   * Takes an outcome to write. Returns true when it was taken now (or refused
   * because the completer is closed: it is never written, the lease expires).
   * Returns false when the buffer is full: the outcome is held, and `onTaken`
   * runs once it has been taken.
   */
  readonly offer: (task: Task.Claimed, outcome: TaskOutcome.Outcome, onTaken: () => void) => boolean
  /** `offer` as an Effect: waits while the buffer is full (false once closed). */
  readonly complete: (task: Task.Claimed, outcome: TaskOutcome.Outcome) => Effect.Effect<boolean>
  /** Takes no more outcomes and waits up to `budget` for the rest to be written. */
  readonly close: (budget: Duration.Duration) => Effect.Effect<void>
  /** Ids of tasks whose outcome is held, buffered or being written: still this node's (reconciliation leaves them). */
  readonly unwritten: () => Iterable<string>
}

/** A failed batch is tried again after 100 ms, doubling to every 5 s (built once: it showed per batch in profiles). */
const retrySchedule = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])

/** Outcomes buffered before runs have to hold theirs (and their slots). */
export const capacity = 2048
const maxBatch = 1000

/** Starts the writer fiber in the current scope; `close` ends it. */
export const make = (options: {
  readonly sql: SqlClient.SqlClient
  readonly audit: AuditLogShape
  readonly actor: string
  /** This node: the owner its leases name. */
  readonly owner: string
  readonly pools: Pools
  readonly pollInterval: Duration.Duration
}): Effect.Effect<Completer, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { sql, audit, actor, owner, pools } = options
    const pollMs = Duration.toMillis(options.pollInterval)
    let buffer: Array<Completion> = []
    /** Outcomes held for room, with what to run once taken. */
    const held: Array<{ readonly completion: Completion; readonly onTaken: () => void }> = []
    let writing: ReadonlyArray<Completion> = []
    let closed = false
    /** Set while the writer waits for work. */
    let wakeWriter: (() => void) | undefined

    const signal = () => {
      const wake = wakeWriter
      wakeWriter = undefined
      wake?.()
    }

    /** Moves held outcomes into the buffer while there is room, and lets their runs go. */
    const admitHeld = () => {
      while (held.length > 0 && buffer.length < capacity) {
        const { completion, onTaken } = held.shift()!
        buffer.push(completion)
        onTaken()
      }
    }

    /** A retry or snooze due before the next poll wakes its pool then. */
    const wakeWhenDue = (task: Task.Claimed, outcome: TaskOutcome.Outcome) => {
      const delay = outcome.delayMs
      const pool = pools.byQueue.get(task.queue)
      if (pool === undefined || delay === null || delay <= 0 || delay >= pollMs) return
      setTimeout(() => {
        pool.maybeMore = true
        wakeUnsafe(pool)
      }, delay).unref()
    }

    const writeBatch = (batch: ReadonlyArray<Completion>) =>
      Effect.gen(function* () {
        const refused = yield* LeaseSql.finish(
          sql,
          owner,
          batch.map((c) => LeaseSql.finishRow(c.task, c.outcome))
        )
        const stale = new Set(refused.map((r) => r.id))
        for (const { task, outcome } of batch) {
          if (stale.has(task.id)) {
            yield* Metric.update(Telemetry.metrics.staleResultsRejected, 1)
            yield* Effect.logWarning(`stale result for task ${task.id} refused: its lease epoch ${task.leaseEpoch} is no longer current`)
            yield* audit.record(
              AuditEvents.taskStaleResultRejected({
                actor,
                subject: task.id,
                details: { name: task.name, epoch: task.leaseEpoch, outcome: outcome.metric }
              })
            )
          } else {
            if (outcome.audit !== undefined) yield* audit.record(outcome.audit)
            wakeWhenDue(task, outcome)
          }
        }
      }).pipe(Effect.withSpan(Telemetry.spans.complete, { attributes: { "asterforge.batch_size": batch.length } }))

    const writeUntilDone = (batch: ReadonlyArray<Completion>) =>
      writeBatch(batch).pipe(
        Effect.tapCause((cause) => Effect.logWarning(`writing ${batch.length} task completion(s) failed; retrying`, cause)),
        Effect.retry(retrySchedule),
        Effect.orDie
      )

    const writer = yield* Effect.forkScoped(
      Effect.gen(function* () {
        while (true) {
          if (buffer.length === 0) {
            if (closed) return
            yield* Effect.callback<void>((resume) => {
              wakeWriter = () => resume(Effect.void)
            })
            continue
          }
          writing = buffer.length <= maxBatch ? buffer : buffer.slice(0, maxBatch)
          buffer = buffer.length <= maxBatch ? [] : buffer.slice(maxBatch)
          admitHeld()
          yield* writeUntilDone(writing).pipe(
            Effect.ensuring(
              Effect.sync(() => {
                writing = []
              })
            )
          )
        }
      }).pipe(Telemetry.component("dispatcher"))
    )

    const offer = (task: Task.Claimed, outcome: TaskOutcome.Outcome, onTaken: () => void): boolean => {
      if (closed) return true
      const completion = { task, outcome }
      if (buffer.length < capacity && held.length === 0) {
        buffer.push(completion)
        signal()
        return true
      }
      held.push({ completion, onTaken })
      return false
    }

    return {
      offer,
      complete: (task, outcome) =>
        Effect.callback<boolean>((resume) => {
          if (closed) return resume(Effect.succeed(false))
          if (offer(task, outcome, () => resume(Effect.succeed(true)))) resume(Effect.succeed(true))
        }),
      unwritten: () => [...held.map((h) => h.completion), ...buffer, ...writing].map((c) => c.task.id),
      close: (budget) =>
        Effect.gen(function* () {
          closed = true
          signal()
          const joined = yield* Fiber.join(writer).pipe(Effect.timeoutOption(budget))
          if (Option.isNone(joined)) {
            yield* Effect.logError(
              "task completions could not all be written before the shutdown deadline; their leases will expire and the tasks be rescued"
            )
          }
        })
    }
  })
