/**
 * NodeRegistry: this node's liveness row.
 *
 * Inserted at start, its heartbeat refreshed every `node.heartbeat_interval`,
 * marked `stopped` by the finalizer on a graceful stop. A node that stops
 * heartbeating (crash, kill -9, partition) is left `running` with a stale
 * heartbeat, for the liveness lane to declare dead. A node that finds its own
 * row dead (it was paused or cut off that long) stops claiming at once and
 * stops itself with exit code 75 (`Shutdown.restartExitCode`), so its
 * supervisor starts a fresh node under a new identity: a zombie neither keeps
 * working on leases it lost nor lingers not-ready.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import * as AuditEvents from "./AuditEvents.ts"
import { AuditLog } from "./AuditLog.ts"
import { HealthRegistry, fail, pass } from "./Health.ts"
import * as NodesSql from "./internal/sql/nodes.ts"
import { NodeIdentity } from "./NodeIdentity.ts"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import * as Shutdown from "./Shutdown.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * `[node]`: the liveness row's heartbeat.
 *
 * @category config
 */
export const Config = ConfigSection.make("node", {
  heartbeatInterval: ConfigSection.key(ConfigSchema.Duration({ minimum: "100 millis", maximum: "1 hour" }), {
    default: "5 seconds",
    doc: "how often the node row's heartbeat is refreshed; kept on the row, other nodes declare this one dead after maintenance.node_liveness.missed_heartbeats of these without one"
  })
})
export type Config = ConfigSection.TypeOf<typeof Config>

/** What this node knows of its own liveness, for the liveness lane and the dispatcher. */
export interface NodeRegistryShape {
  /** When this node last failed to write its heartbeat (the database away), if ever. */
  readonly lastHeartbeatFailureAt: Effect.Effect<number | undefined>
  /**
   * True once this node found its own row declared dead (it was silent for
   * three heartbeats: a long pause, a partition): it must stop claiming at once,
   * its leases were taken; it then stops itself for its supervisor to restart it.
   */
  readonly declaredDead: Effect.Effect<boolean>
}

/**
 * This node's liveness row and what it knows of it.
 *
 * @category services
 */
export class NodeRegistry extends Context.Service<NodeRegistry, NodeRegistryShape>()("@asterforge/runtime/NodeRegistry") {}

export const layer: Layer.Layer<
  NodeRegistry,
  never,
  SqlClient.SqlClient | NodeIdentity | AuditLog | HealthRegistry | ConfigSection.Tag<"node">
> = Layer.effect(
  NodeRegistry,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const node = yield* NodeIdentity
    const audit = yield* AuditLog
    const config = yield* Config
    const health = yield* HealthRegistry
    const actor = AuditEvents.actors.node(node.id)
    const interval = config.heartbeatInterval

    yield* Effect.acquireRelease(NodesSql.insert(sql, node, Duration.toMillis(interval)).pipe(Effect.orDie), () =>
      NodesSql.markStopped(sql, node.id).pipe(
        Effect.andThen(audit.record(AuditEvents.nodeStopped({ actor, subject: node.id, details: { mode: node.mode } }))),
        Effect.andThen(Effect.logInfo("node row marked stopped")),
        Effect.catchCause((cause) => Effect.logError("could not mark the node row stopped", cause)),
        Effect.timeout(Duration.seconds(5)),
        Effect.ignore
      )
    )
    yield* Metric.update(Telemetry.labelled(Telemetry.metrics.nodeInfo, { mode: node.mode, version: node.version, node_id: node.id }), 1)
    yield* audit.record(
      AuditEvents.nodeStarted({
        actor,
        subject: node.id,
        details: { mode: node.mode, host: node.host, pid: node.pid, version: node.version, name: node.name }
      })
    )

    let lastBeat = Date.now()
    let lastError: string | undefined
    let lastFailureAt: number | undefined
    let dead = false

    // Found dead: our leases were taken and our results would be refused. Stop serving at once
    // (readiness fails, claims stop) and stop the process, so the supervisor starts a fresh node.
    const foundDead = Effect.gen(function* () {
      dead = true
      lastError = "this node's row was declared dead by the liveness lane (silent for three heartbeats); stopping"
      yield* audit.record(
        AuditEvents.nodeFoundDead({
          actor,
          subject: node.id,
          details: { mode: node.mode, lastHeartbeatAt: new Date(lastBeat).toISOString() }
        })
      )
      yield* Shutdown.requestStop(Shutdown.restartExitCode, `node ${node.name} (${node.id}) was declared dead while alive`)
    })

    const beat = NodesSql.heartbeat(sql, node.id).pipe(
      Effect.flatMap((rows) => {
        if (rows.length === 0) return dead ? Effect.void : foundDead
        lastBeat = Date.now()
        lastError = undefined
        return Effect.void
      }),
      Effect.andThen(Metric.update(Telemetry.metrics.nodeHeartbeats, 1)),
      Effect.catchCause((cause) =>
        Effect.sync(() => {
          lastError = String(cause)
          lastFailureAt = Date.now()
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
        if (dead) return fail(lastError ?? "declared dead")
        if (lastError !== undefined && age > Duration.toMillis(interval)) return fail(lastError, { last_heartbeat_ms_ago: age })
        return age > staleAfter ? fail(`no heartbeat for ${age} ms`) : pass(undefined, { last_heartbeat_ms_ago: age })
      })
    })
    yield* Effect.logInfo(`node ${node.name} (${node.id}) registered as ${node.mode}`).pipe(Telemetry.component("runtime"))
    return NodeRegistry.of({
      lastHeartbeatFailureAt: Effect.sync(() => lastFailureAt),
      declaredDead: Effect.sync(() => dead)
    })
  })
)
