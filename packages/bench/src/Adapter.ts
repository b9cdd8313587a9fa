/**
 * The contract between the benchmark harness and one queue system.
 *
 * An adapter module (registered in `./adapters/index.ts`) default-exports an object of this type.
 * The same module is loaded in two processes:
 *
 * - the **driver** (`main.ts`): `setup`, `fillHistory`, `openProducer`, `countPending` once;
 * - the forked **worker process** (`worker.ts`): `startWorkers`, `countPending`.
 *
 * Every run gets a fresh, empty database; `url` is its connection string. Adapters must release
 * every connection they open (`close()` / `stop()`), because the harness drops the database
 * `WITH (FORCE)` afterwards.
 */
export interface Adapter {
  readonly name: string
  readonly version: string
  /**
   * Optional (not required by the harness): the system's effective settings, recorded verbatim in
   * every result line so a run can be reproduced.
   */
  readonly config?: Readonly<Record<string, unknown>>
  /** install schema / create queue in the fresh database at `url` */
  setup(url: string): Promise<void>
  openProducer(url: string): Promise<Producer>
  /** start workers; call onJob(payload) at the start of every job's handler (handler otherwise does nothing) */
  startWorkers(options: { url: string; concurrency: number; onJob: (payload: any) => void }): Promise<Workers>
  /** number of jobs not yet completed (committed) */
  countPending(url: string): Promise<number>
  /**
   * Optional, for systems that keep finished jobs: after `setup`, put `n` jobs in the state a
   * completed `onJob` job ends in (same task/queue as the bench's jobs, finished recently enough
   * that the system's own retention keeps them during the run), in bulk SQL. The harness then
   * runs VACUUM (ANALYZE). Systems that delete finished jobs leave it out (--history: no history).
   */
  fillHistory?(url: string, n: number): Promise<void>
}

export interface Producer {
  /** Enqueue all payloads with the system's batch API (the harness calls it with chunks of 1000). */
  insertBatch(payloads: ReadonlyArray<unknown>): Promise<void>
  /** Enqueue one job (latency scenario: one call per job, several may be in flight at once). */
  send(payload: unknown): Promise<void>
  close(): Promise<void>
}

export interface Workers {
  /** Stop the workers and close their connections. */
  stop(): Promise<void>
}

/** The message an adapter throws from every method while it has no implementation. */
export const isNotImplemented = (error: unknown): boolean => /not implemented/i.test(error instanceof Error ? error.message : String(error))
