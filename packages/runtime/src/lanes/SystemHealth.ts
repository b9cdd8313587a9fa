/**
 * SystemHealth (lane "system_health"): owns the `asterforge_db_latency_seconds`
 * gauge and an in-memory snapshot for status pages: the round trip of a
 * trivial query and the total of unfinished tasks as of the last queue-stats
 * pass. It reads only and writes nothing to the database (`writes: false`),
 * so it needs no fence.
 *
 * The snapshot lives on the node that leads this lane (the one running its
 * passes); other nodes have none (`lastSnapshot()` is undefined).
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as ConfigSection from "../ConfigSection.ts"
import * as QueueStatsSql from "../internal/sql/queueStats.ts"
import { ping } from "../internal/sql/shared.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Kit from "./kit.ts"

/** The lane\'s name: its leadership key, its metrics label, and the suffix of its config section. */
export const name = "system_health"

/** `[maintenance.system_health]`: `interval`. */
export const Config = Kit.section(
  name,
  {
    interval: Kit.interval("10 seconds")
  },
  "a health snapshot: database latency, queue depth"
)

/** The decoded defaults of `Config`. */
export const defaults = ConfigSection.defaults(Config)

/** What the last pass measured. */
export interface Snapshot {
  /** When the pass measured it. */
  readonly at: Date
  /** Round trip of `SELECT 1`, in milliseconds. */
  readonly dbLatencyMs: number
  /** Unfinished tasks over all queues, from queue_stats. */
  readonly queueDepth: number
}

let last: Snapshot | undefined

/** The last snapshot a pass of this process took, if any. */
export const lastSnapshot = (): Snapshot | undefined => last

/** The lane, with `options` over `defaults` (every bad or unknown option is thrown, by name). Counts `checked`. */
export const make = Kit.lane({
  name,
  config: Config,
  writes: false,
  pass: () => (_ctx, sql) =>
    Effect.gen(function* () {
      const started = performance.now()
      yield* ping(sql)
      const dbLatencyMs = performance.now() - started
      yield* Metric.update(Telemetry.metrics.dbLatency, dbLatencyMs / 1000)
      const [depth] = yield* QueueStatsSql.unfinishedDepth(sql)
      last = { at: new Date(), dbLatencyMs, queueDepth: depth?.depth ?? 0 }
      return { checked: 1 }
    })
})
