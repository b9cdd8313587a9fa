/**
 * Lane: the one shape every maintenance lane has.
 *
 * A lane is a name, an interval and `runOnce`, one pass that returns counts
 * (`{ promoted: 12 }`); tests call `runOnce` directly. Everything else a lane
 * needs is added here, the same for built-in and application lanes: a start
 * stagger, jitter between passes, a per-pass timeout, one span per pass (never
 * one per lifetime), metrics (runs, duration, items, errors, lag), and one
 * error for a failed or timed-out pass (`RuntimeError` `LanePassFailed`).
 *
 * A lane never checks leadership itself: `Maintenance` runs it only while
 * `Leadership` says this node leads it, and passes the leader's epoch. Every
 * write a pass makes must include `context.fence` in its WHERE clause, so a
 * node that lost its lock cannot act on stale authority. A lane that writes
 * nothing says so (`writes: false`), and the conformance tests hold it to it.
 *
 * A lane's requirements `R` stay generic here; `ApplicationModule.make` checks
 * once that the runtime provides them. Built-in lanes are made with the kit in
 * `lanes/kit.ts`.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Statement from "effect/sql/Statement"
import * as SqlClient from "effect/sql/SqlClient"
import * as LaneSql from "./internal/sql/laneLeaders.ts"
import * as RuntimeError from "./RuntimeError.ts"
import * as Telemetry from "./Telemetry.ts"

/** What a pass did, by kind: `{ promoted: 12 }`. */
export type Counts = Readonly<Record<string, number>>

/** What the leader passes to each pass. */
export interface Context {
  readonly lane: string
  /** This node's leadership epoch for the lane. */
  readonly epoch: number
  /** `EXISTS (...)`: true only while `epoch` is current. Include it in every write. */
  readonly fence: Statement.Fragment
}

/**
 * A lane: `E` is what a pass may fail with (built-in lanes: `SqlError`), `R`
 * the services a pass needs. Without arguments, any lane.
 */
export interface Lane<out E = unknown, out R = unknown> {
  readonly name: string
  readonly interval: Duration.Duration
  /** A pass running longer is interrupted and counted as an error. */
  readonly timeout: Duration.Duration
  /** Fraction of the interval added or removed at random between passes (0..0.5). */
  readonly jitter: number
  /** False when a pass writes nothing to the database (it then needs no fence). */
  readonly writes: boolean
  readonly runOnce: (context: Context) => Effect.Effect<Counts, E, R>
}

/** What `make` takes. */
export interface Options<E, R> {
  /** Dotted lower-case words; also the leadership key, the metrics' `lane` label and the log component. */
  readonly name: string
  readonly interval: Duration.Input
  readonly runOnce: (context: Context) => Effect.Effect<Counts, E, R>
  /** Default: the interval, at least 10 s, at most 5 minutes. */
  readonly timeout?: Duration.Input
  /** Default 0.1. */
  readonly jitter?: number
  /** Default true. False for a lane that only reads (`system_health`). */
  readonly writes?: boolean
}

const namePattern = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/

/**
 * Makes a lane, validated at definition time: a bad lane is a programming
 * error, thrown with its name and every problem.
 *
 * @category constructors
 */
export const make = <E = never, R = never>(options: Options<E, R>): Lane<E, R> => {
  const problems: Array<string> = []
  if (!namePattern.test(options.name)) problems.push(`name must be dotted lower-case words`)
  const interval = Duration.fromInput(options.interval)
  if (interval._tag === "None" || Duration.isZero(interval.value)) problems.push(`interval must be a positive duration`)
  const timeout = options.timeout === undefined ? undefined : Duration.fromInput(options.timeout)
  if (timeout !== undefined && (timeout._tag === "None" || Duration.isZero(timeout.value)))
    problems.push(`timeout must be a positive duration`)
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
    writes: options.writes ?? true,
    runOnce: options.runOnce
  }
}

/** The context a leader passes to `runOnce`. */
export const context = (sql: SqlClient.SqlClient, lane: string, epoch: number): Context => ({
  lane,
  epoch,
  fence: LaneSql.fence(sql, lane, epoch)
})

/** What one successful pass reports to `Maintenance`. */
export interface PassResult {
  readonly counts: Counts
  readonly durationMs: number
}

const passFailed = (lane: string, message: string, cause?: unknown): RuntimeError.RuntimeError =>
  RuntimeError.make(new RuntimeError.LanePassFailed({ lane, message, ...(cause === undefined ? {} : { cause }) }))

/**
 * One pass with its timeout, span and metrics. A failure or a timeout becomes
 * `RuntimeError` `LanePassFailed` (the lane, a one-line message, the original
 * failure as `cause`), which the caller records; defects stay defects.
 */
export const pass = <E, R>(lane: Lane<E, R>, ctx: Context): Effect.Effect<PassResult, RuntimeError.RuntimeError, R | SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const started = performance.now()
    const attributes = { lane: lane.name }
    const counts = yield* lane.runOnce(ctx).pipe(
      Effect.mapError((cause) => passFailed(lane.name, RuntimeError.messageOf(cause), cause)),
      Effect.timeoutOrElse({
        duration: lane.timeout,
        orElse: () => Effect.fail(passFailed(lane.name, `pass timed out after ${Duration.format(lane.timeout)}`))
      }),
      Effect.tapCause(() => Metric.update(Telemetry.labelled(Telemetry.metrics.laneErrors, attributes), 1)),
      // Recorded beside the pass, not before the caller's backoff: a slow database must not delay the retry.
      Effect.tapError((e) =>
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.forkChild(LaneSql.markFailed(sql, lane.name, ctx.epoch, e.message).pipe(Effect.ignore))
        )
      ),
      Effect.withSpan(Telemetry.spans.lanePass, { attributes: { "asterforge.lane": lane.name, "asterforge.lane.epoch": ctx.epoch } })
    )
    const durationMs = performance.now() - started
    const items = Object.values(counts).reduce((a, b) => a + b, 0)
    yield* Metric.update(Telemetry.labelled(Telemetry.metrics.laneRuns, attributes), 1)
    yield* Metric.update(Telemetry.labelled(Telemetry.metrics.laneDuration, attributes), durationMs / 1000)
    if (items > 0) yield* Metric.update(Telemetry.labelled(Telemetry.metrics.laneItems, attributes), items)
    const sql = yield* SqlClient.SqlClient
    yield* LaneSql.markRun(sql, lane.name, ctx.epoch, { counts, durationMs, intervalMs: Duration.toMillis(lane.interval) }).pipe(
      Effect.ignore
    )
    if (items > 0)
      yield* Effect.logDebug(
        `pass: ${Object.entries(counts)
          .map(([k, v]) => `${k}=${v}`)
          .join(" ")}`
      )
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
