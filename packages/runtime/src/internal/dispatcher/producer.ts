/**
 * The producer: one claim loop per queue, keeping that queue's pool busy.
 *
 * - It claims only as many tasks as the pool has free slots (backpressure),
 *   plus `prefetch` ahead that wait on this node for a slot, in one statement,
 *   and starts them into free slots oldest claim first.
 * - LISTEN/NOTIFY on `asterforge_tasks` wakes a loop as soon as work arrives;
 *   a run that frees a slot wakes it too; the poll interval is the backstop.
 * - A failing claim loop is restarted with backoff, counted and shown in
 *   health; a failing or defecting handler never stops its pool.
 * - A claimed task that never started is settled here: cancelled on request,
 *   or handed back at once on shutdown with its attempt unused.
 */
import { Cause, type Duration, Effect, FiberSet, Metric, Queue, Schedule, type Scope } from "effect"
import type { SqlClient } from "effect/sql"
import type { PgClient } from "@effect/sql-pg"
import * as TaskOutcome from "../../TaskOutcome.ts"
import type { TaskRegistryShape } from "../../TaskRegistry.ts"
import * as Telemetry from "../../Telemetry.ts"
import * as LeaseSql from "../sql/leases.ts"
import type { Completer } from "./completer.ts"
import type { Executor } from "./executor.ts"
import { type Entry, inFlight, type Pool, type Pools, wake } from "./pool.ts"

/** The claim loops of every pool, and what happens to tasks claimed but never started. */
export interface Producer {
  /** Starts the NOTIFY listener, then one supervised claim loop per queue. */
  readonly start: Effect.Effect<void, never, Scope.Scope>
  /** Settles a claimed task that never started (cancelled, or released on shutdown) and frees its place. */
  readonly settleUnstarted: (pool: Pool, entry: Entry, happened: TaskOutcome.Happened) => Effect.Effect<boolean>
  /** Shutdown: stops the claim loops and hands every claimed task that never started straight back. */
  readonly stop: Effect.Effect<void>
}

/** What the producer works with: the pools it fills and where their runs go. */
export interface Options {
  readonly sql: SqlClient.SqlClient
  readonly pg: PgClient.PgClient
  readonly pools: Pools
  readonly registry: TaskRegistryShape
  readonly executor: Executor
  readonly completer: Completer
  /** Where runs are forked: the dispatcher waits on it while draining. */
  readonly handlers: FiberSet.FiberSet<void, never>
  readonly owner: string
  readonly actor: string
  readonly leaseMs: number
  readonly pollInterval: Duration.Duration
}

/** Sets the producer up in the current scope; `start` begins claiming. */
export const make = (options: Options): Effect.Effect<Producer, never, Scope.Scope> =>
  Effect.gen(function* () {
    const loops = yield* FiberSet.make<never, never>()
    const settle = (pool: Pool, entry: Entry, happened: TaskOutcome.Happened) => settleUnstarted(options, pool, entry, happened)
    return {
      start: Effect.gen(function* () {
        yield* listen(options)
        for (const pool of options.pools.all) {
          yield* FiberSet.run(loops, supervised(options, pool) as Effect.Effect<never>)
        }
      }),
      settleUnstarted: settle,
      stop: Effect.gen(function* () {
        yield* FiberSet.clear(loops)
        // Claimed but never started: straight back, so another node can take them during our grace period.
        for (const pool of options.pools.all) {
          for (const entry of [...pool.ready]) yield* settle(pool, entry, TaskOutcome.releasedBeforeRun)
        }
      })
    }
  })

const settleUnstarted = (o: Options, pool: Pool, entry: Entry, happened: TaskOutcome.Happened) => {
  const i = pool.ready.indexOf(entry)
  if (i >= 0) pool.ready.splice(i, 1)
  pool.running.delete(entry.task.id)
  return o.completer.complete(entry.task, TaskOutcome.ofRun(o.registry.get(entry.task.name)!.definition, entry.task, happened, o.actor))
}

/** Starts ready tasks into free slots, oldest claim first. */
const startReady = (o: Options, pool: Pool) =>
  Effect.gen(function* () {
    const now = Date.now()
    while (pool.active < pool.concurrency && pool.ready.length > 0 && !o.pools.stopping) {
      const entry = pool.ready.shift()!
      // Its lease moved on while it waited (rescued elsewhere): not ours to run.
      if (entry.leaseLost) {
        pool.running.delete(entry.task.id)
        continue
      }
      if (entry.task.attempt === 1) {
        yield* Metric.update(pool.metrics.wait, Math.max(0, now - entry.task.createdAt.getTime()) / 1000)
      }
      pool.active++
      yield* FiberSet.run(o.handlers, o.executor.run(pool, entry), { startImmediately: true })
    }
    yield* inFlight(pool)
  })

const claimOnce = (o: Options, pool: Pool) =>
  Effect.gen(function* () {
    yield* startReady(o, pool)
    // Claim once the ready list is down to half the prefetch (with no prefetch: when a slot is
    // free), enough to fill every slot and the prefetch: a few large claims, not many small ones.
    const limit = pool.concurrency + pool.prefetch - pool.running.size
    if (limit <= 0 || pool.ready.length > pool.prefetch / 2 || pool.names.length === 0) return 0
    const tasks = yield* LeaseSql.claim(o.sql, { queue: pool.queue, names: pool.names, limit, owner: o.owner, leaseMs: o.leaseMs }).pipe(
      Effect.withSpan(
        Telemetry.spans.claim,
        {
          attributes: { "messaging.system": "asterforge", "messaging.destination.name": pool.queue, "messaging.batch.message_count": limit }
        },
        { captureStackTrace: false }
      )
    )
    pool.maybeMore = tasks.length === limit
    if (tasks.length === 0) return 0
    yield* Metric.update(pool.metrics.claimed, tasks.length)
    const now = Date.now()
    for (const task of tasks) {
      const entry: Entry = { task, claimedAt: now, handler: undefined, cancelRequested: false, leaseLost: false }
      pool.running.set(task.id, entry)
      pool.ready.push(entry)
    }
    yield* startReady(o, pool)
    return tasks.length
  })

/** Claims while there are free slots and work; otherwise sleeps until NOTIFY, a freed slot, or the poll interval. */
const claimLoop = (o: Options, pool: Pool) =>
  Effect.gen(function* () {
    while (!o.pools.stopping) {
      const claimed = yield* claimOnce(o, pool)
      pool.lastError = null
      if (claimed > 0 && pool.maybeMore) continue
      yield* Queue.take(pool.wake).pipe(Effect.timeoutOption(o.pollInterval))
    }
  })

/** A claim loop restarted with backoff whenever it fails; failures are counted and shown in health. */
const supervised = (o: Options, pool: Pool) =>
  claimLoop(o, pool).pipe(
    Effect.tapCause((cause) =>
      Effect.gen(function* () {
        pool.restarts++
        pool.lastError = Cause.pretty(cause).split("\n")[0] ?? "claim loop failed"
        yield* Metric.update(pool.metrics.restarts, 1)
        yield* Effect.logError(`claim loop of queue ${pool.queue} failed; restarting`, cause)
      })
    ),
    Effect.retry(Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("10 seconds")])),
    Effect.annotateLogs({ component: "dispatcher", queue: pool.queue })
  )

/** NOTIFY on `asterforge_tasks` (payload: the queue) wakes that queue's loop at once. */
const listen = (o: Options) =>
  Effect.gen(function* () {
    const notifications = yield* o.pg.listen("asterforge_tasks").pipe(Effect.orDie)
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.gen(function* () {
          const n = yield* Queue.take(notifications)
          const pool = o.pools.byQueue.get(n.payload)
          if (pool) {
            pool.maybeMore = true
            yield* wake(pool)
          }
        })
      ).pipe(Effect.catchCause((c) => Effect.logError("task notifications stopped; polling continues", c)))
    )
  })
