/**
 * The built-in maintenance lanes. `builtIn(config)` is the list a node that
 * runs lanes starts (each led by one node at a time, see Lane.ts); every lane
 * module also exports its `defaults` and `make(options)` for other settings.
 */
import type * as Lane from "../Lane.ts"
import type * as RuntimeConfig from "../RuntimeConfig.ts"
import * as AuditRetention from "./AuditRetention.ts"
import * as CallbackRescuer from "./CallbackRescuer.ts"
import * as DeadlineRescuer from "./DeadlineRescuer.ts"
import * as LeaseRescuer from "./LeaseRescuer.ts"
import * as NodeLiveness from "./NodeLiveness.ts"
import * as Promoter from "./Promoter.ts"
import * as Pruner from "./Pruner.ts"
import * as QueueStats from "./QueueStats.ts"
import * as SystemHealth from "./SystemHealth.ts"

export * as AuditRetention from "./AuditRetention.ts"
export * as CallbackRescuer from "./CallbackRescuer.ts"
export * as DeadlineRescuer from "./DeadlineRescuer.ts"
export * as LeaseRescuer from "./LeaseRescuer.ts"
export * as NodeLiveness from "./NodeLiveness.ts"
export * as Promoter from "./Promoter.ts"
export * as Pruner from "./Pruner.ts"
export * as QueueStats from "./QueueStats.ts"
export * as SystemHealth from "./SystemHealth.ts"

/** Every built-in lane with its defaults; node liveness judges heartbeats by the configured period. */
export const builtIn = (config: RuntimeConfig.RuntimeConfigShape): ReadonlyArray<Lane.Lane> => [
  Promoter.make(),
  LeaseRescuer.make(),
  DeadlineRescuer.make(),
  CallbackRescuer.make(),
  Pruner.make(),
  AuditRetention.make(),
  QueueStats.make(),
  NodeLiveness.make({ heartbeatInterval: config.node.heartbeatInterval }),
  SystemHealth.make()
]
