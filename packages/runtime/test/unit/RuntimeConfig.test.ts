/**
 * RuntimeConfig: layering of defaults, file, environment and flags; every
 * problem listed at once with its key; the secret rules; the bounds of
 * duration keys (zero heartbeats, overflowing durations) and names every
 * object has (`constructor`, `__proto__`, `toString`) refused as unknown keys.
 */
import { Duration, Option, Redacted, Result } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import * as NodeCli from "../../src/NodeCli.ts"
import * as RuntimeConfig from "../../src/RuntimeConfig.ts"

const tmpFile = (text: string): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "af-config-"))
  const file = Path.join(dir, "asterforge.toml")
  Fs.writeFileSync(file, text)
  return file
}

const ok = (sources: RuntimeConfig.Sources) => {
  const r = RuntimeConfig.resolve(sources)
  if (Result.isFailure(r)) throw new Error(r.failure.message)
  return r.success
}

const problems = (sources: RuntimeConfig.Sources) => {
  const r = RuntimeConfig.resolve(sources)
  if (Result.isSuccess(r)) throw new Error("expected the configuration to be rejected")
  return r.failure.problems
}

const noFile = "/nonexistent/asterforge.toml"

describe("RuntimeConfig layering", () => {
  it("uses defaults when nothing is given", () => {
    const cfg = ok({ file: noFile, fileRequired: false, env: {} })
    expect(cfg.server.startMode).toBe("primary")
    expect(cfg.server.port).toBe(3000)
    expect(cfg.server.host).toBe("127.0.0.1")
    expect(Option.isNone(cfg.database.url)).toBe(true)
    expect(cfg.database.migrate).toBe(true)
    expect(cfg.origins["server.port"]).toBe("default")
    expect(cfg.origins["database.url"]).toBe("unset")
  })

  it("file < env < flags, each key from the highest source that sets it", () => {
    const file = tmpFile(`
[server]
start_mode = "follower"
port = 4000
host = "0.0.0.0"

[database]
pool_max = 7

[shutdown]
grace = "3 seconds"
`)
    const cfg = ok({
      file,
      env: { ASTERFORGE_SERVER_PORT: "5000", ASTERFORGE_DATABASE_POOL_MAX: "9" },
      flags: [{ key: "server.port", value: "6000", label: "--port" }]
    })
    expect(cfg.server.startMode).toBe("follower") // file only
    expect(cfg.server.host).toBe("0.0.0.0") // file only
    expect(cfg.database.poolMax).toBe(9) // env beats file
    expect(cfg.server.port).toBe(6000) // flag beats env and file
    expect(Duration.toMillis(cfg.shutdown.grace)).toBe(3000)
    expect(cfg.origins["server.port"]).toBe("flag")
    expect(cfg.origins["database.pool_max"]).toBe("env")
    expect(cfg.origins["server.start_mode"]).toBe("file")
  })

  it("honours the names users already know", () => {
    const cfg = ok({
      file: noFile,
      fileRequired: false,
      env: {
        DATABASE_URL: "postgres://u:p@db:5432/app",
        SKIP_MIGRATIONS: "1",
        DISABLE_INLINE_WORKER: "1",
        NODE_ENV: "development",
        ASTERFORGE_MODE: "worker"
      }
    })
    expect(Redacted.value(Option.getOrThrow(cfg.database.url))).toBe("postgres://u:p@db:5432/app")
    expect(cfg.database.migrate).toBe(false)
    expect(cfg.worker.inline).toBe(false)
    expect(cfg.server.startMode).toBe("worker")
  })

  it("an explicit ASTERFORGE_* variable wins over its well-known alias", () => {
    const cfg = ok({
      file: noFile,
      fileRequired: false,
      env: { DATABASE_URL: "postgres://a/x", ASTERFORGE_DATABASE_URL: "postgres://b/y" }
    })
    expect(Redacted.value(Option.getOrThrow(cfg.database.url))).toBe("postgres://b/y")
  })

  it("parses durations in several spellings", () => {
    const cfg = ok({
      file: noFile,
      fileRequired: false,
      env: { ASTERFORGE_SHUTDOWN_GRACE: "250ms", ASTERFORGE_SHUTDOWN_TIMEOUT: "2m", ASTERFORGE_SHUTDOWN_DRAIN_DELAY: "1500" }
    })
    expect(Duration.toMillis(cfg.shutdown.grace)).toBe(250)
    expect(Duration.toMillis(cfg.shutdown.timeout)).toBe(120_000)
    expect(Duration.toMillis(cfg.shutdown.drainDelay)).toBe(1500)
  })
})

describe("RuntimeConfig validation", () => {
  it("lists every problem at once, each with its key", () => {
    const file = tmpFile(`
[server]
port = "eighty"
start_mod = "primary"

[databse]
url = "x"

[audit]
overflow = "explode"
`)
    const found = problems({
      file,
      env: { ASTERFORGE_DATABASE_POOL_MAX: "0", ASTERFORGE_SHUTDOWN_GRACE: "soon" },
      flags: [{ key: "server.start_mode", value: "leader", label: "--mode" }]
    })
    const keys = found.map((p) => p.key)
    expect(keys).toEqual(
      expect.arrayContaining([
        "server.start_mod",
        expect.stringContaining("[databse]"),
        "server.port",
        "audit.overflow",
        "ASTERFORGE_DATABASE_POOL_MAX (database.pool_max)",
        "ASTERFORGE_SHUTDOWN_GRACE (shutdown.grace)",
        "--mode (server.start_mode)"
      ])
    )
    expect(found).toHaveLength(7)
    expect(found.find((p) => p.key === "server.start_mod")?.message).toContain('did you mean "start_mode"')
    expect(found.find((p) => p.key.includes("[databse]"))?.message).toContain('did you mean "database"')
    expect(found.find((p) => p.key === "server.port")?.message).toContain('got "eighty"')
  })

  it("reports malformed TOML with its position", () => {
    const file = tmpFile("[server]\nport = 3000\nhost = \n")
    const [p] = problems({ file, env: {} })
    expect(p?.key).toBe(file)
    expect(p?.message).toMatch(/malformed TOML.*line 3/)
  })

  it("an explicitly named config file must exist", () => {
    const [p] = problems({ file: "/nonexistent/x.toml", env: {} })
    expect(p).toEqual({ key: "/nonexistent/x.toml", message: "config file not found" })
  })

  it("flags typos in ASTERFORGE_* variables", () => {
    const found = problems({ file: noFile, fileRequired: false, env: { ASTERFORGE_SERVER_PROT: "1" } })
    expect(found).toEqual([{ key: "ASTERFORGE_SERVER_PROT", message: expect.stringContaining('did you mean "ASTERFORGE_SERVER_PORT"') }])
  })

  it("never echoes a secret's value in an error", () => {
    const found = problems({ file: noFile, fileRequired: false, env: { ASTERFORGE_SECURITY_ENCRYPTION_KEY: "hunter2-not-base64!" } })
    expect(found.map((p) => p.key)).toEqual(["security.encryption_key"])
    expect(JSON.stringify(found)).not.toContain("hunter2")
  })
})

describe("RuntimeConfig secret rules", () => {
  const prod = (env: Record<string, string>) => ({ file: noFile, fileRequired: false, env: { NODE_ENV: "production", ...env } })
  const strong = "k3J9vQ2xZp7LmN4rT8wY1cF6hB0dS5gA"

  it("production requires an admin token", () => {
    expect(problems(prod({}))).toEqual([{ key: "security.admin_token", message: expect.stringContaining("required in production") }])
  })

  it("production refuses short tokens and known placeholders", () => {
    expect(problems(prod({ ASTERFORGE_SECURITY_ADMIN_TOKEN: "short" }))[0]?.message).toContain("at least 32 characters")
    expect(problems(prod({ ASTERFORGE_SECURITY_ADMIN_TOKEN: "changeme".repeat(4) }))[0]?.message).toContain("placeholder")
    expect(problems(prod({ ASTERFORGE_SECURITY_ADMIN_TOKEN: "x".repeat(40) }))[0]?.message).toContain("placeholder")
  })

  it("production accepts a strong token; development needs none", () => {
    expect(ok(prod({ ASTERFORGE_SECURITY_ADMIN_TOKEN: strong })).server.environment).toBe("production")
    expect(ok({ file: noFile, fileRequired: false, env: {} }).server.environment).toBe("development")
  })

  it("encryption_key must be base64 of exactly 32 bytes, not one repeated byte", () => {
    const env = (key: string) => ({ file: noFile, fileRequired: false, env: { ASTERFORGE_SECURITY_ENCRYPTION_KEY: key } })
    expect(problems(env(Buffer.alloc(16, 7).toString("base64")))[0]?.message).toContain("exactly 32 bytes (got 16)")
    expect(problems(env(Buffer.alloc(32, 7).toString("base64")))[0]?.message).toContain("same byte repeated")
    expect(problems(env("not base64 at all"))[0]?.message).toContain("must be base64")
    const good = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 11) % 256)).toString("base64")
    expect(Option.isSome(ok(env(good)).security.encryptionKey)).toBe(true)
  })

  it("describe() redacts secrets", () => {
    const cfg = ok(prod({ ASTERFORGE_SECURITY_ADMIN_TOKEN: strong, DATABASE_URL: "postgres://u:pw@h/db" }))
    const rows = RuntimeConfig.describe(cfg)
    expect(rows.find((r) => r.key === "security.admin_token")?.value).toBe("<redacted>")
    expect(rows.find((r) => r.key === "database.url")?.value).toBe("<redacted>")
    expect(JSON.stringify(rows)).not.toContain(strong)
  })

  it("grace longer than the watchdog timeout is refused", () => {
    const found = problems({
      file: noFile,
      fileRequired: false,
      env: { ASTERFORGE_SHUTDOWN_GRACE: "60s", ASTERFORGE_SHUTDOWN_TIMEOUT: "30s" }
    })
    expect(found.map((p) => p.key)).toEqual(["shutdown.grace"])
  })
})

describe("RuntimeConfig bounds and unknown keys", () => {
  /** `--set` entries as the CLI maps them to sources. */
  const set = (...entries: ReadonlyArray<string>) =>
    NodeCli.flagSources({
      mode: Option.none(),
      host: Option.none(),
      port: Option.none(),
      databaseUrl: Option.none(),
      logLevel: Option.none(),
      logFormat: Option.none(),
      set: entries
    })
  const envName = (key: string) => `ASTERFORGE_${key.replace(".", "_").toUpperCase()}`

  // key, value, the bounds the message states
  const outOfBounds: ReadonlyArray<readonly [string, string, string]> = [
    ["worker.heartbeat_interval", "0", "between 100ms and 12h"],
    ["node.heartbeat_interval", "0", "between 100ms and 1h"],
    ["database.connect_timeout", "0", "between 100ms and 10m"],
    ["worker.heartbeat_interval", "99999999999 hours", "between 100ms and 12h"],
    ["node.heartbeat_interval", "99999999999 hours", "between 100ms and 1h"],
    ["database.connect_timeout", "99999999999 hours", "between 100ms and 10m"],
    ["shutdown.grace", "99999999999 hours", "between 0 and 3650d"],
    ["shutdown.timeout", "99999999999 hours", "between 1s and 3650d"],
    ["database.connect_timeout", "-100", "between 100ms and 10m"]
  ]

  it.each(outOfBounds)("%s = %s is refused from the environment, with its bounds", (key, value, bounds) => {
    const name = envName(key)
    expect(problems({ file: noFile, fileRequired: false, env: { [name]: value } })).toEqual([
      { key: `${name} (${key})`, message: `Expected a duration ${bounds}, got ${/^-?\d+$/.test(value) ? value : JSON.stringify(value)}` }
    ])
  })

  it.each(outOfBounds)("%s = %s is refused from --set, with its bounds", (key, value, bounds) => {
    expect(problems({ file: noFile, fileRequired: false, env: {}, flags: set(`${key}=${value}`) })).toEqual([
      { key: `--set ${key} (${key})`, message: expect.stringContaining(`Expected a duration ${bounds}`) }
    ])
  })

  it.each([
    ["[worker]\nheartbeat_interval = 0\n", "worker.heartbeat_interval", "between 100ms and 12h, got 0"],
    ["[node]\nheartbeat_interval = 0\n", "node.heartbeat_interval", "between 100ms and 1h, got 0"],
    ["[database]\nconnect_timeout = 0\n", "database.connect_timeout", "between 100ms and 10m, got 0"],
    ['[database]\nconnect_timeout = "99999999999 hours"\n', "database.connect_timeout", "between 100ms and 10m"],
    ["[database]\nconnect_timeout = 1e300\n", "database.connect_timeout", "between 100ms and 10m"],
    ["[worker]\nheartbeat_interval = -1\n", "worker.heartbeat_interval", "between 100ms and 12h, got -1"]
  ])("in the file, %j is refused, with its bounds", (text, key, bounds) => {
    expect(problems({ file: tmpFile(text), env: {} })).toEqual([{ key, message: expect.stringContaining(`Expected a duration ${bounds}`) }])
  })

  it.each(["inf", "-inf", "nan"])("in the file, a duration of %s is refused", (value) => {
    expect(problems({ file: tmpFile(`[node]\nheartbeat_interval = ${value}\n`), env: {} })).toEqual([
      { key: "node.heartbeat_interval", message: expect.stringContaining("Expected a duration") }
    ])
  })

  it("worker.prefetch takes up to 4096 tasks ahead, and not one more", () => {
    expect(ok({ file: noFile, fileRequired: false, env: { ASTERFORGE_WORKER_PREFETCH: "4096" } }).worker.prefetch).toBe(4096)
    expect(problems({ file: noFile, fileRequired: false, env: { ASTERFORGE_WORKER_PREFETCH: "4097" } })).toEqual([
      { key: "ASTERFORGE_WORKER_PREFETCH (worker.prefetch)", message: "Expected a value between 0 and 4096, got 4097" }
    ])
  })

  it("lists every out-of-bounds value at once, from every source", () => {
    const file = tmpFile("[worker]\nheartbeat_interval = 0\n\n[shutdown]\ntimeout = 0\n")
    const found = problems({
      file,
      env: { ASTERFORGE_NODE_HEARTBEAT_INTERVAL: "0", ASTERFORGE_SHUTDOWN_GRACE: "99999999999 hours" },
      flags: set("database.connect_timeout=0", "database.connect_backoff=99999999999 hours")
    })
    expect(found).toEqual(
      expect.arrayContaining([
        { key: "worker.heartbeat_interval", message: expect.stringContaining("between 100ms and 12h") },
        { key: "shutdown.timeout", message: expect.stringContaining("between 1s and 3650d") },
        { key: "ASTERFORGE_NODE_HEARTBEAT_INTERVAL (node.heartbeat_interval)", message: expect.stringContaining("between 100ms and 1h") },
        { key: "ASTERFORGE_SHUTDOWN_GRACE (shutdown.grace)", message: expect.stringContaining("between 0 and 3650d") },
        { key: "--set database.connect_timeout (database.connect_timeout)", message: expect.stringContaining("between 100ms and 10m") },
        { key: "--set database.connect_backoff (database.connect_backoff)", message: expect.stringContaining("between 1ms and 1m") }
      ])
    )
    expect(found).toHaveLength(6)
  })

  // Names every object has (`constructor`, `__proto__`, `toString`, ...): unknown keys, never a TypeError.
  const objectNames = ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf", "__defineGetter__", "prototype"]

  it.each(objectNames)("--set %s=1 is an unknown key", (name) => {
    const found = problems({ file: noFile, fileRequired: false, env: {}, flags: set(`${name}=1`) })
    expect(found).toEqual([{ key: `--set ${name}`, message: expect.stringMatching(new RegExp(`^unknown key "${name}"`)) }])
  })

  it.each(objectNames)("--set server.%s=1 and --set maintenance.%s=1 are unknown keys", (name) => {
    const found = problems({ file: noFile, fileRequired: false, env: {}, flags: set(`server.${name}=1`, `maintenance.${name}=1`) })
    expect(found).toEqual([
      { key: `--set server.${name}`, message: expect.stringMatching(new RegExp(`^unknown key "server\\.${name}"`)) },
      { key: `--set maintenance.${name}`, message: expect.stringMatching(new RegExp(`^unknown key "maintenance\\.${name}"`)) }
    ])
  })

  it.each(objectNames)("ASTERFORGE_%s and ASTERFORGE_SERVER_%s are unknown variables", (name) => {
    const env = { [`ASTERFORGE_${name.toUpperCase()}`]: "1", [`ASTERFORGE_SERVER_${name.toUpperCase()}`]: "1" }
    const found = problems({ file: noFile, fileRequired: false, env })
    expect(found).toEqual([
      { key: `ASTERFORGE_${name.toUpperCase()}`, message: expect.stringMatching(/^unknown environment variable/) },
      { key: `ASTERFORGE_SERVER_${name.toUpperCase()}`, message: expect.stringMatching(/^unknown environment variable/) }
    ])
  })

  it.each(objectNames)("an environment that names %s itself is ignored (not an ASTERFORGE_ variable)", (name) => {
    const env: Record<string, string> = {}
    Object.defineProperty(env, name, { value: "1", enumerable: true })
    expect(ok({ file: noFile, fileRequired: false, env }).server.port).toBe(3000)
  })

  it.each(objectNames)("in the file, %s as a section, as a key and as a table are unknown", (name) => {
    const found = problems({
      file: tmpFile(`${name} = 1\n\n[server]\n${name} = 1\n\n[maintenance.${name}]\nport = 1\n\n[worker.${name}]\nx = 1\n`),
      env: {}
    })
    expect(found).toEqual([
      { key: expect.stringMatching(new RegExp(`: \\[${name}\\]$`)), message: expect.stringMatching(/^unknown section/) },
      { key: `server.${name}`, message: expect.stringMatching(/^unknown key/) },
      { key: `maintenance.${name}`, message: expect.stringMatching(/^unknown key/) },
      { key: `worker.${name}`, message: expect.stringMatching(/^unknown key/) }
    ])
  })

  it("a [__proto__] table in the file changes no object's prototype", () => {
    problems({ file: tmpFile("[__proto__]\npolluted = 1\n\n[server]\n__proto__ = { polluted = 1 }\n"), env: {} })
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined()
    expect(Object.prototype).not.toHaveProperty("polluted")
  })
})
