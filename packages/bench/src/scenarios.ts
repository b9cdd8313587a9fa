/** One run of one scenario for one system, in a fresh database. */
import { join } from "node:path"
import type { Adapter } from "./Adapter.ts"
import type { Options } from "./cli.ts"
import { cpuWindow, readCpuTimes, readPostgresCpuMs, waitForQuiet } from "./machine.ts"
import { analyze, checkpoint, closeSharedPools, createFreshDatabase, type FreshDatabase, vacuumAnalyze } from "./pg.ts"
import { now, sleep, type Scenario } from "./protocol.ts"
import type { RunRecord } from "./records.ts"
import { fmt, median, percentile, round } from "./stats.ts"
import { forkWorker, type WorkerProcess } from "./WorkerProcess.ts"

export const INSERT_CHUNK = 1000

export interface RunContext {
  readonly options: Options
  readonly system: string
  readonly adapter: Adapter
  /** 1-based */
  readonly run: number
  /** `--profile`: the folder the throughput workers' CPU profiles go to (one sub-folder per run), else null */
  readonly profileRoot: string | null
  /** a progress line for a step long enough to announce (stderr) */
  readonly progress: (line: string) => void
}

/** Settings every run records, whatever the scenario: the worker's Node flags and where else they come from. */
export const commonSettings = (options: Options) => ({
  nodeFlags: options.nodeFlags,
  NODE_OPTIONS: process.env.NODE_OPTIONS ?? null
})

/** The folder of one run's CPU profile: `<root>/<system>-run<k>` (a system given as a path keeps only safe characters). */
export const profileDirFor = (root: string, system: string, run: number): string =>
  join(root, `${system.replace(/[^A-Za-z0-9._-]+/g, "_")}-run${run}`)

/** Databases created and not yet dropped, so an interrupted bench can clean up. */
export const liveDatabases = new Set<FreshDatabase>()

const withFreshDatabase = async <A>(ctx: RunContext, scenario: Scenario, f: (db: FreshDatabase) => Promise<A>): Promise<A> => {
  const db = await createFreshDatabase(ctx.options.adminUrl, `${ctx.system}_${scenario === "throughput" ? "tp" : "lat"}`)
  liveDatabases.add(db)
  try {
    return await f(db)
  } finally {
    await closeSharedPools()
    await db.drop()
    liveDatabases.delete(db)
  }
}

/** Run `f` with a forked worker process; make sure the process is gone afterwards. */
const withWorker = async <A>(
  spec: Parameters<typeof forkWorker>[0],
  execArgv: ReadonlyArray<string>,
  f: (w: WorkerProcess) => Promise<A>
): Promise<A> => {
  const worker = forkWorker(spec, execArgv)
  let ok = false
  try {
    const a = await f(worker)
    ok = true
    return a
  } finally {
    const exit = await worker.finish(ok ? 30_000 : 5_000)
    if (ok && exit.killed) console.error(`[bench] worker process ${worker.pid} did not exit within 30 s after its result; killed it`)
  }
}

/**
 * Scenario 1 (and 3): bulk insert, then drain with a forked worker process. With --history, the
 * system's table first gets that many finished jobs (claims and completions then run beside them).
 */
export const runThroughput = async (ctx: RunContext): Promise<RunRecord> => {
  const { options, system, adapter } = ctx
  const startedAt = new Date().toISOString()
  const n = options.jobs
  const fillHistory = adapter.fillHistory?.bind(adapter)
  const historyRows = options.history > 0 && fillHistory !== undefined ? options.history : 0
  const profileDir = ctx.profileRoot === null ? null : profileDirFor(ctx.profileRoot, system, ctx.run)
  const settings = {
    jobs: n,
    insertChunk: INSERT_CHUNK,
    concurrency: options.concurrency,
    maxSeconds: options.maxSeconds,
    historyRows,
    ...(options.history > 0 && fillHistory === undefined ? { historyNote: "no fillHistory(): the system keeps no finished jobs" } : {}),
    ...commonSettings(options),
    profileDir,
    systemConfig: adapter.config ?? null
  }
  return withFreshDatabase(ctx, "throughput", async (db) => {
    await adapter.setup(db.url)
    let history: { rows: number; fillMs: number; vacuumAnalyzeMs: number } | null = null
    if (historyRows > 0 && fillHistory !== undefined) {
      ctx.progress(`filling ${fmt(historyRows)} finished jobs of history ...`)
      const t = now()
      await fillHistory(db.url, historyRows)
      const tFilled = now()
      await vacuumAnalyze(db.url)
      history = { rows: historyRows, fillMs: round(tFilled - t), vacuumAnalyzeMs: round(now() - tFilled) }
      ctx.progress(
        `history: ${fmt(historyRows)} rows in ${(history.fillMs / 1000).toFixed(1)} s, VACUUM (ANALYZE) ${(history.vacuumAnalyzeMs / 1000).toFixed(1)} s`
      )
    }
    await checkpoint(db.url)

    const chunks: Array<Array<{ i: number }>> = []
    for (let i = 0; i < n; i += INSERT_CHUNK) {
      chunks.push(Array.from({ length: Math.min(INSERT_CHUNK, n - i) }, (_, k) => ({ i: i + k })))
    }
    const producer = await adapter.openProducer(db.url)
    let insertMs: number
    try {
      const t = now()
      for (const chunk of chunks) await producer.insertBatch(chunk)
      insertMs = now() - t
    } finally {
      await producer.close()
    }
    const pendingAfterInsert = await adapter.countPending(db.url)
    await closeSharedPools()
    if (pendingAfterInsert !== n) {
      throw new Error(`countPending() = ${pendingAfterInsert} right after inserting ${n} jobs (expected ${n})`)
    }
    await analyze(db.url)

    // --cpu-prof writes the profile when the worker process exits (withWorker waits for that).
    const execArgv = profileDir === null ? options.nodeFlags : [...options.nodeFlags, "--cpu-prof", `--cpu-prof-dir=${profileDir}`]
    return withWorker(
      { system, scenario: "throughput", url: db.url, concurrency: options.concurrency, jobs: n, maxSeconds: options.maxSeconds },
      execArgv,
      async (worker) => {
        await worker.next("armed", 120_000)
        await checkpoint(db.url)
        const waitedForQuietMs = await waitForQuiet(options.waitQuiet)
        const cpu0 = readCpuTimes()
        const pg0 = readPostgresCpuMs()
        worker.send({ type: "go" })
        const { result } = await worker.next("result", (options.maxSeconds + 60) * 1000)
        const machine = cpuWindow(cpu0, readCpuTimes())
        const pg1 = readPostgresCpuMs()
        if (result.scenario !== "throughput") throw new Error("worker process answered with a latency result")
        return {
          kind: "run",
          startedAt,
          system,
          version: adapter.version,
          scenario: "throughput",
          run: ctx.run,
          status: "ok",
          database: db.name,
          settings,
          metrics: {
            insertedPerSec: round(n / (insertMs / 1000), 1),
            completedPerSec: result.completedPerSec,
            completedPerSecExclStartup: result.completedPerSecExclStartup,
            startupMs: result.startupMs,
            workerPeakRssMiB: result.peakRssMiB ?? result.sampledRssMaxMiB,
            workerCpuSec: result.workerCpuSec,
            workerStartupCpuMs: round(result.startupCpuSec * 1000, 1),
            workerCpuPerJobUs:
              result.completedPerSecExclStartup === null ? null : round(((result.workerCpuSec - result.startupCpuSec) / n) * 1e6, 2),
            postgresCpuPerJobUs: pg0 === null || pg1 === null ? null : round(((pg1 - pg0) / n) * 1000, 1),
            workerReadyRssMiB: result.readyRssMiB,
            workerRssGrowthMiB: round((result.peakRssMiB ?? result.sampledRssMaxMiB) - result.readyRssMiB, 1),
            machineBusyPct: machine?.busyPct ?? null,
            stealPct: machine?.stealPct ?? null
          },
          details: { insertMs: round(insertMs), waitedForQuietMs, history, ...result }
        } satisfies RunRecord
      }
    )
  })
}

/** Scenario 2: enqueue -> handler-start latency, single jobs sent open-loop to idle workers. */
export const runLatency = async (ctx: RunContext): Promise<RunRecord> => {
  const { options, system, adapter } = ctx
  const startedAt = new Date().toISOString()
  const n = options.latencyJobs
  const intervalMs = 1000 / options.rate
  const settings = {
    jobs: n,
    rate: options.rate,
    idleMs: options.idleMs,
    concurrency: options.concurrency,
    ...commonSettings(options),
    systemConfig: adapter.config ?? null
  }
  return withFreshDatabase(ctx, "latency", async (db) => {
    await adapter.setup(db.url)
    return withWorker(
      { system, scenario: "latency", url: db.url, concurrency: options.concurrency, jobs: n, maxSeconds: options.maxSeconds },
      options.nodeFlags,
      async (worker) => {
        const { startupMs } = await worker.next("ready", 120_000)
        const producer = await adapter.openProducer(db.url)
        try {
          // Warm the producer's connection pool (the worker ignores these jobs).
          for (let k = 0; k < 3; k++) await producer.send({ warmup: true })
          await Promise.all([0, 1, 2].map(() => producer.send({ warmup: true })))
          const clock = await clockCheck(worker)
          const waitedForQuietMs = await waitForQuiet(options.waitQuiet)
          await sleep(options.idleMs)

          const cpu0 = readCpuTimes()
          worker.send({ type: "begin", expected: n, timeoutMs: n * intervalMs + 30_000 })
          const sendMs: Array<number> = []
          let sendErrors = 0
          let firstSendError: string | undefined
          let maxLagMs = 0
          const inflight: Array<Promise<void>> = []
          const start = now() + 5
          for (let i = 0; i < n; i++) {
            const due = start + i * intervalMs
            const wait = due - now()
            if (wait > 0) await sleep(wait)
            // Open loop: this send starts on schedule whether or not earlier sends finished.
            const t = now()
            maxLagMs = Math.max(maxLagMs, t - due)
            inflight.push(
              producer.send({ i, t }).then(
                () => {
                  sendMs.push(now() - t)
                },
                (e: unknown) => {
                  sendErrors++
                  firstSendError ??= e instanceof Error ? e.message : String(e)
                }
              )
            )
          }
          await Promise.all(inflight)
          const { result } = await worker.next("result", n * intervalMs + 90_000)
          const machine = cpuWindow(cpu0, readCpuTimes())
          if (result.scenario !== "latency") throw new Error("worker process answered with a throughput result")
          if (result.received === 0) {
            throw new Error(`no job reached a handler (${sendErrors} send errors${firstSendError ? `, first: ${firstSendError}` : ""})`)
          }
          const lat = result.latenciesMs
          const p = (q: number) => {
            const v = percentile(lat, q)
            return v === null ? null : round(v)
          }
          const { latenciesMs, ...rest } = result
          return {
            kind: "run",
            startedAt,
            system,
            version: adapter.version,
            scenario: "latency",
            run: ctx.run,
            status: "ok",
            database: db.name,
            settings,
            metrics: {
              p50Ms: p(50),
              p95Ms: p(95),
              p99Ms: p(99),
              maxMs: lat.length === 0 ? null : round(Math.max(...lat)),
              meanMs: lat.length === 0 ? null : round(lat.reduce((a, b) => a + b, 0) / lat.length),
              sendP50Ms: sendMs.length === 0 ? null : round(percentile(sendMs, 50)!),
              sendP99Ms: sendMs.length === 0 ? null : round(percentile(sendMs, 99)!),
              received: result.received,
              workerPeakRssMiB: result.peakRssMiB ?? result.sampledRssMaxMiB,
              machineBusyPct: machine?.busyPct ?? null,
              stealPct: machine?.stealPct ?? null
            },
            details: {
              ...rest,
              workerStartupMs: startupMs,
              sendErrors,
              ...(firstSendError === undefined ? {} : { firstSendError }),
              maxScheduleLagMs: round(maxLagMs),
              clockCheck: clock,
              waitedForQuietMs,
              latenciesMs
            }
          } satisfies RunRecord
        } finally {
          await producer.close()
        }
      }
    )
  })
}

/** 20 IPC ping-pongs: offset of the worker's clock against ours (should be ~0: same host clock). */
const clockCheck = async (worker: WorkerProcess) => {
  const offsets: Array<number> = []
  const rtts: Array<number> = []
  for (let k = 0; k < 20; k++) {
    const tp = now()
    worker.send({ type: "ping", t: tp })
    const pong = await worker.next("pong", 10_000)
    const back = now()
    offsets.push(pong.tc - (pong.tp + back) / 2)
    rtts.push(back - pong.tp)
  }
  return {
    offsetMsMedian: round(median(offsets)!, 4),
    offsetMsMaxAbs: round(Math.max(...offsets.map(Math.abs)), 4),
    rttMsMedian: round(median(rtts)!, 4)
  }
}
