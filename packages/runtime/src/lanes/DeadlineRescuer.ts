/**
 * DeadlineRescuer (lane "deadline_rescue"): owns unfinished tasks whose
 * `deadline` passed while they were not running (scheduled, available,
 * retryable, parked for a callback). Each fails with a `DeadlineExceeded`
 * entry in `errors`, its callback token cleared, and `task.failed` audited.
 * Running tasks are left to their worker; the dispatcher itself refuses to
 * start past-deadline work it claims.
 */
import * as Effect from "effect/Effect"
import * as ConfigSection from "../ConfigSection.ts"
import * as TaskSql from "../internal/sql/taskMaintenance.ts"
import * as Kit from "./kit.ts"

/** The lane\'s name: its leadership key, its metrics label, and the suffix of its config section. */
export const name = "deadline_rescue"

/** `[maintenance.deadline_rescue]`: `interval`, `batch_size`, `max_batches_per_pass`. */
export const Config = Kit.section(
  name,
  {
    interval: Kit.interval("1 second"),
    ...Kit.batches({ maxBatchesPerPass: 10 })
  },
  "failure of waiting tasks past their deadline"
)

/** The decoded defaults of `Config`. */
export const defaults = ConfigSection.defaults(Config)

/** The lane, with `options` over `defaults` (every bad or unknown option is thrown, by name). */
export const make = Kit.batched({
  name,
  config: Config,
  count: "failed",
  statement: (sql, fence, o) =>
    TaskSql.failPastDeadline(sql, fence, { limit: o.batchSize }).pipe(
      Effect.tap((rows) => Kit.auditTasksFailed(name, rows, { tag: "DeadlineExceeded", exhausted: false })),
      Effect.map((rows) => rows.length)
    )
})
