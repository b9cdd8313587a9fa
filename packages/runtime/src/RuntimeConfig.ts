/**
 * RuntimeConfig: the node's typed configuration and where it comes from.
 *
 * Sources, lowest to highest: built-in defaults < `asterforge.toml` < environment
 * variables < CLI flags. Every key is declared once in `fields` below (type,
 * default, environment variable, whether it is secret or reloadable); that one
 * table drives decoding, unknown-key detection, `config check` output and the
 * README's reference. Validation collects every problem before failing, so an
 * operator fixes a bad deployment in one round trip.
 */
import { Context, Duration, Effect, Layer, Option, Redacted, Result, Schema, SchemaIssue } from "effect"
import * as Toml from "effect/encoding/Toml"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodeMode from "./NodeMode.ts"
import { ConfigInvalid, type Problem as RuntimeErrorProblem, renderProblems, RuntimeError } from "./RuntimeError.ts"

// ---------------------------------------------------------------------------
// Value kinds: how a raw value (TOML, env string, flag string) becomes typed.

interface Kind<A> {
  readonly describe: string
  /** Decodes a value as it appears in TOML or after `fromString`. */
  readonly decode: (u: unknown) => Result.Result<A, string>
  /** Turns an environment/flag string into the value TOML would have held. */
  readonly fromString: (s: string) => unknown
}

const issueFormatter = SchemaIssue.makeFormatterStandardSchemaV1()

const schemaKind = <S extends Schema.Top & { readonly DecodingServices: never }>(
  describe: string,
  schema: S,
  fromString: (s: string) => unknown = (s) => s
): Kind<S["Type"]> => {
  const decode = Schema.decodeUnknownResult(schema as any)
  return {
    describe,
    fromString,
    decode: (u) =>
      Result.mapError(decode(u) as Result.Result<S["Type"], Schema.SchemaError>, (e) =>
        issueFormatter(e.issue).issues.map((i) => i.message).join("; "))
  }
}

const numberFromString = (s: string): unknown => (s.trim() !== "" && Number.isFinite(Number(s)) ? Number(s) : s)

const str = schemaKind("string", Schema.NonEmptyString)
const int = (minimum: number, maximum: number) =>
  schemaKind(
    `integer ${minimum}..${maximum}`,
    Schema.Int.check(Schema.isBetween({ minimum, maximum })),
    numberFromString
  )
const bool = schemaKind("boolean", Schema.Boolean, (s) => {
  const v = s.trim().toLowerCase()
  if (["1", "true", "yes", "on"].includes(v)) return true
  if (["0", "false", "no", "off"].includes(v)) return false
  return s
})
const oneOf = <const L extends ReadonlyArray<string>>(values: L) =>
  schemaKind(values.map((v) => `"${v}"`).join(" | "), Schema.Literals(values))

const durationPattern =
  /^(\d+(?:\.\d+)?)\s*(ms|millis|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hours?)$/i
const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const unitOf = (u: string): number => {
  const l = u.toLowerCase()
  if (l.startsWith("mil") || l === "ms") return durationUnits.ms!
  if (l.startsWith("h")) return durationUnits.h!
  if (l.startsWith("m")) return durationUnits.m!
  return durationUnits.s!
}
/** Durations: a number of milliseconds, or "250ms", "10s", "2 minutes", "1h". */
const duration: Kind<Duration.Duration> = {
  describe: "duration (e.g. \"500ms\", \"10 seconds\", or milliseconds)",
  fromString: numberFromString,
  decode: (u) => {
    if (typeof u === "number" && Number.isFinite(u) && u >= 0) return Result.succeed(Duration.millis(u))
    if (typeof u === "string") {
      const m = durationPattern.exec(u.trim())
      if (m) return Result.succeed(Duration.millis(Number(m[1]) * unitOf(m[2]!)))
    }
    return Result.fail("Expected a duration such as \"500ms\", \"10 seconds\" or a number of milliseconds")
  }
}
/** Per-queue concurrency: "default=8,mail=2" (or a TOML table { default = 8, mail = 2 }). */
const queueConcurrency: Kind<ReadonlyMap<string, number>> = {
  describe: "queue=N list, e.g. \"default=8,mail=2\" (N 1..64)",
  fromString: (s) => s,
  decode: (u) => {
    const entries: Array<[string, unknown]> = typeof u === "string"
      ? u.split(",").map((p) => p.trim()).filter((p) => p !== "").map((p) => {
        const [name, n] = p.split("=").map((x) => x.trim())
        return [name ?? "", n === undefined ? undefined : numberFromString(n)]
      })
      : typeof u === "object" && u !== null && !Array.isArray(u) ? Object.entries(u) : []
    if (typeof u !== "string" && entries.length === 0 && !(typeof u === "object" && u !== null)) {
      return Result.fail("Expected \"queue=N,...\" or a table of queue = N")
    }
    const out = new Map<string, number>()
    for (const [name, n] of entries) {
      if (!/^[a-z0-9_.-]{1,64}$/i.test(name)) return Result.fail(`invalid queue name ${JSON.stringify(name)}`)
      if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 64) return Result.fail(`queue ${name}: concurrency must be an integer 1..64, got ${JSON.stringify(n)}`)
      out.set(name, n)
    }
    return Result.succeed(out)
  }
}

const secret: Kind<Redacted.Redacted<string>> = {
  describe: "secret string",
  fromString: (s) => s,
  decode: (u) =>
    typeof u === "string" && u.length > 0 ? Result.succeed(Redacted.make(u)) : Result.fail("Expected a non-empty string")
}

// ---------------------------------------------------------------------------
// The key table.

interface Field<A> {
  readonly kind: Kind<A>
  /** Raw default (as TOML would hold it); `undefined` means "unset". */
  readonly default: unknown
  readonly doc: string
  readonly secret?: boolean
  readonly reloadable?: boolean
  /** Extra environment variable names users already know, besides ASTERFORGE_<SECTION>_<KEY>. */
  readonly aliases?: ReadonlyArray<{ readonly name: string; readonly map: (value: string) => unknown }>
}
const field = <A>(kind: Kind<A>, defaultValue: unknown, doc: string, extra: Partial<Field<A>> = {}): Field<A> => ({
  kind,
  default: defaultValue,
  doc,
  ...extra
})

const setIf = (expected: string, value: unknown) => (raw: string): unknown =>
  raw.trim() === expected ? value : undefined

export const fields = {
  "server.start_mode": field(oneOf(NodeMode.names), "primary", "node mode: what this process runs", {
    aliases: [{ name: "ASTERFORGE_MODE", map: (s) => s }]
  }),
  "server.host": field(str, "127.0.0.1", "HTTP listen address"),
  "server.port": field(int(0, 65535), 3000, "HTTP listen port (0 = any free port)"),
  "server.environment": field(oneOf(["development", "production"]), "development", "production enables strict secret rules", {
    aliases: [{ name: "NODE_ENV", map: setIf("production", "production") }]
  }),
  "server.node_name": field(str, Os.hostname(), "name shown for this node in status views"),
  "server.data_dir": field(str, ".asterforge", "local state directory (embedded Postgres, pid files)"),

  "database.url": field(secret, undefined, "postgres:// URL; unset = embedded PostgreSQL under data_dir", {
    secret: true,
    aliases: [{ name: "DATABASE_URL", map: (s) => s }]
  }),
  "database.pool_max": field(int(1, 1000), 10, "maximum pooled connections"),
  "database.migrate": field(bool, true, "run migrations at start-up", {
    aliases: [{ name: "SKIP_MIGRATIONS", map: setIf("1", false) }]
  }),
  "database.connect_attempts": field(int(1, 1000), 10, "connection attempts before giving up"),
  "database.connect_backoff": field(duration, "200 millis", "first retry delay, doubled per attempt (capped at 5 s)"),
  "database.connect_timeout": field(duration, "5 seconds", "timeout of one connection attempt"),

  "worker.inline": field(bool, true, "primary nodes also run the task dispatcher", {
    aliases: [{ name: "DISABLE_INLINE_WORKER", map: setIf("1", false) }]
  }),
  "worker.concurrency": field(int(1, 64), 4, "handlers run at once per queue, unless worker.queues says otherwise"),
  "worker.prefetch": field(int(0, 256), 0, "tasks per queue claimed ahead of a free slot (helps many short tasks; idle until a slot frees, so keep 0 for long ones)"),
  "worker.queues": field(queueConcurrency, "", "per-queue concurrency overrides; listed queues are served even with no registered task"),
  "worker.poll_interval": field(duration, "1 second", "claim attempt when no NOTIFY arrived (the backstop)"),
  "worker.lease_duration": field(duration, "15 seconds", "a claimed task is rescued if its lease is not extended in this time"),
  "worker.heartbeat_interval": field(duration, "5 seconds", "how often one statement extends every lease this node holds"),

  "maintenance.election_interval": field(duration, "1 second", "how often a node retries to win lanes it does not lead"),
  "maintenance.disabled_lanes": field(str, "(none)", "comma-separated lane names this node never runs"),

  "audit.buffer_size": field(int(1, 1_000_000), 10_000, "events held in memory before the overflow policy applies"),
  "audit.batch_size": field(int(1, 10_000), 500, "events per insert statement"),
  "audit.overflow": field(oneOf(["backpressure", "drop"]), "backpressure", "full buffer: make record() wait, or drop and count"),

  "node.heartbeat_interval": field(duration, "5 seconds", "how often the node row's heartbeat is refreshed"),

  "shutdown.grace": field(duration, "10 seconds", "how long running work may finish after a stop signal"),
  "shutdown.timeout": field(duration, "30 seconds", "watchdog: exit non-zero if shutdown takes longer"),
  "shutdown.drain_delay": field(duration, "0 millis", "keep serving (readiness 503) this long before closing HTTP"),

  "telemetry.log_level": field(oneOf(["trace", "debug", "info", "warn", "error", "fatal", "none"]), "info", "minimum log level", {
    reloadable: true,
    aliases: [{ name: "LOG_LEVEL", map: (s) => s.toLowerCase() }]
  }),
  "telemetry.otlp_endpoint": field(str, undefined, "OTLP/HTTP collector base URL (traces go to <url>/v1/traces); unset = tracing off", {
    aliases: [{ name: "OTEL_EXPORTER_OTLP_ENDPOINT", map: (s) => s }]
  }),
  "telemetry.log_format": field(oneOf(["json", "pretty"]), "json", "json lines (default) or human-readable"),

  "security.admin_token": field(secret, undefined, "bearer token of the admin API (>= 32 chars in production)", { secret: true }),
  "security.encryption_key": field(secret, undefined, "base64 of exactly 32 random bytes", { secret: true })
} as const satisfies Record<string, Field<any>>

export type Key = keyof typeof fields
export const keys = Object.keys(fields) as ReadonlyArray<Key>
type ValueOf<K extends Key> = (typeof fields)[K] extends Field<infer A> ? A : never

/** ASTERFORGE_SERVER_PORT for server.port. */
export const envName = (key: Key): string => `ASTERFORGE_${key.replace(".", "_").toUpperCase()}`

// ---------------------------------------------------------------------------
// The typed configuration.

export interface RuntimeConfigShape {
  readonly server: {
    readonly startMode: NodeMode.Name
    readonly host: string
    readonly port: number
    readonly environment: "development" | "production"
    readonly nodeName: string
    readonly dataDir: string
  }
  readonly database: {
    readonly url: Option.Option<Redacted.Redacted<string>>
    readonly poolMax: number
    readonly migrate: boolean
    readonly connectAttempts: number
    readonly connectBackoff: Duration.Duration
    readonly connectTimeout: Duration.Duration
  }
  readonly worker: {
    readonly inline: boolean
    readonly concurrency: number
    readonly prefetch: number
    readonly queues: ReadonlyMap<string, number>
    readonly pollInterval: Duration.Duration
    readonly leaseDuration: Duration.Duration
    readonly heartbeatInterval: Duration.Duration
  }
  readonly maintenance: {
    readonly electionInterval: Duration.Duration
    readonly disabledLanes: ReadonlyArray<string>
  }
  readonly audit: {
    readonly bufferSize: number
    readonly batchSize: number
    readonly overflow: "backpressure" | "drop"
  }
  readonly node: { readonly heartbeatInterval: Duration.Duration }
  readonly shutdown: {
    readonly grace: Duration.Duration
    readonly timeout: Duration.Duration
    readonly drainDelay: Duration.Duration
  }
  readonly telemetry: {
    readonly logLevel: ValueOf<"telemetry.log_level">
    readonly logFormat: "json" | "pretty"
    readonly otlpEndpoint: Option.Option<string>
  }
  readonly security: {
    readonly adminToken: Option.Option<Redacted.Redacted<string>>
    readonly encryptionKey: Option.Option<Redacted.Redacted<string>>
  }
  /** Where each key's effective value came from, for `config check`. */
  readonly origins: Readonly<Record<Key, Origin>>
  /** The config file that was read, if any (watched for reloadable keys). */
  readonly file: Option.Option<string>
  /** The sources this configuration was resolved from, so a reload can resolve again. */
  readonly sources: Sources
}

export type Origin = "default" | "file" | "env" | "flag" | "unset"

export class RuntimeConfig extends Context.Service<RuntimeConfig, RuntimeConfigShape>()("@asterforge/runtime/RuntimeConfig") {}

// ---------------------------------------------------------------------------
// Errors.

/** One problem: the key as the user wrote it (`server.port`, `ASTERFORGE_SERVER_PORT`, `--mode`, or the file) and what is wrong. */
export type Problem = RuntimeErrorProblem

export { ConfigInvalid } from "./RuntimeError.ts"
/** Renders problems the way `config check` prints them. */
export const render = renderProblems

// ---------------------------------------------------------------------------
// Loading.

export interface Sources {
  /** Path of the TOML file. When given explicitly it must exist; `asterforge.toml` in the cwd is optional. */
  readonly file?: string | undefined
  readonly fileRequired?: boolean
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Values from CLI flags, keyed by dotted key; `label` is the flag as typed, for error messages. */
  readonly flags?: ReadonlyArray<{ readonly key: string; readonly value: unknown; readonly label: string }>
}

interface RawValue {
  readonly value: unknown
  readonly origin: Origin
  /** How to name this value in an error message. */
  readonly label: string
}

const levenshtein = (a: string, b: string): number => {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!
    dp[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!
      dp[j] = a[i - 1] === b[j - 1] ? prev : 1 + Math.min(prev, dp[j]!, dp[j - 1]!)
      prev = tmp
    }
  }
  return dp[b.length]!
}

const suggest = (word: string, candidates: ReadonlyArray<string>): string => {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase())
    if (d < bestDistance) {
      bestDistance = d
      best = c
    }
  }
  if (best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3))) return ` (did you mean "${best}"?)`
  // A fragment of the real name ("mode" for "start_mode") is a likely slip too.
  const partial = word.length >= 3 ? candidates.find((c) => c.split(/[._]/).includes(word.toLowerCase())) : undefined
  return partial !== undefined ? ` (did you mean "${partial}"?)` : ""
}

const sections = [...new Set(keys.map((k) => k.split(".")[0]!))]

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u) && !(u instanceof Date)

/** Reads and parses the TOML file; problems are collected, not thrown. */
const readFile = (path: string, required: boolean, problems: Array<Problem>): Map<Key, RawValue> => {
  const out = new Map<Key, RawValue>()
  let text: string
  try {
    text = Fs.readFileSync(path, "utf8")
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === "ENOENT" && !required) return out
    problems.push({ key: path, message: code === "ENOENT" ? "config file not found" : `cannot read config file: ${String(e)}` })
    return out
  }
  const parsed = Toml.parse(text)
  if (Result.isFailure(parsed)) {
    problems.push({ key: path, message: `malformed TOML: ${parsed.failure.message}` })
    return out
  }
  for (const [section, body] of Object.entries(parsed.success)) {
    if (!sections.includes(section)) {
      problems.push({ key: `${path}: [${section}]`, message: `unknown section${suggest(section, sections)}` })
      continue
    }
    if (!isPlainObject(body)) {
      problems.push({ key: `${section}`, message: `expected a [${section}] table` })
      continue
    }
    for (const [name, value] of Object.entries(body)) {
      const key = `${section}.${name}`
      if (!(key in fields)) {
        const inSection = keys.filter((k) => k.startsWith(`${section}.`)).map((k) => k.slice(section.length + 1))
        problems.push({ key, message: `unknown key${suggest(name, inSection)}` })
        continue
      }
      out.set(key as Key, { value, origin: "file", label: key })
    }
  }
  return out
}

const readEnv = (env: Readonly<Record<string, string | undefined>>, problems: Array<Problem>): Map<Key, RawValue> => {
  const out = new Map<Key, RawValue>()
  const known = new Set<string>()
  for (const key of keys) {
    const spec: Field<unknown> = fields[key]
    const name = envName(key)
    known.add(name)
    // Aliases first, so the explicit ASTERFORGE_* name wins when both are set.
    for (const alias of spec.aliases ?? []) {
      const raw = env[alias.name]
      if (raw === undefined || raw === "") continue
      const mapped = alias.map(raw)
      if (mapped !== undefined) out.set(key, { value: mapped, origin: "env", label: alias.name })
    }
    const raw = env[name]
    if (raw !== undefined && raw !== "") out.set(key, { value: spec.kind.fromString(raw), origin: "env", label: name })
  }
  // A typo in an ASTERFORGE_* variable would otherwise be silently ignored.
  for (const name of Object.keys(env)) {
    if (name.startsWith("ASTERFORGE_") && !known.has(name) && name !== "ASTERFORGE_MODE" && name !== "ASTERFORGE_CONFIG") {
      problems.push({ key: name, message: `unknown environment variable${suggest(name, [...known])}` })
    }
  }
  return out
}

const toTyped = (values: ReadonlyMap<Key, unknown>, origins: Record<Key, Origin>, file: Option.Option<string>, sources: Sources): RuntimeConfigShape => {
  const get = <K extends Key>(k: K): ValueOf<K> => values.get(k) as ValueOf<K>
  const opt = <K extends Key>(k: K) => Option.fromUndefinedOr(values.get(k) as ValueOf<K> | undefined)
  return {
    server: {
      startMode: get("server.start_mode"),
      host: get("server.host"),
      port: get("server.port"),
      environment: get("server.environment"),
      nodeName: get("server.node_name"),
      dataDir: get("server.data_dir")
    },
    database: {
      url: opt("database.url"),
      poolMax: get("database.pool_max"),
      migrate: get("database.migrate"),
      connectAttempts: get("database.connect_attempts"),
      connectBackoff: get("database.connect_backoff"),
      connectTimeout: get("database.connect_timeout")
    },
    worker: {
      inline: get("worker.inline"),
      concurrency: get("worker.concurrency"),
      prefetch: get("worker.prefetch"),
      queues: get("worker.queues"),
      pollInterval: get("worker.poll_interval"),
      leaseDuration: get("worker.lease_duration"),
      heartbeatInterval: get("worker.heartbeat_interval")
    },
    maintenance: {
      electionInterval: get("maintenance.election_interval"),
      disabledLanes: get("maintenance.disabled_lanes") === "(none)"
        ? []
        : get("maintenance.disabled_lanes").split(",").map((l) => l.trim()).filter((l) => l !== "")
    },
    audit: {
      bufferSize: get("audit.buffer_size"),
      batchSize: get("audit.batch_size"),
      overflow: get("audit.overflow")
    },
    node: { heartbeatInterval: get("node.heartbeat_interval") },
    shutdown: {
      grace: get("shutdown.grace"),
      timeout: get("shutdown.timeout"),
      drainDelay: get("shutdown.drain_delay")
    },
    telemetry: { logLevel: get("telemetry.log_level"), logFormat: get("telemetry.log_format"), otlpEndpoint: opt("telemetry.otlp_endpoint") },
    security: { adminToken: opt("security.admin_token"), encryptionKey: opt("security.encryption_key") },
    origins,
    file,
    sources
  }
}

/** Placeholders people paste from examples; refused as production secrets. */
const placeholderTokens = ["changeme", "change-me", "secret", "password", "admin", "token", "example", "placeholder", "xxx", "test", "default"]
const looksLikePlaceholder = (token: string): boolean => {
  const t = token.toLowerCase()
  if (/^(.)\1*$/.test(t)) return true
  const stripped = t.replace(/[^a-z]/g, "")
  return placeholderTokens.some((p) => stripped === p || stripped.replace(new RegExp(p, "g"), "") === "")
}

/**
 * Rules that relate several keys or inspect secret contents. They run on
 * whatever decoded, so their problems are listed together with type errors.
 */
const crossChecks = (values: ReadonlyMap<Key, unknown>, problems: Array<Problem>): void => {
  const get = <K extends Key>(k: K) => values.get(k) as ValueOf<K> | undefined
  if (get("server.environment") === "production" && !problems.some((p) => p.key.includes("security.admin_token"))) {
    const adminToken = get("security.admin_token")
    if (adminToken === undefined) {
      problems.push({ key: "security.admin_token", message: "required in production (at least 32 characters)" })
    } else {
      const token = Redacted.value(adminToken)
      if (token.length < 32) problems.push({ key: "security.admin_token", message: `must be at least 32 characters in production (got ${token.length})` })
      else if (looksLikePlaceholder(token)) problems.push({ key: "security.admin_token", message: "is a known placeholder value; generate a random token (e.g. `openssl rand -hex 32`)" })
    }
  }
  const encryptionKey = get("security.encryption_key")
  if (encryptionKey !== undefined) {
    const text = Redacted.value(encryptionKey).trim()
    const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0 ? Buffer.from(text, "base64") : undefined
    if (bytes === undefined) problems.push({ key: "security.encryption_key", message: "must be base64 (e.g. `openssl rand -base64 32`)" })
    else if (bytes.length !== 32) problems.push({ key: "security.encryption_key", message: `must decode to exactly 32 bytes (got ${bytes.length})` })
    else if (bytes.every((b) => b === bytes[0])) problems.push({ key: "security.encryption_key", message: "must not be the same byte repeated; use random bytes" })
  }
  const otlp = get("telemetry.otlp_endpoint")
  if (otlp !== undefined && !/^https?:\/\/[^\s/]+/.test(otlp)) {
    problems.push({ key: "telemetry.otlp_endpoint", message: `must be an http(s) URL such as http://127.0.0.1:4318, got ${JSON.stringify(otlp)}` })
  }
  const beat = get("worker.heartbeat_interval")
  const lease = get("worker.lease_duration")
  if (beat !== undefined && lease !== undefined && !Duration.isLessThan(Duration.times(beat, 2), lease)) {
    problems.push({ key: "worker.heartbeat_interval", message: "must be less than half of worker.lease_duration, or healthy leases expire between heartbeats" })
  }
  const grace = get("shutdown.grace")
  const timeout = get("shutdown.timeout")
  if (grace !== undefined && timeout !== undefined && Duration.isGreaterThan(grace, timeout)) {
    problems.push({ key: "shutdown.grace", message: "must not exceed shutdown.timeout, or the watchdog fires before running work may finish" })
  }
}

/**
 * Resolves the configuration from all sources. Pure apart from reading the
 * file, so `config check`, the node and tests share it.
 */
export const resolve = (sources: Sources): Result.Result<RuntimeConfigShape, ConfigInvalid> => {
  const problems: Array<Problem> = []
  const env = sources.env ?? {}
  const filePath = sources.file ?? env.ASTERFORGE_CONFIG ?? "asterforge.toml"
  const fileRequired = sources.fileRequired ?? (sources.file !== undefined || env.ASTERFORGE_CONFIG !== undefined)
  const fromFile = readFile(filePath, fileRequired, problems)
  const fromEnv = readEnv(env, problems)
  const fromFlags = new Map<Key, RawValue>()
  for (const f of sources.flags ?? []) {
    if (f.value === undefined) continue
    if (!(f.key in fields)) {
      problems.push({ key: f.label, message: `unknown key "${f.key}"${suggest(f.key, keys)}` })
      continue
    }
    const spec: Field<unknown> = fields[f.key as Key]
    const value = typeof f.value === "string" ? spec.kind.fromString(f.value) : f.value
    fromFlags.set(f.key as Key, { value, origin: "flag", label: f.label })
  }

  const values = new Map<Key, unknown>()
  const origins = {} as Record<Key, Origin>
  for (const key of keys) {
    const spec: Field<unknown> = fields[key]
    const raw: RawValue | undefined = fromFlags.get(key) ?? fromEnv.get(key) ?? fromFile.get(key) ??
      (spec.default === undefined ? undefined : { value: spec.default, origin: "default", label: key })
    if (raw === undefined) {
      origins[key] = "unset"
      continue
    }
    origins[key] = raw.origin
    const decoded = spec.kind.decode(raw.value)
    if (Result.isFailure(decoded)) {
      const shown = spec.secret ? "" : `, got ${JSON.stringify(raw.value)}`
      const where = raw.label === key ? key : `${raw.label} (${key})`
      problems.push({ key: where, message: `${decoded.failure}${shown}` })
    } else {
      values.set(key, decoded.success)
    }
  }
  crossChecks(values, problems)
  if (problems.length > 0) return Result.fail(new ConfigInvalid({ problems }))
  const existing = Fs.existsSync(filePath) ? Option.some(filePath) : Option.none()
  return Result.succeed(toTyped(values, origins, existing, sources))
}

/** The effective configuration as a flat key -> printable value table; secrets redacted. */
export const describe = (cfg: RuntimeConfigShape): ReadonlyArray<{ key: Key; value: string; origin: Origin }> => {
  const flat: Record<Key, unknown> = {
    "server.start_mode": cfg.server.startMode,
    "server.host": cfg.server.host,
    "server.port": cfg.server.port,
    "server.environment": cfg.server.environment,
    "server.node_name": cfg.server.nodeName,
    "server.data_dir": cfg.server.dataDir,
    "database.url": cfg.database.url,
    "database.pool_max": cfg.database.poolMax,
    "database.migrate": cfg.database.migrate,
    "database.connect_attempts": cfg.database.connectAttempts,
    "database.connect_backoff": cfg.database.connectBackoff,
    "database.connect_timeout": cfg.database.connectTimeout,
    "worker.inline": cfg.worker.inline,
    "worker.concurrency": cfg.worker.concurrency,
    "worker.prefetch": cfg.worker.prefetch,
    "worker.queues": [...cfg.worker.queues].map(([q, n]) => `${q}=${n}`).join(",") || "(none)",
    "worker.poll_interval": cfg.worker.pollInterval,
    "worker.lease_duration": cfg.worker.leaseDuration,
    "worker.heartbeat_interval": cfg.worker.heartbeatInterval,
    "maintenance.election_interval": cfg.maintenance.electionInterval,
    "maintenance.disabled_lanes": cfg.maintenance.disabledLanes.join(",") || "(none)",
    "audit.buffer_size": cfg.audit.bufferSize,
    "audit.batch_size": cfg.audit.batchSize,
    "audit.overflow": cfg.audit.overflow,
    "node.heartbeat_interval": cfg.node.heartbeatInterval,
    "shutdown.grace": cfg.shutdown.grace,
    "shutdown.timeout": cfg.shutdown.timeout,
    "shutdown.drain_delay": cfg.shutdown.drainDelay,
    "telemetry.log_level": cfg.telemetry.logLevel,
    "telemetry.log_format": cfg.telemetry.logFormat,
    "telemetry.otlp_endpoint": cfg.telemetry.otlpEndpoint,
    "security.admin_token": cfg.security.adminToken,
    "security.encryption_key": cfg.security.encryptionKey
  }
  const show = (u: unknown): string => {
    if (Option.isOption(u)) return Option.isSome(u) ? show(u.value) : "(unset)"
    if (Redacted.isRedacted(u)) return "<redacted>"
    if (Duration.isDuration(u)) return Duration.format(u)
    return typeof u === "string" ? u : JSON.stringify(u)
  }
  return keys.map((key) => ({ key, value: show(flat[key]), origin: cfg.origins[key] }))
}

/** Keys whose change is applied without a restart. */
export const reloadableKeys: ReadonlyArray<Key> = keys.filter((k) => (fields[k] as Field<unknown>).reloadable === true)

/** A layer from already-resolved configuration (the CLI resolves first, to exit 1 before anything starts). */
export const layer = (cfg: RuntimeConfigShape): Layer.Layer<RuntimeConfig> => Layer.succeed(RuntimeConfig, cfg)

/** Resolves, failing with a `RuntimeError` whose `ConfigInvalid` reason lists every problem. */
export const load = (sources: Sources): Effect.Effect<RuntimeConfigShape, RuntimeError> =>
  Effect.fromResult(resolve(sources)).pipe(Effect.mapError((reason) => new RuntimeError({ reason })))

/** A layer that resolves from the given sources and fails with every problem listed. */
export const layerFrom = (sources: Sources): Layer.Layer<RuntimeConfig, RuntimeError> => Layer.effect(RuntimeConfig, load(sources))
