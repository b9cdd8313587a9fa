/**
 * The built-in maintenance lanes.
 *
 * Each lane module exports its `name`, its options as a ConfigSection
 * `Config` named `maintenance.<lane>`, their decoded `defaults`, and
 * `make(options)`. This module lists them: `sections` (for RuntimeConfig to
 * assemble, so `[maintenance.promotion] batch_size = 500` reaches the lane),
 * `defaults` (every lane's, by name), and `builtIn(options, ...)`, the lanes a
 * node that runs lanes starts (each led by one node at a time, see Lane.ts).
 * Tests derive their lane lists from `builtIn`, so a new lane is covered by
 * the conformance and fencing tests as soon as it is listed here.
 */
import type * as ConfigSection from "../ConfigSection.ts"
import * as AuditRetention from "./AuditRetention.ts"
import * as CallbackRescuer from "./CallbackRescuer.ts"
import * as DeadlineRescuer from "./DeadlineRescuer.ts"
import * as LeaseRescuer from "./LeaseRescuer.ts"
import * as LoginFlowCleaner from "./LoginFlowCleaner.ts"
import * as NodeLiveness from "./NodeLiveness.ts"
import * as Promoter from "./Promoter.ts"
import * as Pruner from "./Pruner.ts"
import * as QueueStats from "./QueueStats.ts"
import * as SessionCleaner from "./SessionCleaner.ts"
import * as SystemHealth from "./SystemHealth.ts"

export * as AuditRetention from "./AuditRetention.ts"
export * as CallbackRescuer from "./CallbackRescuer.ts"
export * as DeadlineRescuer from "./DeadlineRescuer.ts"
export * as Kit from "./kit.ts"
export * as LeaseRescuer from "./LeaseRescuer.ts"
export * as LoginFlowCleaner from "./LoginFlowCleaner.ts"
export * as NodeLiveness from "./NodeLiveness.ts"
export * as Promoter from "./Promoter.ts"
export * as Pruner from "./Pruner.ts"
export * as QueueStats from "./QueueStats.ts"
export * as SessionCleaner from "./SessionCleaner.ts"
export * as SystemHealth from "./SystemHealth.ts"

/** Every built-in lane module, in the order `builtIn` starts their lanes. */
const modules = [
  Promoter,
  LeaseRescuer,
  DeadlineRescuer,
  CallbackRescuer,
  Pruner,
  AuditRetention,
  QueueStats,
  NodeLiveness,
  SystemHealth,
  SessionCleaner,
  LoginFlowCleaner
] as const

type Module = (typeof modules)[number]

/** Every built-in lane's configuration section (`maintenance.<lane>`), in `builtIn` order. */
export const sections: ReadonlyArray<Module["Config"]> = modules.map((m) => m.Config)

/** The decoded options of every built-in lane, by lane name. */
export type Options = { readonly [M in Module as M["name"]]: ConfigSection.TypeOf<M["Config"]> }

/** Every built-in lane's defaults, by lane name. */
export const defaults: Options = {
  promotion: Promoter.defaults,
  lease_rescue: LeaseRescuer.defaults,
  deadline_rescue: DeadlineRescuer.defaults,
  callback_rescue: CallbackRescuer.defaults,
  pruning: Pruner.defaults,
  audit_retention: AuditRetention.defaults,
  queue_stats: QueueStats.defaults,
  node_liveness: NodeLiveness.defaults,
  system_health: SystemHealth.defaults,
  session_cleanup: SessionCleaner.defaults,
  login_flow_cleanup: LoginFlowCleaner.defaults
}

/** The options of every lane from their decoded sections (`RuntimeConfig` assembles them this way). */
export const optionsFrom = (valueFor: (section: ConfigSection.Any) => unknown): Options =>
  Object.fromEntries(modules.map((m) => [m.name, valueFor(m.Config)])) as unknown as Options

/** Every built-in lane, made with its resolved options (the decoded `maintenance.<lane>` sections). */
export const builtIn = (options: Options) =>
  [
    Promoter.make(options.promotion),
    LeaseRescuer.make(options.lease_rescue),
    DeadlineRescuer.make(options.deadline_rescue),
    CallbackRescuer.make(options.callback_rescue),
    Pruner.make(options.pruning),
    AuditRetention.make(options.audit_retention),
    QueueStats.make(options.queue_stats),
    NodeLiveness.make(options.node_liveness),
    SystemHealth.make(options.system_health),
    SessionCleaner.make(options.session_cleanup),
    LoginFlowCleaner.make(options.login_flow_cleanup)
  ] as const
