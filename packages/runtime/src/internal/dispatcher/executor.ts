/**
 * The executor: one run of one claimed task, from its slot to its outcome.
 *
 * It decodes the payload, gives the handler its context (callback token made
 * on first use), bounds it by the task's timeout, annotates its logs, traces it
 * when traces are exported, and turns whatever it ends with into an outcome
 * (`TaskOutcome.ofRun`). Then it frees the slot, updates the metrics and hands
 * the outcome to the completer, unless the lease was lost meanwhile (the write
 * would be refused anyway).
 *
 * This is the per-task hot path: one fiber per handler, no Effect layers or
 * objects beyond what a run needs, metric handles cached per label set.
 */
import { Duration, Effect, Fiber, Metric } from "effect"
import { identity } from "effect/Function"
import * as Crypto from "node:crypto"
import * as Task from "../../Task.ts"
import * as TaskOutcome from "../../TaskOutcome.ts"
import type { TaskRegistryShape } from "../../TaskRegistry.ts"
import * as Telemetry from "../../Telemetry.ts"
import type { Completer } from "./completer.ts"
import { type Entry, inFlight, type Pool, type Pools, wake } from "./pool.ts"

/** Runs claimed tasks, one fiber per run. */
export interface Executor {
  /**
   * Runs a task in a slot its pool has already counted, then frees the slot.
   * Handlers need the runtime's services: fork it from a fiber that has them.
   */
  readonly run: (pool: Pool, entry: Entry) => Effect.Effect<void>
}

const tokenBytes = 32
/** Unguessable: 256 random bits, URL-safe. */
export const newCallbackToken = (): string => Crypto.randomBytes(tokenBytes).toString("base64url")

/** An executor over the given pools; pure set-up, nothing starts until `run`. */
export const make = (options: {
  readonly registry: TaskRegistryShape
  readonly pools: Pools
  readonly completer: Completer
  readonly actor: string
  /** Traces are exported: give each run a span. */
  readonly traced: boolean
}): Executor => {
  const { registry, pools, completer, actor, traced } = options

  // Labelled metrics are built once per label set: building one per update showed in profiles.
  const finishedMetrics = new Map<string, Metric.Metric<number, any>>()
  const finished = (queue: string, task: string, outcome: TaskOutcome.MetricOutcome) => {
    const key = `${queue}\u0000${task}\u0000${outcome}`
    let m = finishedMetrics.get(key)
    if (m === undefined) {
      m = Metric.withAttributes(Telemetry.metrics.tasksFinished, { queue, task, outcome })
      finishedMetrics.set(key, m)
    }
    return m
  }

  const run = (pool: Pool, entry: Entry) =>
    Effect.gen(function* () {
      const task = entry.task
      const handler = registry.get(task.name)!
      const definition = handler.definition
      const started = performance.now()
      let outcome: TaskOutcome.Outcome
      if (task.deadlinePassed) {
        outcome = TaskOutcome.ofRun(definition, task, TaskOutcome.deadlinePassed(task.deadline), actor)
      } else {
        const payload = Task.decodePayload(definition, task.payload, task.payloadVersion)
        if (payload._tag === "Failure") {
          outcome = TaskOutcome.ofRun(definition, task, TaskOutcome.payloadInvalid(payload.failure), actor)
        } else {
          // Made on first use: most tasks never park, and 32 random bytes per task add up.
          let token: string | undefined
          const callbackToken = () => (token ??= newCallbackToken())
          const fiber = yield* Effect.forkChild(body(handler, payload.success, task, callbackToken, traced), { startImmediately: true })
          entry.handler = fiber
          const exit = yield* Fiber.await(fiber)
          outcome = TaskOutcome.ofRun(
            definition,
            task,
            {
              _tag: "Exited",
              exit,
              cancelRequested: entry.cancelRequested,
              stopping: pools.stopping,
              callbackToken
            },
            actor
          )
        }
      }
      pool.running.delete(task.id)
      pool.active--
      yield* inFlight(pool)
      yield* Metric.update(pool.metrics.duration, (performance.now() - started) / 1000)
      yield* Metric.update(finished(pool.queue, task.name, outcome.metric), 1)
      if (entry.leaseLost) {
        yield* Effect.logWarning(`task ${task.id}: lease lost while running; its result is discarded`)
      } else {
        yield* completer.complete(task, outcome)
      }
      // The claim loop starts what is ready and claims more.
      if (pool.maybeMore || pool.ready.length > 0 || pools.stopping) yield* wake(pool)
    })

  return { run }
}

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

/** The handler's effect: its context, its timeout, its span and log annotations. */
const body = (handler: Task.Handler, payload: unknown, task: Task.Claimed, callbackToken: () => string, traced: boolean) => {
  const definition = handler.definition
  const context: Task.Context = {
    id: task.id,
    name: task.name,
    queue: task.queue,
    attempt: task.attempt,
    maxAttempts: task.maxAttempts,
    get callbackToken() {
      return callbackToken()
    },
    metadata: task.metadata
  }
  // What the handler needs was checked by ApplicationModule.make and is in the context the
  // dispatcher's fibers inherit from the node's layers (Runtime builds them below the dispatcher).
  return (handler.run(payload, context) as Effect.Effect<unknown, unknown>).pipe(
    Effect.timeoutOrElse({
      duration: definition.timeout,
      orElse: () =>
        Effect.fail(
          new Task.Retryable({ message: `timed out after ${Duration.format(definition.timeout)}`, code: TaskOutcome.timeoutCode })
        )
    }),
    traced ? runSpan(task) : identity,
    Effect.annotateLogs({ component: "task", task_id: task.id, task: task.name })
  )
}
