/** Messages between the driver (main.ts) and the forked worker process (worker.ts). */

export type Scenario = "throughput" | "latency"

/** Passed to the worker process in the BENCH_WORKER_SPEC environment variable (JSON). */
export interface WorkerSpec {
  readonly system: string
  readonly scenario: Scenario
  readonly url: string
  readonly concurrency: number
  /** throughput: jobs to drain (handler calls to wait for) */
  readonly jobs: number
  /** throughput: cap on the work phase; a capped run reports what completed */
  readonly maxSeconds: number
}

export interface ThroughputWorkerResult {
  readonly scenario: "throughput"
  readonly timedOut: boolean
  /** distinct jobs whose handler ran */
  readonly handled: number
  /** handler calls for a job that had already run */
  readonly duplicates: number
  /** countPending() at the end (0 unless timed out) */
  readonly pending: number
  readonly startupMs: number
  readonly firstJobAfterMs: number | null
  readonly allHandledAfterMs: number | null
  readonly elapsedMs: number
  readonly completedPerSec: number
  readonly completedPerSecExclStartup: number | null
  readonly workerCpuSec: number
  /** the part of `workerCpuSec` spent in `startWorkers()` */
  readonly startupCpuSec: number
  readonly peakRssMiB: number | null
  /** RSS when `startWorkers()` returned: code and start-up state, before any job ran */
  readonly readyRssMiB: number
  readonly sampledRssMaxMiB: number
  /** `t0` and the end of the drain on process.hrtime in µs, the clock of V8's CPU profile timestamps */
  readonly drainWindowUs: readonly [number, number]
  /** the worker's process.execArgv: the Node flags it really ran with */
  readonly execArgv: ReadonlyArray<string>
}

export interface LatencyWorkerResult {
  readonly scenario: "latency"
  readonly timedOut: boolean
  readonly startupMs: number
  readonly received: number
  readonly duplicates: number
  /** handler start - payload.t, in arrival order */
  readonly latenciesMs: ReadonlyArray<number>
  readonly peakRssMiB: number | null
  readonly sampledRssMaxMiB: number
  /** the worker's process.execArgv: the Node flags it really ran with */
  readonly execArgv: ReadonlyArray<string>
}

export type ToWorker =
  /** throughput: start the workers now (t0) */
  | { readonly type: "go" }
  /** clock cross-check */
  | { readonly type: "ping"; readonly t: number }
  /** latency: the producer starts sending now; report after `expected` jobs or `timeoutMs` */
  | { readonly type: "begin"; readonly expected: number; readonly timeoutMs: number }

export type FromWorker =
  | { readonly type: "armed" }
  | { readonly type: "ready"; readonly startupMs: number }
  | { readonly type: "pong"; readonly tp: number; readonly tc: number }
  | { readonly type: "result"; readonly result: ThroughputWorkerResult | LatencyWorkerResult }
  | { readonly type: "error"; readonly message: string; readonly stack: string }

/** Milliseconds on a clock shared by both processes (wall-clock origin, sub-ms resolution). */
export const now = (): number => performance.timeOrigin + performance.now()

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)))
