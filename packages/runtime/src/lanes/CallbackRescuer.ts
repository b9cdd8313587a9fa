/**
 * CallbackRescuer (lane "callback_rescue"): owns tasks parked in
 * `waiting_callback` whose callback did not arrive in time. With an attempt
 * left the task becomes `retryable`, due now (and its queue is notified);
 * otherwise it fails and `task.failed` is audited. Either way a
 * `CallbackTimeout` entry is appended to `errors` and the callback token is
 * cleared, so a late callback answers 404 and changes nothing.
 */
import { Duration, Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as AuditEvents from "../AuditEvents.ts"
import { AuditLog } from "../AuditLog.ts"
import * as TaskSql from "../internal/sql/taskMaintenance.ts"
import * as Lane from "../Lane.ts"
import * as Support from "./support.ts"

export const name = "callback_rescue"

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
        const totals = { retried: 0, failed: 0 }
        yield* Support.inBatches(
          { batchSize: o.batchSize, maxBatches: o.maxBatchesPerPass },
          Effect.gen(function*() {
            const rows = yield* TaskSql.expireCallbacks(sql, ctx.fence, { limit: o.batchSize })
            for (const t of rows) {
              if (t.state === "retryable") {
                totals.retried++
                continue
              }
              totals.failed++
              yield* audit.record(AuditEvents.taskFailed({
                actor: AuditEvents.actors.lane(name),
                subject: t.id,
                details: { name: t.name, attempt: t.attempt, tag: "CallbackTimeout", message: t.message, code: null, exhausted: true }
              }))
            }
            return rows.length
          })
        )
        return totals
      })
  })
}
