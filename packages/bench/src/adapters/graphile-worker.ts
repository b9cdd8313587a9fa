/**
 * Adapter: graphile-worker (https://worker.graphile.org), library mode, at its best for this
 * workload: `localQueue` (jobs fetched 500 per query) and batched completion
 * (`completeJobBatchDelay: 0`), `concurrentJobs` = the harness concurrency (10), `maxPoolSize`
 * = max(10, concurrency + 2) as graphile-worker recommends. Wakes on LISTEN/NOTIFY by default.
 */
import type { Adapter } from "../Adapter.ts"
import { queryInt } from "../pg.ts"
import { packageVersion } from "../version.ts"

// graphile-worker reads NO_LOG_SUCCESS when its modules load; it turns off the per-job
// "Completed task ... with success" log line (its documented switch for high throughput).
// The library is therefore imported lazily, after this assignment.
process.env.NO_LOG_SUCCESS ??= "1"
const lib = () => import("graphile-worker")

const TASK = "bench_noop"
const LOCAL_QUEUE_SIZE = 500

let quietLogger: import("graphile-worker").Logger | undefined
const logger = async () => {
  if (quietLogger === undefined) {
    const { Logger } = await lib()
    quietLogger = new Logger(() => (level, message) => {
      if (level === "error" || level === "warning") console.error(`[graphile-worker ${level}] ${message}`)
    })
  }
  return quietLogger
}

const adapter: Adapter = {
  name: "graphile-worker",
  version: packageVersion("graphile-worker"),
  config: {
    worker: {
      concurrentJobs: "--concurrency",
      maxPoolSize: "max(10, concurrency + 2)",
      localQueue: { size: LOCAL_QUEUE_SIZE },
      completeJobBatchDelay: 0
    },
    NO_LOG_SUCCESS: 1
  },

  async setup(url) {
    const { runMigrations } = await lib()
    await runMigrations({ connectionString: url, logger: await logger() })
  },

  async openProducer(url) {
    const { makeWorkerUtils } = await lib()
    const utils = await makeWorkerUtils({ connectionString: url, logger: await logger() })
    return {
      insertBatch: async (payloads) => {
        await utils.addJobs(payloads.map((payload) => ({ identifier: TASK, payload })))
      },
      send: async (payload) => {
        await utils.addJob(TASK, payload)
      },
      close: async () => {
        await utils.release()
      }
    }
  },

  async startWorkers({ url, concurrency, onJob }) {
    const { run } = await lib()
    const runner = await run({
      noHandleSignals: true,
      taskList: {
        [TASK]: async (payload) => {
          onJob(payload)
        }
      },
      preset: {
        worker: {
          connectionString: url,
          logger: await logger(),
          concurrentJobs: concurrency,
          maxPoolSize: Math.max(10, concurrency + 2),
          localQueue: { size: LOCAL_QUEUE_SIZE },
          completeJobBatchDelay: 0
        }
      }
    })
    return { stop: () => runner.stop() }
  },

  /** graphile-worker deletes a job's row when its completion commits; it keeps no history, hence no fillHistory. */
  countPending: (url) => queryInt(url, "select count(*)::int from graphile_worker._private_jobs")
}

export default adapter
