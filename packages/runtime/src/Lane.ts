/**
 * Lane: the one shape every maintenance lane has.
 *
 * A lane is a name, an interval and `runOnce`, one pass that returns counts
 * (`{ promoted: 12 }`); tests call `runOnce` directly. Everything else a lane
 * needs is added here, the same for built-in and application lanes: a start
 * stagger, jitter between passes, a per-pass timeout, one span per pass (never
 * one per lifetime), and metrics (runs, duration, items, errors, lag).
 *
 * A lane never checks leadership itself: `Maintenance` runs it only while
 * `Leadership` says this node leads it, and passes the leader's epoch. Every
 * write a pass makes must include `context.fence` in its WHERE clause, so a
 * node that lost its lock cannot act on stale authority.
 */
import { Duration, Effect, Metric } from "effect"
import type { Statement } from "effect/sql"
import { SqlClient } from "effect/sql"
import type { RuntimeServices } from "./ApplicationModule.ts"
import * as LaneSql from "./internal/sql/laneLeaders.ts"
import * as Telemetry from "./Telemetry.ts"

export type Counts = Readonly<Record<string, number>>

export interface Context {
  readonly lane: string
  /** This node's leadership epoch for the lane. */
  readonly epoch: number
  /** `EXISTS (...)`: true only while `epoch` is current. Include it in every write. */
  readonly fence: Statement.Fragment
}

export interface Lane {
  readonly name: string
  readonly interval: Duration.Duration
  /** A pass running longer is interrupted and counted as an error. */
  readonly timeout: Duration.Duration
  /** Fraction of the interval added or removed at random between passes (0..0.5). */
  readonly jitter: number
  readonly runOnce: (context: Context) => Effect.Effect<Counts, unknown, RuntimeServices>
}

export interface Options {
  readonly name: string
  readonly interval: Duration.Input
  readonly runOnce: (context: Context) => Effect.Effect<Counts, unknown, RuntimeServices>
  /** Default: the interval, at least 10 s, at most 5 minutes. */
  readonly timeout?: Duration.Input
  /** Default 0.1. */
  readonly jitter?: number
}

const namePattern = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/

/** Validates at definition time: a bad lane is a programming error, reported with its name. */
export const make = (options: Options): Lane => {
  const problems: Array<string> = []
  if (!namePattern.test(options.name)) problems.push(`name must be dotted lower-case words`)
  const interval = Duration.fromInput(options.interval)
  if (interval._tag === "None" || Duration.isZero(interval.value)) problems.push(`interval must be a positive duration`)
  const timeout = options.timeout === undefined ? undefined : Duration.fromInput(options.timeout)
  if (timeout !== undefined && (timeout._tag === "None" || Duration.isZero(timeout.value))) problems.push(`timeout must be a positive duration`)
  const jitter = options.jitter ?? 0.1
  if (!(jitter >= 0 && jitter <= 0.5)) problems.push(`jitter must be between 0 and 0.5`)
  if (problems.length > 0 || interval._tag === "None") {
    throw new Error(`invalid lane ${JSON.stringify(options.name)}: ${problems.join("; ")}`)
  }
  const defaultTimeout = Duration.clamp(interval.value, { minimum: Duration.seconds(10), maximum: Duration.minutes(5) })
  return {
    name: options.name,
    interval: interval.value,
    timeout: timeout?._tag === "Some" ? timeout.value : defaultTimeout,
    jitter,
    runOnce: options.runOnce
  }
}

/** The context a leader passes to `runOnce`. */
export const context = (sql: SqlClient.SqlClient, lane: string, epoch: number): Context => ({
  lane,
  epoch,
  fence: LaneSql.fence(sql, lane, epoch)
})

export interface PassResult {
  readonly counts: Counts
  readonly durationMs: number
}

/** One pass with its timeout, span and metrics. Fails with the pass's error (the caller records it). */
export const pass = (lane: Lane, ctx: Context): Effect.Effect<PassResult, unknown, RuntimeServices> =>
  Effect.gen(function*() {
    const started = performance.now()
    const attributes = { lane: lane.name }
    const counts = yield* lane.runOnce(ctx).pipe(
      Effect.timeoutOrElse({
        duration: lane.timeout,
        orElse: () => Effect.fail(new Error(`lane ${lane.name}: pass timed out after ${Duration.format(lane.timeout)}`))
      }),
      Effect.tapCause(() => Metric.update(Metric.withAttributes(Telemetry.metrics.laneErrors, attributes), 1)),
      Effect.withSpan(Telemetry.spans.lanePass, { attributes: { "asterforge.lane": lane.name, "asterforge.lane.epoch": ctx.epoch } })
    )
    const durationMs = performance.now() - started
    const items = Object.values(counts).reduce((a, b) => a + b, 0)
    yield* Metric.update(Metric.withAttributes(Telemetry.metrics.laneRuns, attributes), 1)
    yield* Metric.update(Metric.withAttributes(Telemetry.metrics.laneDuration, attributes), durationMs / 1000)
    if (items > 0) yield* Metric.update(Metric.withAttributes(Telemetry.metrics.laneItems, attributes), items)
    const sql = yield* SqlClient.SqlClient
    yield* LaneSql.markRun(sql, lane.name, ctx.epoch).pipe(Effect.ignore)
    if (items > 0) yield* Effect.logDebug(`pass: ${Object.entries(counts).map(([k, v]) => `${k}=${v}`).join(" ")}`)
    return { counts, durationMs }
  }).pipe(Effect.annotateLogs({ component: `lane:${lane.name}` }))

/** The delay before the next pass: the interval, with jitter so nodes and lanes do not fire in step. */
export const nextDelay = (lane: Lane): Duration.Duration => {
  const base = Duration.toMillis(lane.interval)
  return Duration.millis(Math.max(1, Math.round(base * (1 + lane.jitter * (Math.random() * 2 - 1)))))
}

/** A random start offset within one interval (at most 1 s), so lanes that start together spread out. */
export const startStagger = (lane: Lane): Duration.Duration =>
  Duration.millis(Math.round(Math.random() * Math.min(1000, Duration.toMillis(lane.interval))))
