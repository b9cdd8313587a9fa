/**
 * How the admin commands reach the control plane: straight to the database
 * (no node needs to run), with the configuration every command resolves
 * (`--config`, the environment, `--database-url`, `--set`), the application's
 * task definitions, and the audit log written directly (actor `cli:<user>`).
 *
 * @since 0.3.0
 */
import { Console, Effect, Layer, Option, Result, Schema } from "effect"
import { Flag } from "effect/cli"
import * as Os from "node:os"
import {
  AuditEvents,
  AuditLog,
  ControlPlane,
  Database,
  type NodeCli,
  NodeIdentity,
  RuntimeConfig,
  RuntimeError,
  TaskQueue,
  TaskRegistry,
  Telemetry
} from "@asterforge/runtime"

/** Who acts, as the audit trail shows it: `cli:<OS user>`. */
export const actor = (): string => {
  try {
    return AuditEvents.actors.cli(Os.userInfo().username)
  } catch {
    return AuditEvents.actors.cli("unknown")
  }
}

/** `--json`: the API's JSON instead of a table. */
export const json = Flag.Boolean("json").pipe(
  Flag.withDescription("print JSON (the admin API's shapes) instead of a table"),
  Flag.withDefault(false)
)

/** The flags every admin command has: where the database is. */
export const connectionFlags = (context: NodeCli.CommandContext) => ({
  databaseUrl: context.flags.databaseUrl,
  set: context.flags.set
})

/** The connection flags' values. */
export interface ConnectionFlags {
  readonly databaseUrl: Option.Option<string>
  readonly set: ReadonlyArray<string>
}

/** The control plane on the configured database, without a node. */
const layer = (config: RuntimeConfig.RuntimeConfigShape, context: NodeCli.CommandContext) =>
  ControlPlane.layer.pipe(
    Layer.provideMerge(TaskQueue.layer),
    Layer.provideMerge(AuditLog.layerDirect),
    Layer.provideMerge(TaskRegistry.layer(context.modules.flatMap((m) => m.tasks ?? []))),
    Layer.provideMerge(Database.layerClient),
    Layer.provideMerge(Database.layerUrl),
    Layer.provideMerge(Database.layerMigrationSets(context.modules)),
    Layer.provideMerge(NodeIdentity.layer({ mode: "follower", name: actor() })),
    Layer.provideMerge(RuntimeConfig.layer(config)),
    Layer.provide(Telemetry.loggerLayer({ format: config.telemetry.logFormat, level: "warn" }))
  )

/** Refuses to work on a schema behind this build: the queries would fail half-way. */
const schemaCurrent = Effect.gen(function* () {
  const pending = yield* Database.pendingSets.pipe(Effect.orElseSucceed(() => []))
  if (pending.length > 0) {
    return yield* RuntimeError.fail(
      new RuntimeError.MigrationFailed({ message: "the database schema is behind this build: run `asterforge migrate` first" })
    )
  }
})

/** Runs `use` with the control plane on the database the flags and configuration name. */
export const withControl =
  (context: NodeCli.CommandContext) =>
  <A>(flags: ConnectionFlags, use: (control: ControlPlane.ControlPlaneShape) => Effect.Effect<A, RuntimeError.RuntimeError>) =>
    Effect.gen(function* () {
      const config = yield* context.resolveConfig(flags)
      return yield* Effect.gen(function* () {
        yield* schemaCurrent
        return yield* use(yield* ControlPlane.ControlPlane)
      }).pipe(Effect.provide(layer(config, context)))
    })

/** Prints `value` as JSON, or its human form. */
export const output = <A>(asJson: boolean, value: A, human: (value: A) => string) =>
  Console.log(asJson ? JSON.stringify(value, null, 2) : human(value))

/**
 * Decodes a value given on the command line with an API Schema; a bad value
 * fails with `label` (the flag or argument) and the reason (exit 1).
 */
export const decodeFlag = <S extends Schema.Top & { readonly DecodingServices: never }>(label: string, schema: S, value: unknown) => {
  const r = Schema.decodeUnknownResult(schema)(value)
  return Result.isSuccess(r)
    ? Effect.succeed(r.success as S["Type"])
    : RuntimeError.fail(new RuntimeError.InputInvalid({ message: `${label}: ${r.failure.message.replace(/\n\s*/g, " ")}` }))
}

/** An optional flag decoded with an API Schema (undefined when absent). */
export const optionalFlag = <S extends Schema.Top & { readonly DecodingServices: never }>(
  name: string,
  schema: S,
  value: Option.Option<unknown>
) => (Option.isNone(value) ? Effect.succeed(undefined) : decodeFlag(`--${name}`, schema, value.value))
