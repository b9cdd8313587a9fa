/**
 * NodeLiveness (lane "node_liveness"): owns the `nodes` table's life cycle
 * after start-up. A running node whose heartbeat is older than
 * `missed_heartbeats` x its own heartbeat period (the `node.heartbeat_interval`
 * it started with, kept on its row) is declared `dead` (audited as `node.declared_dead`), and the running tasks
 * it holds are released at once: available again with the attempt given back
 * (the verdict is on the node, not the task: a release never fails a task),
 * or cancelled when cancellation was requested (tag `NodeDead` in `errors`).
 * Rows of nodes stopped or dead for longer than `retention` (7 days) are
 * removed.
 *
 * The lane never declares its own node, and after this node's own heartbeat
 * failed (a database outage, when no node could heartbeat) it judges a node
 * only once it has been writing again for a whole window of that node. A node declared dead that is in fact alive (a long
 * pause) finds out through its own heartbeat and stops itself (NodeRegistry);
 * its late task results are refused because the rows are no longer `running`.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import * as AuditEvents from "../AuditEvents.ts"
import { AuditLog } from "../AuditLog.ts"
import * as ConfigSchema from "../ConfigSchema.ts"
import * as ConfigSection from "../ConfigSection.ts"
import * as NodesSql from "../internal/sql/nodes.ts"
import * as TaskSql from "../internal/sql/taskMaintenance.ts"
import { NodeIdentity } from "../NodeIdentity.ts"
import { NodeRegistry } from "../NodeRegistry.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Kit from "./kit.ts"
import { recordReleased } from "./LeaseRescuer.ts"

/** The lane\'s name: its leadership key, its metrics label, and the suffix of its config section. */
export const name = "node_liveness"

/** `[maintenance.node_liveness]`: `interval`, `missed_heartbeats`, `retention`, `batch_size`, `max_batches_per_pass`. */
export const Config = Kit.section(
  name,
  {
    interval: Kit.interval("5 seconds"),
    missedHeartbeats: ConfigSection.key(ConfigSchema.Int(2, 1000), {
      default: 3,
      doc: "a node is dead after this many of its heartbeat periods (its node.heartbeat_interval) without one"
    }),
    retention: Kit.duration("7 days", "stopped and dead nodes' rows are kept this long"),
    // Per step: declare, release, remove.
    ...Kit.batches({ maxBatchesPerPass: 10 })
  },
  "dead-node detection, release of their tasks, removal of old node rows"
)

/** The decoded defaults of `Config`. */
export const defaults = ConfigSection.defaults(Config)

/** Declares silent nodes dead, in batches: logged, audited and counted. */
const declareDead = (
  sql: SqlClient.SqlClient,
  fence: Statement.Fragment,
  o: Kit.Batches & { readonly missed: number; readonly healthyForMs: number | null; readonly self: string }
) =>
  Kit.inBatches(
    o,
    Effect.gen(function* () {
      const audit = yield* AuditLog
      const nodes = yield* NodesSql.declareDead(sql, fence, {
        missed: o.missed,
        healthyForMs: o.healthyForMs,
        limit: o.batchSize,
        self: o.self
      })
      for (const n of nodes) {
        yield* Effect.logWarning(
          `node ${n.name} (${n.id}, ${n.host} pid ${n.pid}) declared dead: last heartbeat ${n.heartbeat_at.toISOString()}`
        )
        yield* audit.record(
          AuditEvents.nodeDeclaredDead({
            actor: AuditEvents.actors.lane(name),
            subject: n.id,
            details: { name: n.name, mode: n.mode, host: n.host, pid: n.pid, heartbeatAt: n.heartbeat_at.toISOString() }
          })
        )
      }
      if (nodes.length > 0) yield* Metric.update(Telemetry.metrics.nodesDeclaredDead, nodes.length)
      return nodes.length
    })
  )

/**
 * The lane, with `options` over `defaults` (every bad or unknown option is
 * thrown, by name). Counts `dead`, `released`, `removed`.
 */
export const make = Kit.lane({
  name,
  config: Config,
  pass: (o) => {
    const retentionMs = Duration.toMillis(o.retention)
    return (ctx, sql) =>
      Effect.gen(function* () {
        const self = yield* NodeIdentity
        // A node never judges others by heartbeats nobody could write: after this node's own
        // heartbeat failed (the database was away), each node gets a full window of its own to
        // heartbeat again before it can be declared dead.
        const failedAt = yield* Effect.flatMap(NodeRegistry, (r) => r.lastHeartbeatFailureAt)
        const healthyForMs = failedAt === undefined ? null : Date.now() - failedAt
        const dead = yield* declareDead(sql, ctx.fence, { ...o, missed: o.missedHeartbeats, healthyForMs, self: self.id })
        // After the declaration committed: any dead node's running tasks, including those of
        // nodes declared by an earlier pass that stopped before releasing them.
        const released = yield* Kit.inBatches(
          o,
          Effect.gen(function* () {
            const tasks = yield* TaskSql.releaseDeadNodesTasks(sql, ctx.fence, { limit: o.batchSize })
            yield* recordReleased(name, tasks, "NodeDead")
            return tasks.length
          })
        )
        if (released > 0) yield* Effect.logWarning(`released ${released} running task(s) held by dead nodes`)
        const removed = yield* Kit.inBatches(
          o,
          NodesSql.removeOld(sql, ctx.fence, { retentionMs, limit: o.batchSize }).pipe(Effect.map(Kit.count("removed")))
        )
        return { dead, released, removed }
      })
  }
})
