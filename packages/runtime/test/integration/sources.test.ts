/**
 * Task sources against the real queue: a schedule fires exactly once per fire
 * across two leader candidates (one killed between fires), catches up or
 * coalesces after downtime, refuses a second or deposed claim of a fire, is
 * paused, resumed and triggered by the schedules service; a webhook checks
 * size, signature, body and key before anything is written and answers a
 * replay with the same task; a polling source publishes each event once
 * however often it sees it.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import * as LaneSql from "../../src/internal/sql/laneLeaders.ts"
import * as ScheduleSql from "../../src/internal/sql/schedules.ts"
import * as CronSource from "../../src/sources/Cron.ts"
import type * as TaskSource from "../../src/TaskSource.ts"
import * as WebhookSource from "../../src/sources/Webhook.ts"
import { toNew } from "../../src/TaskQueue.ts"
import * as Sources from "../fixtures/sources.ts"
import * as T from "../fixtures/test-tasks.ts"
import { eventually, freshDatabase, query, startNode, type FreshDatabase, type TestNode } from "../support/kit.ts"
import { fixture, spawnNode, trackProcesses } from "../support/process.ts"

let db: FreshDatabase
/** A follower: migrates, serves the webhook, never leads a schedule and never runs a task. */
let client: TestNode
const track = trackProcesses()
const nodes: Array<TestNode> = []
const quiet = { ASTERFORGE_TELEMETRY_LOG_LEVEL: "none" }

beforeAll(async () => {
  db = await freshDatabase("sources")
  client = await startNode({ url: db.url, mode: "follower", modules: [Sources.module([Sources.ordersHook])], env: quiet })
  await query(db.url, Sources.createEventsTable)
})
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.close()
  await query(db.url, "DELETE FROM tasks")
  await query(db.url, "DELETE FROM schedules")
})
afterAll(async () => {
  await client?.close()
  await db?.drop()
})

const startMaintenance = async (sources: ReadonlyArray<TaskSource.TaskSource<SqlClient.SqlClient>>) => {
  const n = await startNode({ url: db.url, mode: "maintenance", modules: [Sources.module(sources)], env: quiet })
  nodes.push(n)
  return n
}

interface TaskRow {
  readonly id: string
  readonly fire: string
  readonly node: string
  readonly unique_key: string
}
const tasksOf = (name: string, source: string) =>
  query<TaskRow>(
    db.url,
    `SELECT id::text, payload->>'fire' AS fire, metadata->>'node' AS node, unique_key FROM tasks
     WHERE name = $1 AND metadata->>'source' = $2 ORDER BY tasks.id`,
    [name, source]
  )

describe("CronSource", () => {
  it("two leader candidates, the leader killed between fires: every fire is enqueued exactly once", async () => {
    const spawn = () => track(spawnNode(fixture("sources-app.ts"), ["maintenance", "run", "--port", "0"], { DATABASE_URL: db.url }))
    const a = spawn()
    const b = spawn()
    await Promise.all([a.baseUrl(), b.baseUrl()])
    await eventually(async () => ((await tasksOf("test.tick", "test.tick")).length >= 3 ? true : undefined), "three fires")
    const [leader] = await query<{ node_id: string }>(db.url, "SELECT node_id::text FROM lane_leaders WHERE lane = 'source:test.tick'")
    const victim = [a, b].find((p) => p.output.includes(leader!.node_id))!
    const survivor = victim === a ? b : a
    const killedAt = Date.now()
    victim.kill("SIGKILL")
    const after = await eventually(async () => {
      const rows = await tasksOf("test.tick", "test.tick")
      return rows.filter((r) => r.node !== leader!.node_id).length >= 3 ? rows : undefined
    }, "three fires from the surviving node")
    const [firstAfter] = await query<{ at: Date }>(
      db.url,
      "SELECT min(created_at) AS at FROM tasks WHERE name = 'test.tick' AND metadata->>'node' <> $1 AND created_at > $2",
      [leader!.node_id, new Date(killedAt).toISOString()]
    )
    console.log(
      `[measure] schedule failover after kill -9: the survivor's first fire enqueued ${firstAfter!.at.getTime() - killedAt} ms after the kill`
    )
    survivor.kill("SIGTERM")
    expect((await survivor.exited).code).toBe(0)

    const rows = await tasksOf("test.tick", "test.tick")
    expect(rows.length).toBeGreaterThanOrEqual(after.length)
    // One task per fire: distinct fires, each a whole second, in order; both nodes fired.
    const fires = rows.map((r) => Date.parse(r.fire))
    expect(new Set(fires).size).toBe(rows.length)
    expect(fires.every((f) => f % 1000 === 0)).toBe(true)
    expect([...fires].sort((x, y) => x - y)).toEqual(fires)
    expect(new Set(rows.map((r) => r.node)).size).toBe(2)
    expect(rows.every((r) => r.unique_key === `test.tick:${r.fire}`)).toBe(true)
    // Every successful claim inserted exactly one task: no claim without its task, no task without its claim.
    const [schedule] = await query<{ fired_count: string; last_fire_at: Date }>(
      db.url,
      "SELECT fired_count::text, last_fire_at FROM schedules WHERE name = 'test.tick'"
    )
    expect(Number(schedule!.fired_count)).toBe(rows.length)
    expect(schedule!.last_fire_at.getTime()).toBe(fires[fires.length - 1])
  })

  it("after downtime: coalesce enqueues the latest missed fire once, catchUp the latest n in order", async () => {
    // Both schedules last fired five hours ago, and every node was down since.
    await query(
      db.url,
      `INSERT INTO schedules (name, spec, created_at, last_fire_at)
       SELECT n, 'cron "0 * * * *" UTC', now() - interval '1 day', date_trunc('hour', now()) - interval '5 hours'
       FROM unnest(ARRAY['test.coalesce', 'test.catchup']) AS n`
    )
    const node = await startMaintenance([
      Sources.tick({ name: "test.coalesce", cron: "0 * * * *" }),
      Sources.tick({ name: "test.catchup", cron: "0 * * * *", missed: { catchUp: 3 } })
    ])
    const coalesced = await eventually(async () => {
      const rows = await tasksOf("test.tick", "test.coalesce")
      return rows.length > 0 ? rows : undefined
    }, "the coalesced fire")
    const caught = await eventually(async () => {
      const rows = await tasksOf("test.tick", "test.catchup")
      return rows.length >= 3 ? rows : undefined
    }, "three caught-up fires")
    const hour = 3_600_000
    expect(coalesced).toHaveLength(1)
    const latest = Date.parse(coalesced[0]!.fire)
    expect(latest % hour).toBe(0)
    expect(latest).toBeLessThanOrEqual(Date.now())
    expect(latest).toBeGreaterThan(Date.now() - hour)
    expect(caught.map((r) => Date.parse(r.fire))).toEqual([latest - 2 * hour, latest - hour, latest])

    // The leader shows the schedule and its next fire in readiness.
    const ready = (await (await fetch(`${node.baseUrl}/health/ready`)).json()) as {
      checks: Array<{ name: string; data?: { sources: Record<string, { running: boolean; details: { next_fire_at: string } }> } }>
    }
    const sources = ready.checks.find((c) => c.name === "sources")?.data?.sources ?? {}
    expect(sources["test.coalesce"]?.running).toBe(true)
    expect(Date.parse(sources["test.coalesce"]!.details.next_fire_at)).toBe(latest + hour)
  })

  it("pause, resume and trigger-now through the schedules service, each audited", async () => {
    await startMaintenance([Sources.tick({ name: "test.manual", cron: "0 0 1 1 *" })])
    const schedules = (f: (s: CronSource.SchedulesShape) => Effect.Effect<any, any>) => client.run(Effect.flatMap(CronSource.Schedules, f))
    // The client (a follower) knows no such schedule: it was started without it.
    await expect(schedules((s) => s.pause("test.manual"))).rejects.toThrow(/no schedule named "test.manual"/)
    const other = await startNode({
      url: db.url,
      mode: "follower",
      modules: [Sources.module([Sources.tick({ name: "test.manual", cron: "0 0 1 1 *" })])],
      env: quiet
    })
    nodes.push(other)
    const admin = (f: (s: CronSource.SchedulesShape) => Effect.Effect<any, any>) => other.run(Effect.flatMap(CronSource.Schedules, f))
    expect(await admin((s) => s.pause("test.manual", "user:ops"))).toMatchObject({ name: "test.manual", paused: true })
    const triggered = await admin((s) => s.triggerNow("test.manual", "user:ops"))
    const [task] = await query<{ unique_key: string; trigger: string }>(
      db.url,
      "SELECT unique_key, metadata->>'trigger' AS trigger FROM tasks WHERE id = $1",
      [triggered.id]
    )
    expect(task).toMatchObject({ trigger: "manual" })
    expect(task!.unique_key).toMatch(/^test\.manual:manual:/)
    expect(await admin((s) => s.resume("test.manual", "user:ops"))).toMatchObject({ paused: false })
    const list = (await admin((s) => s.list)) as ReadonlyArray<CronSource.ScheduleView>
    expect(list.map((v) => v.name)).toEqual(["test.manual"])
    expect(Date.parse(list[0]!.next_fire_at)).toBeGreaterThan(Date.now())
    // Any node's readiness lists the schedules it knows, with their next fire.
    const ready = (await (await fetch(`${other.baseUrl}/health/ready`)).json()) as {
      checks: Array<{ name: string; data?: { schedules: Record<string, { next_fire_at: string; paused: boolean }> } }>
    }
    expect(ready.checks.find((c) => c.name === "schedules")?.data?.schedules["test.manual"]).toMatchObject({
      next_fire_at: list[0]!.next_fire_at,
      paused: false
    })
    const audited = await eventually(async () => {
      const rows = await query<{ code: string }>(
        db.url,
        "SELECT code FROM audit_events WHERE subject = 'schedule:test.manual' AND actor = 'user:ops' ORDER BY id"
      )
      return rows.length >= 3 ? rows.map((r) => r.code) : undefined
    }, "three schedule audit events")
    expect(audited).toEqual(["schedule.paused", "schedule.triggered", "schedule.resumed"])
  })

  it("a second claim of the same fire, and a deposed leader's claim, insert nothing", async () => {
    const lane = "source:test.cas"
    await query(db.url, "INSERT INTO schedules (name, spec) VALUES ('test.cas', 'test')")
    await query(db.url, "INSERT INTO lane_leaders (lane, epoch) VALUES ($1, 1) ON CONFLICT (lane) DO UPDATE SET epoch = 1", [lane])
    const f1 = new Date("2030-01-01T00:00:00Z")
    const f2 = new Date("2030-01-01T00:01:00Z")
    const claim = (prev: Date | null, fire: Date, epoch: number) =>
      client.run(
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          ScheduleSql.fire(
            sql,
            { name: "test.cas", prev, fire, next: f2, fence: LaneSql.fence(sql, lane, epoch) },
            toNew(
              Sources.Tick,
              { fire: fire.toISOString() },
              { uniqueKey: `test.cas:${fire.toISOString()}`, metadata: { source: "test.cas" } },
              null
            )
          )
        )
      )
    expect((await claim(null, f1, 1))[0]).toMatchObject({ claimed: 1 })
    expect((await claim(null, f1, 1))[0]).toMatchObject({ claimed: 0, task_id: null })
    await query(db.url, "UPDATE lane_leaders SET epoch = 2 WHERE lane = $1", [lane])
    expect((await claim(f1, f2, 1))[0]).toMatchObject({ claimed: 0, task_id: null })
    expect((await claim(f1, f2, 2))[0]).toMatchObject({ claimed: 1 })
    expect((await tasksOf("test.tick", "test.cas")).map((r) => r.fire)).toEqual([f1.toISOString(), f2.toISOString()])
  })
})

describe("WebhookSource", () => {
  const secret = "test-webhook-secret"
  const post = async (body: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${client.baseUrl}/hooks/orders`, {
      method: "POST",
      body,
      headers: { "content-type": "application/json", ...headers }
    })
    return {
      status: res.status,
      body: (await res.json()) as { id?: string; existing?: boolean; error?: { tag: string; message: string; details?: string } }
    }
  }
  const signed = (body: string, key = "key-1") => ({ "x-asterforge-signature": WebhookSource.sign(secret, body), "idempotency-key": key })
  const hookTasks = () =>
    query<{ id: string; unique_key: string }>(db.url, "SELECT id::text, unique_key FROM tasks WHERE name = 'test.hook_order'")

  it("a signed request is one task (202); a replay with the same key gets the same task", async () => {
    const body = JSON.stringify({ order: "A-1", amount: 3 })
    const first = await post(body, signed(body))
    expect(first).toEqual({ status: 202, body: { id: expect.any(String), existing: false } })
    const replay = await post(body, signed(body))
    expect(replay).toEqual({ status: 202, body: { id: first.body.id, existing: true } })
    expect(await hookTasks()).toEqual([{ id: first.body.id, unique_key: "orders:key-1" }])
  })

  it("a wrong or missing signature is 401, a bad body or missing key 400: a JSON reason, nothing enqueued", async () => {
    const body = JSON.stringify({ order: "A-2", amount: 1 })
    const wrong = await post(body, { "x-asterforge-signature": WebhookSource.sign("not-the-secret", body), "idempotency-key": "k" })
    expect(wrong.status).toBe(401)
    expect(wrong.body).toEqual({ error: { tag: "SignatureInvalid", message: expect.stringMatching(/signature/) } })
    const tampered = await post(JSON.stringify({ order: "A-2", amount: 1000 }), signed(body))
    expect(tampered.status).toBe(401)
    expect((await post(body, { "idempotency-key": "k" })).status).toBe(401)
    const notJson = await post("{order", signed("{order"))
    expect(notJson).toEqual({ status: 400, body: { error: { tag: "BadRequest", message: "the body must be JSON" } } })
    const badShape = JSON.stringify({ order: "A-3", amount: "three" })
    const mismatch = await post(badShape, signed(badShape))
    expect(mismatch.status).toBe(400)
    expect(mismatch.body).toEqual({
      error: {
        tag: "TaskPayloadInvalid",
        message: 'the body does not match task "test.hook_order"',
        details: expect.stringMatching(/amount/)
      }
    })
    const noKey = await post(body, { "x-asterforge-signature": WebhookSource.sign(secret, body) })
    expect(noKey).toEqual({
      status: 400,
      body: { error: { tag: "IdempotencyKeyMissing", message: expect.stringMatching(/idempotency-key/) } }
    })
    expect(await hookTasks()).toEqual([])
    const metrics = await (await fetch(`${client.baseUrl}/health/metrics`)).text()
    expect(metrics).toMatch(/asterforge_source_rejected_total\{[^}]*reason="signature"[^}]*\} [3-9]/)
  })

  it("an oversize body is 413 with a JSON reason, declared or chunked, and the rest is never read", async () => {
    const big = JSON.stringify({ order: "x".repeat(2000), amount: 1 })
    const declared = await post(big, signed(big))
    expect(declared).toEqual({ status: 413, body: { error: { tag: "PayloadTooLarge", message: "body larger than 1024 bytes" } } })
    // Chunked, no length, and the sender pauses after 2 KiB without ending the body: the answer
    // comes anyway, so the route answered from what it read and did not wait for the rest.
    const url = new URL(`${client.baseUrl}/hooks/orders`)
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      let answered = false
      const req = Http.request({ host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: signed("x") }, (res) => {
        answered = true
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (c) => (text += c))
        res.on("end", () => {
          req.destroy()
          resolve({ status: res.statusCode ?? 0, body: text })
        })
      })
      // Once answered, the server closes the connection under the unfinished upload: expected.
      req.on("error", (e) => (answered ? undefined : reject(e)))
      req.write(Buffer.alloc(2048, "a"))
    })
    expect(chunked.status).toBe(413)
    expect(JSON.parse(chunked.body)).toEqual({ error: { tag: "PayloadTooLarge", message: "body larger than 1024 bytes" } })
    expect(await hookTasks()).toEqual([])
  })

  it("sign and verify: the HMAC-SHA256 of the raw body, any other value refused", () => {
    const body = Buffer.from('{"a":1}')
    const header = `sha256=${Crypto.createHmac("sha256", "s").update(body).digest("hex")}`
    expect(WebhookSource.sign("s", body)).toBe(header)
    expect(WebhookSource.verify("s", body, header)).toBe(true)
    expect(WebhookSource.verify("s", body, header.slice(0, -1))).toBe(false)
    expect(WebhookSource.verify("s", body, undefined)).toBe(false)
    expect(WebhookSource.verify("t", body, header)).toBe(false)
  })
})

describe("shutdown", () => {
  it("sources stop before the dispatcher drains: no poll while a running handler is given its grace", async () => {
    for (const statement of [...T.createTables, Sources.createPollsTable]) await query(db.url, statement)
    const node = track(
      spawnNode(fixture("sources-app.ts"), ["start", "--port", "0"], {
        DATABASE_URL: db.url,
        SOURCES_APP_RECORD_POLLS: "1",
        ASTERFORGE_SHUTDOWN_GRACE: "30s",
        ASTERFORGE_SHUTDOWN_TIMEOUT: "60s"
      })
    )
    await node.baseUrl()
    await query(
      db.url,
      `INSERT INTO tasks (name, queue, state, max_attempts, payload) VALUES ('test.hold', 'default', 'available', 3, '{"latch": "shutdown"}')`
    )
    await eventually(
      async () => ((await query(db.url, "SELECT 1 FROM test_task_runs WHERE phase = 'started'")).length > 0 ? true : undefined),
      "the handler to start"
    )
    const polls = async () => Number((await query<{ n: string }>(db.url, "SELECT count(*)::text AS n FROM test_source_polls"))[0]!.n)
    await eventually(async () => ((await polls()) > 3 ? true : undefined), "a few polls")
    node.kill("SIGTERM")
    await node.waitFor(/draining: waiting up to/)
    const atDrain = await polls()
    // The point is that nothing happens: ten poll intervals pass without a poll while the handler still runs.
    await new Promise((r) => setTimeout(r, 500))
    expect(await polls()).toBe(atDrain)
    const [last] = await query<{ at: Date }>(db.url, "SELECT max(at) AS at FROM test_source_polls")
    const draining = node.logs.find((l) => String(l.message).startsWith("draining: waiting up to"))!
    expect(last!.at.getTime()).toBeLessThanOrEqual(Date.parse(String(draining.timestamp)))
    await query(db.url, T.openLatch, ["shutdown"])
    expect((await node.exited).code).toBe(0)
    expect(await query(db.url, "SELECT state FROM tasks WHERE name = 'test.hold'")).toEqual([{ state: "succeeded" }])
  })
})

describe("PollingSource", () => {
  it("publishes each event once however many polls see it", async () => {
    await query(db.url, "DELETE FROM test_events")
    await query(db.url, "INSERT INTO test_events (id, body) VALUES ('e1', 'one'), ('e2', 'two'), ('e3', 'three')")
    const node = await startMaintenance([Sources.eventsPoller])
    const status = async () => {
      const ready = (await (await fetch(`${node.baseUrl}/health/ready`)).json()) as {
        checks: Array<{ name: string; data?: { sources: Record<string, { published: number; existing: number }> } }>
      }
      return ready.checks.find((c) => c.name === "sources")?.data?.sources["test.events"]
    }
    // Ten more polls after the first: each saw the three events again.
    await eventually(async () => (((await status())?.existing ?? 0) >= 30 ? true : undefined), "ten polls that saw the events again")
    const seen = () => query<{ key: string }>(db.url, "SELECT unique_key AS key FROM tasks WHERE name = 'test.seen_event' ORDER BY key")
    expect((await seen()).map((r) => r.key)).toEqual(["test.events:e1", "test.events:e2", "test.events:e3"])
    expect((await status())?.published).toBe(3)
    await query(db.url, "INSERT INTO test_events (id, body) VALUES ('e4', 'four')")
    await eventually(async () => ((await seen()).length === 4 ? true : undefined), "the fourth event's task")
  })
})
