/**
 * AuditRetention (lane "audit_retention"): owns the removal of audit events
 * older than `retention` (90 days), by their `at`. Nothing else ever deletes
 * from audit_events.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ConfigSection from "../ConfigSection.ts"
import * as AuditEventsSql from "../internal/sql/auditEvents.ts"
import * as Kit from "./kit.ts"

/** The lane\'s name: its leadership key, its metrics label, and the suffix of its config section. */
export const name = "audit_retention"

/** `[maintenance.audit_retention]`: `interval`, `retention`, `batch_size`, `max_batches_per_pass`. */
export const Config = Kit.section(
  name,
  {
    interval: Kit.interval("10 minutes"),
    retention: Kit.duration("90 days", "audit events are kept this long"),
    // Audit volume can be high: up to 100k rows per pass by default.
    ...Kit.batches({ maxBatchesPerPass: 100 })
  },
  "deletion of audit events past their retention"
)

/** The decoded defaults of `Config`. */
export const defaults = ConfigSection.defaults(Config)

/** The lane, with `options` over `defaults` (every bad or unknown option is thrown, by name). */
export const make = Kit.batched({
  name,
  config: Config,
  count: "deleted",
  statement: (sql, fence, o) =>
    AuditEventsSql.prune(sql, fence, { retentionMs: Duration.toMillis(o.retention), limit: o.batchSize }).pipe(
      Effect.map(Kit.count("deleted"))
    )
})
