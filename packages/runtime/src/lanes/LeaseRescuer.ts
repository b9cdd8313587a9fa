/**
 * LeaseRescuer (lane "lease_rescue"): owns running tasks whose lease expired,
 * i.e. whose worker stopped heartbeating (crash, kill -9, partition, a stuck
 * event loop). Each goes back to `available` at once, or to `failed` when it
 * has no attempt left, or to `cancelled` when an admin asked to cancel it.
 * The attempt stays used and a `LeaseExpired` entry is appended to `errors`.
 * The old worker, should it come back, cannot write its late result: the row
 * is no longer `running`, so its completion is refused (leases.ts `finish`).
 */
import { Duration, Effect, Metric } from "effect"
import { SqlClient } from "effect/sql"
import * as AuditEvents from "../AuditEvents.ts"
import { AuditLog } from "../AuditLog.ts"
import * as TaskSql from "../internal/sql/taskMaintenance.ts"
import * as Lane from "../Lane.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Support from "./support.ts"

export const name = "lease_rescue"

export const defaults: {
  readonly interval: Duration.Input
  /** Rows per statement. */
  readonly batchSize: number
  /** Statements per pass at most. */
  readonly maxBatchesPerPass: number
} = {
  interval: "2 seconds",
  batchSize: 1000,
  maxBatchesPerPass: 10
}

/**
 * Audits and counts tasks taken from their worker (shared with NodeLiveness):
 * `task.failed` for each one out of attempts, the lease-rescue counter by
 * outcome (available, failed, cancelled).
 */
export const recordReleased = (
  released: ReadonlyArray<TaskSql.Released>,
  options: { readonly actor: string; readonly tag: string }
) =>
  Effect.gen(function*() {
    const audit = yield* AuditLog
    for (const t of released) {
      if (t.state === "failed") {
        yield* audit.record(AuditEvents.taskFailed({
          actor: options.actor,
          subject: t.id,
          details: { name: t.name, attempt: t.attempt, tag: options.tag, message: t.message, code: null, exhausted: true }
        }))
      }
    }
    const counts = { available: 0, failed: 0, cancelled: 0 }
    for (const t of released) counts[t.state]++
    for (const [outcome, n] of Object.entries(counts)) {
      if (n > 0) yield* Metric.update(Metric.withAttributes(Telemetry.metrics.leaseRescues, { outcome }), n)
    }
    return counts
  })

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
        const totals = { rescued: 0, failed: 0, cancelled: 0 }
        yield* Support.inBatches(
          { batchSize: o.batchSize, maxBatches: o.maxBatchesPerPass },
          Effect.gen(function*() {
            const released = yield* TaskSql.rescueExpiredLeases(sql, ctx.fence, { limit: o.batchSize })
            const counts = yield* recordReleased(released, { actor: AuditEvents.actors.lane(name), tag: "LeaseExpired" })
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
}
