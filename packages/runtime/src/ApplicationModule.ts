/**
 * ApplicationModule: what a downstream app registers with the runtime.
 *
 * A module is a name plus optional parts: HTTP routes (served by nodes with the
 * full API), readiness checks, and background layers, each declaring which
 * nodes run it. The runtime, not the module, decides where each part runs, from
 * the node's role (see NodeMode).
 */
import type { Layer } from "effect"
import type { HttpRouter } from "effect/http"
import type { SqlClient } from "effect/sql"
import type { PgClient } from "@effect/sql-pg"
import type { AuditLog } from "./AuditLog.ts"
import type { ConfigReloader } from "./ConfigReloader.ts"
import type { DatabaseUrl } from "./Database.ts"
import type { Contributor, HealthRegistry } from "./Health.ts"
import type * as Lane from "./Lane.ts"
import type { NodeIdentity } from "./NodeIdentity.ts"
import type * as NodeMode from "./NodeMode.ts"
import type { RuntimeConfig } from "./RuntimeConfig.ts"
import type * as Task from "./Task.ts"
import type { TaskQueue } from "./TaskQueue.ts"
import type { TaskRegistry } from "./TaskRegistry.ts"
import type { LogLevelControl } from "./Telemetry.ts"

/** The services the runtime provides to every module part. */
export type RuntimeServices =
  | RuntimeConfig
  | NodeIdentity
  | LogLevelControl
  | DatabaseUrl
  | SqlClient.SqlClient
  | PgClient.PgClient
  | AuditLog
  | HealthRegistry
  | ConfigReloader
  | TaskQueue
  | TaskRegistry

/** Which nodes run a background part: every node, or only nodes whose role has the flag. */
export type RunsOn = "every-node" | keyof Pick<NodeMode.Role, "runsLanes" | "dispatches">

export interface Background {
  readonly name: string
  readonly runsOn: RunsOn
  readonly layer: Layer.Layer<never, never, RuntimeServices>
}

export interface ApplicationModule {
  readonly name: string
  /** Routes for nodes with the full API (primary, follower). */
  readonly routes?: Layer.Layer<never, never, HttpRouter.HttpRouter | RuntimeServices> | undefined
  /** Readiness checks added to `/health/ready` on every node. */
  readonly health?: ReadonlyArray<Contributor> | undefined
  readonly background?: ReadonlyArray<Background> | undefined
  /** Task handlers; every node knows the definitions, dispatching nodes run the handlers. */
  readonly tasks?: ReadonlyArray<Task.Handler> | undefined
  /** Maintenance lanes (`Lane.make`), run beside the built-in ones, each with its own leader. */
  readonly lanes?: ReadonlyArray<Lane.Lane<unknown, RuntimeServices>> | undefined
}

/** Identity, for type inference at the call site. */
export const make = (module: ApplicationModule): ApplicationModule => module
