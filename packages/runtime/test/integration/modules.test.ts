/**
 * What an application brings besides handlers, run as the real app binary
 * (fixtures/orders-app.ts: its entry is `Runtime.main`): its own migrations
 * (order, idempotency, two nodes starting at once, a failing one stops
 * start-up), its own configuration section (validated with the runtime's,
 * shown by `config check`, read by its handler and readiness check), and the
 * bad input an app's command line and modules can meet.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, type FreshDatabase, freshDatabase, query } from "../support/kit.ts"
import { fixture, pollHttp, spawnNode, trackProcesses } from "../support/process.ts"

const app = fixture("orders-app.ts")
const track = trackProcesses()
const dbs: Array<FreshDatabase> = []
const newDb = async (label: string) => {
  const db = await freshDatabase(label)
  dbs.push(db)
  return db
}
afterAll(async () => {
  for (const db of dbs) await db.drop()
})

const hasStackTrace = (text: string) => /^\s+at /m.test(text)

describe("module migrations", () => {
  let db: FreshDatabase
  beforeAll(async () => {
    db = await newDb("modules_migrate")
  })

  it("`migrate` applies the runtime's, then the module's in id order, tracked in the module's own table; a second run is a no-op", async () => {
    const first = track(spawnNode(app, ["migrate"], { DATABASE_URL: db.url }))
    expect(await first.exited, first.output).toEqual({ code: 0, signal: null })
    const lines = first.stdout.filter((l) => l.startsWith("  "))
    expect(lines.filter((l) => l.startsWith("  asterforge "))).not.toHaveLength(0)
    expect(lines.slice(-2)).toEqual(["  orders 0001_create_orders", "  orders 0002_orders_customer_index"])
    expect(lines.findIndex((l) => l.startsWith("  orders"))).toBe(lines.length - 2)

    const tracked = await query<{ migration_id: number; name: string }>(
      db.url,
      "SELECT migration_id, name FROM asterforge_migrations_orders ORDER BY 1"
    )
    expect(tracked).toEqual([
      { migration_id: 1, name: "create_orders" },
      { migration_id: 2, name: "orders_customer_index" }
    ])
    expect(
      await query(db.url, "SELECT indexname FROM pg_indexes WHERE tablename = 'orders' AND indexname = 'orders_customer'")
    ).toHaveLength(1)

    const second = track(spawnNode(app, ["migrate"], { DATABASE_URL: db.url }))
    expect((await second.exited).code).toBe(0)
    expect(second.stdout.join("\n")).toBe("database schema is up to date")
  })

  it("two nodes starting at once on a fresh database: each migration is applied once, both become ready", async () => {
    const fresh = await newDb("modules_race")
    const nodes = [0, 1].map(() => track(spawnNode(app, ["start", "--port", "0"], { DATABASE_URL: fresh.url })))
    const urls = await Promise.all(nodes.map((n) => n.baseUrl()))
    for (const url of urls) await pollHttp(`${url}/health/ready`, (s) => s === 200)
    expect(await query<{ n: number }>(fresh.url, "SELECT count(*)::int AS n FROM asterforge_migrations_orders")).toEqual([{ n: 2 }])
    const applied = nodes.flatMap((n) => n.logs.filter((l) => String(l.message).startsWith("applied ")))
    expect(applied).toHaveLength(1)
    for (const n of nodes) n.kill("SIGTERM")
    for (const n of nodes) expect((await n.exited).code).toBe(0)
  })

  it("a failing module migration stops start-up: exit 1, one readable message naming the module, nothing served", async () => {
    const fresh = await newDb("modules_broken")
    const node = track(spawnNode(app, ["start", "--port", "0"], { DATABASE_URL: fresh.url, ORDERS_BROKEN_MIGRATION: "1" }))
    expect((await node.exited).code).toBe(1)
    const stderr = node.stderr.join("\n")
    expect(stderr).toMatch(/^error: module orders migration failed: .*no_such_table/m)
    expect(hasStackTrace(stderr)).toBe(false)
    expect(stderr).not.toContain("http listening")
    // Migrations run in one transaction per set: the module's table holds none of the broken run.
    expect(await query(fresh.url, "SELECT to_regclass('orders') IS NULL AS absent")).toEqual([{ absent: true }])
  })
})

describe("module configuration", () => {
  it("`config check` lists the module's keys with the runtime's; a bad value is listed with every other problem", async () => {
    const ok = track(spawnNode(app, ["config", "check"], { ASTERFORGE_ORDERS_MAX_LINES: "20" }))
    expect((await ok.exited).code).toBe(0)
    expect(ok.stdout.find((l) => l.startsWith("orders.max_lines"))).toMatch(/= 20 {2}# env$/)
    expect(ok.stdout.find((l) => l.startsWith("orders.currency"))).toMatch(/= EUR {2}# default$/)

    const bad = track(
      spawnNode(app, ["start", "--set", "orders.currency=GBP"], { ASTERFORGE_ORDERS_MAX_LINES: "0", ASTERFORGE_WORKER_CONCURENCY: "2" })
    )
    expect((await bad.exited).code).toBe(1)
    const stderr = bad.stderr.join("\n")
    expect(stderr).toContain("invalid configuration (3 problems):")
    expect(stderr).toContain("ASTERFORGE_ORDERS_MAX_LINES (orders.max_lines): Expected a value between 1 and 1000, got 0")
    expect(stderr).toContain('--set orders.currency (orders.currency): Expected "EUR" | "USD", got "GBP"')
    expect(stderr).toContain('ASTERFORGE_WORKER_CONCURENCY: unknown environment variable (did you mean "ASTERFORGE_WORKER_CONCURRENCY"?)')
    expect(bad.logs).toEqual([])
  })

  it("the module's handler and readiness check read its section; its own SQL runs in the handler", async () => {
    const db = await newDb("modules_config")
    const node = track(
      spawnNode(app, ["start", "--port", "0"], {
        DATABASE_URL: db.url,
        ASTERFORGE_ORDERS_MAX_LINES: "3",
        ASTERFORGE_ORDERS_CURRENCY: "USD"
      })
    )
    const url = await node.baseUrl()
    const ready = JSON.parse((await pollHttp(`${url}/health/ready`, (s) => s === 200)).body)
    expect(ready.checks.find((c: { name: string }) => c.name === "orders")).toMatchObject({
      status: "pass",
      detail: "accepting orders in USD, up to 3 lines"
    })
    await query(
      db.url,
      `INSERT INTO tasks (name, queue, state, max_attempts, payload) VALUES
      ('orders.place', 'default', 'available', 3, '{"customer":"ada","lines":2}'),
      ('orders.place', 'default', 'available', 3, '{"customer":"bob","lines":9}')`
    )
    const done = await eventually(async () => {
      const rows = await query<{ state: string; payload: { customer: string }; errors: Array<{ code: string | null }> }>(
        db.url,
        "SELECT state, payload, errors FROM tasks WHERE name = 'orders.place' ORDER BY id"
      )
      return rows.every((r) => r.state === "succeeded" || r.state === "failed") ? rows : undefined
    }, "both orders to finish")
    expect(done.map((r) => [r.payload.customer, r.state])).toEqual([
      ["ada", "succeeded"],
      ["bob", "failed"]
    ])
    expect(done[1]!.errors.at(-1)?.code).toBe("orders.too_many_lines")
    expect(await query(db.url, "SELECT customer, lines FROM orders")).toEqual([{ customer: "ada", lines: 2 }])
  })
})

describe("bad input on an app's command line and modules", () => {
  it("an unknown command or flag: non-zero exit, the reason and the usage, no stack trace", async () => {
    for (const args of [["strat"], ["start", "--prot", "3001"]]) {
      const run = track(spawnNode(app, args, {}))
      const exited = await run.exited
      expect(exited.code, run.output).not.toBe(0)
      expect(run.output).toMatch(args[0] === "strat" ? /Unknown subcommand|strat/ : /Unrecognized flag: --prot/)
      expect(hasStackTrace(run.output)).toBe(false)
    }
  })

  it("`--help` on the app's commands describes them and exits 0", async () => {
    const help = track(spawnNode(app, ["start", "--help"], {}))
    expect((await help.exited).code).toBe(0)
    expect(help.stdout.join("\n")).toContain("orders-app start --mode follower --port 3001")
  })

  it("two modules registering one task name: exit 1 before anything starts, naming both", async () => {
    const db = await newDb("modules_dup")
    const node = track(spawnNode(app, ["start", "--port", "0"], { DATABASE_URL: db.url, ORDERS_DUPLICATE_TASK: "1" }))
    expect((await node.exited).code).toBe(1)
    const stderr = node.stderr.join("\n")
    expect(stderr).toContain("invalid application modules (1 problem):")
    expect(stderr).toContain('module "orders-copy" task orders.place: registered twice (also in module "orders")')
    expect(hasStackTrace(stderr)).toBe(false)
    expect(node.logs).toEqual([])
    expect(await query(db.url, "SELECT to_regclass('tasks') IS NULL AS absent")).toEqual([{ absent: true }])
  })
})
