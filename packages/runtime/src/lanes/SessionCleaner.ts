/**
 * SessionCleaner (lane "session_cleanup"): owns the removal of admin API
 * browser sessions past their expiry (`control_sessions.expires_at`: the
 * earlier of the absolute and the idle expiry). A look-up never accepts an
 * expired session, so the lane only keeps the table small.
 */
import * as Effect from "effect/Effect"
import * as ConfigSection from "../ConfigSection.ts"
import * as ControlSessionsSql from "../internal/sql/controlSessions.ts"
import * as Kit from "./kit.ts"

/** The lane\'s name: its leadership key, its metrics label, and the suffix of its config section. */
export const name = "session_cleanup"

/** `[maintenance.session_cleanup]`: `interval`, `batch_size`, `max_batches_per_pass`. */
export const Config = Kit.section(
  name,
  { interval: Kit.interval("1 minute"), ...Kit.batches({ maxBatchesPerPass: 10 }) },
  "deletion of expired admin API sessions"
)

/** The decoded defaults of `Config`. */
export const defaults = ConfigSection.defaults(Config)

/** The lane, with `options` over `defaults` (every bad or unknown option is thrown, by name). */
export const make = Kit.batched({
  name,
  config: Config,
  count: "deleted",
  statement: (sql, fence, o) => ControlSessionsSql.removeExpired(sql, fence, { limit: o.batchSize }).pipe(Effect.map(Kit.count("deleted")))
})
