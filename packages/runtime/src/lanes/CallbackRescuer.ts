/**
 * CallbackRescuer (lane "callback_rescue"): owns tasks parked in
 * `waiting_callback` whose callback did not arrive in time. With an attempt
 * left the task becomes `retryable`, due now (and its queue is notified);
 * otherwise it fails and `task.failed` is audited. Either way a
 * `CallbackTimeout` entry is appended to `errors` and the callback token is
 * cleared, so a late callback answers 404 and changes nothing.
 */
import * as Effect from "effect/Effect"
import * as ConfigSection from "../ConfigSection.ts"
import * as TaskSql from "../internal/sql/taskMaintenance.ts"
import * as Kit from "./kit.ts"

/** The lane\'s name: its leadership key, its metrics label, and the suffix of its config section. */
export const name = "callback_rescue"

/** `[maintenance.callback_rescue]`: `interval`, `batch_size`, `max_batches_per_pass`. */
export const Config = Kit.section(
  name,
  {
    interval: Kit.interval("1 second"),
    ...Kit.batches({ maxBatchesPerPass: 10 })
  },
  "retry or failure of parked tasks whose callback timed out"
)

/** The decoded defaults of `Config`. */
export const defaults = ConfigSection.defaults(Config)

/** The lane, with `options` over `defaults` (every bad or unknown option is thrown, by name). Counts `retried` and `failed`. */
export const make = Kit.lane({
  name,
  config: Config,
  pass: (o) => (ctx, sql) =>
    Effect.gen(function* () {
      const totals = { retried: 0, failed: 0 }
      yield* Kit.inBatches(
        o,
        Effect.gen(function* () {
          const rows = yield* TaskSql.expireCallbacks(sql, ctx.fence, { limit: o.batchSize })
          const failed = rows.filter((t) => t.state === "failed")
          yield* Kit.auditTasksFailed(name, failed, { tag: "CallbackTimeout", exhausted: true })
          totals.retried += rows.length - failed.length
          totals.failed += failed.length
          return rows.length
        })
      )
      return totals
    })
})
