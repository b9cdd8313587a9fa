/**
 * The lease keeper: keeps this node's leases alive and acts on what it learns.
 *
 * - One heartbeat statement per node extends every lease it holds, waiting,
 *   running, or finished with the outcome not written yet (a completer
 *   retrying through an outage keeps its leases), every `heartbeatInterval`.
 * - Cancellation: a NOTIFY on `asterforge_cancel` cancels a task at once (a
 *   waiting one is settled as cancelled, a running one is interrupted and
 *   recorded as cancelled); the heartbeat returns cancel requests too, as the
 *   backstop for a missed NOTIFY, and runs at once when the subscription comes
 *   back after a loss.
 * - Lease loss: a task this node holds but the heartbeat no longer extends was
 *   rescued elsewhere. Its handler is interrupted and its result discarded
 *   (the fenced write would be refused anyway), so no work is wasted on it.
 * - A failed heartbeat is logged and tried again next interval: leases last
 *   several intervals.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as SqlClient from "effect/sql/SqlClient"
import type { NotificationsShape } from "../../Notifications.ts"
import * as TaskOutcome from "../../TaskOutcome.ts"
import * as Telemetry from "../../Telemetry.ts"
import * as LeaseSql from "../sql/leases.ts"
import { find, leasedIds, type Pools } from "./pool.ts"
import type { Completer } from "./completer.ts"
import type { Producer } from "./producer.ts"

/** Forks the heartbeat and the cancel listener into the current scope. */
export const start = (options: {
  readonly sql: SqlClient.SqlClient
  readonly notifications: NotificationsShape
  readonly pools: Pools
  readonly producer: Producer
  readonly completer: Completer
  readonly owner: string
  readonly leaseMs: number
  readonly heartbeatInterval: Duration.Duration
}): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { sql, pools, owner, leaseMs } = options

    const cancelLocal = (id: string) =>
      Effect.gen(function* () {
        const entry = find(pools, id)
        if (entry === undefined || entry.cancelRequested) return
        entry.cancelRequested = true
        yield* Effect.logInfo(`cancelling task ${id} on request`)
        const pool = pools.byQueue.get(entry.task.queue)!
        if (pool.ready.includes(entry)) yield* options.producer.settleUnstarted(pool, entry, TaskOutcome.cancelledBeforeRun)
        else if (entry.handler) yield* Fiber.interrupt(entry.handler)
      })

    const heartbeat = Effect.gen(function* () {
      const startedAt = Date.now()
      const ids = leasedIds(pools.all, options.completer.unwritten())
      if (ids.length === 0) return
      const held = yield* LeaseSql.heartbeat(sql, { owner, ids, leaseMs })
      const heldIds = new Set(held.map((r) => r.id))
      for (const r of held) if (r.cancelRequested) yield* cancelLocal(r.id)
      // Held here but no longer leased to us (rescued elsewhere): stop wasting work on it. Only
      // entries claimed before this heartbeat began: later claims were not in its list.
      for (const pool of pools.all) {
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

    yield* options.notifications.subscribe("asterforge_cancel", { onMessage: cancelLocal, onResubscribed: heartbeat })
    yield* Effect.forkScoped(heartbeat.pipe(Effect.repeat(Schedule.spaced(options.heartbeatInterval))))
  })
