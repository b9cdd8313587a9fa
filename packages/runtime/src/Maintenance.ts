/**
 * Maintenance: runs the node's lanes, one Scope-managed fiber per lane.
 *
 * Each fiber asks `Leadership` to lead its lane and, while it does, runs
 * passes at the lane's interval (after a start stagger). Leadership lost means
 * the fiber's work is interrupted by `Leadership`; a failing pass never stops
 * the lane or the node: it is logged (a `RuntimeError` `LanePassFailed`),
 * counted and retried with backoff. Per-lane status (leader or not, epoch,
 * last run, last error, lag) is in `/health/ready` and in the metrics.
 *
 * The layer requires what its lanes require (`R`), plus what it uses itself;
 * the runtime checks lanes' requirements where modules are made.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as SqlClient from "effect/sql/SqlClient"
import { HealthRegistry, pass as healthPass } from "./Health.ts"
import * as Lane from "./Lane.ts"
import { Leadership } from "./Leadership.ts"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * `[maintenance]`, the lanes part: which lanes this node never runs. (Each
 * built-in lane's own options are `[maintenance.<lane>]`.)
 *
 * @category config
 */
export const Config = ConfigSection.make(
  "maintenance",
  {
    disabledLanes: ConfigSection.key(ConfigSchema.List(ConfigSchema.NonEmptyString), {
      default: [],
      doc: 'lane names this node never runs, e.g. "pruning,audit_retention"'
    })
  },
  { id: "maintenance#lanes" }
)
export type Config = ConfigSection.TypeOf<typeof Config>

/** One lane's status on this node, as `/health/ready` shows it. */
export interface LaneStatus {
  readonly lane: string
  readonly interval_ms: number
  readonly leader: boolean
  readonly epoch: number | null
  readonly last_run_at: string | null
  readonly last_duration_ms: number | null
  readonly last_counts: Lane.Counts | null
  readonly last_error: string | null
  readonly consecutive_failures: number
  /** How far the last pass is behind the interval, while leading; 0 when on time. */
  readonly lag_ms: number
}

/** The running lanes' status. */
export interface MaintenanceShape {
  readonly status: Effect.Effect<ReadonlyArray<LaneStatus>>
}

/** The service a node that runs lanes has. */
export class Maintenance extends Context.Service<Maintenance, MaintenanceShape>()("@asterforge/runtime/Maintenance") {}

interface Tracked {
  lastRunAt: number | null
  lastDurationMs: number | null
  lastCounts: Lane.Counts | null
  lastError: string | null
  failures: number
  leadingSince: number | null
}

/** Delay after `failures` consecutive failed passes: doubling from the interval, at most a minute. */
export const failureBackoff = (lane: Lane.Lane, failures: number): Duration.Duration =>
  Duration.millis(Math.min(60_000, Duration.toMillis(lane.interval) * 2 ** Math.min(failures, 16)))

/**
 * Runs `lanes` (minus `maintenance.disabled_lanes`), one fiber per lane, each
 * while this node leads it. Two lanes with one name are a defect.
 *
 * @category layers
 */
export const layer = <R>(
  lanes: ReadonlyArray<Lane.Lane<unknown, R>>
): Layer.Layer<Maintenance, never, Leadership | SqlClient.SqlClient | HealthRegistry | ConfigSection.Tag<"maintenance#lanes"> | R> =>
  Layer.effect(
    Maintenance,
    Effect.gen(function* () {
      const leadership = yield* Leadership
      const config = yield* Config
      const sql = yield* SqlClient.SqlClient
      const health = yield* HealthRegistry
      const disabled = new Set(config.disabledLanes)
      const names = new Set<string>()
      for (const lane of lanes) {
        if (names.has(lane.name)) return yield* Effect.die(new Error(`two lanes are named "${lane.name}"`))
        names.add(lane.name)
      }
      const active = lanes.filter((l) => !disabled.has(l.name))
      const tracked = new Map<string, Tracked>(
        active.map((l) => [
          l.name,
          {
            lastRunAt: null,
            lastDurationMs: null,
            lastCounts: null,
            lastError: null,
            failures: 0,
            leadingSince: null
          }
        ])
      )

      const lagMs = (lane: Lane.Lane<unknown, R>, t: Tracked): number => {
        if (t.leadingSince === null) return 0
        const since = t.lastRunAt ?? t.leadingSince
        return Math.max(0, Date.now() - since - Duration.toMillis(lane.interval) - Duration.toMillis(lane.timeout))
      }

      /** What the lane does while this node leads it: passes, forever. */
      const run = (lane: Lane.Lane<unknown, R>, t: Tracked) => (epoch: number) =>
        Effect.gen(function* () {
          t.leadingSince = Date.now()
          const ctx = Lane.context(sql, lane.name, epoch)
          yield* Effect.sleep(Lane.startStagger(lane))
          while (true) {
            const result = yield* Lane.pass(lane, ctx).pipe(Effect.result)
            if (result._tag === "Success") {
              t.lastRunAt = Date.now()
              t.lastDurationMs = Math.round(result.success.durationMs)
              t.lastCounts = result.success.counts
              t.lastError = null
              t.failures = 0
              yield* Effect.sleep(Lane.nextDelay(lane))
            } else {
              t.failures++
              t.lastError = result.failure.message.split("\n")[0] || "pass failed"
              const wait = failureBackoff(lane, t.failures)
              yield* Effect.logWarning(`pass failed (${t.failures} in a row); next try in ${Duration.format(wait)}`, result.failure)
              yield* Effect.sleep(wait)
            }
            yield* Metric.update(Telemetry.labelled(Telemetry.metrics.laneLag, { lane: lane.name }), lagMs(lane, t) / 1000)
          }
        }).pipe(
          // Defects too: a lane never takes the node down.
          Effect.catchCause((cause) => Effect.logError("lane stopped unexpectedly; it restarts at the next election", cause)),
          Effect.ensuring(
            Effect.sync(() => {
              t.leadingSince = null
            })
          ),
          Effect.annotateLogs({ component: `lane:${lane.name}` })
        )

      for (const lane of active) {
        yield* Effect.forkScoped(leadership.lead(lane.name, run(lane, tracked.get(lane.name)!)))
      }

      const status = Effect.gen(function* () {
        const leaders = new Map((yield* leadership.status).map((l) => [l.lane, l]))
        return active.map((lane): LaneStatus => {
          const t = tracked.get(lane.name)!
          const l = leaders.get(lane.name)
          return {
            lane: lane.name,
            interval_ms: Duration.toMillis(lane.interval),
            leader: l?.leader ?? false,
            epoch: l?.epoch ?? null,
            last_run_at: t.lastRunAt === null ? null : new Date(t.lastRunAt).toISOString(),
            last_duration_ms: t.lastDurationMs,
            last_counts: t.lastCounts,
            last_error: t.lastError,
            consecutive_failures: t.failures,
            lag_ms: lagMs(lane, t)
          }
        })
      })

      // Lanes report, they do not gate readiness: a failing lane is an alert, not a reason to stop serving.
      yield* health.register({
        name: "maintenance",
        check: Effect.map(status, (lanes) =>
          healthPass(`${lanes.filter((l) => l.leader).length} of ${lanes.length} lane(s) led here`, {
            lanes: Object.fromEntries(lanes.map(({ lane, ...rest }) => [lane, rest])),
            disabled: [...disabled]
          })
        )
      })
      yield* Effect.logInfo(
        `maintenance started: ${active.map((l) => l.name).join(", ") || "no lanes"}${disabled.size ? ` (disabled: ${[...disabled].join(", ")})` : ""}`
      ).pipe(Telemetry.component("maintenance"))
      return Maintenance.of({ status })
    })
  )
