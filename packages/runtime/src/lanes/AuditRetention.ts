/**
 * AuditRetention (lane "audit_retention"): owns the removal of audit events
 * older than `retention` (90 days), by their `at`. Nothing else ever deletes
 * from audit_events.
 */
import { Duration, Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as AuditEventsSql from "../internal/sql/auditEvents.ts"
import * as Lane from "../Lane.ts"
import * as Support from "./support.ts"

export const name = "audit_retention"

export const defaults: {
  readonly interval: Duration.Input
  readonly retention: Duration.Input
  /** Rows per statement. */
  readonly batchSize: number
  /** Statements per pass at most (audit volume can be high: up to 100k rows per pass by default). */
  readonly maxBatchesPerPass: number
} = {
  interval: "10 minutes",
  retention: "90 days",
  batchSize: 1000,
  maxBatchesPerPass: 100
}

export const make = (options?: Partial<typeof defaults>): Lane.Lane => {
  const o = Support.resolve(name, defaults, options, {
    interval: Support.duration,
    retention: Support.duration,
    batchSize: Support.integer(1, 100_000),
    maxBatchesPerPass: Support.integer(1, 10_000)
  })
  const retentionMs = Support.millis(o.retention)
  return Lane.make({
    name,
    interval: o.interval,
    runOnce: (ctx) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const deleted = yield* Support.inBatches(
          { batchSize: o.batchSize, maxBatches: o.maxBatchesPerPass },
          AuditEventsSql.prune(sql, ctx.fence, { retentionMs, limit: o.batchSize }).pipe(
            Effect.map(([row]) => row?.deleted ?? 0)
          )
        )
        return { deleted }
      })
  })
}
