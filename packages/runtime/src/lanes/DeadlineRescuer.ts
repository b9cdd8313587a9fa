/**
 * DeadlineRescuer (lane "deadline_rescue"): owns unfinished tasks whose
 * `deadline` passed while they were not running (scheduled, available,
 * retryable, parked for a callback). Each fails with a `DeadlineExceeded`
 * entry in `errors`, its callback token cleared, and `task.failed` audited.
 * Running tasks are left to their worker; the dispatcher itself refuses to
 * start past-deadline work it claims.
 */
import { Duration, Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as AuditEvents from "../AuditEvents.ts"
import { AuditLog } from "../AuditLog.ts"
import * as TaskSql from "../internal/sql/taskMaintenance.ts"
import * as Lane from "../Lane.ts"
import * as Support from "./support.ts"

export const name = "deadline_rescue"

export const defaults: {
  readonly interval: Duration.Input
  /** Rows per statement. */
  readonly batchSize: number
  /** Statements per pass at most. */
  readonly maxBatchesPerPass: number
} = {
  interval: "1 second",
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
        const audit = yield* AuditLog
        const failed = yield* Support.inBatches(
          { batchSize: o.batchSize, maxBatches: o.maxBatchesPerPass },
          Effect.gen(function*() {
            const rows = yield* TaskSql.failPastDeadline(sql, ctx.fence, { limit: o.batchSize })
            for (const t of rows) {
              yield* audit.record(AuditEvents.taskFailed({
                actor: AuditEvents.actors.lane(name),
                subject: t.id,
                details: { name: t.name, attempt: t.attempt, tag: "DeadlineExceeded", message: t.message, code: null, exhausted: false }
              }))
            }
            return rows.length
          })
        )
        return { failed }
      })
  })
}
