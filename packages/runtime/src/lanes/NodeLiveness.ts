/**
 * NodeLiveness (lane "node_liveness"): owns the `nodes` table's life cycle
 * after start-up. A running node whose heartbeat is older than
 * `missedHeartbeats` x `heartbeatInterval` is declared `dead` (audited as
 * `node.declared_dead`), and the running tasks it holds are released at once,
 * as a lease rescue would after expiry: available again, failed when out of
 * attempts, cancelled when cancellation was requested (tag `NodeDead` in
 * `errors`). Rows of nodes stopped or dead for longer than `retention` (7 days)
 * are removed.
 *
 * A node declared dead that is in fact alive (a long pause) finds out through
 * its own heartbeat, which no longer updates a dead row; its late task results
 * are refused because the rows are no longer `running`.
 */
import { Duration, Effect, Metric } from "effect"
import { SqlClient } from "effect/sql"
import * as AuditEvents from "../AuditEvents.ts"
import { AuditLog } from "../AuditLog.ts"
import * as NodesSql from "../internal/sql/nodes.ts"
import * as TaskSql from "../internal/sql/taskMaintenance.ts"
import * as Lane from "../Lane.ts"
import * as Telemetry from "../Telemetry.ts"
import { recordReleased } from "./LeaseRescuer.ts"
import * as Support from "./support.ts"

export const name = "node_liveness"

export const defaults: {
  readonly interval: Duration.Input
  /** The nodes' heartbeat period (`node.heartbeat_interval`; `builtIn` passes the configured one). */
  readonly heartbeatInterval: Duration.Input
  /** A node is dead after this many heartbeat periods without one. */
  readonly missedHeartbeats: number
  /** Stopped and dead nodes' rows are kept this long. */
  readonly retention: Duration.Input
  /** Rows per statement. */
  readonly batchSize: number
  /** Statements per pass at most, per step. */
  readonly maxBatchesPerPass: number
} = {
  interval: "5 seconds",
  heartbeatInterval: "5 seconds",
  missedHeartbeats: 3,
  retention: "7 days",
  batchSize: 1000,
  maxBatchesPerPass: 10
}

export const make = (options?: Partial<typeof defaults>): Lane.Lane => {
  const o = Support.resolve(name, defaults, options, {
    interval: Support.duration,
    heartbeatInterval: Support.duration,
    missedHeartbeats: Support.integer(2, 1000),
    retention: Support.duration,
    batchSize: Support.integer(1, 100_000),
    maxBatchesPerPass: Support.integer(1, 10_000)
  })
  const staleMs = Support.millis(o.heartbeatInterval) * o.missedHeartbeats
  const retentionMs = Support.millis(o.retention)
  const batches = { batchSize: o.batchSize, maxBatches: o.maxBatchesPerPass }
  const actor = AuditEvents.actors.lane(name)
  return Lane.make({
    name,
    interval: o.interval,
    runOnce: (ctx) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const audit = yield* AuditLog

        const dead = yield* Support.inBatches(batches, Effect.gen(function*() {
          const nodes = yield* NodesSql.declareDead(sql, ctx.fence, { staleMs, limit: o.batchSize })
          for (const n of nodes) {
            yield* Effect.logWarning(`node ${n.name} (${n.id}, ${n.host} pid ${n.pid}) declared dead: last heartbeat ${n.heartbeat_at.toISOString()}`)
            yield* audit.record(AuditEvents.nodeDeclaredDead({
              actor,
              subject: n.id,
              details: { name: n.name, mode: n.mode, host: n.host, pid: n.pid, heartbeatAt: n.heartbeat_at.toISOString() }
            }))
          }
          if (nodes.length > 0) yield* Metric.update(Telemetry.metrics.nodesDeclaredDead, nodes.length)
          return nodes.length
        }))

        // After the declaration committed: any dead node's running tasks, including those of
        // nodes declared by an earlier pass that stopped before releasing them.
        const released = yield* Support.inBatches(batches, Effect.gen(function*() {
          const tasks = yield* TaskSql.releaseDeadNodesTasks(sql, ctx.fence, { limit: o.batchSize })
          yield* recordReleased(tasks, { actor, tag: "NodeDead" })
          return tasks.length
        }))
        if (released > 0) yield* Effect.logWarning(`released ${released} running task(s) held by dead nodes`)

        const removed = yield* Support.inBatches(
          batches,
          NodesSql.removeOld(sql, ctx.fence, { retentionMs, limit: o.batchSize }).pipe(Effect.map(([row]) => row?.removed ?? 0))
        )
        return { dead, released, removed }
      })
  })
}
