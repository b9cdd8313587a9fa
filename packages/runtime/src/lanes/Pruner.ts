/**
 * Pruner (lane "pruning"): owns the removal of finished tasks once their
 * history is no longer needed: succeeded after `succeeded_retention` (24 h),
 * failed after `failed_retention` and cancelled after `cancelled_retention`
 * (7 days each), counted from `finished_at`. Unfinished tasks are never
 * touched.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ConfigSection from "../ConfigSection.ts"
import * as TaskSql from "../internal/sql/taskMaintenance.ts"
import * as Kit from "./kit.ts"

/** The lane\'s name: its leadership key, its metrics label, and the suffix of its config section. */
export const name = "pruning"

/** `[maintenance.pruning]`: `interval`, the three retentions, `batch_size`, `max_batches_per_pass`. */
export const Config = Kit.section(
  name,
  {
    interval: Kit.interval("1 minute"),
    succeededRetention: Kit.duration("24 hours", "succeeded tasks are kept this long after they finish"),
    failedRetention: Kit.duration("7 days", "failed tasks are kept this long after they finish"),
    cancelledRetention: Kit.duration("7 days", "cancelled tasks are kept this long after they finish"),
    ...Kit.batches({ maxBatchesPerPass: 10 })
  },
  "deletion of finished tasks past their state's retention"
)

/** The decoded defaults of `Config`. */
export const defaults = ConfigSection.defaults(Config)

/** The lane, with `options` over `defaults` (every bad or unknown option is thrown, by name). */
export const make = Kit.batched({
  name,
  config: Config,
  count: "deleted",
  statement: (sql, fence, o) =>
    TaskSql.pruneFinished(sql, fence, {
      succeededMs: Duration.toMillis(o.succeededRetention),
      failedMs: Duration.toMillis(o.failedRetention),
      cancelledMs: Duration.toMillis(o.cancelledRetention),
      limit: o.batchSize
    }).pipe(Effect.map(Kit.count("deleted")))
})
