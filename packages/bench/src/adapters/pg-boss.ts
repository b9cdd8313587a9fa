/**
 * Adapter: pg-boss (https://pgboss.io), v12 API, at its best for this workload: batch handler
 * (`batchSize` 500, completed in one statement per batch), `localConcurrency` 4 fetch loops,
 * `burstWhenBatchFull` (fetch again at once while batches come back full), polling every 0.5 s
 * (the minimum pg-boss accepts), and LISTEN/NOTIFY (`useListenNotify` + queue `notify`) so that an
 * idle worker wakes when a job is sent. The batch/concurrency settings are the best region of the
 * anchor sweep (RESULTS.md); pg-boss has no per-job concurrency knob, so the harness
 * `concurrency` does not apply to it.
 */
import { PgBoss } from "pg-boss"
import type { Adapter } from "../Adapter.ts"
import { HISTORY_SPAN, queryInt, quoteIdent, withClient } from "../pg.ts"
import { packageVersion } from "../version.ts"

const QUEUE = "bench_noop"

const work = {
  batchSize: 500,
  localConcurrency: 4,
  pollingIntervalSeconds: 0.5,
  notifyPollingIntervalSeconds: 0.5,
  burstWhenBatchFull: true
} as const

const onError = (e: unknown) => console.error(`[pg-boss error] ${e instanceof Error ? e.message : String(e)}`)

/** A pure client: no maintenance or cron in the setup/producer instances. */
const client = async (url: string): Promise<PgBoss> => {
  const boss = new PgBoss({ connectionString: url, supervise: false, schedule: false })
  boss.on("error", onError)
  await boss.start()
  return boss
}

const adapter: Adapter = {
  name: "pg-boss",
  version: packageVersion("pg-boss"),
  config: {
    boss: { useListenNotify: true },
    queue: { notify: true },
    work,
    producer: { supervise: false, schedule: false }
  },

  async setup(url) {
    const boss = await client(url) // start() installs the schema
    try {
      await boss.createQueue(QUEUE, { notify: true })
    } finally {
      await boss.stop({ graceful: false, close: true })
    }
  },

  async openProducer(url) {
    const boss = await client(url)
    return {
      insertBatch: async (payloads) => {
        await boss.insert(
          QUEUE,
          payloads.map((data) => ({ data: data as object }))
        )
      },
      send: async (payload) => {
        await boss.send(QUEUE, payload as object)
      },
      close: () => boss.stop({ graceful: false, close: true })
    }
  },

  async startWorkers({ url, onJob }) {
    // The worker instance keeps pg-boss's defaults (supervision, maintenance) plus LISTEN/NOTIFY.
    const boss = new PgBoss({ connectionString: url, useListenNotify: true })
    boss.on("error", onError)
    await boss.start()
    await boss.work(QUEUE, work, async (jobs) => {
      for (const job of jobs) onJob(job.data)
    })
    return { stop: () => boss.stop({ graceful: true, close: true, timeout: 5000 }) }
  },

  countPending: (url) =>
    queryInt(url, "select count(*)::int from pgboss.job where name = $1 and state in ('created', 'retry', 'active')", [QUEUE]),

  /**
   * Completed jobs as pg-boss's own insert (plans.insertJobs: the queue's settings) and a completed
   * fetch (started_on, heartbeat_on, completed_on) leave them, in the queue's job table (`queue.table_name`).
   * Spread over the last HISTORY_SPAN, well inside the 7-day `deleteAfterSeconds`, so
   * maintenance keeps them during the run.
   */
  async fillHistory(url, n) {
    await withClient(url, async (c) => {
      const { rows } = await c.query("select table_name from pgboss.queue where name = $1", [QUEUE])
      const table: unknown = rows[0]?.table_name
      if (typeof table !== "string") throw new Error(`pg-boss queue ${QUEUE} has no job table (was setup() run?)`)
      await c.query(
        `insert into pgboss.${quoteIdent(table)} (id, name, data, priority, state, start_after, created_on, started_on, completed_on,
           expire_seconds, deletion_seconds, keep_until, retry_limit, retry_delay, retry_backoff, retry_delay_max,
           policy, dead_letter, heartbeat_seconds, heartbeat_on)
         select gen_random_uuid(), q.name, jsonb_build_object('i', g), 0, 'completed', f - interval '30 ms',
                f - interval '30 ms', f - interval '10 ms', f, q.expire_seconds, q.deletion_seconds,
                f - interval '30 ms' + q.retention_seconds * interval '1s', q.retry_limit, q.retry_delay, q.retry_backoff,
                q.retry_delay_max, q.policy, q.dead_letter, q.heartbeat_seconds, f - interval '10 ms'
         from pgboss.queue q, generate_series(1, $2::int) as g,
              lateral (select now() - $3::interval * ($2::int - g) / $2::int as f) as t
         where q.name = $1`,
        [QUEUE, n, HISTORY_SPAN]
      )
    })
  }
}

export default adapter
