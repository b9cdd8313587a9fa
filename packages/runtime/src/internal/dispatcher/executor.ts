/**
 * The executor: starts claimed tasks into free slots and turns each run's end
 * into an outcome for the completer.
 *
 * This is the per-task hot path, so it is plain JavaScript around one fiber
 * per run, the handler's own: the slot bookkeeping, the payload decode, the
 * outcome decision (`TaskOutcome.ofRun`), the metrics and the hand-off to the
 * completer run synchronously in the fiber's exit observer, not as Effects of
 * their own. The timeout is a timer that interrupts the handler (precise, and
 * no race fiber per run). A handler that finishes without suspending ends in
 * the same call that started it: the start loop then fills the slot again, so
 * nothing recurses.
 *
 * When the completer is full, a finished run keeps its slot until its outcome
 * is taken (backpressure), so the claim loop slows down rather than piling up
 * outcomes in memory.
 */
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Metric from "effect/Metric"
import * as Crypto from "node:crypto"
import * as Task from "../../Task.ts"
import * as TaskOutcome from "../../TaskOutcome.ts"
import type { TaskRegistryShape } from "../../TaskRegistry.ts"
import * as Telemetry from "../../Telemetry.ts"
import type { Completer } from "./completer.ts"
import { claimLimit, type Entry, type Pool, type Pools, release, wakeUnsafe } from "./pool.ts"

/** Starts claimed tasks into free slots. */
export interface Executor {
  /**
   * Starts ready tasks of a pool into its free slots, oldest claim first, and
   * wakes the claim loop when the pool runs low. Returns at once; each run
   * ends on its own.
   */
  readonly startReady: (pool: Pool) => void
  /** `startReady` on the next turn of the event loop (after what the caller does next). */
  readonly startReadySoon: (pool: Pool) => void
}

const tokenBytes = 32
/** Unguessable: 256 random bits, URL-safe. */
export const newCallbackToken = (): string => Crypto.randomBytes(tokenBytes).toString("base64url")

/** An executor over the given pools; pure set-up, nothing starts until `startReady`. */
export const make = (options: {
  readonly registry: TaskRegistryShape
  readonly pools: Pools
  readonly completer: Completer
  readonly actor: string
  /** Traces are exported: give each run a span. */
  readonly traced: boolean
  /**
   * The services handlers run with (checked by `ApplicationModule.make`):
   * the dispatcher layer's context, which Runtime builds on the whole core.
   */
  readonly context: Context.Context<never>
}): Executor => {
  const { registry, pools, completer, actor, traced, context } = options
  const fork = Effect.runForkWith(context)

  // The finished counter's series per (pool, task, outcome), looked up without building
  // `Telemetry.labelled`'s label key on every run.
  const finishedMetrics = new Map<Pool, Map<string, Partial<Record<TaskOutcome.MetricOutcome, Metric.Metric<number, any>>>>>()
  const finished = (pool: Pool, task: string, outcome: TaskOutcome.MetricOutcome) => {
    let byTask = finishedMetrics.get(pool)
    if (byTask === undefined) {
      byTask = new Map()
      finishedMetrics.set(pool, byTask)
    }
    let byOutcome = byTask.get(task)
    if (byOutcome === undefined) {
      byOutcome = {}
      byTask.set(task, byOutcome)
    }
    byOutcome[outcome] ??= Telemetry.labelled(Telemetry.metrics.tasksFinished, { queue: pool.queue, task, outcome })
    return byOutcome[outcome]
  }

  // One slot-freeing function per pool, not a closure per run. startReady publishes the in-flight gauge.
  const freeSlots = new Map<Pool, () => void>()
  const freeSlot = (pool: Pool) => {
    let free = freeSlots.get(pool)
    if (free === undefined) {
      free = () => {
        release(pools, pool)
        startReady(pool)
      }
      freeSlots.set(pool, free)
    }
    return free
  }

  /** A run is over: free its slot once the completer has its outcome, then fill the slot again. */
  const end = (pool: Pool, entry: Entry, outcome: TaskOutcome.Outcome, startedAt: number) => {
    const task = entry.task
    pool.running.delete(task.id)
    pool.metrics.duration.updateUnsafe((performance.now() - startedAt) / 1000, context)
    finished(pool, task.name, outcome.metric).updateUnsafe(1, context)
    const free = freeSlot(pool)
    if (entry.leaseLost) {
      fork(Effect.logWarning(`task ${task.id}: lease lost while running; its result is discarded`))
      free()
    } else if (completer.offer(task, outcome, free)) {
      free()
    }
  }

  const timeouts = new Map<string, Exit.Exit<never, Task.Retryable>>()
  /** How a run that outlived its timeout ends: a retryable failure with the timeout code. */
  const timedOut = (definition: Task.Definition) => {
    let exit = timeouts.get(definition.name)
    if (exit === undefined) {
      exit = Exit.fail(
        new Task.Retryable({ message: `timed out after ${Duration.format(definition.timeout)}`, code: TaskOutcome.timeoutCode })
      )
      timeouts.set(definition.name, exit)
    }
    return exit
  }

  /** A run's fiber ended: its outcome, by the rules of `TaskOutcome`. */
  const ended = (pool: Pool, entry: Entry, run: RunContext, exit: Exit.Exit<unknown, unknown>) => {
    const task = entry.task
    const definition = registry.get(task.name)!.definition
    const happened: TaskOutcome.Exited = {
      _tag: "Exited",
      // Interrupted for its timeout (not a result that raced the timer, nor a cancel before it).
      exit: entry.timedOut && Exit.hasInterrupts(exit) ? timedOut(definition) : exit,
      cancelRequested: entry.cancelRequested,
      stopping: pools.stopping,
      context: run
    }
    end(pool, entry, TaskOutcome.ofRun(definition, task, happened, actor), run.startedAt)
  }

  const start = (pool: Pool, entry: Entry) => {
    const task = entry.task
    const handler = registry.get(task.name)!
    const definition = handler.definition
    const startedAt = performance.now()
    if (task.deadlinePassed) {
      return end(pool, entry, TaskOutcome.ofRun(definition, task, TaskOutcome.deadlinePassed(task.deadline), actor), startedAt)
    }
    const payload = Task.decodePayload(definition, task.payload, task.payloadVersion)
    if (payload._tag === "Failure") {
      return end(pool, entry, TaskOutcome.ofRun(definition, task, TaskOutcome.payloadInvalid(payload.failure), actor), startedAt)
    }
    const run = new RunContext(task, startedAt)
    const fiber = fork(body(handler, payload.success, task, run, traced))
    Telemetry.keepFiberAnnotations(fiber)
    entry.handler = fiber
    const exit = fiber.pollUnsafe()
    // Ended without suspending (most short runs): no timer, no observer.
    if (exit !== undefined) return ended(pool, entry, run, exit)
    // Counted from the start, its first synchronous stretch included. A cancel already under way wins.
    const timer = setTimeout(
      () => {
        if (entry.cancelRequested) return
        entry.timedOut = true
        fiber.interruptUnsafe()
      },
      Math.max(0, Duration.toMillis(definition.timeout) - (performance.now() - startedAt))
    )
    fiber.addObserver((exit) => {
      clearTimeout(timer)
      ended(pool, entry, run, exit)
    })
  }

  const startReady = (pool: Pool) => {
    // A run ending inside this loop (it never suspended) leaves the starting to the loop.
    if (pool.starting) return
    pool.starting = true
    try {
      while (pool.active < pool.concurrency && pool.ready.length > 0 && !pools.stopping) {
        const entry = pool.ready.shift()!
        // Its lease moved on while it waited (rescued elsewhere): not ours to run.
        if (entry.leaseLost) {
          pool.running.delete(entry.task.id)
          continue
        }
        if (entry.task.attempt === 1) {
          // Queued before the claim, then waiting here for a slot.
          pool.metrics.wait.updateUnsafe(Math.max(0, entry.task.queuedMs + Date.now() - entry.claimedAt) / 1000, context)
        }
        pool.active++
        start(pool, entry)
      }
    } finally {
      pool.starting = false
    }
    pool.metrics.inFlight.updateUnsafe(pool.active, context)
    // The claim loop claims more when a claim is due, and drains on shutdown.
    if (pools.stopping || (pool.maybeMore && claimLimit(pool) > 0)) wakeUnsafe(pool)
  }

  const startReadySoon = (pool: Pool) => {
    if (pool.startScheduled) return
    pool.startScheduled = true
    setImmediate(() => {
      pool.startScheduled = false
      startReady(pool)
    })
  }

  return { startReady, startReadySoon }
}

/** What every log line of a run carries. */
const runAnnotations = (task: Task.Claimed) => ({ component: "task", task_id: task.id, task: task.name })

// A span per run costs a worker ~15-20 % of its CPU even when nothing exports it (Effect's own
// tracer still builds it; measured with pnpm bench), so runs get one only when traces are exported.
const runSpan = (task: Task.Claimed) =>
  Effect.withSpan(
    Telemetry.spans.run,
    {
      // Continues the enqueuer's trace, whichever process enqueued.
      parent: Telemetry.parentFromTraceparent(task.traceparent),
      kind: "consumer",
      attributes: {
        "messaging.system": "asterforge",
        "messaging.operation.type": "process",
        "messaging.destination.name": task.queue,
        "messaging.message.id": task.id,
        "asterforge.task.name": task.name,
        "asterforge.task.attempt": task.attempt
      }
    },
    { captureStackTrace: false }
  ) // a stack per run costs more than a small handler

/**
 * A run's `Task.Context`, and when it started. A class, so the
 * `callbackToken` getter lives on the prototype (an object literal with a
 * getter made a new accessor per run); the token is made on first read: most
 * tasks never park, and 32 random bytes per task add up.
 */
class RunContext implements Task.Context {
  readonly id: string
  readonly name: string
  readonly queue: string
  readonly attempt: number
  readonly maxAttempts: number
  readonly metadata: Readonly<Record<string, unknown>>
  readonly startedAt: number
  #token: string | undefined = undefined
  constructor(task: Task.Claimed, startedAt: number) {
    this.id = task.id
    this.name = task.name
    this.queue = task.queue
    this.attempt = task.attempt
    this.maxAttempts = task.maxAttempts
    this.metadata = task.metadata
    this.startedAt = startedAt
  }
  get callbackToken(): string {
    this.#token ??= newCallbackToken()
    return this.#token
  }
}

/** The handler's effect, given its `Task.Context`, and its span when traces are exported. */
const body = (handler: Task.Handler, payload: unknown, task: Task.Claimed, context: RunContext, traced: boolean) => {
  const run = Effect.withFiber((fiber) => {
    Telemetry.annotateFiber(fiber, task, runAnnotations)
    try {
      return handler.run(payload, context) as Effect.Effect<unknown, unknown>
    } catch (defect) {
      // A handler that throws while building its effect is a defect of the run, as one thrown inside it.
      return Effect.die(defect)
    }
  })
  return traced ? runSpan(task)(run) : run
}
