/**
 * Promoter (lane "promotion"): owns the move of due `scheduled` and
 * `retryable` tasks to `available`, and the NOTIFY that wakes idle
 * dispatchers of their queues. Claims also take due scheduled/retryable rows
 * directly, so promotion is what makes due work visible as `available` (admin
 * views, queue stats) and what wakes a dispatcher that is sleeping until its
 * poll interval when a delayed task falls due.
 */
import { Duration, Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as TaskSql from "../internal/sql/taskMaintenance.ts"
import * as Lane from "../Lane.ts"
import * as Support from "./support.ts"

export const name = "promotion"

export const defaults: {
  readonly interval: Duration.Input
  /** Rows per statement. */
  readonly batchSize: number
  /** Statements per pass at most; the rest waits for the next pass. */
  readonly maxBatchesPerPass: number
} = {
  interval: "200 millis",
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
        const promoted = yield* Support.inBatches(
          { batchSize: o.batchSize, maxBatches: o.maxBatchesPerPass },
          TaskSql.promoteDue(sql, ctx.fence, { limit: o.batchSize }).pipe(
            Effect.map((queues) => queues.reduce((n, q) => n + q.promoted, 0))
          )
        )
        return { promoted }
      })
  })
}
