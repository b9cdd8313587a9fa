/**
 * Runtime: composes a node from Layers, and runs it as a process.
 *
 * `layer({ config, modules })` picks the Layers for the configured mode; the
 * dependency graph is also the shutdown order (see DESIGN.md):
 *
 *   config, identity, logger, task registry -> database (+ migrations)
 *     -> audit log -> health registry -> config reloader -> task queue
 *     -> node row -> dispatcher, maintenance (leadership + lanes), module parts
 *     -> task sources -> HTTP server -> shutdown trigger
 *
 * Finalizers run in reverse: readiness 503, HTTP drains, task sources stop
 * (before the dispatcher drains: nothing is published into a node that is
 * going away), module parts stop, the node row is marked stopped, the audit buffer flushes, the pool closes and an
 * embedded Postgres stops. `run` is the process entry: it maps exits to codes
 * and arms the shutdown watchdog on the first stop signal.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as EffectRuntime from "effect/Runtime"
import type * as HttpRouter from "effect/http/HttpRouter"
import * as Command from "effect/cli/Command"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Path from "node:path"
import * as ApplicationModule from "./ApplicationModule.ts"
import * as AuditLog from "./AuditLog.ts"
import * as Dispatcher from "./Dispatcher.ts"
import * as BuiltInLanes from "./lanes/index.ts"
import * as Leadership from "./Leadership.ts"
import * as Maintenance from "./Maintenance.ts"
import * as CallbackRoutes from "./http/CallbackRoutes.ts"
import * as ConfigReloader from "./ConfigReloader.ts"
import * as CronSource from "./sources/Cron.ts"
import * as SourceRunner from "./sources/Runner.ts"
import * as ControlPlane from "./ControlPlane.ts"
import * as AdminUi from "./http/AdminUi.ts"
import * as Database from "./Database.ts"
import * as Health from "./Health.ts"
import * as HealthRoutes from "./http/HealthRoutes.ts"
import * as HttpServerLayer from "./http/Server.ts"
import * as NodeCli from "./NodeCli.ts"
import * as NodeIdentity from "./NodeIdentity.ts"
import * as NodeMode from "./NodeMode.ts"
import * as NodeRegistry from "./NodeRegistry.ts"
import * as Notifications from "./Notifications.ts"
import * as RuntimeConfig from "./RuntimeConfig.ts"
import * as RuntimeError from "./RuntimeError.ts"
import * as Shutdown from "./Shutdown.ts"
import * as TaskQueue from "./TaskQueue.ts"
import * as TaskRegistry from "./TaskRegistry.ts"
import * as Telemetry from "./Telemetry.ts"

export interface Options {
  readonly config: RuntimeConfig.RuntimeConfigShape
  /** How lanes elect leaders; default per-lane advisory locks. Tests may use `Leadership.layerAlways`. */
  readonly leadership?: typeof Leadership.layerAdvisoryLock | undefined
  /** Overrides `server.start_mode`. */
  readonly mode?: NodeMode.Name | undefined
  readonly modules?: ReadonlyArray<ApplicationModule.ApplicationModule> | undefined
}

/** Everything below the module parts: what every node has, whatever its mode. */
export const coreLayer = (
  config: RuntimeConfig.RuntimeConfigShape,
  mode: NodeMode.Name,
  modules: ReadonlyArray<ApplicationModule.ApplicationModule> = []
) => {
  const role = NodeMode.roleFor(mode, { inlineWorker: config.worker.inline })
  const handlers = modules.flatMap((m) => m.tasks ?? [])
  // The checks first: nothing else is built (no logger, no database) when they fail.
  const foundation = Layer.mergeAll(
    Database.layerMigrationSets(modules),
    RuntimeConfig.layer(config),
    NodeIdentity.layer({ mode, role, name: config.server.nodeName }),
    Telemetry.loggerLayer({ format: config.telemetry.logFormat, level: config.telemetry.logLevel }),
    Telemetry.tracingLayer({
      endpoint: config.telemetry.otlpEndpoint,
      serviceVersion: NodeIdentity.version,
      attributes: { "asterforge.node.mode": mode, "asterforge.node.name": config.server.nodeName }
    }),
    TaskRegistry.layer(handlers)
  ).pipe(Layer.provideMerge(preflight(config, role, modules)))
  return Layer.mergeAll(NodeRegistry.layer, Health.layerDatabaseChecks, Database.layerPoolMetrics, Notifications.layer).pipe(
    Layer.provideMerge(TaskQueue.layer),
    Layer.provideMerge(ConfigReloader.layer),
    Layer.provideMerge(Health.layerRegistry),
    Layer.provideMerge(AuditLog.layerBuffered),
    Layer.provideMerge(Database.layer),
    Layer.provideMerge(foundation)
  )
}

/**
 * Rules that need the modules as well as the configuration (the dispatcher's
 * queues come from the registered tasks): checked first, so a node that cannot
 * run fails before it connects to anything.
 */
const preflight = (
  config: RuntimeConfig.RuntimeConfigShape,
  role: NodeMode.Role,
  modules: ReadonlyArray<ApplicationModule.ApplicationModule>
) =>
  Layer.effectDiscard(
    Effect.suspend(() => {
      const builtInLanes = BuiltInLanes.builtIn(config.maintenance.lanes).map((l) => l.name)
      const moduleProblems = ApplicationModule.validate(modules, builtInLanes)
      if (moduleProblems.length > 0) return RuntimeError.fail(new RuntimeError.ModuleInvalid({ problems: moduleProblems }))
      const queues = modules.flatMap((m) => (m.tasks ?? []).map((h) => h.definition.queue))
      const problems = role.dispatches ? Dispatcher.queuePlan(config.worker, queues).problems : []
      return problems.length === 0 ? Effect.void : RuntimeError.fail(new RuntimeError.ConfigInvalid({ problems }))
    })
  )

/**
 * The admin API (HttpApi, its OpenAPI document, Swagger, OIDC sign-in), loaded
 * only by the roles that serve it: a worker or maintenance node never holds
 * its code (about 3 MiB of RSS).
 */
const adminRoutes = Layer.unwrap(Effect.promise(() => import("./http/admin/Routes.ts")).pipe(Effect.map((routes) => routes.layer)))

const runsHere =
  (role: NodeMode.Role) =>
  (b: ApplicationModule.Background): boolean =>
    b.runsOn === "every-node" || role[b.runsOn]

/**
 * What this node's role adds on top of the core: the dispatcher (dispatching
 * roles), module background work placed by role, module health checks, the
 * task sources (leader-placed ones lead only on nodes that run lanes), and the
 * HTTP routes (full API roles get the admin API and its web UI, module routes,
 * source routes and callbacks).
 */
const roleParts = (
  role: NodeMode.Role,
  config: RuntimeConfig.RuntimeConfigShape,
  modules: ReadonlyArray<ApplicationModule.ApplicationModule>,
  leadership: typeof Leadership.layerAdvisoryLock
) => {
  const background = modules.flatMap((m) => (m.background ?? []).filter(runsHere(role)).map((b) => b.layer))
  const checks = modules.flatMap((m) => m.health ?? [])
  // A module's checks may use the runtime's services: they run with this layer's context.
  const health = Layer.effectDiscard(
    Effect.gen(function* () {
      const registry = yield* Health.HealthRegistry
      const context = yield* Effect.context<ApplicationModule.RuntimeServices>()
      for (const c of checks) yield* registry.register({ ...c, check: Effect.provideContext(c.check, context) })
    })
  )
  const dispatcher = role.dispatches ? [Dispatcher.layer] : []
  const lanes = [...BuiltInLanes.builtIn(config.maintenance.lanes), ...modules.flatMap((m) => m.lanes ?? [])]
  const maintenance = role.runsLanes ? [Maintenance.layer(lanes).pipe(Layer.provide(leadership))] : []
  const allSources = modules.flatMap((m) => m.sources ?? [])
  const sources = Layer.mergeAll(
    SourceRunner.layer(allSources).pipe(Layer.provide(role.runsLanes ? leadership : Leadership.layerNever)),
    CronSource.layerSchedules(allSources)
  )
  const routes = role.fullApi
    ? [
        CallbackRoutes.layer,
        adminRoutes,
        AdminUi.layer(),
        ...modules.flatMap((m) => (m.routes ? [m.routes] : [])),
        SourceRunner.routes(allSources)
      ]
    : []
  return {
    work: Layer.mergeAll(health, ControlPlane.layerReadiness, ...dispatcher, ...maintenance, ...background),
    sources,
    routes: Layer.mergeAll(HealthRoutes.layer, ...routes)
  }
}

/** A whole node for the configured (or given) mode. */
export const layer = (options: Options) => {
  const mode = options.mode ?? options.config.server.startMode
  const config = { ...options.config, server: { ...options.config.server, startMode: mode } }
  const modules = options.modules ?? []
  const parts = roleParts(
    NodeMode.roleFor(mode, { inlineWorker: config.worker.inline }),
    config,
    modules,
    options.leadership ?? Leadership.layerAdvisoryLock
  )
  // Sources sit above the work: on shutdown they stop before the dispatcher drains.
  return Shutdown.layer.pipe(
    Layer.provideMerge(
      HttpServerLayer.layer(
        parts.routes as Layer.Layer<never, never, HttpRouter.HttpRouter | SourceRunner.Sources | ApplicationModule.RuntimeServices>
      )
    ),
    Layer.provideMerge(parts.sources),
    Layer.provideMerge(parts.work),
    Layer.provideMerge(coreLayer(config, mode, modules))
  )
}

/** Renders a failure for an operator: one screen, no stack trace for errors we understand. */
export const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const failure = cause.reasons.find(Cause.isFailReason)
  const error: unknown = failure?.error
  // A configuration or module failure is already one readable screen (every problem listed); other reasons are one line.
  if (RuntimeError.isRuntimeError(error)) {
    return error.reason._tag === "ConfigInvalid" || error.reason._tag === "ModuleInvalid" ? error.message : `error: ${error.message}`
  }
  return `error: unexpected failure\n${Cause.pretty(cause)}`
}

const stopSignals = ["SIGTERM", "SIGINT"] as const

/**
 * Runs `program` as the process: exit 0 on success or on a stop signal, exit 1
 * with a readable message on failure. The first stop signal arms the watchdog.
 */
export const run = <E>(
  program: Effect.Effect<unknown, E>,
  options: {
    /** The shutdown settings once the configuration is known (defaults before). */
    readonly shutdown: () => Pick<Shutdown.Config, "timeout" | "onParentExit">
  }
): void => {
  for (const signal of stopSignals) {
    process.once(signal, () => Shutdown.armWatchdog(options.shutdown().timeout, signal))
  }
  Shutdown.watchParent(() => options.shutdown().onParentExit)
  Shutdown.attachProcess()
  NodeRuntime.runMain(program, {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return onExit(Shutdown.stopExitCode())
      // Errors that already told the user (the CLI's help and parse errors) carry their own code.
      const error = exit.cause.reasons.find(Cause.isFailReason)?.error as Record<PropertyKey, unknown> | undefined
      if (error && typeof error[EffectRuntime.errorExitCode] === "number" && error[EffectRuntime.errorReported] === false) {
        return onExit(error[EffectRuntime.errorExitCode] as number)
      }
      process.stderr.write(describeFailure(exit.cause) + "\n")
      onExit(1)
    }
  })
}

/** Builds a node and keeps it running until a stop signal. */
export const launch = (options: Options) => Layer.launch(layer(options))

/**
 * The whole entry point of an application: its command line (`start [--mode
 * M]`, `worker`, `maintenance run`, `migrate`, `config check`, `--help` on
 * each; see NodeCli), so one binary runs every role of the app:
 *
 * ```sh
 * node app.js migrate
 * node app.js start                      # a primary
 * node app.js start --mode follower --port 3001
 * ```
 *
 * Configuration comes from `--config`/`ASTERFORGE_CONFIG`/`./asterforge.toml`,
 * the environment and the flags; invalid configuration exits 1 with every
 * problem listed, before anything starts.
 *
 * @category entry points
 */
export const main = (
  options: {
    readonly modules?: ReadonlyArray<ApplicationModule.ApplicationModule> | undefined
    /** The program's name in help (default: the script's file name). */
    readonly name?: string | undefined
    readonly version?: string | undefined
    readonly description?: string | undefined
    /** More subcommands beside the node's own. */
    readonly commands?: NodeCli.Options["commands"]
  } = {}
): void => {
  const modules = options.modules ?? []
  const version = options.version ?? NodeIdentity.version
  const cli = NodeCli.make({
    name: options.name ?? Path.basename(process.argv[1] ?? "app").replace(/\.[cm]?[jt]s$/, ""),
    version,
    description: options.description ?? "an AsterForge node: run it in any role, migrate its database, check its configuration",
    modules,
    launch: (config) => launch({ config, modules }),
    commands: options.commands
  })
  run(cli.command.pipe(Command.run({ version }), Effect.provide(NodeServices.layer)), { shutdown: cli.shutdown })
}
