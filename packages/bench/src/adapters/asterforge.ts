/**
 * Adapter: AsterForge's own task queue (packages/runtime), run as a real
 * worker node: `Runtime.layer` in `worker` mode with one registered no-op task,
 * leases, heartbeats, fencing and retained history all on. The producer is a
 * follower node's `TaskQueue` (`enqueueMany` for batches, `enqueue` per job).
 */
// Effect by module path, as the runtime imports it: the `effect` barrel would load every Effect
// module into the worker (about 7 MiB of RSS that no runtime code uses).
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type { Adapter } from "../Adapter.ts"
import { HISTORY_SPAN, queryInt, withClient } from "../pg.ts"

const runtimeDir = fileURLToPath(new URL("../../../runtime/", import.meta.url))

/** Newest modification time of the runtime's sources (what a build reads). */
const newestSource = (dir: string): number =>
  readdirSync(dir, { withFileTypes: true }).reduce(
    (t, e) => Math.max(t, e.isDirectory() ? newestSource(`${dir}/${e.name}`) : statSync(`${dir}/${e.name}`).mtimeMs),
    0
  )

/**
 * AsterForge runs as an installed app runs it: the package's built JavaScript
 * (`dist/`, what `pnpm pack` ships), as the anchors run their published code,
 * not its TypeScript sources through Node's type stripping, which holds a
 * compiler and every source in memory (~35 MiB more RSS). Built here when
 * missing or older than the sources; the worker process then finds it built.
 */
const loadRuntime = async (): Promise<typeof import("@asterforge/runtime")> => {
  const entry = `${runtimeDir}dist/index.js`
  let built = 0
  try {
    built = statSync(entry).mtimeMs
  } catch {}
  if (built < newestSource(`${runtimeDir}src`)) {
    const started = performance.now()
    process.stderr.write("[bench] building @asterforge/runtime (tsc -p tsconfig.build.json) ...\n")
    execFileSync(
      process.execPath,
      [fileURLToPath(new URL("bin/tsc", import.meta.resolve("typescript/package.json"))), "-p", `${runtimeDir}tsconfig.build.json`],
      {
        stdio: "inherit"
      }
    )
    process.stderr.write(`[bench] built @asterforge/runtime in ${Math.round(performance.now() - started)} ms\n`)
  }
  return import(entry)
}
const { ApplicationModule, Database, Runtime, RuntimeConfig, Task, TaskQueue } = await loadRuntime()

const runtimeVersion = (): string => {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../../runtime/package.json", import.meta.url), "utf8"))
    return typeof pkg.version === "string" ? pkg.version : "unknown"
  } catch {
    return "unknown"
  }
}

/** Handlers per process; AsterForge's ceiling is 64. Overridable for sweeps. */
const concurrencyFor = (harness: number) => Math.min(64, Number(process.env.ASTERFORGE_BENCH_CONCURRENCY ?? Math.max(harness, 64)))
/**
 * Tasks claimed ahead of a free slot (`worker.prefetch`): the counterpart of graphile-worker's
 * localQueue. The pool claims in halves of concurrency + prefetch, so 64 + 936 makes claims of up
 * to 500, the batch the anchors fetch. Overridable for sweeps.
 */
const prefetch = process.env.ASTERFORGE_BENCH_PREFETCH ?? "936"

const Noop = Task.define({ name: "bench.noop", payload: Schema.Unknown, retry: { maxAttempts: 3 } })

let onJobHook: (payload: unknown) => void = () => {}
const BenchModule = ApplicationModule.make({
  name: "bench",
  tasks: [Task.handler(Noop, (payload) => Effect.sync(() => onJobHook(payload)))]
})

const configFor = (url: string, extra: Record<string, string> = {}) =>
  Result.getOrThrow(
    RuntimeConfig.resolve({
      file: "/nonexistent/asterforge.toml",
      fileRequired: false,
      env: {
        DATABASE_URL: url,
        ASTERFORGE_SERVER_PORT: "0",
        ASTERFORGE_TELEMETRY_LOG_LEVEL: "warn",
        ASTERFORGE_SHUTDOWN_GRACE: "5s",
        ...extra
      }
    })
  )

const adapter: Adapter = {
  name: "asterforge",
  version: runtimeVersion(),
  config: {
    mode: "worker",
    concurrency: "64, the per-process ceiling (ASTERFORGE_BENCH_CONCURRENCY overrides)",
    prefetch: `${prefetch} (worker.prefetch; ASTERFORGE_BENCH_PREFETCH overrides)`,
    claim: "one statement per free-slot batch, FOR UPDATE SKIP LOCKED",
    completion: "batched, fenced by (id, lease_epoch)",
    wake: "LISTEN/NOTIFY, 1 s poll backstop"
  },

  async setup(url) {
    // Migrations only: the schema the nodes expect.
    await Effect.runPromise(
      Database.migrate.pipe(
        Effect.provide(Database.layerClient.pipe(Layer.provideMerge(Database.layerUrl), Layer.provide(RuntimeConfig.layer(configFor(url)))))
      )
    )
  },

  async openProducer(url) {
    const runtime = ManagedRuntime.make(
      Runtime.coreLayer(configFor(url, { ASTERFORGE_DATABASE_POOL_MAX: "20" }), "follower", [BenchModule])
    )
    const queue = await runtime.runPromise(TaskQueue.TaskQueue)
    return {
      insertBatch: async (payloads) => {
        await runtime.runPromise(queue.enqueueMany(Noop, payloads))
      },
      send: async (payload) => {
        await runtime.runPromise(queue.enqueue(Noop, payload))
      },
      close: () => runtime.dispose()
    }
  },

  async startWorkers({ url, concurrency, onJob }) {
    onJobHook = onJob
    const scope = Effect.runSync(Scope.make())
    await Effect.runPromise(
      Layer.buildWithScope(
        Runtime.layer({
          config: configFor(url, {
            ASTERFORGE_WORKER_CONCURRENCY: String(concurrencyFor(concurrency)),
            ASTERFORGE_WORKER_PREFETCH: prefetch
          }),
          mode: "worker",
          modules: [BenchModule]
        }),
        scope
      )
    )
    return { stop: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
  },

  /**
   * Unfinished tasks, counted through the partial indexes that hold them (claimable, running,
   * waiting for a callback), as the dispatcher and the lanes find them: `state NOT IN (finished)`
   * read the whole table, so with `--history` each poll at the end of a drain scanned every
   * history row (a poll took about 250 ms beside 1,000,000 rows).
   */
  countPending: (url) =>
    queryInt(
      url,
      `SELECT (SELECT count(*) FROM tasks WHERE state IN ('available', 'scheduled', 'retryable'))
            + (SELECT count(*) FROM tasks WHERE state = 'running')
            + (SELECT count(*) FROM tasks WHERE state = 'waiting_callback')`
    ),

  /**
   * Rows as a bench job leaves them after one successful attempt (leases.ts `claim` + `finish`):
   * attempt 1, epoch 1, lease cleared, finished_at set, and a W3C traceparent like the producer's
   * (so the rows are as wide as real ones). Spread over the last HISTORY_SPAN, inside
   * the pruning lane's 24 h `succeeded_retention`, so the worker keeps them for the whole run.
   */
  async fillHistory(url, n) {
    await withClient(url, (c) =>
      c.query(
        `INSERT INTO tasks (name, queue, state, priority, run_at, attempt, max_attempts, payload, lease_epoch,
                            traceparent, created_at, attempted_at, finished_at)
         SELECT $1, $2, 'succeeded', $3, f - interval '30 ms', 1, $4, jsonb_build_object('i', g), 1,
                '00-' || md5(g::text) || '-' || left(md5((-g)::text), 16) || '-01',
                f - interval '30 ms', f - interval '10 ms', f
         FROM generate_series(1, $5::int) AS g,
              LATERAL (SELECT now() - $6::interval * ($5::int - g) / $5::int AS f) AS t`,
        [Noop.name, Noop.queue, Noop.priority, Noop.retry.maxAttempts, n, HISTORY_SPAN]
      )
    )
  }
}

export default adapter
