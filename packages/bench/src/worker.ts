/**
 * The worker process of one benchmark run, forked by the driver (main.ts) with the same Node
 * binary. It loads the system's adapter and runs only its workers (the producer lives in the
 * driver), so its peak RSS and CPU time are the worker-side cost.
 *
 * Protocol (IPC, see protocol.ts):
 *   throughput: child -> armed; parent -> go; child -> result
 *   latency:    child -> ready; parent -> ping* / child -> pong*; parent -> begin; child -> result
 *   any failure: child -> error { message }, exit code 1
 */
import type { Adapter, Workers } from "./Adapter.ts"
import { loadAdapter } from "./adapters/index.ts"
import { peakRssMiB, startRssSampler } from "./memory.ts"
import { closeSharedPools } from "./pg.ts"
import type { FromWorker, LatencyWorkerResult, ThroughputWorkerResult, ToWorker, WorkerSpec } from "./protocol.ts"
import { now, sleep } from "./protocol.ts"

const rawSpec = process.env.BENCH_WORKER_SPEC
if (rawSpec === undefined || process.send === undefined) {
  console.error("worker.ts is started by the benchmark driver (src/main.ts), not directly")
  process.exit(2)
}
const spec: WorkerSpec = JSON.parse(rawSpec)

const send = (msg: FromWorker): Promise<void> =>
  new Promise((resolve, reject) => {
    process.send!(msg, undefined, {}, (err) => (err ? reject(err) : resolve()))
  })

// One dispatcher for parent messages: pings are answered at once, others wait in `inbox`.
const inbox: Array<ToWorker> = []
const waiting = new Map<ToWorker["type"], (m: ToWorker) => void>()
process.on("message", (msg: ToWorker) => {
  if (msg.type === "ping") {
    process.send!({ type: "pong", tp: msg.t, tc: now() } satisfies FromWorker)
    return
  }
  const w = waiting.get(msg.type)
  if (w !== undefined) {
    waiting.delete(msg.type)
    w(msg)
  } else {
    inbox.push(msg)
  }
})
// The parent going away (disconnect) ends this process.
process.on("disconnect", () => process.exit(3))

const receive = <T extends ToWorker["type"]>(type: T): Promise<Extract<ToWorker, { type: T }>> =>
  new Promise((resolve) => {
    const i = inbox.findIndex((m) => m.type === type)
    if (i >= 0) return resolve(inbox.splice(i, 1)[0] as Extract<ToWorker, { type: T }>)
    waiting.set(type, (m) => resolve(m as Extract<ToWorker, { type: T }>))
  })

const rss = startRssSampler(100)
const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits
/** process.hrtime in µs: the monotonic clock V8 stamps CPU profile samples with. */
const hrtimeUs = () => Number(process.hrtime.bigint() / 1000n)
const peakRss = () => {
  const v = peakRssMiB()
  return v === null ? null : round(v, 1)
}

const stopWorkers = async (workers: Workers) => {
  try {
    await Promise.race([workers.stop(), sleep(15_000).then(() => console.error("[bench worker] stop() took over 15 s"))])
  } catch (e) {
    console.error(`[bench worker] stop() failed: ${e instanceof Error ? e.message : String(e)}`)
  }
}

const throughput = async (adapter: Adapter) => {
  const n = spec.jobs
  const seen = new Uint8Array(n)
  let handled = 0
  let duplicates = 0
  let tFirst: number | null = null
  let allHandled!: () => void
  const allHandledP = new Promise<void>((r) => (allHandled = r))
  const onJob = (payload: any) => {
    const t = now()
    tFirst ??= t
    const i = typeof payload?.i === "number" ? payload.i : -1
    if (i >= 0 && i < n) {
      if (seen[i] === 1) {
        duplicates++
        return
      }
      seen[i] = 1
    }
    if (++handled === n) allHandled()
  }

  const go = receive("go")
  await send({ type: "armed" })
  await go

  const cpu0 = process.cpuUsage()
  const hr0 = hrtimeUs()
  const t0 = now()
  const deadline = t0 + spec.maxSeconds * 1000
  const workers = await adapter.startWorkers({ url: spec.url, concurrency: spec.concurrency, onJob })
  const tStarted = now()
  const cpuStarted = process.cpuUsage(cpu0)
  const readyRss = process.memoryUsage.rss() / 2 ** 20
  const handledInTime = await Promise.race([allHandledP.then(() => true), sleep(deadline - now()).then(() => false)])
  const tHandled = now()
  // Every handler ran; now wait until the database agrees that every completion is committed.
  let pending = await adapter.countPending(spec.url)
  while (pending > 0 && now() < deadline) {
    await sleep(5)
    pending = await adapter.countPending(spec.url)
  }
  const tDone = now()
  const hrDone = hrtimeUs()
  const cpu = process.cpuUsage(cpu0)
  const timedOut = !handledInTime || pending > 0
  const completed = Math.max(0, n - pending)
  const elapsedMs = tDone - t0
  const result: ThroughputWorkerResult = {
    scenario: "throughput",
    timedOut,
    handled,
    duplicates,
    pending,
    startupMs: round(tStarted - t0),
    firstJobAfterMs: tFirst === null ? null : round(tFirst - t0),
    allHandledAfterMs: handledInTime ? round(tHandled - t0) : null,
    elapsedMs: round(elapsedMs),
    completedPerSec: round(completed / (elapsedMs / 1000), 1),
    completedPerSecExclStartup: tFirst === null || timedOut ? null : round(completed / ((tDone - tFirst) / 1000), 1),
    workerCpuSec: round((cpu.user + cpu.system) / 1e6),
    startupCpuSec: round((cpuStarted.user + cpuStarted.system) / 1e6),
    peakRssMiB: peakRss(),
    readyRssMiB: round(readyRss, 1),
    sampledRssMaxMiB: round(rss.maxMiB(), 1),
    drainWindowUs: [hr0, hrDone],
    execArgv: process.execArgv
  }
  await send({ type: "result", result })
  await stopWorkers(workers)
}

const latency = async (adapter: Adapter) => {
  const latencies: Array<number> = []
  const seen = new Set<number>()
  let duplicates = 0
  let expected = Infinity
  let allReceived!: () => void
  const allReceivedP = new Promise<void>((r) => (allReceived = r))
  const onJob = (payload: any) => {
    const t = now()
    if (payload?.warmup === true) return // producer warm-up jobs
    const i = payload?.i
    if (typeof i !== "number" || typeof payload?.t !== "number") return
    if (seen.has(i)) {
      duplicates++
      return
    }
    seen.add(i)
    latencies.push(round(t - payload.t))
    if (latencies.length >= expected) allReceived()
  }
  const t0 = now()
  const workers = await adapter.startWorkers({ url: spec.url, concurrency: spec.concurrency, onJob })
  const startupMs = round(now() - t0)
  const begin = receive("begin")
  await send({ type: "ready", startupMs })
  const { expected: exp, timeoutMs } = await begin
  expected = exp
  if (latencies.length >= expected) allReceived()
  const inTime = await Promise.race([allReceivedP.then(() => true), sleep(timeoutMs).then(() => false)])
  const result: LatencyWorkerResult = {
    scenario: "latency",
    timedOut: !inTime,
    startupMs,
    received: latencies.length,
    duplicates,
    latenciesMs: latencies,
    peakRssMiB: peakRss(),
    sampledRssMaxMiB: round(rss.maxMiB(), 1),
    execArgv: process.execArgv
  }
  await send({ type: "result", result })
  await stopWorkers(workers)
}

try {
  const adapter = await loadAdapter(spec.system)
  if (spec.scenario === "throughput") await throughput(adapter)
  else await latency(adapter)
  await closeSharedPools()
  process.exit(0)
} catch (e) {
  const message = e instanceof Error ? e.message : String(e)
  const stack = e instanceof Error ? (e.stack ?? e.message) : String(e)
  try {
    await send({ type: "error", message, stack })
  } catch {
    console.error(`[bench worker] ${stack}`)
  }
  process.exit(1)
}
