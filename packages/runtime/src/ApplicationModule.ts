/**
 * ApplicationModule: what a downstream app registers with the runtime, and the
 * one place where what its parts require is checked.
 *
 * A module is a name plus optional parts: task handlers, maintenance lanes,
 * HTTP routes (served by nodes with the full API), readiness checks, and
 * background layers, each declaring which nodes run it. The runtime, not the
 * module, decides where each part runs, from the node's role (see NodeMode).
 *
 * Handlers (`Task.handler`) and lanes (`Lane.make`) keep their requirements
 * generic; `make` checks them once against `RuntimeServices`, what the runtime
 * provides to module parts. A part that needs anything else is a type error at
 * `make`, whose message names the services the runtime does not provide:
 *
 * ```
 * Property '"ApplicationModule.make: the runtime does not provide"' is missing in type ...
 *   but required in type '{ readonly "ApplicationModule.make: the runtime does not provide": Mailer | Clock; }'
 * ```
 *
 * Provide such a service inside the part (`Effect.provide`), or as a
 * background layer's own dependency.
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

/** The services the runtime provides to every module part (routes get `HttpRouter` too). */
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

/** A long-running layer of a module, started on the nodes `runsOn` names. */
export interface Background<R = RuntimeServices> {
  readonly name: string
  readonly runsOn: RunsOn
  readonly layer: Layer.Layer<never, never, R>
}

/** A module whose parts need only what the runtime provides: what `make` returns and `Runtime` runs. */
export interface ApplicationModule {
  readonly name: string
  /** Routes for nodes with the full API (primary, follower). */
  readonly routes?: Layer.Layer<never, never, HttpRouter.HttpRouter | RuntimeServices> | undefined
  /** Readiness checks added to `/health/ready` on every node. */
  readonly health?: ReadonlyArray<Contributor> | undefined
  readonly background?: ReadonlyArray<Background> | undefined
  /** Task handlers; every node knows the definitions, dispatching nodes run the handlers. */
  readonly tasks?: ReadonlyArray<Task.Handler<any, any, RuntimeServices>> | undefined
  /** Maintenance lanes (`Lane.make`), run beside the built-in ones, each with its own leader. */
  readonly lanes?: ReadonlyArray<Lane.Lane<unknown, RuntimeServices>> | undefined
}

/** What `make` accepts: the same parts, with whatever requirements; `make` checks them. */
export interface Parts {
  readonly name: string
  readonly routes?: Layer.Layer<never, never, any> | undefined
  readonly health?: ReadonlyArray<Contributor> | undefined
  readonly background?: ReadonlyArray<Background<any>> | undefined
  readonly tasks?: ReadonlyArray<Task.Handler<any, any, any>> | undefined
  readonly lanes?: ReadonlyArray<Lane.Lane<unknown, any>> | undefined
}

type RequirementOf<Part, Shape> = Part extends ReadonlyArray<infer Item> ? RequirementOf<Item, Shape>
  : Shape extends "handler" ? (Part extends Task.Handler<any, any, infer R> ? R : never)
  : Shape extends "lane" ? (Part extends Lane.Lane<unknown, infer R> ? R : never)
  : Part extends { readonly layer: Layer.Layer<never, never, infer R> } ? R
  : Part extends Layer.Layer<never, never, infer R> ? R
  : never

/** The services the parts of `M` need that the runtime does not provide to them. */
export type Unprovided<M extends Parts> =
  | Exclude<RequirementOf<M["tasks"], "handler">, RuntimeServices>
  | Exclude<RequirementOf<M["lanes"], "lane">, RuntimeServices>
  | Exclude<RequirementOf<M["background"], "layer">, RuntimeServices>
  | Exclude<RequirementOf<M["routes"], "layer">, RuntimeServices | HttpRouter.HttpRouter>

/** Nothing when every requirement is met; otherwise a property no module has, naming what is missing. */
export type Checked<M extends Parts> = [Unprovided<M>] extends [never] ? unknown
  // `& {}` makes the message show the services themselves (`Mailer | Clock`), not the alias.
  : { readonly "ApplicationModule.make: the runtime does not provide": Unprovided<M> & {} }

/**
 * Declares a module, checking once that the runtime provides every service
 * its handlers, lanes, routes and background layers need.
 *
 * @category constructors
 */
export const make = <M extends Parts>(module: M & Checked<M>): ApplicationModule => module as ApplicationModule
