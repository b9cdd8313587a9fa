/**
 * SystemHealth (lane "system_health"): owns the `asterforge_db_latency_seconds`
 * gauge and an in-memory snapshot for status pages: the round trip of a
 * trivial query and the total of unfinished tasks as of the last queue-stats
 * pass. It reads only and writes nothing to the database, so it needs no fence.
 *
 * The snapshot lives on the node that leads this lane (the one running its
 * passes); other nodes have none (`lastSnapshot()` is undefined).
 */
import { Duration, Effect, Metric } from "effect"
import { SqlClient } from "effect/sql"
import * as QueueStatsSql from "../internal/sql/queueStats.ts"
import * as SharedSql from "../internal/sql/shared.ts"
import * as Lane from "../Lane.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Support from "./support.ts"

export const name = "system_health"

export const defaults: {
  readonly interval: Duration.Input
} = {
  interval: "10 seconds"
}

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

export const make = (options?: Partial<typeof defaults>): Lane.Lane => {
  const o = Support.resolve(name, defaults, options, { interval: Support.duration })
  return Lane.make({
    name,
    interval: o.interval,
    runOnce: (_ctx) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const started = performance.now()
        yield* SharedSql.ping(sql)
        const dbLatencyMs = performance.now() - started
        yield* Metric.update(Telemetry.metrics.dbLatency, dbLatencyMs / 1000)
        const [depth] = yield* QueueStatsSql.unfinishedDepth(sql)
        last = { at: new Date(), dbLatencyMs, queueDepth: depth?.depth ?? 0 }
        return { checked: 1 }
      })
  })
}
