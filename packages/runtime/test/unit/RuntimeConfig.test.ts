import { Duration, Option, Redacted, Result } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
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
