/**
 * RuntimeConfig: the node's whole configuration, assembled from the sections
 * its services declare, and where each value came from.
 *
 * Each service owns the keys it reads (`Dispatcher.Config` is `[worker]`,
 * `AuditLog.Config` is `[audit]`, each built-in lane has
 * `[maintenance.<lane>]`, ...; see ConfigSection). This module lists those
 * sections, reads the sources once (built-in defaults < `asterforge.toml` <
 * environment variables < CLI flags), decodes every section with its own
 * Schemas, runs the rules that span sections, and lists every problem before
 * anything starts, so an operator fixes a bad deployment in one round trip.
 *
 * `layer(config)` provides `RuntimeConfig` (the whole, for composers, `config
 * check` and the reloader) and every section as its own service, so a service
 * depends only on the configuration it reads.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as AuditLog from "./AuditLog.ts"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import * as ControlPlane from "./ControlPlane.ts"
import * as Oidc from "./control/Oidc.ts"
import * as Database from "./Database.ts"
import * as Dispatcher from "./Dispatcher.ts"
import * as HealthRoutes from "./http/HealthRoutes.ts"
import * as HttpServer from "./http/Server.ts"
import * as SecretStrength from "./internal/config/secretStrength.ts"
import * as ConfigSources from "./internal/config/sources.ts"
import * as BuiltInLanes from "./lanes/index.ts"
import * as Leadership from "./Leadership.ts"
import * as Maintenance from "./Maintenance.ts"
import * as NodeIdentity from "./NodeIdentity.ts"
import * as NodeRegistry from "./NodeRegistry.ts"
import { ConfigInvalid, type Problem as ProblemType, renderProblems, RuntimeError } from "./RuntimeError.ts"
import * as Shutdown from "./Shutdown.ts"
import * as Telemetry from "./Telemetry.ts"

export { ConfigInvalid } from "./RuntimeError.ts"

/** One problem: the key as the user wrote it (`server.port`, `ASTERFORGE_SERVER_PORT`, `--mode`, or the file) and what is wrong. */
export type Problem = ProblemType

/** Renders problems the way `config check` prints them. */
export const render = renderProblems

export type Sources = ConfigSources.Sources
export type Origin = ConfigSources.Origin

// ---------------------------------------------------------------------------
// [security]: read by the control plane.

const base64Key = (text: string): string | undefined => {
  const t = text.trim()
  const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(t) && t.length % 4 === 0 ? Buffer.from(t, "base64") : undefined
  if (bytes === undefined) return "must be base64 (e.g. `openssl rand -base64 32`)"
  if (bytes.length !== 32) return `must decode to exactly 32 bytes (got ${bytes.length})`
  if (bytes.every((b) => b === bytes[0])) return "must not be the same byte repeated; use random bytes"
  return undefined
}

/**
 * `[security]`: the admin token and the key that encrypts stored secrets.
 *
 * @category config
 */
export const Security = ConfigSection.make(
  "security",
  {
    adminToken: ConfigSection.optionalKey(ConfigSchema.Secret, {
      doc: "bearer token of the admin API (>= 32 chars in production)",
      secret: true
    }),
    encryptionKey: ConfigSection.optionalKey(ConfigSchema.Secret, {
      doc: "base64 of exactly 32 random bytes",
      secret: true
    })
  },
  {
    check: (c) => {
      const problem = Option.isSome(c.encryptionKey) ? base64Key(Redacted.value(c.encryptionKey.value)) : undefined
      return problem === undefined ? [] : [{ key: "security.encryption_key", message: problem }]
    }
  }
)
export type Security = ConfigSection.TypeOf<typeof Security>

// ---------------------------------------------------------------------------
// The sections and the typed whole.

const runtimeSections = [
  NodeIdentity.Config,
  HttpServer.Config,
  Database.Config,
  Dispatcher.Config,
  Leadership.Config,
  Maintenance.Config,
  AuditLog.Config,
  NodeRegistry.Config,
  Shutdown.Config,
  Telemetry.Config,
  Security,
  HealthRoutes.Config,
  Oidc.Config,
  ControlPlane.Config,
  ...BuiltInLanes.sections
] as const

/** Every section of the runtime, in the order `config check` and the README list them. */
export const sections: ReadonlyArray<ConfigSection.Any> = runtimeSections

/** What `layer` provides besides `RuntimeConfig`: every section's value, by its tag. */
export type SectionServices = ConfigSection.TagOf<(typeof runtimeSections)[number]>

export interface RuntimeConfigShape {
  readonly server: NodeIdentity.Config & HttpServer.Config
  readonly database: Database.Config
  readonly worker: Dispatcher.Config
  readonly maintenance: Leadership.Config &
    Maintenance.Config & {
      /** Each built-in lane's options, from `[maintenance.<lane>]`. */
      readonly lanes: BuiltInLanes.Options
    }
  readonly audit: AuditLog.Config
  readonly node: NodeRegistry.Config
  readonly shutdown: Shutdown.Config
  readonly telemetry: Telemetry.Config
  readonly security: Security
  /** Every section's value by section id (`worker`, `server#http`), as `layer` provides them. */
  readonly sections: ReadonlyMap<string, unknown>
  /** The applications' own sections that were resolved beside the runtime's (a reload resolves them again). */
  readonly moduleSections: ReadonlyArray<ConfigSection.Any>
  /** Where each key's effective value came from, for `config check`. */
  readonly origins: Readonly<Record<string, Origin>>
  /** The config file that was read, if any (watched for reloadable keys). */
  readonly file: Option.Option<string>
  /** The sources this configuration was resolved from, so a reload can resolve again. */
  readonly sources: Sources
}

export class RuntimeConfig extends Context.Service<RuntimeConfig, RuntimeConfigShape>()("@asterforge/runtime/RuntimeConfig") {}

/** A dotted key: `worker.concurrency`, `maintenance.promotion.batch_size`. */
export type Key = string

/** Every key of these sections by dotted name; a key declared twice is a programming error. */
const catalogOf = (all: ReadonlyArray<ConfigSection.Any>): ConfigSources.Catalog => {
  const keys = new Map<string, ConfigSources.KeySpec>()
  for (const section of all) {
    for (const [field, key] of Object.entries(section.fields)) {
      const dotted = ConfigSection.keyName(section, field)
      if (keys.has(dotted)) throw new Error(`config key ${dotted} is declared twice`)
      keys.set(dotted, { dotted, section, field, key: key as ConfigSection.Key<unknown> })
    }
  }
  return { keys, tables: new Set(all.map((s) => s.section)) }
}

const catalogOfRuntime = catalogOf(sections)

/** Every key, in section order. */
export const keys: ReadonlyArray<Key> = [...catalogOfRuntime.keys.keys()]

/** ASTERFORGE_SERVER_PORT for server.port. */
export const envName = (key: Key): string => ConfigSection.envName(key)

/** Keys whose change is applied without a restart. */
export const reloadableKeys: ReadonlyArray<Key> = [...catalogOfRuntime.keys.values()].filter((s) => s.key.reloadable).map((s) => s.dotted)

/** One row of the configuration reference (README, `config check`). */
export interface ReferenceRow {
  readonly key: Key
  readonly type: string
  /** As a source would write it, or `(unset)`. */
  readonly default: string
  /** `ASTERFORGE_<TABLE>_<KEY>` first, then the well-known names. */
  readonly environment: ReadonlyArray<string>
  readonly doc: string
  readonly reloadable: boolean
}

/** Every key with its type, default, variables and meaning, derived from the sections. */
export const reference: ReadonlyArray<ReferenceRow> = [...catalogOfRuntime.keys.values()].map((spec) => {
  const { key } = spec
  const decoded = key.default === undefined ? undefined : Schema.decodeUnknownResult(key.schema)(key.default)
  return {
    key: spec.dotted,
    type: ConfigSchema.describe(key.schema),
    default: key.shownDefault ?? (decoded === undefined || Result.isFailure(decoded) ? "(unset)" : ConfigSection.show(decoded.success)),
    environment: [envName(spec.dotted), ...key.aliases.map((a) => a.shown ?? a.name)],
    doc: key.doc,
    reloadable: key.reloadable
  }
})

// ---------------------------------------------------------------------------
// Rules across sections.

/**
 * Production needs a strong admin token. Judged on the two keys alone, so the
 * rule is reported even when other keys of their sections are wrong.
 */
const productionRules = (raws: ReadonlyMap<string, ConfigSources.RawValue>, problems: ReadonlyArray<Problem>): Array<Problem> => {
  const environment = keyValue(raws, NodeIdentity.Config, "environment")
  const adminToken = keyValue(raws, Security, "adminToken")
  if (environment !== "production" || adminToken === undefined || problems.some((p) => p.key.includes("security.admin_token"))) return []
  const security = { adminToken }
  if (Option.isNone(security.adminToken))
    return [{ key: "security.admin_token", message: "required in production (at least 32 characters)" }]
  const token = Redacted.value(security.adminToken.value)
  if (token.length < 32)
    return [{ key: "security.admin_token", message: `must be at least 32 characters in production (got ${token.length})` }]
  const weak = SecretStrength.weakness(token)
  if (weak !== undefined) {
    return [
      {
        key: "security.admin_token",
        message: `looks like a placeholder, not a random secret: ${weak}; generate one (e.g. \`openssl rand -hex 32\`)`
      }
    ]
  }
  return []
}

// ---------------------------------------------------------------------------
// Resolution.

/** One key decoded on its own, from its source or default (undefined when unset or invalid). */
const keyValue = <S extends ConfigSection.Any, K extends keyof S["fields"] & string>(
  raws: ReadonlyMap<string, ConfigSources.RawValue>,
  section: S,
  field: K
): ConfigSection.TypeOf<S>[K] | undefined => {
  const key: ConfigSection.Key<unknown> = section.fields[field]
  const input = raws.get(ConfigSection.keyName(section, field))?.value ?? key.default
  if (input === undefined) return key.optional ? (Option.none() as never) : undefined
  const decoded = Schema.decodeUnknownResult(key.schema)(input)
  if (Result.isFailure(decoded)) return undefined
  return (key.optional ? Option.some(decoded.success) : decoded.success) as never
}

const byField = (section: ConfigSection.Any, raws: ReadonlyMap<string, ConfigSources.RawValue>): Record<string, ConfigSection.Raw> => {
  const out: Record<string, ConfigSection.Raw> = {}
  for (const field of Object.keys(section.fields)) {
    const raw = raws.get(ConfigSection.keyName(section, field))
    if (raw !== undefined) out[field] = { value: raw.value, label: raw.label }
  }
  return out
}

const assemble = (
  values: ReadonlyMap<string, unknown>,
  rest: Pick<RuntimeConfigShape, "origins" | "file" | "sources" | "moduleSections">
): RuntimeConfigShape => {
  const get = <S extends ConfigSection.Any>(section: S) => values.get(section.id) as ConfigSection.TypeOf<S>
  return {
    server: { ...get(NodeIdentity.Config), ...get(HttpServer.Config) },
    database: get(Database.Config),
    worker: get(Dispatcher.Config),
    maintenance: { ...get(Leadership.Config), ...get(Maintenance.Config), lanes: BuiltInLanes.optionsFrom((s) => values.get(s.id)) },
    audit: get(AuditLog.Config),
    node: get(NodeRegistry.Config),
    shutdown: get(Shutdown.Config),
    telemetry: get(Telemetry.Config),
    security: get(Security),
    sections: values,
    ...rest
  } as RuntimeConfigShape
}

/**
 * Resolves the configuration from all sources: the runtime's sections and the
 * applications' (`moduleSections`). Pure apart from reading the file, so
 * `config check`, the node and tests share it.
 */
export const resolve = (
  sources: Sources,
  moduleSections: ReadonlyArray<ConfigSection.Any> = []
): Result.Result<RuntimeConfigShape, ConfigInvalid> => {
  const all = moduleSections.length === 0 ? sections : [...sections, ...moduleSections]
  const problems: Array<Problem> = []
  let catalog = catalogOfRuntime
  try {
    if (moduleSections.length > 0) catalog = catalogOf(all)
  } catch (e) {
    return Result.fail(
      new ConfigInvalid({ problems: [{ key: moduleSections.map((s) => `[${s.section}]`).join(", "), message: (e as Error).message }] })
    )
  }
  const env = sources.env ?? {}
  const filePath = sources.file ?? env.ASTERFORGE_CONFIG ?? "asterforge.toml"
  const fileRequired = sources.fileRequired ?? (sources.file !== undefined || env.ASTERFORGE_CONFIG !== undefined)
  const fromFile = ConfigSources.readFile(catalog, filePath, fileRequired, problems)
  const fromEnv = ConfigSources.readEnv(catalog, env, envName, problems)
  const fromFlags = ConfigSources.readFlags(catalog, sources.flags ?? [], problems)

  const raws = new Map<string, ConfigSources.RawValue>()
  const origins: Record<string, Origin> = {}
  for (const spec of catalog.keys.values()) {
    const raw = fromFlags.get(spec.dotted) ?? fromEnv.get(spec.dotted) ?? fromFile.get(spec.dotted)
    if (raw !== undefined) raws.set(spec.dotted, raw)
    origins[spec.dotted] = raw?.origin ?? (spec.key.default === undefined ? "unset" : "default")
  }
  const values = new Map<string, unknown>()
  for (const section of all) {
    const decoded = ConfigSection.decode(section, byField(section, raws) as never)
    if (Result.isFailure(decoded)) problems.push(...decoded.failure)
    else values.set(section.id, decoded.success)
  }
  problems.push(...productionRules(raws, problems))
  if (problems.length > 0) return Result.fail(new ConfigInvalid({ problems }))
  const file = Fs.existsSync(filePath) ? Option.some(filePath) : Option.none()
  return Result.succeed(assemble(values, { origins, file, sources, moduleSections }))
}

/** Resolves, failing with a `RuntimeError` whose `ConfigInvalid` reason lists every problem. */
export const load = (
  sources: Sources,
  moduleSections: ReadonlyArray<ConfigSection.Any> = []
): Effect.Effect<RuntimeConfigShape, RuntimeError> =>
  Effect.fromResult(resolve(sources, moduleSections)).pipe(Effect.mapError((reason) => new RuntimeError({ reason })))

/** The value of one section (a module's own, or a built-in lane's). */
export const section = <S extends ConfigSection.Any>(config: RuntimeConfigShape, section: S): ConfigSection.TypeOf<S> => {
  const value = config.sections.get(section.id)
  if (value === undefined) throw new Error(`config section ${section.id} is not part of this configuration`)
  return value as ConfigSection.TypeOf<S>
}

/** The effective configuration as a flat key -> printable value table; secrets redacted. */
export const describe = (cfg: RuntimeConfigShape): ReadonlyArray<{ key: Key; value: string; origin: Origin }> =>
  [...(cfg.moduleSections.length === 0 ? catalogOfRuntime : catalogOf([...sections, ...cfg.moduleSections])).keys.values()].map((spec) => {
    const value = (cfg.sections.get(spec.section.id) as Record<string, unknown> | undefined)?.[spec.field]
    const display = spec.key.display
    // A key that may hold credentials (a URL) is shown through its own display; secrets are `<redacted>` by `show`.
    const text =
      display === undefined
        ? ConfigSection.show(value)
        : Option.isOption(value)
          ? Option.match(value, { onNone: () => "(unset)", onSome: display })
          : display(value)
    return { key: spec.dotted, value: text, origin: cfg.origins[spec.dotted] ?? "default" }
  })

/**
 * Provides `RuntimeConfig` and every section from an already resolved
 * configuration (the CLI resolves first, to exit 1 before anything starts).
 */
export const layer = (cfg: RuntimeConfigShape): Layer.Layer<RuntimeConfig | SectionServices> => {
  let context = Context.make(RuntimeConfig, cfg) as Context.Context<any>
  for (const s of [...sections, ...cfg.moduleSections]) context = Context.add(context, s, cfg.sections.get(s.id) as never)
  return Layer.succeedContext(context) as Layer.Layer<RuntimeConfig | SectionServices>
}

/** A layer that resolves from the given sources and fails with every problem listed. */
export const layerFrom = (sources: Sources): Layer.Layer<RuntimeConfig | SectionServices, RuntimeError> =>
  Layer.unwrap(Effect.map(load(sources), layer))
