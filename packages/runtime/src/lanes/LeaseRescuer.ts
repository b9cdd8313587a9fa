/**
 * LeaseRescuer (lane "lease_rescue"): owns running tasks whose lease expired,
 * i.e. whose worker stopped heartbeating (crash, kill -9, partition, a stuck
 * event loop). Each goes back to `available` at once, or to `failed` when it
 * has no attempt left, or to `cancelled` when an admin asked to cancel it.
 * The attempt stays used and a `LeaseExpired` entry is appended to `errors`.
 * The old worker, should it come back, cannot write its late result: the row
 * is no longer `running`, so its completion is refused (leases.ts `finish`).
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as ConfigSection from "../ConfigSection.ts"
import * as TaskSql from "../internal/sql/taskMaintenance.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Kit from "./kit.ts"

/** The lane\'s name: its leadership key, its metrics label, and the suffix of its config section. */
export const name = "lease_rescue"

/** `[maintenance.lease_rescue]`: `interval`, `batch_size`, `max_batches_per_pass`. */
export const Config = Kit.section(
  name,
  {
    interval: Kit.interval("2 seconds"),
    ...Kit.batches({ maxBatchesPerPass: 10 })
  },
  "release of running tasks whose lease expired"
)

/** The decoded defaults of `Config`. */
export const defaults = ConfigSection.defaults(Config)

/**
 * Audits and counts tasks taken from their worker (shared with NodeLiveness):
 * `task.failed` for each one out of attempts, the lease-rescue counter by
 * outcome (available, failed, cancelled).
 */
export const recordReleased = (lane: string, released: ReadonlyArray<TaskSql.Released>, tag: string) =>
  Effect.gen(function* () {
    yield* Kit.auditTasksFailed(
      lane,
      released.filter((t) => t.state === "failed"),
      { tag, exhausted: true }
    )
    const counts = { available: 0, failed: 0, cancelled: 0 }
    for (const t of released) counts[t.state]++
    for (const [outcome, n] of Object.entries(counts)) {
      if (n > 0) yield* Metric.update(Telemetry.labelled(Telemetry.metrics.leaseRescues, { outcome }), n)
    }
    return counts
  })

/** The lane, with `options` over `defaults` (every bad or unknown option is thrown, by name). Counts `rescued`, `failed`, `cancelled`. */
export const make = Kit.lane({
  name,
  config: Config,
  pass: (o) => (ctx, sql) =>
    Effect.gen(function* () {
      const totals = { rescued: 0, failed: 0, cancelled: 0 }
      yield* Kit.inBatches(
        o,
        Effect.gen(function* () {
          const released = yield* TaskSql.rescueExpiredLeases(sql, ctx.fence, { limit: o.batchSize })
          const counts = yield* recordReleased(name, released, "LeaseExpired")
          totals.rescued += counts.available
          totals.failed += counts.failed
          totals.cancelled += counts.cancelled
          return released.length
        })
      )
      const total = totals.rescued + totals.failed + totals.cancelled
      if (total > 0) {
        yield* Effect.logWarning(
          `rescued ${total} task(s) whose lease expired: ${totals.rescued} available again, ${totals.failed} failed (no attempt left), ${totals.cancelled} cancelled`
        )
      }
      return totals
    })
})
