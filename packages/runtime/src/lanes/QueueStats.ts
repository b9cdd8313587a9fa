/**
 * QueueStats (lane "queue_stats"): owns the `queue_stats` table and the
 * `asterforge_queue_depth` gauge. Each pass recomputes, per (queue, state),
 * the count of unfinished tasks with the oldest `created_at`, and the count
 * of tasks finished within `finished_window` (24 h), upserts them and deletes
 * the rows of groups that no longer exist. Admin views and metrics read
 * queue_stats, so nothing ever counts the tasks table on request.
 *
 * Unfinished groups are recounted every pass. Finished counts can cover far
 * more rows (a day of throughput), so they are recounted at most once per
 * `finished_refresh` (1 minute), and on a node's first pass as leader.
 *
 * The gauge is set for every row written, and to 0 for a group that vanished,
 * on the node that made the write (a stale leader writes and publishes nothing).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as ConfigSection from "../ConfigSection.ts"
import * as QueueStatsSql from "../internal/sql/queueStats.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Kit from "./kit.ts"

/** The lane\'s name: its leadership key, its metrics label, and the suffix of its config section. */
export const name = "queue_stats"

/** `[maintenance.queue_stats]`: `interval`, `finished_window`, `finished_refresh`. */
export const Config = Kit.section(
  name,
  {
    interval: Kit.interval("5 seconds"),
    finishedWindow: Kit.duration("24 hours", "finished tasks are counted over this window"),
    finishedRefresh: Kit.duration("1 minute", "finished counts are recomputed at most this often (unfinished ones every pass)")
  },
  "counts per queue and state into queue_stats and the queue-depth gauge"
)

/** The decoded defaults of `Config`. */
export const defaults = ConfigSection.defaults(Config)

/** The lane, with `options` over `defaults` (every bad or unknown option is thrown, by name). Counts `groups`. */
export const make = Kit.lane({
  name,
  config: Config,
  pass: (o) => {
    const finishedWindowMs = Duration.toMillis(o.finishedWindow)
    const finishedRefreshMs = Duration.toMillis(o.finishedRefresh)
    // When this lane last recounted finished groups, under which epoch: a new leadership recounts at once.
    let finishedAt: { readonly epoch: number; readonly ms: number } | undefined
    return (ctx, sql) =>
      Effect.gen(function* () {
        const now = Date.now()
        const withFinished = finishedAt === undefined || finishedAt.epoch !== ctx.epoch || now - finishedAt.ms >= finishedRefreshMs
        const rows = yield* QueueStatsSql.refresh(sql, ctx.fence, { finishedWindowMs: withFinished ? finishedWindowMs : null })
        // Only a write that went through counts as a refresh (a stale epoch writes nothing).
        if (withFinished && rows.length > 0) finishedAt = { epoch: ctx.epoch, ms: now }
        for (const row of rows) {
          yield* Metric.update(Telemetry.labelled(Telemetry.metrics.queueDepth, { queue: row.queue, state: row.state }), row.count)
        }
        return { groups: rows.filter((r) => !r.removed).length }
      })
  }
})
