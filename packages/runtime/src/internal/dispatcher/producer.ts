/**
 * The producer: one claim loop per queue, keeping that queue's pool busy.
 *
 * - It claims only as many tasks as the pool has free slots (backpressure),
 *   plus `prefetch` ahead that wait on this node for a slot, in one statement,
 *   and hands them to the executor, which starts them as slots free up.
 * - LISTEN/NOTIFY on `asterforge_tasks` wakes a loop as soon as work arrives;
 *   a run that frees a slot wakes it too; the poll interval is the backstop.
 * - A failing claim loop is restarted with backoff (200 ms doubling to 10 s),
 *   counted and shown in health; the subscription coming back (the database
 *   is reachable again) cuts the backoff short. A failing or defecting
 *   handler never stops its pool.
 * - Reconciliation: a claim whose answer was lost (the connection dropped
 *   after the server committed it) leaves tasks leased to this node that it
 *   does not know of. After a failed claim, and after the subscription comes
 *   back, the loop first hands every such task of its queue back at once,
 *   attempt unused; on shutdown `reconcile` does it for every queue.
 * - A claimed task that never started is settled here: cancelled on request,
 *   or handed back at once on shutdown with its attempt unused.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as SqlClient from "effect/sql/SqlClient"
import type { NotificationsShape } from "../../Notifications.ts"
import * as TaskOutcome from "../../TaskOutcome.ts"
import type { TaskRegistryShape } from "../../TaskRegistry.ts"
import * as Telemetry from "../../Telemetry.ts"
import * as LeaseSql from "../sql/leases.ts"
import type { Completer } from "./completer.ts"
import type { Executor } from "./executor.ts"
import { claimLimit, type Entry, leasedIds, type Pool, type Pools, wake } from "./pool.ts"

/** The claim loops of every pool, and what happens to tasks claimed but never started. */
export interface Producer {
  /** Starts the NOTIFY listener, then one supervised claim loop per queue. */
  readonly start: Effect.Effect<void, never, Scope.Scope>
  /** Settles a claimed task that never started (cancelled, or released on shutdown) and frees its place. */
  readonly settleUnstarted: (pool: Pool, entry: Entry, happened: TaskOutcome.Happened) => Effect.Effect<boolean>
  /** Shutdown: stops the claim loops and hands every claimed task that never started straight back. */
  readonly stop: Effect.Effect<void>
  /**
   * Shutdown, after the last completion was written: hands back every task
   * still leased to this node (claims whose answer was lost), attempt unused.
   */
  readonly reconcile: Effect.Effect<void>
}

/** What the producer works with: the pools it fills and where their runs go. */
export interface Options {
  readonly sql: SqlClient.SqlClient
  readonly notifications: NotificationsShape
  readonly pools: Pools
  readonly registry: TaskRegistryShape
  readonly executor: Executor
  readonly completer: Completer
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
    const state: State = { ...options, reconcileDue: new Set() }
    return {
      start: Effect.gen(function* () {
        yield* listen(state)
        for (const pool of options.pools.all) {
          yield* FiberSet.run(loops, supervised(state, pool) as Effect.Effect<never>)
        }
      }),
      settleUnstarted: settle,
      stop: Effect.gen(function* () {
        yield* FiberSet.clear(loops)
        // Claimed but never started: straight back, so another node can take them during our grace period.
        for (const pool of options.pools.all) {
          for (const entry of [...pool.ready]) yield* settle(pool, entry, TaskOutcome.releasedBeforeRun)
        }
      }),
      reconcile: reconcile(state, undefined).pipe(
        Effect.timeout(Duration.seconds(5)),
        Effect.catchCause((cause) =>
          Effect.logWarning("could not hand back unknown leases at shutdown; they are rescued when they expire", cause)
        )
      )
    }
  })

/** The producer's options and its own state. */
interface State extends Options {
  /** Pools whose next iteration reconciles first (after a failed claim or a lost subscription). */
  readonly reconcileDue: Set<Pool>
}

/**
 * Hands back the tasks leased to this node that it does not hold (in one
 * queue, or all): running here, waiting in `ready`, or finished with the
 * outcome not yet written are held; anything else was claimed by a statement
 * whose answer never arrived.
 */
const reconcile = (o: State, pool: Pool | undefined) =>
  Effect.gen(function* () {
    const held = leasedIds(pool ? [pool] : o.pools.all, o.completer.unwritten())
    const released = yield* LeaseSql.reconcile(o.sql, { owner: o.owner, queue: pool?.queue, held })
    if (released.length > 0) {
      yield* Metric.update(Telemetry.metrics.leasesReconciled, released.length)
      yield* Effect.logWarning(
        `handed back ${released.length} task(s) leased to this node by a claim whose answer was lost: ${released.map((r) => r.id).join(", ")}`
      )
    }
  })

const settleUnstarted = (o: Options, pool: Pool, entry: Entry, happened: TaskOutcome.Happened) => {
  const i = pool.ready.indexOf(entry)
  if (i >= 0) pool.ready.splice(i, 1)
  pool.running.delete(entry.task.id)
  return o.completer.complete(entry.task, TaskOutcome.ofRun(o.registry.get(entry.task.name)!.definition, entry.task, happened, o.actor))
}

const claimOnce = (o: Options, pool: Pool) =>
  Effect.gen(function* () {
    const limit = claimLimit(pool)
    if (limit <= 0 || pool.names.length === 0) return 0
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
      const entry: Entry = { task, claimedAt: now, handler: undefined, timedOut: false, cancelRequested: false, leaseLost: false }
      pool.running.set(task.id, entry)
      pool.ready.push(entry)
    }
    // With more to claim, started on the next turn: this loop first sends the next claim, which
    // then overlaps them. Otherwise at once (an idle pool's first task does not wait a turn).
    if (pool.maybeMore) o.executor.startReadySoon(pool)
    else o.executor.startReady(pool)
    return tasks.length
  })

/**
 * Claims while there are free slots and work; otherwise sleeps until NOTIFY, a
 * freed slot, or the poll interval. Reconciles first when that is due.
 */
const claimLoop = (o: State, pool: Pool) =>
  Effect.gen(function* () {
    while (!o.pools.stopping) {
      if (o.reconcileDue.has(pool)) {
        yield* reconcile(o, pool)
        o.reconcileDue.delete(pool)
      }
      const claimed = yield* claimOnce(o, pool)
      pool.lastError = null
      if (claimed > 0 && pool.maybeMore) continue
      yield* Queue.take(pool.wake).pipe(Effect.timeoutOption(o.pollInterval))
    }
  })

const firstBackoffMs = 200
const maxBackoffMs = 10_000

/**
 * A claim loop restarted with backoff whenever it fails; failures are counted
 * and shown in health. A failed claim may have committed without its answer
 * arriving: the next iteration reconciles first. The backoff ends early when
 * the loop is woken (the subscription came back, a NOTIFY, a freed slot).
 */
const supervised = (o: State, pool: Pool) =>
  Effect.gen(function* () {
    let failures = 0
    while (!o.pools.stopping) {
      const exit = yield* Effect.exit(claimLoop(o, pool))
      if (exit._tag === "Success" || Cause.hasInterruptsOnly(exit.cause)) return
      // A loop that ran fine for a while starts its backoff over.
      failures = pool.lastError === null ? 1 : failures + 1
      pool.restarts++
      pool.lastError = Cause.pretty(exit.cause).split("\n")[0] ?? "claim loop failed"
      o.reconcileDue.add(pool)
      yield* Metric.update(pool.metrics.restarts, 1)
      yield* Effect.logError(`claim loop of queue ${pool.queue} failed; restarting`, exit.cause)
      const backoffMs = Math.min(firstBackoffMs * 2 ** Math.min(failures - 1, 16), maxBackoffMs)
      yield* Queue.take(pool.wake).pipe(Effect.timeoutOption(Duration.millis(backoffMs)))
    }
  }).pipe(Effect.annotateLogs({ component: "dispatcher", queue: pool.queue }))

/**
 * NOTIFY on `asterforge_tasks` (payload: the queue) wakes that queue's loop at
 * once. When the subscription comes back after a loss, every loop reconciles
 * and claims at once: work queued meanwhile was announced to nobody.
 */
const listen = (o: State) =>
  o.notifications.subscribe("asterforge_tasks", {
    onMessage: (queue) => {
      const pool = o.pools.byQueue.get(queue)
      if (pool === undefined) return Effect.void
      pool.maybeMore = true
      return wake(pool)
    },
    onResubscribed: Effect.forEach(
      o.pools.all,
      (pool) => {
        o.reconcileDue.add(pool)
        pool.maybeMore = true
        return wake(pool)
      },
      { discard: true }
    )
  })
