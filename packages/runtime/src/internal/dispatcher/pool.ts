/**
 * The dispatcher's shared state: one pool per queue, holding every task this
 * node has a lease on in that queue, and the node-wide `stopping` flag.
 *
 * The producer fills a pool (claims into `ready`, starts runs into free slots),
 * the executor frees a slot when a run ends, the lease keeper marks entries
 * whose lease is gone or whose cancel was requested, and the dispatcher reads
 * it for status and drains it on shutdown. Plain mutable data on purpose: all
 * of it is touched on the hot path, by fibers of one layer on one thread.
 */
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import { type CheckResult, fail, pass } from "../../Health.ts"
import type { Problem } from "../../RuntimeError.ts"
import type * as Task from "../../Task.ts"
import * as Telemetry from "../../Telemetry.ts"

/**
 * The most handlers one process runs at once, over all its queues; past it,
 * run more worker processes rather than larger pools.
 */
export const maxConcurrencyPerProcess = 64

/**
 * The pools a dispatcher runs: one per queue that registered tasks use or
 * `worker.queues` lists, each with its concurrency. The total is bounded per
 * process; the check runs before anything starts (`Runtime` calls this with
 * the modules' queues), not after connecting.
 */
export const plan = (
  worker: { readonly concurrency: number; readonly queues: ReadonlyMap<string, number> },
  registeredQueues: ReadonlyArray<string>
): {
  readonly pools: ReadonlyArray<{ readonly queue: string; readonly concurrency: number }>
  readonly problems: ReadonlyArray<Problem>
} => {
  const pools = [...new Set([...registeredQueues, ...worker.queues.keys()])].map((queue) => ({
    queue,
    concurrency: worker.queues.get(queue) ?? worker.concurrency
  }))
  const total = pools.reduce((n, p) => n + p.concurrency, 0)
  return {
    pools,
    problems:
      total <= maxConcurrencyPerProcess
        ? []
        : [
            {
              key: "worker.concurrency",
              message: `concurrency over all queues is ${total} (${pools.map((p) => `${p.queue}=${p.concurrency}`).join(", ")}); at most ${maxConcurrencyPerProcess} per process: lower worker.concurrency / worker.queues or run more worker processes`
            }
          ]
  }
}

/** A task this node holds a lease on: waiting for a slot, or running. */
export interface Entry {
  readonly task: Task.Claimed
  readonly claimedAt: number
  /** Set once the handler fiber starts. */
  handler: Fiber.Fiber<unknown, unknown> | undefined
  /** Set when the run outlived its timeout and was interrupted for it. */
  timedOut: boolean
  /** Set before interrupting for a cancel, so the interruption is recorded as a cancellation. */
  cancelRequested: boolean
  /** Set when the heartbeat finds the lease gone: the result would be refused, so none is written. */
  leaseLost: boolean
}

/** One queue's slots, tasks and claim state. */
export interface Pool {
  readonly queue: string
  readonly concurrency: number
  /** Tasks claimed ahead of a free slot, so the next claim overlaps the handlers of this one. */
  readonly prefetch: number
  readonly names: ReadonlyArray<string>
  /** Every task this node holds a lease on in this queue: started, or waiting in `ready`. */
  readonly running: Map<string, Entry>
  /** Claimed, not started yet: started in claim order as slots free up. */
  readonly ready: Array<Entry>
  /**
   * Slots taken (at most `concurrency`): handlers running, and finished runs
   * whose outcome waits for room in the completer (backpressure).
   */
  active: number
  /** Wakes the claim loop: a NOTIFY, a freed slot, a retry coming due. */
  readonly wake: Queue.Queue<void>
  /** The last claim filled every free slot: more work may be waiting. */
  maybeMore: boolean
  /** The executor is starting ready tasks now: a run ending meanwhile leaves the starting to it. */
  starting: boolean
  /** A start of ready tasks is scheduled for the next turn of the event loop. */
  startScheduled: boolean
  readonly metrics: Readonly<Record<"claimed" | "wait" | "duration" | "inFlight" | "restarts", Metric.Metric<number, any>>>
  restarts: number
  lastError: string | null
}

/** Every pool of this node, and whether it is shutting down. */
export interface Pools {
  readonly all: ReadonlyArray<Pool>
  readonly byQueue: ReadonlyMap<string, Pool>
  /** Shutdown began: claim nothing more, start nothing more. */
  stopping: boolean
  /** Drains waiting for every slot of every pool to be free. */
  readonly idle: Array<() => void>
}

/**
 * One pool per queue. Every pool knows every registered name: any task may be
 * enqueued on any queue (the `queue` option).
 */
export const make = (options: {
  readonly queues: ReadonlyArray<{ readonly queue: string; readonly concurrency: number }>
  readonly prefetch: number
  readonly names: ReadonlyArray<string>
}): Effect.Effect<Pools> =>
  Effect.gen(function* () {
    const all: Array<Pool> = []
    for (const { queue, concurrency } of options.queues) {
      all.push({
        queue,
        concurrency,
        prefetch: options.prefetch,
        names: options.names,
        running: new Map(),
        ready: [],
        active: 0,
        wake: yield* Queue.sliding<void>(1),
        maybeMore: true,
        starting: false,
        startScheduled: false,
        // Labelled metrics are built once per label set: building one per update showed in profiles.
        metrics: {
          claimed: Telemetry.labelled(Telemetry.metrics.tasksClaimed, { queue }),
          wait: Telemetry.labelled(Telemetry.metrics.taskWait, { queue }),
          duration: Telemetry.labelled(Telemetry.metrics.taskDuration, { queue }),
          inFlight: Telemetry.labelled(Telemetry.metrics.tasksInFlight, { queue }),
          restarts: Telemetry.labelled(Telemetry.metrics.workerRestarts, { queue })
        },
        restarts: 0,
        lastError: null
      })
    }
    return { all, byQueue: new Map(all.map((p) => [p.queue, p])), stopping: false, idle: [] }
  })

/** Wakes a pool's claim loop (at most one wake-up waits: the queue slides). */
export const wake = (pool: Pool) => Queue.offer(pool.wake, undefined)

/**
 * How many tasks the pool's next claim asks for, 0 when no claim is due.
 *
 * Without prefetch: as many as there are free slots. With prefetch, the pool
 * holds up to `concurrency + prefetch` tasks, claimed in halves: the next
 * half is claimed while the last one runs, so a claim's round trip overlaps
 * the handlers instead of stalling them. A claim is due once half a claim's
 * room is free: a few large claims, not many small ones.
 */
export const claimLimit = (pool: Pool): number => {
  const room = pool.concurrency + pool.prefetch - pool.running.size
  if (pool.prefetch === 0) return room
  const half = Math.ceil((pool.concurrency + pool.prefetch) / 2)
  return room >= Math.ceil(half / 2) ? Math.min(room, half) : 0
}

/**
 * Ids of the tasks this node holds leases on in `pools`: claimed (waiting or
 * running), plus `unwritten`, finished with the outcome not written yet (the
 * completer's). The heartbeat extends exactly these; reconciliation hands
 * back any other task leased to this node.
 */
export const leasedIds = (pools: ReadonlyArray<Pool>, unwritten: Iterable<string>): Array<string> => [
  ...pools.flatMap((p) => [...p.running.keys()]),
  ...unwritten
]

/** `wake`, from plain code (a run's end, a timer). */
export const wakeUnsafe = (pool: Pool): void => {
  Queue.offerUnsafe(pool.wake, undefined)
}

/** Frees a slot; the last one freed over all pools ends the drains waiting for it. */
export const release = (pools: Pools, pool: Pool): void => {
  pool.active--
  if (pool.active === 0 && pools.idle.length > 0 && active(pools) === 0) {
    for (const resume of pools.idle.splice(0)) resume()
  }
}

/** Waits until no handler runs and no finished run waits for room to hand its outcome over. */
export const awaitIdle = (pools: Pools): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (active(pools) === 0) resume(Effect.void)
    else pools.idle.push(() => resume(Effect.void))
  })

/** The entry of a task this node holds, in whichever pool. */
export const find = (pools: Pools, id: string): Entry | undefined => {
  for (const pool of pools.all) {
    const entry = pool.running.get(id)
    if (entry) return entry
  }
  return undefined
}

/** Handlers running now, over all pools. */
export const active = (pools: Pools): number => pools.all.reduce((n, p) => n + p.active, 0)

/** One queue's pool as health and admin views show it. */
export interface QueueStatus {
  readonly queue: string
  readonly concurrency: number
  readonly running: number
  readonly free: number
  /** Times the claim loop failed and was restarted. */
  readonly restarts: number
  /** First line of the claim loop's last failure, until a claim succeeds again. */
  readonly lastError: string | null
}

/** Every pool's status. */
export const status = (pools: Pools): ReadonlyArray<QueueStatus> =>
  pools.all.map((p) => ({
    queue: p.queue,
    concurrency: p.concurrency,
    running: p.active,
    free: p.concurrency - p.active,
    restarts: p.restarts,
    lastError: p.lastError
  }))

/** The dispatcher's readiness: failing while a claim loop fails, or once draining. */
export const readiness = (pools: Pools): CheckResult => {
  const queues = status(pools)
  const data = {
    queues: Object.fromEntries(
      queues.map((q) => [q.queue, { concurrency: q.concurrency, running: q.running, free: q.free, restarts: q.restarts }])
    )
  }
  const failing = queues.filter((q) => q.lastError !== null)
  if (failing.length > 0) return fail(`claim loop failing for ${failing.map((q) => `${q.queue} (${q.lastError})`).join(", ")}`, data)
  return pools.stopping ? fail("draining", data) : pass(undefined, data)
}
