/**
 * Promoter (lane "promotion"): owns the move of due `scheduled` and
 * `retryable` tasks to `available`, and the NOTIFY that wakes idle
 * dispatchers of their queues. Claims also take due scheduled/retryable rows
 * directly, so promotion is what makes due work visible as `available` (admin
 * views, queue stats) and what wakes a dispatcher that is sleeping until its
 * poll interval when a delayed task falls due.
 */
import * as Effect from "effect/Effect"
import * as ConfigSection from "../ConfigSection.ts"
import * as TaskSql from "../internal/sql/taskMaintenance.ts"
import * as Kit from "./kit.ts"

/** The lane\'s name: its leadership key, its metrics label, and the suffix of its config section. */
export const name = "promotion"

/** `[maintenance.promotion]`: `interval`, `batch_size`, `max_batches_per_pass`. */
export const Config = Kit.section(
  name,
  {
    interval: Kit.interval("200 millis"),
    ...Kit.batches({ maxBatchesPerPass: 10 })
  },
  "promotion of due scheduled and retryable tasks to available"
)

/** The decoded defaults of `Config`. */
export const defaults = ConfigSection.defaults(Config)

/** The lane, with `options` over `defaults` (every bad or unknown option is thrown, by name). */
export const make = Kit.batched({
  name,
  config: Config,
  count: "promoted",
  statement: (sql, fence, o) =>
    TaskSql.promoteDue(sql, fence, { limit: o.batchSize }).pipe(Effect.map((queues) => queues.reduce((n, q) => n + q.promoted, 0)))
})
