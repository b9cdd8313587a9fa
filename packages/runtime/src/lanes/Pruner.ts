/**
 * Pruner (lane "pruning"): owns the removal of finished tasks once their
 * history is no longer needed: succeeded after `succeededRetention` (24 h),
 * failed after `failedRetention` and cancelled after `cancelledRetention`
 * (7 days each), counted from `finished_at`. Unfinished tasks are never
 * touched.
 */
import { Duration, Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as TaskSql from "../internal/sql/taskMaintenance.ts"
import * as Lane from "../Lane.ts"
import * as Support from "./support.ts"

export const name = "pruning"

export const defaults: {
  readonly interval: Duration.Input
  readonly succeededRetention: Duration.Input
  readonly failedRetention: Duration.Input
  readonly cancelledRetention: Duration.Input
  /** Rows per statement. */
  readonly batchSize: number
  /** Statements per pass at most. */
  readonly maxBatchesPerPass: number
} = {
  interval: "1 minute",
  succeededRetention: "24 hours",
  failedRetention: "7 days",
  cancelledRetention: "7 days",
  batchSize: 1000,
  maxBatchesPerPass: 10
}

export const make = (options?: Partial<typeof defaults>): Lane.Lane => {
  const o = Support.resolve(name, defaults, options, {
    interval: Support.duration,
    succeededRetention: Support.duration,
    failedRetention: Support.duration,
    cancelledRetention: Support.duration,
    batchSize: Support.integer(1, 100_000),
    maxBatchesPerPass: Support.integer(1, 10_000)
  })
  const retention = {
    succeededMs: Support.millis(o.succeededRetention),
    failedMs: Support.millis(o.failedRetention),
    cancelledMs: Support.millis(o.cancelledRetention)
  }
  return Lane.make({
    name,
    interval: o.interval,
    runOnce: (ctx) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const deleted = yield* Support.inBatches(
          { batchSize: o.batchSize, maxBatches: o.maxBatchesPerPass },
          TaskSql.pruneFinished(sql, ctx.fence, { ...retention, limit: o.batchSize }).pipe(
            Effect.map(([row]) => row?.deleted ?? 0)
          )
        )
        return { deleted }
      })
  })
}
