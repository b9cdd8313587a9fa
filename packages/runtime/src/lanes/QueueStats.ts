/**
 * QueueStats (lane "queue_stats"): owns the `queue_stats` table and the
 * `asterforge_queue_depth` gauge. Each pass recomputes, per (queue, state),
 * the count of unfinished tasks with the oldest `created_at`, and the count
 * of tasks finished within `finishedWindow` (24 h), upserts them and deletes
 * the rows of groups that no longer exist. Admin views and metrics read
 * queue_stats, so nothing ever counts the tasks table on request.
 *
 * Unfinished groups are recounted every pass. Finished counts can cover far
 * more rows (a day of throughput), so they are recounted at most once per
 * `finishedRefresh` (1 minute), and on a node's first pass as leader.
 *
 * The gauge is set for every row written, and to 0 for a group that vanished,
 * on the node that made the write (a stale leader writes and publishes nothing).
 */
import { Duration, Effect, Metric } from "effect"
import { SqlClient } from "effect/sql"
import * as QueueStatsSql from "../internal/sql/queueStats.ts"
import * as Lane from "../Lane.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Support from "./support.ts"

export const name = "queue_stats"

export const defaults: {
  readonly interval: Duration.Input
  /** Finished tasks are counted over this window. */
  readonly finishedWindow: Duration.Input
  /** Finished counts are recomputed at most this often (unfinished ones every pass). */
  readonly finishedRefresh: Duration.Input
} = {
  interval: "5 seconds",
  finishedWindow: "24 hours",
  finishedRefresh: "1 minute"
}

export const make = (options?: Partial<typeof defaults>): Lane.Lane => {
  const o = Support.resolve(name, defaults, options, {
    interval: Support.duration,
    finishedWindow: Support.duration,
    finishedRefresh: Support.duration
  })
  const finishedWindowMs = Support.millis(o.finishedWindow)
  const finishedRefreshMs = Support.millis(o.finishedRefresh)
  // When this node last recounted finished groups, under which epoch: a new leadership recounts at once.
  let finishedAt: { readonly epoch: number; readonly ms: number } | undefined
  return Lane.make({
    name,
    interval: o.interval,
    runOnce: (ctx) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const now = Date.now()
        const withFinished = finishedAt === undefined || finishedAt.epoch !== ctx.epoch || now - finishedAt.ms >= finishedRefreshMs
        const rows = yield* QueueStatsSql.refresh(sql, ctx.fence, { finishedWindowMs: withFinished ? finishedWindowMs : null })
        // Only a write that went through counts as a refresh (a stale epoch writes nothing).
        if (withFinished && rows.length > 0) finishedAt = { epoch: ctx.epoch, ms: now }
        for (const row of rows) {
          yield* Metric.update(Metric.withAttributes(Telemetry.metrics.queueDepth, { queue: row.queue, state: row.state }), row.count)
        }
        return { groups: rows.filter((r) => !r.removed).length }
      })
  })
}
