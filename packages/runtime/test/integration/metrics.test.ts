/**
 * The metrics catalogue as an operator sees it: a real Prometheus server
 * scrapes a real node's /health/metrics, and the task counters move by
 * exactly the work the node did (outcomes match the tasks run).
 */
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { TaskQueue } from "../../src/TaskQueue.ts"
import * as T from "../fixtures/test-tasks.ts"
import { eventually, freePort, freshDatabase, query, startNode, type FreshDatabase, type TestNode } from "../support/kit.ts"
import { fixture, spawnNode, Spawned } from "../support/process.ts"

let db: FreshDatabase
/** An in-process follower: the test's TaskQueue client; it never claims, so every run below is the spawned node's. */
let client: TestNode
const running: Array<Spawned> = []
const tmpDirs: Array<string> = []

beforeAll(async () => {
  db = await freshDatabase("metrics")
  client = await startNode({ url: db.url, mode: "follower", modules: [T.TestTasks], env: { ASTERFORGE_TELEMETRY_LOG_LEVEL: "none" } })
  for (const statement of T.createTables) await query(db.url, statement)
})
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()))
  for (const dir of tmpDirs.splice(0)) Fs.rmSync(dir, { recursive: true, force: true })
  await query(db.url, "DELETE FROM tasks")
  await query(db.url, "DELETE FROM test_task_runs")
})
afterAll(async () => {
  await client?.close()
  await db?.drop()
})

const spawnTasksNode = (mode: string) => {
  const p = spawnNode(fixture("tasks-app.ts"), ["start"], { DATABASE_URL: db.url, ASTERFORGE_MODE: mode, ASTERFORGE_SERVER_PORT: "0" })
  running.push(p)
  return p
}
const queue = <A, E>(f: (q: TaskQueue["Service"]) => Effect.Effect<A, E>) => client.run(Effect.flatMap(TaskQueue, f))
const count = async (sqlText: string) => (await query<{ n: number }>(db.url, sqlText))[0]!.n
const allFinished = (n: number) =>
  eventually(
    async () => ((await count("SELECT count(*)::int AS n FROM tasks WHERE state IN ('succeeded', 'failed')")) === n ? true : undefined),
    `${n} tasks to finish`,
    30_000
  )

/**
 * The path of `prometheus` or `promtool`. Both come with Debian's `prometheus` package, which
 * `pnpm test` never installs (.ci/run does on CI): without it these tests fail, never skip,
 * because they are the proof that a real Prometheus accepts our output.
 */
const requireTool = (name: "prometheus" | "promtool"): string => {
  const found = ChildProcess.spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" })
  if (found.status !== 0 || found.stdout.trim() === "") {
    throw new Error(
      `\`${name}\` is not installed: install the \`prometheus\` package (Debian/Ubuntu: \`apt-get install prometheus\`), which ships prometheus and promtool`
    )
  }
  return found.stdout.trim()
}

/** Sample value of one series in Prometheus text format, or 0 when the series is absent (counters start absent). */
const sample = (body: string, name: string, labels: Record<string, string>): number => {
  for (const line of body.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    const braces = line.match(/^[^{ ]+\{(.*)\} (\S+)$/)
    const pairs = Object.fromEntries([...(braces?.[1] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]))
    if (Object.entries(labels).every(([k, v]) => pairs[k] === v)) return Number(braces ? braces[2] : line.split(" ")[1])
  }
  return 0
}

describe("Prometheus", () => {
  it("a real Prometheus server scrapes /health/metrics: the target is up and the task counter has the value of the work done", async () => {
    const node = spawnTasksNode("primary")
    const base = await node.baseUrl()
    const prometheus = await startPrometheus(new URL(base).host)

    const targetHealth = await eventually(
      async () => {
        const res = await fetch(`${prometheus.url}/api/v1/targets`)
        const body = (await res.json()) as { data: { activeTargets: Array<{ health: string; lastError: string; scrapeUrl: string }> } }
        const target = body.data.activeTargets[0]
        return target?.health === "up" ? target : undefined
      },
      "the Prometheus target to be up",
      30_000
    )
    expect(targetHealth.scrapeUrl).toBe(`${base}/health/metrics`)
    expect(targetHealth.lastError).toBe("")

    const n = 12
    await queue((q) =>
      q.enqueueMany(
        T.Record,
        Array.from({ length: n }, (_, i) => ({ key: `p${i}` }))
      )
    )
    await allFinished(n)
    expect(await count("SELECT count(*)::int AS n FROM test_task_runs")).toBe(n)

    // Prometheus sees the node's counter once a scrape after the work lands.
    const promql = `asterforge_tasks_finished_total{task="test.record",outcome="success"}`
    const value = await eventually(
      async () => {
        const v = await prometheus.query(promql)
        // Thrown so that a timeout reports the last value Prometheus had.
        if (v !== n) throw new Error(`Prometheus has ${v}`)
        return v
      },
      `Prometheus to report ${promql} = ${n}`,
      30_000
    )
    expect(value).toBe(n)
    expect(await prometheus.query(`asterforge_node_info{mode="primary"}`)).toBe(1)
    expect(await prometheus.query(`up{job="asterforge"}`)).toBe(1)
  })
})

describe("task metrics under a workload", () => {
  it("finished counts by outcome, claims and in-flight move by exactly the tasks run", async () => {
    const worker = spawnTasksNode("worker")
    const base = await worker.baseUrl()
    const scrape = async () => {
      const res = await fetch(`${base}/health/metrics`)
      expect(res.status).toBe(200)
      return res.text()
    }
    const finished = (body: string, task: string, outcome: string) => sample(body, "asterforge_tasks_finished_total", { task, outcome })
    const before = await scrape()

    await queue((q) =>
      q.enqueueMany(
        T.Record,
        Array.from({ length: 5 }, (_, i) => ({ key: `w${i}` }))
      )
    )
    await queue((q) => q.enqueueMany(T.Refuse, [{}, {}]))
    await queue((q) => q.enqueue(T.Flaky, { failTimes: 1 }))
    await allFinished(8)
    // Eight tasks, nine handler runs: the flaky one failed once, retried, then succeeded.
    expect(await count("SELECT count(*)::int AS n FROM test_task_runs")).toBe(9)

    const after = await eventually(async () => {
      const body = await scrape()
      return sample(body, "asterforge_tasks_in_flight", { queue: "default" }) === 0 ? body : undefined
    }, "in-flight to return to 0")
    const delta = (task: string, outcome: string) => finished(after, task, outcome) - finished(before, task, outcome)
    expect(delta("test.record", "success")).toBe(5)
    expect(delta("test.terminal", "terminal")).toBe(2)
    expect(delta("test.flaky", "retry")).toBe(1)
    expect(delta("test.flaky", "success")).toBe(1)
    // No other outcome moved for these tasks.
    for (const outcome of ["retry", "terminal", "timeout", "interrupted", "cancelled", "snooze"])
      expect(delta("test.record", outcome)).toBe(0)
    expect(delta("test.terminal", "success")).toBe(0)
    // Every handler run began with a claim (the retry is claimed again).
    const claimed = (body: string) => sample(body, "asterforge_tasks_claimed_total", { queue: "default" })
    expect(claimed(after) - claimed(before)).toBe(9)
    const enqueued = (body: string, task: string) => sample(body, "asterforge_tasks_enqueued_total", { task })
    // The worker enqueued nothing itself: the client process did.
    expect(enqueued(after, "test.record")).toBe(0)

    const promtool = ChildProcess.spawnSync(requireTool("promtool"), ["check", "metrics"], { input: after, encoding: "utf8" })
    expect(promtool.error).toBeUndefined()
    expect(promtool.status, promtool.stdout + promtool.stderr).toBe(0)
    expect(after).toMatch(/^asterforge_task_duration_seconds_count\{queue="default"\} 9$/m)
  })
})

/** Starts Debian's Prometheus on loopback with a temporary config that scrapes `target` every second. */
const startPrometheus = async (target: string) => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "asterforge-prom-"))
  tmpDirs.push(dir)
  Fs.writeFileSync(
    Path.join(dir, "prometheus.yml"),
    [
      "global:",
      "  scrape_interval: 1s",
      "  scrape_timeout: 1s",
      "scrape_configs:",
      "  - job_name: asterforge",
      "    metrics_path: /health/metrics",
      "    static_configs:",
      `      - targets: ["${target}"]`,
      ""
    ].join("\n")
  )
  const port = await freePort()
  const binary = requireTool("prometheus")
  const proc = new Spawned(
    ChildProcess.spawn(
      binary,
      [
        `--config.file=${Path.join(dir, "prometheus.yml")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        `--storage.tsdb.path=${Path.join(dir, "data")}`
      ],
      { stdio: ["ignore", "pipe", "pipe"] }
    )
  )
  running.push(proc)
  const url = `http://127.0.0.1:${port}`
  await eventually(async () => ((await fetch(`${url}/-/ready`)).ok ? true : undefined), `Prometheus to be ready\n${proc.output}`, 30_000)
  return {
    url,
    /** The single sample of an instant query, or undefined when the query returns nothing. */
    query: async (promql: string): Promise<number | undefined> => {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`)
      const body = (await res.json()) as { status: string; error?: string; data: { result: Array<{ value: [number, string] }> } }
      if (body.status !== "success") throw new Error(`${promql}: ${body.error}`)
      expect(body.data.result.length).toBeLessThanOrEqual(1)
      return body.data.result[0] ? Number(body.data.result[0].value[1]) : undefined
    }
  }
}
