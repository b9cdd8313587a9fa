/**
 * ArtifactCleaner (lane "artifact_cleanup"): owns the removal of
 * task_artifacts rows whose task no longer exists (pruned, or deleted by an
 * operator). Artifacts have no foreign key, so that task deletes stay cheap;
 * this lane is what keeps them from outliving their task.
 */
import { Duration, Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as MaintenanceSql from "../internal/sql/maintenance.ts"
import * as Lane from "../Lane.ts"
import * as Support from "./support.ts"

export const name = "artifact_cleanup"

export const defaults: {
  readonly interval: Duration.Input
  /** Rows per statement. */
  readonly batchSize: number
  /** Statements per pass at most. */
  readonly maxBatchesPerPass: number
} = {
  interval: "5 minutes",
  batchSize: 1000,
  maxBatchesPerPass: 10
}

export const make = (options?: Partial<typeof defaults>): Lane.Lane => {
  const o = Support.resolve(name, defaults, options, {
    interval: Support.duration,
    batchSize: Support.integer(1, 100_000),
    maxBatchesPerPass: Support.integer(1, 10_000)
  })
  return Lane.make({
    name,
    interval: o.interval,
    runOnce: (ctx) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const deleted = yield* Support.inBatches(
          { batchSize: o.batchSize, maxBatches: o.maxBatchesPerPass },
          MaintenanceSql.deleteOrphanArtifacts(sql, ctx.fence, { limit: o.batchSize }).pipe(
            Effect.map(([row]) => row?.deleted ?? 0)
          )
        )
        return { deleted }
      })
  })
}
