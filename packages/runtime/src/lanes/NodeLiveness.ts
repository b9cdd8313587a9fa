/**
 * NodeLiveness (lane "node_liveness"): owns the `nodes` table's life cycle
 * after start-up. A running node whose heartbeat is older than
 * `missed_heartbeats` x the nodes' heartbeat period (`node.heartbeat_interval`)
 * is declared `dead` (audited as `node.declared_dead`), and the running tasks
 * it holds are released at once: available again with the attempt given back
 * (the verdict is on the node, not the task: a release never fails a task),
 * or cancelled when cancellation was requested (tag `NodeDead` in `errors`).
 * Rows of nodes stopped or dead for longer than `retention` (7 days) are
 * removed.
 *
 * The lane never declares its own node, and declares nobody while this node's
 * own heartbeat failed within the stale window (after a database outage no
 * node could heartbeat). A node declared dead that is in fact alive (a long
 * pause) finds out through its own heartbeat and stops itself (NodeRegistry);
 * its late task results are refused because the rows are no longer `running`.
 */
import { Duration, Effect, Metric, Schema } from "effect"
import type { SqlClient, Statement } from "effect/sql"
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
      doc: "a node is dead after this many heartbeat periods (node.heartbeat_interval) without one"
    }),
    retention: Kit.duration("7 days", "stopped and dead nodes' rows are kept this long"),
    // Per step: declare, release, remove.
    ...Kit.batches({ maxBatchesPerPass: 10 })
  },
  "dead-node detection, release of their tasks, removal of old node rows"
)

/** The decoded defaults of `Config`. */
export const defaults = ConfigSection.defaults(Config)

/** The nodes' heartbeat period when `make` is not given one (`node.heartbeat_interval`'s default). */
export const defaultHeartbeatInterval: Duration.Input = "5 seconds"

const decodeHeartbeat = Schema.decodeUnknownResult(ConfigSchema.Duration())

/** The nodes' heartbeat period, checked like the `node.heartbeat_interval` key it comes from. */
const heartbeatMillis = (input: Duration.Input): number => {
  const given = Duration.fromInput(input)
  const decoded = decodeHeartbeat(given._tag === "Some" ? Duration.toMillis(given.value) : input)
  if (decoded._tag === "Failure") {
    throw new Error(`invalid options for ${Config.section}: heartbeatInterval: ${ConfigSchema.messageOf(decoded.failure)}`)
  }
  return Duration.toMillis(decoded.success)
}

/** Declares silent nodes dead, in batches: logged, audited and counted. */
const declareDead = (
  sql: SqlClient.SqlClient,
  fence: Statement.Fragment,
  o: Kit.Batches & { readonly staleMs: number; readonly self: string }
) =>
  Kit.inBatches(
    o,
    Effect.gen(function* () {
      const audit = yield* AuditLog
      const nodes = yield* NodesSql.declareDead(sql, fence, { staleMs: o.staleMs, limit: o.batchSize, self: o.self })
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

/** The lane for nodes that heartbeat every `heartbeatMs`. */
const laneFor = (heartbeatMs: number) =>
  Kit.lane({
    name,
    config: Config,
    pass: (o) => {
      const staleMs = heartbeatMs * o.missedHeartbeats
      const retentionMs = Duration.toMillis(o.retention)
      return (ctx, sql) =>
        Effect.gen(function* () {
          const self = yield* NodeIdentity
          // A node never judges others (or itself) by heartbeats nobody could write: after this
          // node's own heartbeat failed (the database was away), every node gets a full window
          // to heartbeat again before anyone is declared dead.
          const failedAt = yield* Effect.flatMap(NodeRegistry, (r) => r.lastHeartbeatFailureAt)
          const sinceFailure = failedAt === undefined ? Number.POSITIVE_INFINITY : Date.now() - failedAt
          const dead = sinceFailure < staleMs ? 0 : yield* declareDead(sql, ctx.fence, { ...o, staleMs, self: self.id })
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

/**
 * The lane, with `options` over `defaults` (every bad or unknown option is
 * thrown, by name). `heartbeatInterval` is the nodes' heartbeat period:
 * `builtIn` passes the configured `node.heartbeat_interval`. Counts `dead`,
 * `released`, `removed`.
 */
export const make = (options: Kit.Input<typeof Config.fields> & { readonly heartbeatInterval?: Duration.Input } = {}) => {
  const { heartbeatInterval = defaultHeartbeatInterval, ...rest } = options
  return laneFor(heartbeatMillis(heartbeatInterval))(rest)
}
