/**
 * Telemetry: the catalogue of metric and span names, and the structured logger.
 *
 * Every metric the runtime exports is declared here, under the `asterforge_`
 * prefix, so the README table and the code cannot drift apart. Span names are
 * constants here too (`Module.operation`). The logger writes JSON lines (or a
 * pretty form for humans) and its level can be changed while the node runs.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as References from "effect/References"
import * as Tracer from "effect/Tracer"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import { maskUrl } from "./internal/redact.ts"

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
    display: maskUrl,
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

/** Labels of a metric series. */
export type Labels = Readonly<Record<string, string>>

// Every metric below is a family: `labelled` gives its series with labels built in, one per label set.
interface Family {
  readonly make: (labels: Labels) => Metric.Metric<number, any>
  readonly series: Map<string, Metric.Metric<number, any>>
}
const families = new WeakMap<object, Family>()
const family = <M extends Metric.Metric<number, any>>(make: (labels?: Labels) => M): M => {
  const base = make()
  families.set(base, { make, series: new Map() })
  return base
}
const counter = (name: string, description: string) =>
  family((attributes) => Metric.counter(name, { description, incremental: true, attributes }))
const gauge = (name: string, description: string) => family((attributes) => Metric.gauge(name, { description, attributes }))
/** Durations in seconds, 1 ms to 10 s. */
const histogram = (name: string, description: string) =>
  family((attributes) => Metric.histogram(name, { description, boundaries: seconds, attributes }))

/**
 * The series of one of `metrics` with these labels, made once per label set.
 * Unlike `Metric.withAttributes`, whose every update copies the fiber's whole
 * service context (~2 us and ~300 bytes; a quarter of a worker's per-task
 * allocations in a heap profile), the labels are the series' own. Label values
 * must be bounded (route templates, queues, task names), never ids or paths.
 */
export const labelled = <M extends Metric.Metric<number, any>>(metric: M, labels: Labels): M => {
  const f = families.get(metric)
  if (f === undefined) throw new Error("Telemetry.labelled: not one of Telemetry.metrics")
  const key = Object.entries(labels)
    .map(([k, v]) => `${k}\u0000${v}`)
    .join("\u0001")
  let series = f.series.get(key)
  if (series === undefined) {
    series = f.make(labels)
    f.series.set(key, series)
  }
  return series as M
}

export const metrics = {
  httpRequests: counter("asterforge_http_requests_total", "HTTP requests served, by route, method and status"),
  httpDuration: histogram("asterforge_http_request_duration_seconds", "HTTP request duration"),
  auditRecorded: counter("asterforge_audit_recorded_total", "audit events accepted by record()"),
  auditFlushed: counter("asterforge_audit_flushed_total", "audit events written to the database"),
  auditDropped: counter("asterforge_audit_dropped_total", 'audit events dropped because the buffer was full (overflow = "drop")'),
  auditFlushFailures: counter("asterforge_audit_flush_failures_total", "audit batch inserts that failed and were retried"),
  auditBufferDepth: gauge("asterforge_audit_buffer_depth", "audit events waiting in memory"),
  auditFlushDuration: histogram("asterforge_audit_flush_duration_seconds", "duration of one audit batch insert"),
  dbConnectAttempts: counter("asterforge_db_connect_attempts_total", "database connection attempts at start-up"),
  migrationsApplied: counter("asterforge_migrations_applied_total", "migrations applied by this node"),
  nodeInfo: gauge("asterforge_node_info", "always 1; labels carry the node's mode, version and id"),
  nodeHeartbeats: counter("asterforge_node_heartbeats_total", "liveness heartbeats written"),
  ready: gauge("asterforge_ready", "1 when /health/ready would answer 200, else 0"),
  configReloads: counter("asterforge_config_reloads_total", "configuration file reloads, by result"),
  tasksEnqueued: counter("asterforge_tasks_enqueued_total", "tasks inserted, by queue and task"),
  tasksClaimed: counter("asterforge_tasks_claimed_total", "tasks claimed by this node, by queue"),
  tasksFinished: counter(
    "asterforge_tasks_finished_total",
    "handler runs that ended, by queue, task and outcome (success, retry, terminal, snooze, timeout, interrupted, cancelled, callback)"
  ),
  taskDuration: histogram("asterforge_task_duration_seconds", "handler run time, by queue"),
  taskWait: histogram("asterforge_task_wait_seconds", "time from creation to the start of the first attempt, by queue"),
  tasksInFlight: gauge("asterforge_tasks_in_flight", "handlers running on this node, by queue"),
  staleResultsRejected: counter(
    "asterforge_stale_results_rejected_total",
    "completions refused because the task's lease epoch had moved on"
  ),
  laneRuns: counter("asterforge_lane_runs_total", "maintenance lane passes completed, by lane"),
  laneDuration: histogram("asterforge_lane_duration_seconds", "duration of one lane pass, by lane"),
  laneItems: counter("asterforge_lane_items_total", "rows a lane pass acted on, by lane"),
  laneErrors: counter("asterforge_lane_errors_total", "lane passes that failed or timed out, by lane"),
  laneLag: gauge("asterforge_lane_lag_seconds", "how far the lane's last pass is behind its interval (0 when on time), by lane"),
  laneLeader: gauge("asterforge_lane_leader", "1 while this node leads the lane, else 0, by lane"),
  elections: counter("asterforge_lane_elections_total", "lane leaderships won by this node, by lane"),
  queueDepth: gauge("asterforge_queue_depth", "tasks per queue and state, as of the last queue-stats pass"),
  leaseRescues: counter(
    "asterforge_lease_rescues_total",
    "tasks whose lease expired and were made available again (or failed, when out of attempts), by outcome"
  ),
  leasesReconciled: counter(
    "asterforge_leases_reconciled_total",
    "tasks leased to this node by a claim whose answer was lost, handed back with the attempt unused"
  ),
  nodesDeclaredDead: counter("asterforge_nodes_declared_dead_total", "nodes that stopped heartbeating and were declared dead"),
  dbPoolConnections: gauge(
    "asterforge_db_pool_connections",
    "this node's pooled database connections by server-side state (active, idle, idle in transaction), sampled"
  ),
  dbPoolMax: gauge("asterforge_db_pool_max", "configured pool size (database.pool_max)"),
  dbLatency: gauge("asterforge_db_latency_seconds", "round trip of a trivial query, as of the last system-health pass"),
  resubscribes: counter(
    "asterforge_notification_resubscribes_total",
    "LISTEN subscriptions renewed after their connection was lost, by channel"
  ),
  workerRestarts: counter("asterforge_worker_restarts_total", "claim loops restarted by the supervisor after a failure, by queue"),
  sourcePublished: counter(
    "asterforge_source_published_total",
    "tasks a source published, by source and outcome (new, or existing: its unique key was already held)"
  ),
  sourceRunning: gauge(
    "asterforge_source_running",
    "1 while the source runs on this node (a leader-placed one: while this node leads it), by source"
  ),
  sourceErrors: counter("asterforge_source_errors_total", "source runs that failed and were restarted with backoff, by source"),
  sourceRejected: counter(
    "asterforge_source_rejected_total",
    "webhook requests refused, by source and reason (signature, body, too_large, key)"
  ),
  sourceLastEvent: gauge(
    "asterforge_source_last_event_seconds",
    "Unix time of the source's last event (a poll, a fire, a request), by source"
  ),
  scheduleFires: counter(
    "asterforge_schedule_fires_total",
    "fires of a schedule, by source and outcome (enqueued, or skipped: missed fires coalesced or beyond the catch-up bound)"
  ),
  controlLoginFailures: counter(
    "asterforge_control_login_failures_total",
    "failed admin API logins (refused token or session, OIDC), by via"
  ),
  controlBulkTasks: counter("asterforge_control_bulk_tasks_total", "tasks acted on by admin bulk actions, by action")
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
  lanePass: "Lane.run",
  sourcePublish: "TaskSource.publish",
  sourcePoll: "TaskSource.poll",
  scheduleFire: "CronSource.fire",
  webhookReceive: "WebhookSource.receive"
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
export class LogLevelControl extends Context.Service<
  LogLevelControl,
  {
    readonly get: () => LevelName
    readonly set: (level: LevelName) => void
  }
>()("@asterforge/runtime/Telemetry/LogLevelControl") {}

const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" ")
}

/** A fiber's log annotations, made when a line is logged: most runs log nothing. */
interface Annotator<A = any> {
  readonly source: A
  readonly annotations: (source: A) => Readonly<Record<string, unknown>>
}

const fiberAnnotators = new WeakMap<Fiber.Fiber<unknown, unknown>, Annotator>()
// The fiber `annotateFiber` named last, until `keepFiberAnnotations` settles it: plain variables,
// so a run that ends at once costs no object.
let startingFiber: Fiber.Fiber<unknown, unknown> | undefined
let startingSource: unknown
let startingAnnotations: Annotator["annotations"] | undefined

/**
 * Makes every log line of `fiber` carry `annotations(source)` (its own
 * `Effect.annotateLogs` win over them); call it from the fiber itself as it
 * starts (`Effect.withFiber`). The dispatcher gives each task run its `task`
 * and `task_id` this way: `annotateLogs` copies the whole service context per
 * run (~2 us on the hot path). Once the caller's start of the fiber returns,
 * `keepFiberAnnotations` gives one still running a WeakMap entry (a run that
 * ended at once, most short ones, needs none). The annotations are built only
 * for lines actually logged; fibers the run forks do not get them.
 */
export const annotateFiber = <A>(
  fiber: Fiber.Fiber<unknown, unknown>,
  source: A,
  annotations: (source: A) => Readonly<Record<string, unknown>>
): void => {
  startingFiber = fiber
  startingSource = source
  startingAnnotations = annotations
}

/** Call right after starting a fiber `annotateFiber` named: keeps its annotations while it runs on. */
export const keepFiberAnnotations = (fiber: Fiber.Fiber<unknown, unknown>): void => {
  if (startingFiber === fiber && startingAnnotations !== undefined && fiber.pollUnsafe() === undefined) {
    fiberAnnotators.set(fiber, { source: startingSource, annotations: startingAnnotations })
  }
  startingFiber = undefined
  startingSource = undefined
  startingAnnotations = undefined
}

const annotationsOf = (fiber: Fiber.Fiber<unknown, unknown>): Readonly<Record<string, unknown>> => {
  const own = fiber.getRef(References.CurrentLogAnnotations)
  const run = fiberAnnotators.get(fiber)
  if (run !== undefined) return { ...run.annotations(run.source), ...own }
  if (fiber === startingFiber && startingAnnotations !== undefined) return { ...startingAnnotations(startingSource), ...own }
  return own
}

/** Whether a span is recorded: a fiber running with the tracer off has no-op spans, whose ids mean nothing. */
const recorded = (span: Tracer.AnySpan): boolean => span.traceId !== "noop"

const jsonLine = (options: Logger.Options<unknown>): string => {
  const annotations = annotationsOf(options.fiber)
  const span = Context.getOrUndefined(options.fiber.context, Tracer.ParentSpan)
  const entry: Record<string, unknown> = {
    timestamp: options.date.toISOString(),
    level: options.logLevel.toLowerCase(),
    message: messageText(options.message),
    component: "runtime",
    ...annotations
  }
  if (span !== undefined && recorded(span)) {
    entry.trace_id = span.traceId
    entry.span_id = span.spanId
  }
  if (options.cause.reasons.length > 0) entry.cause = Cause.pretty(options.cause)
  return JSON.stringify(entry, (_k, v) => (typeof v === "bigint" ? v.toString() : v))
}

const prettyLine = (options: Logger.Options<unknown>): string => {
  const annotations = annotationsOf(options.fiber)
  const { component = "runtime", ...rest } = annotations as Record<string, unknown>
  const extra = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ")
  const cause = options.cause.reasons.length > 0 ? `\n${Cause.pretty(options.cause)}` : ""
  return `${options.date.toISOString()} ${options.logLevel.toUpperCase().padEnd(5)} [${String(component)}] ${messageText(options.message)}${extra ? ` ${extra}` : ""}${cause}`
}

/** A structured logger whose level is read from `LogLevelControl` on every entry. */
export const loggerLayer = (options: { readonly format: "json" | "pretty"; readonly level: LevelName }): Layer.Layer<LogLevelControl> => {
  let current = options.level
  const control = LogLevelControl.of({
    get: () => current,
    set: (l) => {
      current = l
    }
  })
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
  return Layer.unwrap(
    Effect.promise(async () => {
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
    })
  )
}

/**
 * W3C traceparent of a span, to store with work that another process
 * continues; null for the no-op spans of a fiber running with the tracer off.
 */
export const traceparentOf = (span: Tracer.AnySpan): string | null =>
  !recorded(span) ? null : `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`

const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** The span a stored traceparent names, as a parent for the span that continues the trace. */
export const parentFromTraceparent = (traceparent: string | null): Tracer.ExternalSpan | undefined => {
  const m = traceparent === null ? null : traceparentPattern.exec(traceparent)
  if (m === null) return undefined
  return Tracer.externalSpan({ traceId: m[1]!, spanId: m[2]!, sampled: (Number.parseInt(m[3]!, 16) & 1) === 1 })
}
