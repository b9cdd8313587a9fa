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
 * provides to module parts (plus the module's own configuration sections). A
 * module whose parts need anything else is not an `ApplicationModule`: it is a
 * type error where it is used (`Runtime.main({ modules: [orders] })`), whose
 * message names the services the runtime does not provide:
 *
 * ```
 * Type '{ readonly "ApplicationModule.make: the runtime does not provide": Mailer | Clock; }'
 *   is missing the following properties from type 'ApplicationModule': name
 * ```
 *
 * (The check is in `make`'s result rather than its parameter so that module
 * literals with inline effects still infer their types.)
 *
 * Provide such a service inside the part (`Effect.provide`), or as a
 * background layer's own dependency.
 *
 * Task sources (`sources`: schedules, webhooks, polling, a module's own
 * `TaskSource.make`) are run by the runtime where their placement says, and
 * their requirements are checked like the other parts'.
 *
 * A module may bring its own configuration sections (`config`: `[mail]`,
 * read from the same file, environment and flags, validated with everything
 * else before the node starts; its parts may require them) and its own
 * migrations (`migrations`: `{ "0001_orders": effect }`, applied after the
 * runtime's, tracked in the module's own table).
 */
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as HttpRouter from "effect/http/HttpRouter"
import type * as SqlClient from "effect/sql/SqlClient"
import type { PgClient } from "@effect/sql-pg"
import type { AuditLog } from "./AuditLog.ts"
import type * as ConfigSection from "./ConfigSection.ts"
import type { ConfigReloader } from "./ConfigReloader.ts"
import type { DatabaseUrl } from "./Database.ts"
import type { Contributor, HealthRegistry } from "./Health.ts"
import type * as Lane from "./Lane.ts"
import type { NodeIdentity } from "./NodeIdentity.ts"
import type { NodeRegistry } from "./NodeRegistry.ts"
import type { Notifications } from "./Notifications.ts"
import type * as NodeMode from "./NodeMode.ts"
import type { Problem } from "./RuntimeError.ts"
import type { RuntimeConfig } from "./RuntimeConfig.ts"
import type * as Task from "./Task.ts"
import type { TaskQueue } from "./TaskQueue.ts"
import type * as TaskSource from "./TaskSource.ts"
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
  | NodeRegistry
  | Notifications

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
  /** Readiness checks added to `/health/ready` on every node; they may use the runtime's services. */
  readonly health?: ReadonlyArray<Contributor<RuntimeServices>> | undefined
  readonly background?: ReadonlyArray<Background> | undefined
  /** Task handlers; every node knows the definitions, dispatching nodes run the handlers. */
  readonly tasks?: ReadonlyArray<Task.Handler<any, any, RuntimeServices>> | undefined
  /** Maintenance lanes (`Lane.make`), run beside the built-in ones, each with its own leader. */
  readonly lanes?: ReadonlyArray<Lane.Lane<unknown, RuntimeServices>> | undefined
  /** Task sources (`CronSource`, `WebhookSource`, `PollingSource`, `TaskSource.make`), run where their placement says. */
  readonly sources?: ReadonlyArray<TaskSource.TaskSource<RuntimeServices>> | undefined
  /** The module's configuration sections (`ConfigSection.make("mail", ...)`): TOML tables, `ASTERFORGE_*` variables, `--set`. */
  readonly config?: ReadonlyArray<ConfigSection.Any> | undefined
  /** The module's migrations, `{ "0001_create_orders": effect }`: applied in id order after the runtime's. */
  readonly migrations?: Migrations | undefined
}

/** Migrations by key `<id>_<name>` (`0001_create_orders`); each an effect on the database. */
export type Migrations = Readonly<Record<string, Effect.Effect<unknown, unknown, SqlClient.SqlClient>>>

/** What `make` accepts: the same parts, with whatever requirements; `make` checks them. */
export interface Parts {
  readonly name: string
  readonly routes?: Layer.Layer<never, never, any> | undefined
  readonly health?: ReadonlyArray<Contributor<unknown>> | undefined
  readonly background?: ReadonlyArray<Background<any>> | undefined
  readonly tasks?: ReadonlyArray<Task.Handler<any, any, any>> | undefined
  readonly lanes?: ReadonlyArray<Lane.Lane<unknown, any>> | undefined
  readonly sources?: ReadonlyArray<TaskSource.TaskSource<any>> | undefined
  readonly config?: ReadonlyArray<ConfigSection.Any> | undefined
  readonly migrations?: Migrations | undefined
}

type RequirementOf<Part, Shape> =
  Part extends ReadonlyArray<infer Item>
    ? RequirementOf<Item, Shape>
    : Shape extends "handler"
      ? Part extends Task.Handler<any, any, infer R>
        ? R
        : never
      : Shape extends "lane"
        ? Part extends Lane.Lane<unknown, infer R>
          ? R
          : never
        : Shape extends "source"
          ? Part extends TaskSource.TaskSource<infer R>
            ? R
            : never
          : Shape extends "check"
            ? Part extends Contributor<infer R>
              ? R
              : never
            : Part extends { readonly layer: Layer.Layer<never, never, infer R> }
              ? R
              : Part extends Layer.Layer<never, never, infer R>
                ? R
                : never

/** What the runtime provides to the parts of `M`: its services and `M`'s own configuration sections. */
type Provided<M extends Parts> = RuntimeServices | ConfigSection.TagOf<NonNullable<M["config"]>[number]>

/** The services the parts of `M` need that the runtime does not provide to them. */
export type Unprovided<M extends Parts> =
  | Exclude<RequirementOf<M["tasks"], "handler">, Provided<M>>
  | Exclude<RequirementOf<M["lanes"], "lane">, Provided<M>>
  | Exclude<RequirementOf<M["sources"], "source">, Provided<M>>
  | Exclude<RequirementOf<M["health"], "check">, Provided<M>>
  | Exclude<RequirementOf<M["background"], "layer">, Provided<M>>
  | Exclude<RequirementOf<M["routes"], "layer">, Provided<M> | HttpRouter.HttpRouter>

/** An `ApplicationModule` when every requirement is met; otherwise a type naming what is missing. */
export type Checked<M extends Parts> = [Unprovided<M>] extends [never]
  ? ApplicationModule
  : // `& {}` makes the message show the services themselves (`Mailer | Clock`), not the alias.
    { readonly "ApplicationModule.make: the runtime does not provide": Unprovided<M> & {} }

const moduleName = /^[a-z][a-z0-9_-]{0,62}$/
const migrationKey = /^(\d{1,9})_([a-z0-9_]+)$/

/**
 * The rules a set of modules must follow together, as problems (empty when
 * they fit): names unique and well-formed, task and lane names used once
 * (built-in lanes included), source names used once, migration keys `<id>_<name>` with unique ids.
 * `Runtime` checks them before anything starts.
 */
export const validate = (modules: ReadonlyArray<ApplicationModule>, reservedLanes: ReadonlyArray<string> = []): ReadonlyArray<Problem> => {
  const problems: Array<Problem> = []
  const firstOwner = (seen: Map<string, string>, key: string, owner: string): string | undefined => {
    const before = seen.get(key)
    if (before === undefined) seen.set(key, owner)
    return before
  }
  const modulesSeen = new Map<string, string>()
  const tasksSeen = new Map<string, string>()
  const lanesSeen = new Map<string, string>(reservedLanes.map((l) => [l, "the runtime (built-in lane)"]))
  const sourcesSeen = new Map<string, string>()
  for (const m of modules) {
    const where = `module ${JSON.stringify(m.name)}`
    if (!moduleName.test(m.name))
      problems.push({ key: where, message: "name must be lower-case letters, digits, _ or - (starting with a letter, at most 63)" })
    if (firstOwner(modulesSeen, m.name, m.name) !== undefined) problems.push({ key: where, message: "two modules have this name" })
    for (const t of m.tasks ?? []) {
      const other = firstOwner(tasksSeen, t.definition.name, m.name)
      if (other !== undefined)
        problems.push({ key: `${where} task ${t.definition.name}`, message: `registered twice (also in module ${JSON.stringify(other)})` })
    }
    for (const l of m.lanes ?? []) {
      const other = firstOwner(lanesSeen, l.name, `module ${JSON.stringify(m.name)}`)
      if (other !== undefined) problems.push({ key: `${where} lane ${l.name}`, message: `a lane of this name exists already (${other})` })
    }
    for (const source of m.sources ?? []) {
      const other = firstOwner(sourcesSeen, source.name, m.name)
      if (other !== undefined)
        problems.push({
          key: `${where} source ${source.name}`,
          message: `a source of this name exists already (in module ${JSON.stringify(other)})`
        })
    }
    const ids = new Map<number, string>()
    for (const key of Object.keys(m.migrations ?? {})) {
      const match = migrationKey.exec(key)
      if (match === null) {
        problems.push({ key: `${where} migration ${JSON.stringify(key)}`, message: 'keys must be <id>_<name>, e.g. "0001_create_orders"' })
        continue
      }
      const other = ids.get(Number(match[1]))
      if (other !== undefined)
        problems.push({ key: `${where} migration ${key}`, message: `id ${Number(match[1])} is used twice (also ${other})` })
      else ids.set(Number(match[1]), key)
    }
  }
  return problems
}

/**
 * Declares a module, checking once that the runtime provides every service
 * its handlers, lanes, routes and background layers need.
 *
 * @category constructors
 */
export const make = <M extends Parts>(module: M): Checked<M> => module as unknown as Checked<M>
