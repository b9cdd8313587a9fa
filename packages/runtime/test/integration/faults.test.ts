/**
 * Faults a node heals from without a human, on real processes: a leader
 * frozen with SIGSTOP loses its lanes to a live node; a node declared dead
 * while it was frozen stops claiming and exits for its supervisor to restart
 * it, and the work it held runs elsewhere without an attempt used; a node
 * whose database goes away for longer than three heartbeats does not judge
 * itself dead when it comes back; after a database restart a node listens
 * again, claims at once and hands back the leases of claims whose answer it
 * lost; on shutdown it hands back every lease it never knew of.
 *
 * Recovery times are measured and printed (`[measured]` lines), never
 * asserted: these machines are shared.
 */
import { Effect } from "effect"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { TaskQueue } from "../../src/TaskQueue.ts"
import * as T from "../fixtures/test-tasks.ts"
import { eventually, freshDatabase, query, startNode, type FreshDatabase, type TestNode } from "../support/kit.ts"
import { ownedPostgres, type OwnedPostgres } from "../support/ownedPostgres.ts"
import { fixture, pollHttp, spawnNode, trackProcesses, type Spawned } from "../support/process.ts"

const track = trackProcesses()

const measured = (what: string, ms: number) => console.info(`[measured] ${what}: ${ms} ms`)

/** Quick liveness so a test sees deaths and elections in seconds, not tens of seconds. */
const quick: Record<string, string> = {
  ASTERFORGE_NODE_HEARTBEAT_INTERVAL: "500ms",
  ASTERFORGE_WORKER_HEARTBEAT_INTERVAL: "500ms",
  ASTERFORGE_WORKER_POLL_INTERVAL: "200ms",
  ASTERFORGE_MAINTENANCE_ELECTION_INTERVAL: "200ms",
  ASTERFORGE_MAINTENANCE_LEADER_SILENCE: "1s",
  ASTERFORGE_MAINTENANCE_NODE_LIVENESS_INTERVAL: "250ms",
  ASTERFORGE_SHUTDOWN_GRACE: "2s"
}

const tasksNode = (url: string, env: Record<string, string> = {}) =>
  track(
    spawnNode(fixture("tasks-app.ts"), ["start"], {
      DATABASE_URL: url,
      ASTERFORGE_MODE: "primary",
      ASTERFORGE_SERVER_PORT: "0",
      ...quick,
      ...env
    })
  )

/** The node row a process registered (by pid). */
const nodeIdOf = (url: string, p: Spawned) =>
  eventually(async () => (await query<{ id: string }>(url, "SELECT id FROM nodes WHERE pid = $1", [p.child.pid]))[0]?.id, "the node row")

const leaders = (url: string) => query<{ lane: string; node_id: string }>(url, "SELECT lane, node_id FROM lane_leaders ORDER BY lane")

/** `last_heartbeat_ms_ago` from a readiness body's heartbeat check (0 when absent). */
const heartbeatAge = (body: string): number => {
  const m = /"last_heartbeat_ms_ago":(\d+)/.exec(body)
  return m ? Number(m[1]) : 0
}

const count = async (url: string, text: string, params: ReadonlyArray<unknown> = []) =>
  (await query<{ n: number }>(url, text, params))[0]!.n

describe("a frozen leader", () => {
  let db: FreshDatabase
  beforeAll(async () => {
    db = await freshDatabase("faults_leader")
  })
  afterAll(async () => db?.drop())

  it("loses every lane to a live node within the leader silence, and cannot act when it wakes", async () => {
    const a = tasksNode(db.url)
    await a.baseUrl()
    const aId = await nodeIdOf(db.url, a)
    const lanes = await eventually(async () => {
      const rows = await leaders(db.url)
      return rows.length > 0 && rows.every((r) => r.node_id === aId) ? rows : undefined
    }, "the first node to lead every lane")

    const b = tasksNode(db.url)
    await b.baseUrl()
    const bId = await nodeIdOf(db.url, b)

    const frozenAt = Date.now()
    a.kill("SIGSTOP")
    try {
      await eventually(async () => {
        const rows = await leaders(db.url)
        return rows.length >= lanes.length && rows.every((r) => r.node_id === bId) ? true : undefined
      }, "the live node to take every lane")
      measured(`takeover of ${lanes.length} lanes from a SIGSTOPped leader (leader_silence 1s)`, Date.now() - frozenAt)
    } finally {
      a.kill("SIGCONT")
    }

    // Awake again, the old leader finds its session ended and bids like any follower: it does not
    // take a lane back from the live leader, and it keeps serving.
    const ready = await pollHttp(`${await a.baseUrl()}/health/ready`, (s) => s === 200)
    expect(JSON.parse(ready.body).status).toBeDefined()
    expect((await leaders(db.url)).every((r) => r.node_id === bId)).toBe(true)
    expect(a.child.exitCode).toBeNull()
    expect(a.logs.some((l) => String(l.message).includes("leadership connection lost"))).toBe(true)
  })
})

describe("a node declared dead while it was frozen", () => {
  let db: FreshDatabase
  /**
   * The test's own TaskQueue client: an in-process follower, which never claims. It beats at
   * the default 5 s beside nodes beating every 500 ms: they must judge it by its own period.
   */
  let client: TestNode
  beforeAll(async () => {
    db = await freshDatabase("faults_zombie")
    for (const statement of T.createTables) await query(db.url, statement)
    client = await startNode({
      url: db.url,
      mode: "follower",
      modules: [T.TestTasks],
      env: { ASTERFORGE_TELEMETRY_LOG_LEVEL: "none" }
    })
  })
  afterAll(async () => {
    await client?.close()
    await db?.drop()
  })
  const enqueue = <P>(definition: Parameters<TaskQueue["Service"]["enqueueMany"]>[0], payloads: ReadonlyArray<P>) =>
    client.run(Effect.flatMap(TaskQueue, (q) => q.enqueueMany(definition, payloads as never)))

  it("stops claiming when it wakes, exits 75 for its supervisor, and its work runs elsewhere without an attempt used", async () => {
    const a = tasksNode(db.url, { ASTERFORGE_WORKER_CONCURRENCY: "4" })
    await a.baseUrl()
    const aId = await nodeIdOf(db.url, a)
    const held = 4
    await enqueue(
      T.Hold,
      Array.from({ length: held }, () => ({ latch: "zombie" }))
    )
    await eventually(
      async () => ((await count(db.url, "SELECT count(*)::int AS n FROM tasks WHERE lease_owner = $1", [aId])) === held ? true : undefined),
      "the first node to hold the tasks"
    )

    const b = tasksNode(db.url, { ASTERFORGE_WORKER_CONCURRENCY: "4" })
    await b.baseUrl()
    const bId = await nodeIdOf(db.url, b)

    const frozenAt = Date.now()
    a.kill("SIGSTOP")
    let resumedAt = 0
    try {
      await eventually(
        async () =>
          (await query<{ status: string }>(db.url, "SELECT status FROM nodes WHERE id = $1", [aId]))[0]?.status === "dead"
            ? true
            : undefined,
        "the frozen node to be declared dead"
      )
      measured("frozen node declared dead (heartbeat 500ms x 3)", Date.now() - frozenAt)
      // Its tasks run on the live node, with the attempt the dead node never finished given back.
      await query(db.url, T.openLatch, ["zombie"])
      await eventually(
        async () => ((await count(db.url, "SELECT count(*)::int AS n FROM tasks WHERE state = 'succeeded'")) === held ? true : undefined),
        "the live node to finish the dead node's tasks"
      )
      // Work waiting when the zombie wakes: it must not take any of it.
      await enqueue(
        T.Record,
        Array.from({ length: 50 }, (_, i) => ({ key: `after-${i}` }))
      )
    } finally {
      resumedAt = Date.now()
      a.kill("SIGCONT")
    }
    const exited = await a.exited
    measured("resumed zombie: from SIGCONT to its exit", Date.now() - resumedAt)
    expect(exited.code).toBe(75)

    expect(
      await count(db.url, "SELECT count(*)::int AS n FROM tasks WHERE name = $1 AND state = 'succeeded' AND attempt = 1", [T.Hold.name])
    ).toBe(held)
    expect(await count(db.url, "SELECT count(*)::int AS n FROM test_task_runs WHERE node_id = $1 AND phase = 'ran'", [aId])).toBe(0)
    await eventually(
      async () =>
        (await count(db.url, "SELECT count(*)::int AS n FROM tasks WHERE state = 'succeeded'")) === held + 50 ? true : undefined,
      "the live node to run the work queued while the zombie slept"
    )
    expect(await count(db.url, "SELECT count(*)::int AS n FROM test_task_runs WHERE node_id = $1 AND phase = 'ran'", [bId])).toBe(50)
    // Its late results were refused by the fence, and it said why it stopped.
    expect(
      await count(db.url, "SELECT count(*)::int AS n FROM audit_events WHERE code = 'node.found_dead' AND subject = $1", [`node:${aId}`])
    ).toBe(1)
    expect(await count(db.url, "SELECT count(*)::int AS n FROM tasks WHERE state <> 'succeeded'")).toBe(0)
  })
})

describe("a database outage longer than three heartbeats", () => {
  let pg: OwnedPostgres
  beforeAll(async () => {
    pg = await ownedPostgres("outage")
  })
  afterAll(async () => pg?.destroy())
  afterEach(async () => pg?.start().catch(() => undefined))

  it("does not make the node judge itself dead: it is ready again once the database is back", async () => {
    const a = tasksNode(pg.url)
    const url = await a.baseUrl()
    await pollHttp(`${url}/health/ready`, (s) => s === 200)
    const aId = await nodeIdOf(pg.url, a)

    await pg.stop()
    // Until the node's last heartbeat is six periods old: dead to anyone counting missed beats.
    await pollHttp(`${url}/health/ready`, (s, body) => s === 503 && heartbeatAge(body) > 3_000, 60_000)
    const backAt = Date.now()
    await pg.start()
    await pollHttp(`${url}/health/ready`, (s) => s === 200, 60_000)
    measured("ready again after an outage of six heartbeats", Date.now() - backAt)

    expect((await query<{ status: string }>(pg.url, "SELECT status FROM nodes WHERE id = $1", [aId]))[0]?.status).toBe("running")
    expect(await count(pg.url, "SELECT count(*)::int AS n FROM audit_events WHERE code IN ('node.found_dead', 'node.declared_dead')")).toBe(
      0
    )
    expect(a.child.exitCode).toBeNull()
  })
})

/** Enqueues like any client would, by SQL: a row, then the NOTIFY that announces it. */
const enqueueSql = async (url: string, name: string, payload: unknown, extra: { state?: string; lease_owner?: string } = {}) => {
  const [row] = await query<{ id: string }>(
    url,
    `INSERT INTO tasks (name, queue, state, max_attempts, payload, attempt, lease_owner, lease_expires_at, lease_epoch)
     VALUES ($1, 'default', $2, 3, $3::jsonb, $4, $5, CASE WHEN $5::uuid IS NULL THEN NULL ELSE now() + interval '1 hour' END, $4)
     RETURNING id::text AS id`,
    [name, extra.state ?? "available", JSON.stringify(payload), extra.lease_owner ? 1 : 0, extra.lease_owner ?? null]
  )
  await query(url, "SELECT pg_notify('asterforge_tasks', 'default')")
  return row!.id
}

/**
 * Tasks leased to `owner` as a claim leaves them when its answer is lost: running, attempt
 * taken, an hour of lease left (no rescue will touch them during a test).
 */
const lostClaims = (url: string, owner: string, n: number) =>
  Promise.all(
    Array.from({ length: n }, (_, i) => enqueueSql(url, T.Record.name, { key: `lost-${i}` }, { state: "running", lease_owner: owner }))
  )

/** Enqueue -> handler start, by the database's clock, for one task on an idle node. */
const pickupMs = async (url: string, key: string) => {
  const id = await enqueueSql(url, T.Record.name, { key })
  return eventually(async () => {
    const [row] = await query<{ ms: number }>(
      url,
      "SELECT extract(epoch FROM r.at - t.created_at) * 1000 AS ms FROM test_task_runs r JOIN tasks t ON t.id = r.task_id WHERE r.task_id = $1",
      [id]
    )
    return row === undefined ? undefined : Math.round(Number(row.ms))
  }, `task ${key} to start`)
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const metricSum = async (baseUrl: string, name: string, label = "") => {
  const text = await (await fetch(`${baseUrl}/health/metrics`)).text()
  return text
    .split("\n")
    .filter((l) => l.startsWith(name) && l.includes(label))
    .reduce((n, l) => n + Number(l.split(" ").pop()), 0)
}

describe("a database restart", () => {
  let pg: OwnedPostgres
  beforeAll(async () => {
    pg = await ownedPostgres("restart")
    for (const statement of T.createTables) await query(pg.url, statement)
  })
  afterAll(async () => pg?.destroy())
  afterEach(async () => pg?.start().catch(() => undefined))

  it("the node listens again, claims at once, and hands back what a lost claim leased to it", async () => {
    // No polling backstop to speak of: after the restart, only a renewed LISTEN (or the wake-up
    // that comes with it) can start new work.
    const a = tasksNode(pg.url, { ASTERFORGE_WORKER_POLL_INTERVAL: "1h" })
    const url = await a.baseUrl()
    await pollHttp(`${url}/health/ready`, (s) => s === 200)
    const aId = await nodeIdOf(pg.url, a)
    const before = []
    for (let i = 0; i < 5; i++) before.push(await pickupMs(pg.url, `before-${i}`))

    // Handlers that end while the database is away: each freed slot makes the claim loop try,
    // fail and back off further.
    for (let i = 0; i < 4; i++) await enqueueSql(pg.url, T.Sleep.name, { ms: 500 })
    await eventually(
      async () => ((await count(pg.url, "SELECT count(*)::int AS n FROM test_task_runs WHERE phase = 'started'")) === 4 ? true : undefined),
      "the sleepers to start"
    )
    await pg.stop()
    await eventually(
      async () => ((await metricSum(url, "asterforge_worker_restarts_total")) >= 5 ? true : undefined),
      "the claim loop to back off through five failures",
      60_000
    )
    await pg.start()
    const backAt = Date.now()
    // Claims this node made whose answers it never got, as a restart right after a claim leaves them.
    const lost = await lostClaims(pg.url, aId, 3)
    const first = await pickupMs(pg.url, "first-after")
    measured("first task enqueued after the restart started after", Date.now() - backAt)
    measured("its enqueue -> start", first)

    const ready = JSON.parse((await pollHttp(`${url}/health/ready`, (s) => s === 200, 60_000)).body) as {
      checks: ReadonlyArray<{ name: string; status: string; data?: Record<string, string> }>
    }
    measured("ready again after the restart", Date.now() - backAt)
    const notifications = ready.checks.find((c) => c.name === "notifications")
    expect(notifications?.status).toBe("pass")
    expect(notifications?.data).toEqual({ asterforge_tasks: "listening", asterforge_cancel: "listening", asterforge_lanes: "listening" })
    for (const channel of ["asterforge_tasks", "asterforge_cancel", "asterforge_lanes"]) {
      expect(await metricSum(url, "asterforge_notification_resubscribes_total", `channel="${channel}"`), channel).toBeGreaterThanOrEqual(1)
    }

    const after = []
    for (let i = 0; i < 5; i++) after.push(await pickupMs(pg.url, `after-${i}`))
    measured(`idle enqueue -> start p50 before the restart (${before.join(", ")})`, median(before))
    measured(`idle enqueue -> start p50 after the restart (${after.join(", ")})`, median(after))

    // The lost claims ran here, each once, with the attempt the lost claim took given back.
    await eventually(
      async () =>
        (await count(pg.url, "SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::bigint[]) AND state = 'succeeded'", [lost])) === 3
          ? true
          : undefined,
      "the lost claims to be handed back and run"
    )
    const runs = await query<{ attempt: number }>(pg.url, "SELECT attempt FROM test_task_runs WHERE task_id = ANY($1::bigint[])", [lost])
    expect(runs.map((r) => r.attempt)).toEqual([1, 1, 1])
    expect(await metricSum(url, "asterforge_leases_reconciled_total")).toBeGreaterThanOrEqual(3)
    expect(a.child.exitCode).toBeNull()
  })
})

describe("a graceful stop", () => {
  let db: FreshDatabase
  beforeAll(async () => {
    db = await freshDatabase("faults_stop")
    for (const statement of T.createTables) await query(db.url, statement)
  })
  afterAll(async () => db?.drop())

  it("hands back every task still leased to the node, known or not, with the attempt unused", async () => {
    const a = tasksNode(db.url, { ASTERFORGE_WORKER_CONCURRENCY: "2" })
    await a.baseUrl()
    const aId = await nodeIdOf(db.url, a)
    const lost = await lostClaims(db.url, aId, 3)
    // And two it knows: running when the stop comes.
    await enqueueSql(db.url, T.Hold.name, { latch: "never" })
    await enqueueSql(db.url, T.Hold.name, { latch: "never" })
    await eventually(
      async () => ((await count(db.url, "SELECT count(*)::int AS n FROM test_task_runs WHERE phase = 'started'")) === 2 ? true : undefined),
      "the held tasks to start"
    )
    a.kill("SIGTERM")
    expect((await a.exited).code).toBe(0)
    const rows = await query<{ id: string; state: string; attempt: number; lease_owner: string | null }>(
      db.url,
      "SELECT id::text AS id, state, attempt, lease_owner FROM tasks ORDER BY id"
    )
    expect(rows.every((r) => r.state === "available" && r.attempt === 0 && r.lease_owner === null)).toBe(true)
    expect(rows.filter((r) => lost.includes(r.id))).toHaveLength(3)
    expect(rows).toHaveLength(5)
  })
})
