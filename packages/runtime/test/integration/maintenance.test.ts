/**
 * Maintenance lanes with real processes: a maintenance-only node rescues
 * without claiming, each lane has exactly one leader across nodes, leadership
 * fails over on kill -9 and SIGTERM, a deposed leader's writes are fenced, a
 * crashed worker's tasks run again, and starting and stopping every lane
 * repeatedly leaks nothing.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import * as LeaseSql from "../../src/internal/sql/leases.ts"
import * as Lane from "../../src/Lane.ts"
import * as BuiltInLanes from "../../src/lanes/index.ts"
import * as Leadership from "../../src/Leadership.ts"
import * as Maintenance from "../../src/Maintenance.ts"
import { TaskQueue } from "../../src/TaskQueue.ts"
import * as T from "../fixtures/test-tasks.ts"
import { eventually, freshDatabase, query, startNode, type FreshDatabase, type TestNode } from "../support/kit.ts"
import { fixture, spawnCli, spawnNode, trackProcesses } from "../support/process.ts"

let db: FreshDatabase
let client: TestNode
const track = trackProcesses()

// Every built-in lane, as a node starts them: a new lane is in every test below at once.
const laneNames = BuiltInLanes.builtIn(BuiltInLanes.defaults).map((l) => l.name)

beforeAll(async () => {
  db = await freshDatabase("maintenance")
  client = await startNode({ url: db.url, mode: "follower", modules: [T.TestTasks], env: { ASTERFORGE_TELEMETRY_LOG_LEVEL: "none" } })
  for (const statement of T.createTables) await query(db.url, statement)
})
// Registered after trackProcesses' own afterEach, so the processes are stopped before the rows go.
afterEach(async () => {
  await query(db.url, "DELETE FROM tasks")
})
afterAll(async () => {
  await client?.close()
  await db?.drop()
})

const spawnMaintenance = (env: Record<string, string> = {}) =>
  track(spawnCli(["maintenance", "run", "--port", "0"], { DATABASE_URL: db.url, ...env }))

/** Which node (by backend pid of its leadership connection) holds each lane's lock right now. */
const lockHolders = async () => {
  const rows = await query<{ key: string; pid: number }>(
    db.url,
    `
    SELECT ((l.classid::bigint << 32) | l.objid::bigint)::text AS key, l.pid
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1 AND a.datname = current_database()`,
    [Leadership.applicationName]
  )
  const byKey = new Map<string, Array<number>>()
  for (const r of rows) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.pid])
  // Postgres shows a bigint key as two 32-bit halves; shifted back together they give the signed key.
  return new Map(laneNames.map((lane) => [lane, byKey.get(Leadership.lockKey(lane)) ?? []]))
}
const leadershipPids = async () =>
  (
    await query<{ pid: number }>(db.url, "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()", [
      Leadership.applicationName
    ])
  ).map((r) => r.pid)

const allLedBy = async (pid: number) => {
  const holders = await lockHolders()
  return [...holders.values()].every((h) => h.length === 1 && h[0] === pid)
}

describe("maintenance-only node", () => {
  it("promotes and rescues scheduled, retryable, expired-lease and expired-callback tasks, and never takes a lease", async () => {
    const ids = await query<{ id: string; kind: string }>(
      db.url,
      `
      INSERT INTO tasks (name, queue, state, run_at, attempt, max_attempts, payload, lease_owner, lease_expires_at, lease_epoch, callback_token_hash, callback_expires_at)
      VALUES ('test.record', 'default', 'scheduled', now() - interval '1 second', 0, 5, '{"key":"s"}', NULL, NULL, 0, NULL, NULL),
             ('test.record', 'default', 'retryable', now() - interval '1 second', 1, 5, '{"key":"r"}', NULL, NULL, 1, NULL, NULL),
             ('test.record', 'default', 'running', now() - interval '1 minute', 1, 5, '{"key":"l"}', '00000000-0000-0000-0000-0000000000aa', now() - interval '1 second', 1, NULL, NULL),
             ('test.record', 'default', 'waiting_callback', now() - interval '1 minute', 1, 5, '{"key":"c"}', NULL, NULL, 1, 'tok-expired', now() - interval '1 second'),
             ('test.record', 'default', 'scheduled', now() + interval '1 hour', 0, 5, '{"key":"future"}', NULL, NULL, 0, NULL, NULL)
      RETURNING id::text, payload->>'key' AS kind`
    )
    const byKind = Object.fromEntries(ids.map((r) => [r.kind, r.id]))
    const node = spawnMaintenance()
    await node.baseUrl()
    const state = async () =>
      Object.fromEntries(
        (
          await query<{ key: string; state: string; attempt: number; lease_epoch: number; lease_owner: string | null }>(
            db.url,
            "SELECT payload->>'key' AS key, state, attempt, lease_epoch, lease_owner FROM tasks"
          )
        ).map((r) => [r.key, r])
      )
    const final = await eventually(async () => {
      const s = await state()
      return ["s", "r", "l", "c"].every((k) => s[k]?.state === "available") ? s : undefined
    }, "every due or stuck task to be available again")
    expect(final.future?.state).toBe("scheduled")
    // No claim by this node: epochs are where the inserts left them, and nobody owns a lease.
    expect([final.s, final.r, final.l, final.c].map((r) => r!.lease_epoch)).toEqual([0, 1, 1, 1])
    expect(Object.values(final).every((r) => r.lease_owner === null)).toBe(true)
    expect(final.l!.attempt).toBe(1)
    const [lease] = await query<{ errors: Array<{ tag: string }> }>(db.url, "SELECT errors FROM tasks WHERE id = $1", [byKind.l])
    expect(lease!.errors.map((e) => e.tag)).toEqual(["LeaseExpired"])
    expect(await query(db.url, "SELECT 1 FROM test_task_runs")).toEqual([])
    const ready = (await (await fetch(`${await node.baseUrl()}/health/ready`)).json()) as {
      checks: Array<{ name: string; data?: { lanes: Record<string, { leader: boolean }> } }>
    }
    const lanes = ready.checks.find((c) => c.name === "maintenance")?.data?.lanes ?? {}
    expect(Object.keys(lanes).sort()).toEqual([...laneNames].sort())
    expect(Object.values(lanes).every((l) => l.leader)).toBe(true)
  })
})

describe("leadership across nodes", () => {
  it("two nodes: each lane has exactly one leader at every sample; kill -9 the leader and the other leads every lane", async () => {
    const a = spawnMaintenance()
    const b = spawnMaintenance()
    await Promise.all([a.baseUrl(), b.baseUrl()])
    await eventually(
      async () => ([...(await lockHolders()).values()].every((h) => h.length === 1) ? true : undefined),
      "every lane to have a leader"
    )
    for (let i = 0; i < 10; i++) {
      const holders = await lockHolders()
      for (const [lane, h] of holders) expect(h, lane).toHaveLength(1)
      await new Promise((r) => setTimeout(r, 100))
    }
    // The leader of the promotion lane dies without a word.
    const [promotionLeader] = (await lockHolders()).get("promotion")!
    const pids = await leadershipPids()
    const survivorPid = pids.find((p) => p !== promotionLeader)!
    const [victimNode] = await query<{ node_id: string }>(db.url, "SELECT node_id::text FROM lane_leaders WHERE lane = 'promotion'")
    const victim = [a, b].find((p) => p.output.includes(victimNode!.node_id))!
    const killedAt = Date.now()
    victim.kill("SIGKILL")
    await eventually(async () => ((await allLedBy(survivorPid)) ? true : undefined), "the survivor to lead every lane")
    const failoverMs = Date.now() - killedAt
    console.log(`[measure] lane failover after kill -9: ${failoverMs} ms`)
  })

  it("SIGTERM the leader: its locks are released at once and the other node takes over", async () => {
    const a = spawnMaintenance()
    await a.baseUrl()
    const [aPid] = await eventually(async () => {
      const p = await leadershipPids()
      return p.length === 1 && (await allLedBy(p[0]!)) ? p : undefined
    }, "the first node to lead every lane")
    const b = spawnMaintenance()
    await b.baseUrl()
    const bPid = await eventually(async () => (await leadershipPids()).find((p) => p !== aPid), "the second node's leadership connection")
    const stoppedAt = Date.now()
    a.kill("SIGTERM")
    expect((await a.exited).code).toBe(0)
    const releasedMs = Date.now() - stoppedAt
    await eventually(async () => ((await allLedBy(bPid)) ? true : undefined), "the second node to lead every lane")
    const takeoverMs = Date.now() - stoppedAt
    console.log(`[measure] SIGTERM: node exited after ${releasedMs} ms; takeover complete ${takeoverMs} ms after the signal`)
  })

  it("a deposed leader's writes are fenced; the new leader's are not", async () => {
    const a = spawnMaintenance({ ASTERFORGE_MAINTENANCE_DISABLED_LANES: laneNames.filter((l) => l !== "promotion").join(",") })
    await a.baseUrl()
    const [aPid] = await eventually(async () => {
      const p = await leadershipPids()
      return p.length === 1 && (await lockHolders()).get("promotion")?.[0] === p[0] ? p : undefined
    }, "node A to lead promotion")
    const [before] = await query<{ epoch: string }>(db.url, "SELECT epoch::text FROM lane_leaders WHERE lane = 'promotion'")
    const oldEpoch = Number(before!.epoch)
    // A's session dies (network cut, DBA, failover): the server drops its locks with it.
    await query(db.url, "SELECT pg_terminate_backend($1)", [aPid])
    const newEpoch = await eventually(async () => {
      const [row] = await query<{ epoch: string }>(db.url, "SELECT epoch::text FROM lane_leaders WHERE lane = 'promotion'")
      return Number(row!.epoch) > oldEpoch ? Number(row!.epoch) : undefined
    }, "a new promotion epoch")
    a.kill("SIGKILL") // keep the re-elected node from promoting behind the test's back
    await a.exited
    await query(
      db.url,
      `INSERT INTO tasks (name, queue, state, run_at, max_attempts, payload) VALUES ('test.record', 'default', 'scheduled', now() - interval '1 second', 3, '{"key":"fenced"}')`
    )
    const promotion = BuiltInLanes.Promoter.make()
    const stale = await client.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => promotion.runOnce(Lane.context(sql, "promotion", oldEpoch)))
    )
    expect(stale).toMatchObject({ promoted: 0 })
    expect((await query<{ state: string }>(db.url, "SELECT state FROM tasks WHERE payload->>'key' = 'fenced'"))[0]!.state).toBe("scheduled")
    const current = await client.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => promotion.runOnce(Lane.context(sql, "promotion", newEpoch)))
    )
    expect(current).toMatchObject({ promoted: 1 })
  })
})

describe("crash recovery", () => {
  it("kill -9 a worker with tasks running: they run again elsewhere after lease expiry; the old lease's late completion is refused", async () => {
    const first = track(
      spawnNode(fixture("tasks-app.ts"), ["start"], { DATABASE_URL: db.url, ASTERFORGE_MODE: "worker", ASTERFORGE_SERVER_PORT: "0" })
    )
    await first.baseUrl()
    // Held until the latch opens, which happens only after the kill: no task can finish on the first worker.
    const latch = "crash-recovery"
    const ids = (
      await client.run(
        Effect.flatMap(TaskQueue, (q) =>
          q.enqueueMany(
            T.Hold,
            Array.from({ length: 4 }, () => ({ latch }))
          )
        )
      )
    ).map((e) => e.id)
    await eventually(
      async () =>
        (await query(db.url, "SELECT 1 FROM test_task_runs WHERE phase = 'started' AND task_id = ANY($1::bigint[])", [ids])).length === 4
          ? true
          : undefined,
      "the 4 tasks to start"
    )
    const claimedFirst = await query<{ id: string; lease_epoch: number; lease_owner: string }>(
      db.url,
      "SELECT id::text, lease_epoch, lease_owner::text FROM tasks WHERE id = ANY($1::bigint[]) ORDER BY id",
      [ids]
    )
    // Defaults everywhere else: 15 s leases, lease rescue every 2 s. The liveness lane would declare
    // the killed node dead at about the same time (three 5 s heartbeats) and release its tasks with
    // the attempt given back; this test is about lease expiry, so that lane waits far longer here.
    const second = track(
      spawnNode(fixture("tasks-app.ts"), ["start"], { DATABASE_URL: db.url, ASTERFORGE_MODE: "worker", ASTERFORGE_SERVER_PORT: "0" })
    )
    const maintenance = spawnMaintenance({ ASTERFORGE_MAINTENANCE_NODE_LIVENESS_MISSED_HEARTBEATS: "1000" })
    await Promise.all([second.baseUrl(), maintenance.baseUrl()])
    const killedAt = Date.now()
    first.kill("SIGKILL")
    await first.exited
    await query(db.url, T.openLatch, [latch])
    await eventually(
      async () => {
        const done = await query<{ n: number }>(
          db.url,
          "SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::bigint[]) AND state = 'succeeded'",
          [ids]
        )
        return done[0]!.n === 4 ? true : undefined
      },
      "the 4 tasks to succeed on the second worker",
      45_000
    )
    const recoveryMs = Date.now() - killedAt
    console.log(`[measure] crash recovery (kill -9 to all 4 tasks succeeded elsewhere, default 15 s lease): ${recoveryMs} ms`)
    const after = await query<{ attempt: number; lease_epoch: number }>(
      db.url,
      "SELECT attempt, lease_epoch FROM tasks WHERE id = ANY($1::bigint[]) ORDER BY id",
      [ids]
    )
    expect(after.every((r) => r.attempt === 2)).toBe(true)
    const finishedBy = await query<{ n: number }>(
      db.url,
      "SELECT count(DISTINCT node_id)::int AS n FROM test_task_runs WHERE phase = 'finished' AND task_id = ANY($1::bigint[])",
      [ids]
    )
    expect(finishedBy[0]!.n).toBe(1)
    // The crashed worker's result arrives late, under its old lease: refused.
    const late = await client.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        LeaseSql.finish(
          sql,
          claimedFirst[0]!.lease_owner,
          claimedFirst.map((c) => ({
            id: c.id,
            epoch: c.lease_epoch,
            state: "failed" as const,
            error: { tag: "Late" }
          }))
        )
      )
    )
    // Every one of them comes back as refused.
    expect(late.map((r) => r.id).sort()).toEqual(claimedFirst.map((c) => c.id).sort())
    expect(
      (
        await query<{ n: number }>(db.url, "SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::bigint[]) AND state = 'succeeded'", [
          ids
        ])
      )[0]!.n
    ).toBe(4)
  })
})

describe("conformance", () => {
  it("starting and stopping every lane repeatedly under load leaks no connections, locks or handles", async () => {
    const leftovers = async (nodeName: string) => ({
      connections: (
        await query<{ n: number }>(
          db.url,
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND (application_name = $1 OR application_name = $2)",
          [`asterforge:${nodeName}`, Leadership.applicationName]
        )
      )[0]!.n,
      locks: (
        await query<{ n: number }>(
          db.url,
          "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
      )[0]!.n
    })
    const handlesBefore = process.getActiveResourcesInfo().length
    const load = setInterval(() => {
      void client
        .run(
          Effect.flatMap(TaskQueue, (q) =>
            q.enqueueMany(
              T.Record,
              Array.from({ length: 20 }, (_, i) => ({ key: `load${i}` }))
            )
          )
        )
        .catch(() => undefined)
    }, 50)
    try {
      for (let round = 0; round < 4; round++) {
        const nodeName = `conformance-${round}`
        const node = await startNode({
          url: db.url,
          mode: "primary",
          modules: [T.TestTasks],
          env: { ASTERFORGE_TELEMETRY_LOG_LEVEL: "none", ASTERFORGE_SERVER_NODE_NAME: nodeName }
        })
        await eventually(async () => {
          const led = await node.run(Effect.flatMap(Maintenance.Maintenance, (m) => m.status))
          return led.length === laneNames.length && led.every((l) => l.leader) ? true : undefined
        }, `round ${round}: every lane led`)
        expect((await leftovers(nodeName)).locks).toBe(laneNames.length)
        await new Promise((r) => setTimeout(r, 300))
        await node.close()
        // A closed socket's backend takes a moment to leave pg_stat_activity; a leak never does.
        const after = await eventually(
          async () => {
            const l = await leftovers(nodeName)
            return l.connections === 0 && l.locks === 0 ? l : undefined
          },
          `round ${round}: the node's connections and locks to be gone`,
          5_000
        ).catch(async () => leftovers(nodeName))
        expect(after, `round ${round}`).toEqual({ connections: 0, locks: 0 })
      }
    } finally {
      clearInterval(load)
    }
    // Timers and sockets of closed nodes are gone too (slack for the test client's own pool).
    await new Promise((r) => setTimeout(r, 200))
    expect(process.getActiveResourcesInfo().length).toBeLessThanOrEqual(handlesBefore + 10)
  })
})
