/**
 * LoginFlowCleaner (lane "login_flow_cleanup"): owns the removal of OIDC login
 * flows that never came back from the provider (`control_login_flows` past
 * `expires_at`, `security.oidc.flow_ttl` after they began). A callback never
 * accepts an expired flow, so the lane only keeps the table small.
 */
import * as Effect from "effect/Effect"
import * as ConfigSection from "../ConfigSection.ts"
import * as LoginFlowsSql from "../internal/sql/controlLoginFlows.ts"
import * as Kit from "./kit.ts"

/** The lane\'s name: its leadership key, its metrics label, and the suffix of its config section. */
export const name = "login_flow_cleanup"

/** `[maintenance.login_flow_cleanup]`: `interval`, `batch_size`, `max_batches_per_pass`. */
export const Config = Kit.section(
  name,
  { interval: Kit.interval("1 minute"), ...Kit.batches({ maxBatchesPerPass: 10 }) },
  "deletion of OIDC login flows that expired before their callback"
)

/** The decoded defaults of `Config`. */
export const defaults = ConfigSection.defaults(Config)

/** The lane, with `options` over `defaults` (every bad or unknown option is thrown, by name). */
export const make = Kit.batched({
  name,
  config: Config,
  count: "deleted",
  statement: (sql, fence, o) => LoginFlowsSql.removeExpired(sql, fence, { limit: o.batchSize }).pipe(Effect.map(Kit.count("deleted")))
})
