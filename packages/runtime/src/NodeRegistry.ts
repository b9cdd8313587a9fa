/**
 * NodeRegistry: this node's liveness row.
 *
 * Inserted at start, its heartbeat refreshed every `node.heartbeat_interval`,
 * marked `stopped` by the finalizer on a graceful stop. A node that stops
 * heartbeating (crash, kill -9, partition) is left `running` with a stale
 * heartbeat, for the liveness lane to declare dead.
 */
import { Duration, Effect, Layer, Metric, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import * as AuditEvents from "./AuditEvents.ts"
import { AuditLog } from "./AuditLog.ts"
import { HealthRegistry, fail, pass } from "./Health.ts"
import * as NodesSql from "./internal/sql/nodes.ts"
import { NodeIdentity } from "./NodeIdentity.ts"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * `[node]`: the liveness row's heartbeat.
 *
 * @category config
 */
export const Config = ConfigSection.make("node", {
  heartbeatInterval: ConfigSection.key(ConfigSchema.Duration({ minimum: "100 millis", maximum: "1 hour" }), {
    default: "5 seconds",
    doc: "how often the node row's heartbeat is refreshed (three missed ones and the node is declared dead)"
  })
})
export type Config = ConfigSection.TypeOf<typeof Config>

export const layer: Layer.Layer<never, never, SqlClient.SqlClient | NodeIdentity | AuditLog | HealthRegistry | ConfigSection.Tag<"node">> =
  Layer.effectDiscard(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const node = yield* NodeIdentity
      const audit = yield* AuditLog
      const config = yield* Config
      const health = yield* HealthRegistry
      const actor = AuditEvents.actors.node(node.id)
      const interval = config.heartbeatInterval

      yield* Effect.acquireRelease(NodesSql.insert(sql, node).pipe(Effect.orDie), () =>
        NodesSql.markStopped(sql, node.id).pipe(
          Effect.andThen(audit.record(AuditEvents.nodeStopped({ actor, subject: node.id, details: { mode: node.mode } }))),
          Effect.andThen(Effect.logInfo("node row marked stopped")),
          Effect.catchCause((cause) => Effect.logError("could not mark the node row stopped", cause)),
          Effect.timeout(Duration.seconds(5)),
          Effect.ignore
        )
      )
      yield* Metric.update(
        Metric.withAttributes(Telemetry.metrics.nodeInfo, { mode: node.mode, version: node.version, node_id: node.id }),
        1
      )
      yield* audit.record(
        AuditEvents.nodeStarted({
          actor,
          subject: node.id,
          details: { mode: node.mode, host: node.host, pid: node.pid, version: node.version, name: node.name }
        })
      )

      let lastBeat = Date.now()
      let lastError: string | undefined
      const beat = NodesSql.heartbeat(sql, node.id).pipe(
        Effect.tap((rows) =>
          Effect.sync(() => {
            if (rows.length === 0) lastError = "the node row is no longer running (declared dead by another node?)"
            else {
              lastBeat = Date.now()
              lastError = undefined
            }
          })
        ),
        Effect.andThen(Metric.update(Telemetry.metrics.nodeHeartbeats, 1)),
        Effect.catchCause((cause) =>
          Effect.sync(() => {
            lastError = String(cause)
          }).pipe(Effect.andThen(Effect.logWarning("heartbeat failed", cause)))
        ),
        Effect.withSpan(Telemetry.spans.heartbeat)
      )
      yield* Effect.forkScoped(beat.pipe(Effect.repeat(Schedule.spaced(interval)), Telemetry.component("runtime")))

      // Three missed beats is what the liveness lane treats as dead: be not-ready before that.
      const staleAfter = Duration.toMillis(interval) * 3
      yield* health.register({
        name: "heartbeat",
        check: Effect.sync(() => {
          const age = Date.now() - lastBeat
          if (lastError !== undefined && age > Duration.toMillis(interval)) return fail(lastError, { last_heartbeat_ms_ago: age })
          return age > staleAfter ? fail(`no heartbeat for ${age} ms`) : pass(undefined, { last_heartbeat_ms_ago: age })
        })
      })
      yield* Effect.logInfo(`node ${node.name} (${node.id}) registered as ${node.mode}`).pipe(Telemetry.component("runtime"))
    })
  )
