/**
 * Database layer against a real Postgres: idempotent migrations, concurrent
 * migrators in separate processes, and connection retry against a closed port.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { PgConnection } from "@effect/sql-pg"
import * as Database from "../../src/Database.ts"
import * as MigrationSql from "../../src/internal/sql/migrations.ts"
import * as Migrations from "../../src/migrations/index.ts"
import * as Kit from "../support/kit.ts"
import { pollHttp, spawnCli } from "../support/process.ts"
import * as Net from "node:net"

const dbs: Array<Kit.FreshDatabase> = []
afterAll(async () => {
  await Promise.all(dbs.map((d) => d.drop()))
})
const newDb = async (label: string) => {
  const d = await Kit.freshDatabase(label)
  dbs.push(d)
  return d
}

/** A pool on the test database, without the migrations a node runs at start. */
const client = Database.layerClient.pipe(Layer.provideMerge(Database.layerUrl), Layer.provide(Kit.configLayer()))

/** A loopback port with nothing listening: free a moment ago, and nobody here binds it. */
const closedPort = Kit.freePort

describe("migrations", () => {
  it.live("apply once, then are a no-op; readiness sees the schema as current", () =>
    Effect.gen(function* () {
      const before = yield* Database.migrationsApplied
      const first = yield* Database.migrate
      const second = yield* Database.migrate
      const after = yield* Database.migrationsApplied
      expect(before).toBe(false)
      expect(first.map((a) => [a.owner, a.id])).toEqual(Object.keys(Migrations.all).map((k) => ["asterforge", Number(k.split("_")[0])]))
      expect(second).toEqual([])
      expect(after).toBe(true)
      const tables = yield* Kit.queryDb<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
      expect(tables.map((t) => t.t)).toEqual([
        "api_tokens",
        "asterforge_migrations",
        "audit_events",
        "control_login_flows",
        "control_sessions",
        "lane_leaders",
        "nodes",
        "queue_settings",
        "queue_stats",
        "schedules",
        "tasks"
      ])
    }).pipe(Effect.provide(client.pipe(Layer.provideMerge(Kit.database("migrate_idem")))))
  )

  it.live("a node whose schema is current does not wait for a migrator elsewhere: it takes no migration lock", () =>
    Effect.gen(function* () {
      yield* Database.migrate
      const { url } = yield* Database.DatabaseUrl
      yield* Effect.scoped(
        Effect.gen(function* () {
          // Another process is migrating (it holds the lock, as `migrate` does while it applies).
          const migrator = yield* PgConnection.make({ url })
          yield* migrator.query(MigrationSql.lock, [MigrationSql.lockKey])
          // Before the read of the latest applied ids, this start blocked until that lock was released.
          const applied = yield* Database.migrate.pipe(Effect.timeout("10 seconds"))
          expect(applied).toEqual([])
        })
      )
    }).pipe(Effect.provide(client.pipe(Layer.provideMerge(Kit.database("migrate_current")))))
  )

  it("two migrator processes started together: one applies, the other waits and finds nothing to do", async () => {
    const db = await newDb("migrate_race")
    const a = spawnCli(["migrate", "--database-url", db.url])
    const b = spawnCli(["migrate", "--database-url", db.url])
    const [ea, eb] = await Promise.all([a.exited, b.exited])
    expect(ea, a.output).toEqual({ code: 0, signal: null })
    expect(eb, b.output).toEqual({ code: 0, signal: null })
    const outputs = [a.stdout.join("\n"), b.stdout.join("\n")].sort()
    expect(outputs[0]).toMatch(new RegExp(`^applied ${Object.keys(Migrations.all).length} migration\\(s\\):`))
    expect(outputs[1]).toBe("database schema is up to date")
    const rows = await Kit.query<{ migration_id: number }>(db.url, `SELECT migration_id FROM ${Migrations.table} ORDER BY 1`)
    expect(rows.map((r) => r.migration_id)).toEqual(Object.keys(Migrations.all).map((k) => Number(k.split("_")[0])))
  })

  it("with migrations disabled, a node refuses an outdated schema with a clear error, and starts once migrated", async () => {
    const db = await newDb("migrate_skip")
    const refused = spawnCli(["start", "--port", "0"], { DATABASE_URL: db.url, SKIP_MIGRATIONS: "1" })
    expect((await refused.exited).code).toBe(1)
    const stderr = refused.stderr.join("\n")
    expect(stderr).toContain("migrations skipped (database.migrate = false)")
    expect(stderr).toContain("error: the database schema is behind this build and migrations are disabled; run `asterforge migrate` first")
    expect(stderr).not.toMatch(/^\s+at /m)

    const migrated = spawnCli(["migrate", "--database-url", db.url])
    expect((await migrated.exited).code).toBe(0)
    const node = spawnCli(["start", "--port", "0"], { DATABASE_URL: db.url, SKIP_MIGRATIONS: "1" })
    try {
      const base = await node.baseUrl()
      const ready = await pollHttp(`${base}/health/ready`, (s) => s === 200)
      const migrations = JSON.parse(ready.body).checks.find((c: { name: string }) => c.name === "migrations")
      expect(migrations.status).toBe("pass")
    } finally {
      node.kill("SIGTERM")
      await node.exited
    }
  })
})

describe("connecting", () => {
  it("retries with backoff, one log line per attempt, then exits 1 with the reason", async () => {
    const port = await closedPort()
    const cli = spawnCli([
      "migrate",
      "--database-url",
      `postgres://someone:s3cret@127.0.0.1:${port}/nowhere`,
      "--set",
      "database.connect_attempts=3",
      "--set",
      "database.connect_backoff=50ms"
    ])
    const exit = await cli.exited
    expect(exit.code).toBe(1)
    const warnings = cli.logs.filter((l) => l.level === "warn").map((l) => String(l.message))
    expect(warnings).toHaveLength(2)
    expect(warnings[0]).toMatch(
      new RegExp(`attempt 1/3 to postgres://someone:\\*\\*\\*@127\\.0\\.0\\.1:${port}/nowhere failed: .*retrying in 50 ms`)
    )
    expect(warnings[1]).toMatch(/attempt 2\/3 .*retrying in 100 ms/)
    const stderr = cli.stderr.join("\n")
    expect(stderr).toMatch(/error: cannot connect to .* after 3 attempts/)
    expect(stderr).not.toContain("s3cret")
    expect(stderr).not.toMatch(/^\s+at /m) // no stack trace for an operator error
  })

  it("a server that answers only after the first attempts: the node keeps trying, then works on the pool it probed with", async () => {
    const db = await newDb("late_server")
    const target = new URL(db.url)
    const port = await closedPort()
    const late = new URL(db.url)
    late.port = String(port)
    const cli = spawnCli([
      "migrate",
      "--database-url",
      late.toString(),
      "--set",
      "database.connect_attempts=50",
      "--set",
      "database.connect_backoff=50ms"
    ])
    // The server "comes up" (a TCP relay to the real one starts listening) once the first attempt has failed.
    await cli.waitFor(/attempt 1\/50 .* failed/)
    const relay = Net.createServer((client) => {
      const server = Net.connect(Number(target.port || 5432), target.hostname)
      client.pipe(server).pipe(client)
      client.on("error", () => server.destroy())
      server.on("error", () => client.destroy())
    })
    await new Promise<void>((resolve) => relay.listen(port, "127.0.0.1", resolve))
    try {
      const exit = await cli.exited
      expect(exit.code, cli.output).toBe(0)
      const connected = cli.logs.find((l) => /connected to .* on attempt (\d+)/.test(String(l.message)))
      expect(Number(/on attempt (\d+)/.exec(String(connected?.message))?.[1])).toBeGreaterThanOrEqual(2)
      // It migrated on that pool: the schema is there.
      const [row] = await Kit.query<{ n: number }>(db.url, "SELECT count(*)::int AS n FROM asterforge_migrations")
      expect(row?.n).toBe(Object.keys(Migrations.all).length)
    } finally {
      await new Promise((resolve) => relay.close(resolve))
    }
  })
})
