/**
 * NodeCli: the command line every node binary has: `start [--mode M]`,
 * `worker`, `maintenance run`, `migrate`, `config check`, each with `--help`.
 *
 * An application's entry point (`Runtime.main({ modules })`) and the bare
 * `asterforge` command are the same program with different modules, so one
 * binary runs every role of its app: `node app.js start --mode follower`.
 * Flags feed the configuration as its highest-priority source, so a bad
 * `--port` is reported with every other problem, each with the key that
 * caused it, and the process exits 1 before anything starts.
 *
 * Starting a node is injected (`launch`), so this module does not depend on
 * how `Runtime` composes one.
 *
 * @since 0.2.0
 */
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import type * as ApplicationModule from "./ApplicationModule.ts"
import * as Database from "./Database.ts"
import * as NodeIdentity from "./NodeIdentity.ts"
import * as NodeMode from "./NodeMode.ts"
import * as RuntimeConfig from "./RuntimeConfig.ts"
import type * as Shutdown from "./Shutdown.ts"
import type { RuntimeError } from "./RuntimeError.ts"
import * as Telemetry from "./Telemetry.ts"

export interface Options {
  /** The program's name in help and usage lines (`asterforge`, `orders`). */
  readonly name: string
  readonly version: string
  readonly description: string
  readonly modules: ReadonlyArray<ApplicationModule.ApplicationModule>
  /** Runs a node with the resolved configuration until a stop signal. */
  readonly launch: (config: RuntimeConfig.RuntimeConfigShape) => Effect.Effect<never, RuntimeError>
  /**
   * More subcommands (the `asterforge` command adds the admin ones); as a
   * function, they get the command line's configuration resolution.
   */
  readonly commands?:
    | ReadonlyArray<Command.Command<any, any, any, any, any>>
    | ((context: CommandContext) => ReadonlyArray<Command.Command<any, any, any, any, any>>)
    | undefined
}

/**
 * What added commands get: the configuration as every command resolves it
 * (`--config`/`-c` before or after the command, the environment, the given
 * `--database-url` and `--set` flags), and the program's modules.
 */
export interface CommandContext {
  readonly resolveConfig: (flags: {
    readonly databaseUrl: Option.Option<string>
    readonly set: ReadonlyArray<string>
  }) => Effect.Effect<RuntimeConfig.RuntimeConfigShape, RuntimeError, Command.CommandContext<string>>
  readonly modules: ReadonlyArray<ApplicationModule.ApplicationModule>
  /** The shared `--database-url` and `--set` flags, to add to a command's own. */
  readonly flags: {
    readonly databaseUrl: Flag.Flag<Option.Option<string>>
    readonly set: Flag.Flag<ReadonlyArray<string>>
  }
}

/** A command line, and the shutdown settings the watchdog and the parent watch use once the configuration is known. */
export interface NodeCli {
  readonly command: Command.Command<string, unknown, unknown, unknown>
  readonly shutdown: () => Pick<Shutdown.Config, "timeout" | "onParentExit">
}

const configFlag = Flag.String("config").pipe(
  Flag.withAlias("c"),
  Flag.withDescription("path of the TOML config file (default: ./asterforge.toml if present; env ASTERFORGE_CONFIG)"),
  Flag.optional
)

/** Flags that map onto configuration keys; values are validated by RuntimeConfig, not here. */
const configFlags = {
  mode: Flag.String("mode").pipe(
    Flag.withDescription(`node mode: ${NodeMode.names.join(" | ")} (flag > ASTERFORGE_MODE > [server] start_mode > primary)`),
    Flag.optional
  ),
  host: Flag.String("host").pipe(Flag.withDescription("HTTP listen address ([server] host)"), Flag.optional),
  port: Flag.String("port").pipe(Flag.withDescription("HTTP listen port ([server] port)"), Flag.optional),
  databaseUrl: Flag.String("database-url").pipe(
    Flag.withDescription("postgres:// URL ([database] url, DATABASE_URL); default: embedded PostgreSQL"),
    Flag.optional
  ),
  logLevel: Flag.String("log-level").pipe(Flag.withDescription("trace | debug | info | warn | error"), Flag.optional),
  logFormat: Flag.String("log-format").pipe(Flag.withDescription("json | pretty"), Flag.optional),
  set: Flag.String("set").pipe(Flag.withDescription("any config key, e.g. --set shutdown.grace=5s (repeatable)"), Flag.atLeast(0))
}

type ConfigFlagValues = {
  readonly [K in keyof typeof configFlags]: K extends "set" ? ReadonlyArray<string> : Option.Option<string>
}

const noNodeFlags = { mode: Option.none(), host: Option.none(), port: Option.none() } as const

/** Flags as configuration sources: named flags and each `--set key=value`. */
export const flagSources = (flags: ConfigFlagValues): NonNullable<RuntimeConfig.Sources["flags"]> => {
  const named: Array<[string, Option.Option<string>, string]> = [
    ["server.start_mode", flags.mode, "--mode"],
    ["server.host", flags.host, "--host"],
    ["server.port", flags.port, "--port"],
    ["database.url", flags.databaseUrl, "--database-url"],
    ["telemetry.log_level", flags.logLevel, "--log-level"],
    ["telemetry.log_format", flags.logFormat, "--log-format"]
  ]
  const fromSet = flags.set.map((entry) => {
    const eq = entry.indexOf("=")
    return eq < 0
      ? { key: entry, value: "", label: `--set ${entry} (expected KEY=VALUE)` }
      : { key: entry.slice(0, eq).trim(), value: entry.slice(eq + 1), label: `--set ${entry.slice(0, eq).trim()}` }
  })
  return [...fromSet, ...named.flatMap(([key, value, label]) => (Option.isSome(value) ? [{ key, value: value.value, label }] : []))]
}

/**
 * The command line of a program that runs nodes of `modules`.
 *
 * @category constructors
 */
export const make = (options: Options): NodeCli => {
  let shutdown: Pick<Shutdown.Config, "timeout" | "onParentExit"> = { timeout: Duration.seconds(30), onParentExit: true }

  const root = Command.make(options.name).pipe(
    Command.withSharedFlags({ config: configFlag }),
    Command.withDescription(options.description)
  )

  /** Resolves the configuration (flags win) or fails with every problem listed. */
  const resolveConfig = (flags: ConfigFlagValues) =>
    Effect.gen(function* () {
      const { config: file } = yield* root
      const cfg = yield* RuntimeConfig.load(
        { file: Option.getOrUndefined(file), env: process.env, flags: flagSources(flags) },
        options.modules.flatMap((m) => m.config ?? [])
      )
      shutdown = cfg.shutdown
      return cfg
    })

  const launchWith = (flags: ConfigFlagValues) => Effect.flatMap(resolveConfig(flags), options.launch)

  const start = Command.make("start", configFlags, launchWith).pipe(
    Command.withDescription("start a node (primary, follower, maintenance or worker) and run it until SIGTERM/SIGINT"),
    Command.withExamples([
      { command: `${options.name} start`, description: "a primary node on the embedded PostgreSQL, http://127.0.0.1:3000" },
      { command: `${options.name} start --mode follower --port 3001`, description: "a follower beside it" },
      { command: `DATABASE_URL=postgres://localhost/app ${options.name} start`, description: "use an existing server" }
    ])
  )

  /** A command that is `start` with its mode fixed. */
  const { mode: _mode, ...fixedModeFlags } = configFlags
  const startAs = (name: string, mode: "worker" | "maintenance", description: string) =>
    Command.make(name, fixedModeFlags, (flags) => launchWith({ ...flags, mode: Option.some(mode) })).pipe(
      Command.withDescription(description)
    )

  const worker = startAs(
    "worker",
    "worker",
    "start a worker node: claims and runs tasks, serves health and status only (same as start --mode worker)"
  )
  const maintenance = Command.make("maintenance").pipe(
    Command.withDescription("maintenance lanes: promotion, lease/deadline/callback rescue, pruning, retention, stats, liveness"),
    Command.withSubcommands([
      startAs("run", "maintenance", "run the built-in maintenance lanes only (never claims a task); each lane elects its own leader")
    ])
  )

  const migrate = Command.make(
    "migrate",
    {
      databaseUrl: configFlags.databaseUrl,
      logLevel: configFlags.logLevel,
      logFormat: configFlags.logFormat,
      set: configFlags.set
    },
    (flags) =>
      Effect.gen(function* () {
        const cfg = yield* resolveConfig({ ...flags, ...noNodeFlags })
        const applied = yield* Database.migrate.pipe(
          Effect.provide(
            Database.layerClient.pipe(
              Layer.provideMerge(Database.layerUrl),
              Layer.provideMerge(Database.layerMigrationSets(options.modules)),
              Layer.provide(RuntimeConfig.layer(cfg)),
              Layer.provide(NodeIdentity.layer({ mode: cfg.server.startMode, name: cfg.server.nodeName }))
            )
          ),
          Effect.provide(Telemetry.loggerLayer({ format: cfg.telemetry.logFormat, level: cfg.telemetry.logLevel }))
        )
        yield* Console.log(
          applied.length === 0
            ? "database schema is up to date"
            : `applied ${applied.length} migration(s):\n${applied.map((a) => `  ${Database.describeApplied(a)}`).join("\n")}`
        )
      })
  ).pipe(Command.withDescription("apply pending database migrations and exit (safe to run while nodes are running)"))

  const check = Command.make("check", configFlags, (flags) =>
    Effect.gen(function* () {
      const cfg = yield* resolveConfig(flags)
      const rows = RuntimeConfig.describe(cfg)
      const width = Math.max(...rows.map((r) => r.key.length))
      yield* Console.log(`# effective configuration${Option.isSome(cfg.file) ? ` (file: ${cfg.file.value})` : " (no config file)"}`)
      for (const r of rows) yield* Console.log(`${r.key.padEnd(width)} = ${r.value}  # ${r.origin}`)
    })
  ).pipe(Command.withDescription("print the effective configuration (secrets redacted) and exit 0, or list every problem and exit 1"))

  const config = Command.make("config").pipe(Command.withDescription("inspect the configuration"), Command.withSubcommands([check]))

  const context: CommandContext = {
    resolveConfig: (flags) =>
      resolveConfig({ ...noNodeFlags, logLevel: Option.none(), logFormat: Option.none(), databaseUrl: flags.databaseUrl, set: flags.set }),
    modules: options.modules,
    flags: { databaseUrl: configFlags.databaseUrl, set: configFlags.set }
  }
  const more = typeof options.commands === "function" ? options.commands(context) : (options.commands ?? [])
  return {
    command: root.pipe(Command.withSubcommands([start, worker, maintenance, migrate, config, ...more])) as NodeCli["command"],
    shutdown: () => shutdown
  }
}
