/**
 * The `asterforge` command as a user meets it: help, bad input, config check,
 * node modes, metrics scraped by a real Prometheus parser, config reload.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freshDatabase, query, type FreshDatabase } from "../../../runtime/test/support/kit.ts"
import { pollHttp, spawnCli, trackProcesses } from "../../../runtime/test/support/process.ts"

let db: FreshDatabase
const track = trackProcesses()

beforeAll(async () => {
  db = await freshDatabase("cli")
})
afterAll(async () => {
  await db.drop()
})

const tmpToml = (text: string) => {
  const file = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "af-cli-")), "asterforge.toml")
  Fs.writeFileSync(file, text)
  return file
}

const hasStackTrace = (text: string) => /^\s+at .+\(.+:\d+:\d+\)$/m.test(text)

describe("help and bad input", () => {
  it.each([[[]], [["start"]], [["migrate"]], [["config"]], [["config", "check"]]])("--help works for %j", async (args) => {
    const cli = spawnCli([...args, "--help"])
    expect((await cli.exited).code).toBe(0)
    expect(cli.stdout.join("\n")).toContain("USAGE")
  })

  it("an unknown flag exits 1 with the reason", async () => {
    const cli = spawnCli(["start", "--prot", "3000"])
    expect((await cli.exited).code).toBe(1)
    expect(cli.output).toContain("Unrecognized flag: --prot")
    expect(hasStackTrace(cli.output)).toBe(false)
  })

  it("invalid configuration from every source: exit 1, every problem listed with its key, nothing started", async () => {
    const file = tmpToml(`
[server]
port = "http"
mode = "primary"

[shutdown]
grace = "forever"
`)
    const cli = spawnCli(["start", "--config", file, "--mode", "leader", "--set", "audit.overflow=explode"], {
      ASTERFORGE_DATABASE_POOL_MAX: "-1",
      NODE_ENV: "production"
    })
    expect((await cli.exited).code).toBe(1)
    const stderr = cli.stderr.join("\n")
    expect(stderr).toContain("invalid configuration (7 problems):")
    for (const expected of [
      'server.mode: unknown key (did you mean "start_mode"?)',
      "server.port: Expected",
      "shutdown.grace: Expected a duration",
      '--mode (server.start_mode): Expected "primary" | "follower" | "maintenance" | "worker", got "leader"',
      "--set audit.overflow (audit.overflow):",
      "ASTERFORGE_DATABASE_POOL_MAX (database.pool_max): Expected a value between 1 and 1000, got -1",
      "security.admin_token: required in production"
    ])
      expect(stderr).toContain(expected)
    expect(hasStackTrace(stderr)).toBe(false)
    // Nothing started: no embedded Postgres, no HTTP server, no log lines at all.
    expect(cli.logs).toEqual([])
  })

  it("malformed TOML: exit 1 with file and position", async () => {
    const file = tmpToml("[server\nport = 1\n")
    const cli = spawnCli(["config", "check", "-c", file])
    expect((await cli.exited).code).toBe(1)
    expect(cli.stderr.join("\n")).toMatch(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: malformed TOML`))
  })

  it("config check prints the effective configuration with origins, secrets redacted", async () => {
    const file = tmpToml(`[server]\nport = 4100\n[security]\nadmin_token = "a-very-long-token-that-is-not-a-placeholder-123"\n`)
    const cli = spawnCli(["config", "check", "-c", file, "--host", "0.0.0.0"], { DATABASE_URL: "postgres://u:topsecret@db/app" })
    expect((await cli.exited).code).toBe(0)
    const out = cli.stdout.join("\n")
    expect(out).toMatch(/server\.port\s+= 4100\s+# file/)
    expect(out).toMatch(/server\.host\s+= 0\.0\.0\.0\s+# flag/)
    expect(out).toMatch(/database\.url\s+= <redacted>\s+# env/)
    expect(out).toMatch(/security\.admin_token\s+= <redacted>\s+# file/)
    expect(out).not.toContain("topsecret")
    expect(out).not.toContain("a-very-long-token")
  })

  it("an unreachable database at start: exit 1 with one clear line", async () => {
    const cli = spawnCli([
      "start",
      "--port",
      "0",
      "--database-url",
      "postgres://127.0.0.1:1/x",
      "--set",
      "database.connect_attempts=2",
      "--set",
      "database.connect_backoff=10ms"
    ])
    expect((await cli.exited).code).toBe(1)
    expect(cli.stderr.join("\n")).toMatch(/^error: cannot connect to postgres:\/\/127\.0\.0\.1:1\/x after 2 attempts: /m)
    expect(hasStackTrace(cli.output)).toBe(false)
  })
  it("a port already in use: exit 1 naming the address", async () => {
    const blocker = Net.createServer()
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()))
    const port = (blocker.address() as Net.AddressInfo).port
    try {
      const cli = spawnCli(["start", "--port", String(port)], { DATABASE_URL: db.url })
      expect((await cli.exited).code).toBe(1)
      expect(cli.stderr.join("\n")).toContain(`error: cannot listen on 127.0.0.1:${port}: address already in use`)
      expect(hasStackTrace(cli.output)).toBe(false)
    } finally {
      blocker.close()
    }
  })
})

describe("node modes", () => {
  it.each(["follower", "maintenance", "worker"] as const)("--mode %s reports its mode and role", async (mode) => {
    const node = track(spawnCli(["start", "--mode", mode, "--port", "0"], { DATABASE_URL: db.url }))
    const base = await node.baseUrl()
    const ready = JSON.parse((await pollHttp(`${base}/health/ready`, (s) => s === 200)).body)
    expect(ready.mode).toBe(mode)
    expect(ready.role).toEqual(
      {
        follower: { fullApi: true, dispatches: false, runsLanes: false },
        maintenance: { fullApi: false, dispatches: false, runsLanes: true },
        worker: { fullApi: false, dispatches: true, runsLanes: false }
      }[mode]
    )
    const [row] = await query<{ mode: string }>(db.url, "SELECT mode FROM nodes WHERE id = $1", [ready.node.id])
    expect(row?.mode).toBe(mode)
  })

  it("ASTERFORGE_MODE is used when --mode is absent, and --mode wins over it", async () => {
    const fromEnv = spawnCli(["config", "check"], { ASTERFORGE_MODE: "worker" })
    expect((await fromEnv.exited).code).toBe(0)
    expect(fromEnv.stdout.join("\n")).toMatch(/server\.start_mode\s+= worker\s+# env/)
    const fromFlag = spawnCli(["config", "check", "--mode", "follower"], { ASTERFORGE_MODE: "worker" })
    expect((await fromFlag.exited).code).toBe(0)
    expect(fromFlag.stdout.join("\n")).toMatch(/server\.start_mode\s+= follower\s+# flag/)
  })
})

describe("metrics", () => {
  it("/health/metrics is valid Prometheus text (promtool) and counts requests", async () => {
    const node = track(spawnCli(["start", "--port", "0"], { DATABASE_URL: db.url }))
    const base = await node.baseUrl()
    await pollHttp(`${base}/health/ready`, (s) => s === 200)
    for (let i = 0; i < 5; i++) expect((await fetch(`${base}/health`)).status).toBe(200)
    expect((await fetch(`${base}/no/such/route`)).status).toBe(404)
    const res = await fetch(`${base}/health/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toContain("text/plain")
    const body = await res.text()

    const promtool = ChildProcess.spawnSync("promtool", ["check", "metrics"], { input: body, encoding: "utf8" })
    expect(promtool.error, "promtool must be installed (apt-get install prometheus; .ci/run does it)").toBeUndefined()
    expect(promtool.status, promtool.stdout + promtool.stderr).toBe(0)

    expect(body).toMatch(/^asterforge_http_requests_total\{route="\/health",method="GET",status="200"\} 5$/m)
    expect(body).toMatch(/^asterforge_http_requests_total\{route="unmatched",method="GET",status="404"\} 1$/m)
    expect(body).toMatch(/^asterforge_node_info\{mode="primary",version="[^"]+",node_id="[0-9a-f-]{36}"\} 1$/m)
    expect(body).toMatch(/^asterforge_audit_recorded_total \d+$/m)
    expect(body).toMatch(/^# TYPE asterforge_http_request_duration_seconds histogram$/m)
  })
})

describe("config reload", () => {
  it("a log level change applies without restart; an invalid file is rejected and the node keeps running", async () => {
    const file = tmpToml(`[telemetry]\nlog_level = "info"\n`)
    const node = track(spawnCli(["start", "--port", "0", "-c", file], { DATABASE_URL: db.url }))
    const base = await node.baseUrl()
    await pollHttp(`${base}/health/ready`, (s) => s === 200)
    await fetch(`${base}/health`)
    const debugLines = () => node.logs.filter((l) => l.level === "debug")
    expect(debugLines()).toEqual([])

    Fs.writeFileSync(file, `[telemetry]\nlog_level = "debug"\n`)
    await node.waitFor(/config reloaded: telemetry\.log_level info -> debug/, 15_000)
    await fetch(`${base}/health`)
    await node.waitFor(/"level":"debug".*GET \/health 200/, 5_000)

    Fs.writeFileSync(file, `[telemetry]\nlog_level = "loud"\n`)
    await node.waitFor(/config reload rejected/, 15_000)
    expect((await fetch(`${base}/health/ready`)).status).toBe(200)

    node.kill("SIGTERM")
    expect((await node.exited).code).toBe(0)
    const nodeId = JSON.parse(node.stderr.find((l) => l.includes("registered as primary"))!).message.match(/\(([0-9a-f-]{36})\)/)[1]
    const events = await query<{ code: string; details: { applied?: Array<{ key: string; to: string }> } }>(
      db.url,
      "SELECT code, details FROM audit_events WHERE node_id = $1 AND code LIKE 'config.%' ORDER BY id",
      [nodeId]
    )
    expect(events.map((e) => e.code)).toEqual(["config.reloaded", "config.reload_rejected"])
    expect(events[0]?.details.applied).toEqual([{ key: "telemetry.log_level", from: "info", to: "debug" }])
  })
})
