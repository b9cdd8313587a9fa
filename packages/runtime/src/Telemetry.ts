/**
 * Telemetry: the catalogue of metric and span names, and the structured logger.
 *
 * Every metric the runtime exports is declared here, under the `asterforge_`
 * prefix, so the README table and the code cannot drift apart. Span names are
 * constants here too (`Module.operation`). The logger writes JSON lines (or a
 * pretty form for humans) and its level can be changed while the node runs.
 */
import { Cause, Context, Effect, Layer, Logger, LogLevel, Metric, Option, References, Tracer } from "effect"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"

// ---------------------------------------------------------------------------
// Configuration

/** Log levels, lowest first; `none` turns logging off. */
export const levelNames = ["trace", "debug", "info", "warn", "error", "fatal", "none"] as const

/**
 * `[telemetry]`: logs and traces.
 *
 * @category config
 */
export const Config = ConfigSection.make("telemetry", {
  logLevel: ConfigSection.key(ConfigSchema.Literals(levelNames), {
    default: "info",
    doc: "minimum log level",
    reloadable: true,
    aliases: [{ name: "LOG_LEVEL", map: (s) => s.toLowerCase() }]
  }),
  otlpEndpoint: ConfigSection.optionalKey(ConfigSchema.HttpUrl, {
    doc: "OTLP/HTTP collector base URL (traces go to <url>/v1/traces); unset = tracing off",
    aliases: [{ name: "OTEL_EXPORTER_OTLP_ENDPOINT", map: (s) => s }]
  }),
  logFormat: ConfigSection.key(ConfigSchema.Literals(["json", "pretty"]), {
    default: "json",
    doc: "json lines (default) or human-readable"
  })
})
export type Config = ConfigSection.TypeOf<typeof Config>

// ---------------------------------------------------------------------------
// Metrics

const seconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export const metrics = {
  httpRequests: Metric.counter("asterforge_http_requests_total", {
    description: "HTTP requests served, by route, method and status",
    incremental: true
  }),
  httpDuration: Metric.histogram("asterforge_http_request_duration_seconds", {
    description: "HTTP request duration",
    boundaries: seconds
  }),
  auditRecorded: Metric.counter("asterforge_audit_recorded_total", {
    description: "audit events accepted by record()",
    incremental: true
  }),
  auditFlushed: Metric.counter("asterforge_audit_flushed_total", {
    description: "audit events written to the database",
    incremental: true
  }),
  auditDropped: Metric.counter("asterforge_audit_dropped_total", {
    description: "audit events dropped because the buffer was full (overflow = \"drop\")",
    incremental: true
  }),
  auditFlushFailures: Metric.counter("asterforge_audit_flush_failures_total", {
    description: "audit batch inserts that failed and were retried",
    incremental: true
  }),
  auditBufferDepth: Metric.gauge("asterforge_audit_buffer_depth", {
    description: "audit events waiting in memory"
  }),
  auditFlushDuration: Metric.histogram("asterforge_audit_flush_duration_seconds", {
    description: "duration of one audit batch insert",
    boundaries: seconds
  }),
  dbConnectAttempts: Metric.counter("asterforge_db_connect_attempts_total", {
    description: "database connection attempts at start-up",
    incremental: true
  }),
  migrationsApplied: Metric.counter("asterforge_migrations_applied_total", {
    description: "migrations applied by this node",
    incremental: true
  }),
  nodeInfo: Metric.gauge("asterforge_node_info", {
    description: "always 1; labels carry the node's mode, version and id"
  }),
  nodeHeartbeats: Metric.counter("asterforge_node_heartbeats_total", {
    description: "liveness heartbeats written",
    incremental: true
  }),
  ready: Metric.gauge("asterforge_ready", {
    description: "1 when /health/ready would answer 200, else 0"
  }),
  configReloads: Metric.counter("asterforge_config_reloads_total", {
    description: "configuration file reloads, by result",
    incremental: true
  }),
  tasksEnqueued: Metric.counter("asterforge_tasks_enqueued_total", {
    description: "tasks inserted, by queue and task",
    incremental: true
  }),
  tasksClaimed: Metric.counter("asterforge_tasks_claimed_total", {
    description: "tasks claimed by this node, by queue",
    incremental: true
  }),
  tasksFinished: Metric.counter("asterforge_tasks_finished_total", {
    description: "handler runs that ended, by queue, task and outcome (success, retry, terminal, snooze, timeout, interrupted, cancelled, callback)",
    incremental: true
  }),
  taskDuration: Metric.histogram("asterforge_task_duration_seconds", {
    description: "handler run time, by queue",
    boundaries: seconds
  }),
  taskWait: Metric.histogram("asterforge_task_wait_seconds", {
    description: "time from creation to the start of the first attempt, by queue",
    boundaries: seconds
  }),
  tasksInFlight: Metric.gauge("asterforge_tasks_in_flight", {
    description: "handlers running on this node, by queue"
  }),
  staleResultsRejected: Metric.counter("asterforge_stale_results_rejected_total", {
    description: "completions refused because the task's lease epoch had moved on",
    incremental: true
  }),
  laneRuns: Metric.counter("asterforge_lane_runs_total", {
    description: "maintenance lane passes completed, by lane",
    incremental: true
  }),
  laneDuration: Metric.histogram("asterforge_lane_duration_seconds", {
    description: "duration of one lane pass, by lane",
    boundaries: seconds
  }),
  laneItems: Metric.counter("asterforge_lane_items_total", {
    description: "rows a lane pass acted on, by lane",
    incremental: true
  }),
  laneErrors: Metric.counter("asterforge_lane_errors_total", {
    description: "lane passes that failed or timed out, by lane",
    incremental: true
  }),
  laneLag: Metric.gauge("asterforge_lane_lag_seconds", {
    description: "how far the lane's last pass is behind its interval (0 when on time), by lane"
  }),
  laneLeader: Metric.gauge("asterforge_lane_leader", {
    description: "1 while this node leads the lane, else 0, by lane"
  }),
  elections: Metric.counter("asterforge_lane_elections_total", {
    description: "lane leaderships won by this node, by lane",
    incremental: true
  }),
  queueDepth: Metric.gauge("asterforge_queue_depth", {
    description: "tasks per queue and state, as of the last queue-stats pass"
  }),
  leaseRescues: Metric.counter("asterforge_lease_rescues_total", {
    description: "tasks whose lease expired and were made available again (or failed, when out of attempts), by outcome",
    incremental: true
  }),
  nodesDeclaredDead: Metric.counter("asterforge_nodes_declared_dead_total", {
    description: "nodes that stopped heartbeating and were declared dead",
    incremental: true
  }),
  dbPoolConnections: Metric.gauge("asterforge_db_pool_connections", {
    description: "this node's pooled database connections by server-side state (active, idle, idle in transaction), sampled"
  }),
  dbPoolMax: Metric.gauge("asterforge_db_pool_max", {
    description: "configured pool size (database.pool_max)"
  }),
  dbLatency: Metric.gauge("asterforge_db_latency_seconds", {
    description: "round trip of a trivial query, as of the last system-health pass"
  }),
  workerRestarts: Metric.counter("asterforge_worker_restarts_total", {
    description: "claim loops restarted by the supervisor after a failure, by queue",
    incremental: true
  })
} as const

// ---------------------------------------------------------------------------
// Spans

export const spans = {
  auditFlush: "AuditLog.flush",
  migrate: "Database.migrate",
  connect: "Database.connect",
  heartbeat: "NodeRegistry.heartbeat",
  readiness: "Health.readiness",
  enqueue: "TaskQueue.enqueue",
  claim: "Dispatcher.claim",
  run: "Dispatcher.run",
  complete: "Dispatcher.complete",
  lanePass: "Lane.run"
} as const

// ---------------------------------------------------------------------------
// Logging

export type LevelName = (typeof levelNames)[number]

const toLogLevel: Record<LevelName, LogLevel.LogLevel> = {
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  error: "Error",
  fatal: "Fatal",
  none: "None"
}

/**
 * The live log level. A plain mutable cell read by the logger on every entry,
 * so a reload takes effect on the next log line without rebuilding layers.
 */
export class LogLevelControl extends Context.Service<LogLevelControl, {
  readonly get: () => LevelName
  readonly set: (level: LevelName) => void
}>()("@asterforge/runtime/Telemetry/LogLevelControl") {}

const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" ")
}

const jsonLine = (options: Logger.Options<unknown>): string => {
  const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
  const span = Context.getOrUndefined(options.fiber.context, Tracer.ParentSpan)
  const entry: Record<string, unknown> = {
    timestamp: options.date.toISOString(),
    level: options.logLevel.toLowerCase(),
    message: messageText(options.message),
    component: "runtime",
    ...annotations
  }
  if (span !== undefined) {
    entry.trace_id = span.traceId
    entry.span_id = span.spanId
  }
  if (options.cause.reasons.length > 0) entry.cause = Cause.pretty(options.cause)
  return JSON.stringify(entry, (_k, v) => (typeof v === "bigint" ? v.toString() : v))
}

const prettyLine = (options: Logger.Options<unknown>): string => {
  const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
  const { component = "runtime", ...rest } = annotations as Record<string, unknown>
  const extra = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ")
  const cause = options.cause.reasons.length > 0 ? `\n${Cause.pretty(options.cause)}` : ""
  return `${options.date.toISOString()} ${options.logLevel.toUpperCase().padEnd(5)} [${String(component)}] ${messageText(options.message)}${extra ? ` ${extra}` : ""}${cause}`
}

/** A structured logger whose level is read from `LogLevelControl` on every entry. */
export const loggerLayer = (options: {
  readonly format: "json" | "pretty"
  readonly level: LevelName
}): Layer.Layer<LogLevelControl> => {
  let current = options.level
  const control = LogLevelControl.of({ get: () => current, set: (l) => { current = l } })
  const render = options.format === "json" ? jsonLine : prettyLine
  const logger = Logger.make((entry: Logger.Options<unknown>) => {
    if (current === "none" || !LogLevel.isGreaterThanOrEqualTo(entry.logLevel, toLogLevel[current])) return
    // Logs go to stderr so stdout stays free for command output (e.g. `config check`).
    process.stderr.write(render(entry) + "\n")
  })
  return Layer.mergeAll(
    Layer.succeed(LogLevelControl, control),
    Logger.layer([logger]),
    // Filtering happens in the logger, so the fiber-level minimum lets everything through.
    Layer.succeed(References.MinimumLogLevel, "Trace")
  )
}

/** Tags every log line of `effect` with a component name (`http`, `db`, `audit`, ...). */
export const component = (name: string) => Effect.annotateLogs({ component: name })

// ---------------------------------------------------------------------------
// Traces

/**
 * OpenTelemetry tracing to an OTLP/HTTP collector, when `telemetry.otlp_endpoint`
 * (or OTEL_EXPORTER_OTLP_ENDPOINT) is set; otherwise nothing, and the SDK is
 * not even loaded. OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are honoured.
 * Built first and released last, so its final flush carries the spans of the
 * whole shutdown.
 */
export const tracingLayer = (options: {
  readonly endpoint: Option.Option<string>
  readonly serviceVersion: string
  readonly attributes: Record<string, string>
}): Layer.Layer<never> => {
  if (Option.isNone(options.endpoint)) return Layer.empty
  const url = `${options.endpoint.value.replace(/\/+$/, "")}/v1/traces`
  return Layer.unwrap(Effect.promise(async () => {
    const [NodeSdk, { BatchSpanProcessor }, { OTLPTraceExporter }] = await Promise.all([
      import("@effect/opentelemetry/NodeSdk"),
      import("@opentelemetry/sdk-trace-base"),
      import("@opentelemetry/exporter-trace-otlp-http")
    ])
    return NodeSdk.layer(() => ({
      resource: {
        serviceName: process.env.OTEL_SERVICE_NAME ?? "asterforge",
        serviceVersion: options.serviceVersion,
        attributes: options.attributes
      },
      spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter({ url }), { scheduledDelayMillis: 1000 }),
      shutdownTimeout: "5 seconds"
    })) as Layer.Layer<never>
  }))
}

/** W3C traceparent of a span, to store with work that another process continues. */
export const traceparentOf = (span: Tracer.AnySpan): string =>
  `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`

const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** The span a stored traceparent names, as a parent for the span that continues the trace. */
export const parentFromTraceparent = (traceparent: string | null): Tracer.ExternalSpan | undefined => {
  const m = traceparent === null ? null : traceparentPattern.exec(traceparent)
  if (m === null) return undefined
  return Tracer.externalSpan({ traceId: m[1]!, spanId: m[2]!, sampled: (Number.parseInt(m[3]!, 16) & 1) === 1 })
}
