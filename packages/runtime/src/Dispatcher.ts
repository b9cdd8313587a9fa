/**
 * Dispatcher: claims tasks, runs their handlers with bounded concurrency, and
 * records what happened, under leases.
 *
 * This module is the service, its status and the wiring; each job has its own
 * module in `internal/dispatcher/`, after River's producer / job executor /
 * job completer split:
 *
 * - `producer`: one claim loop per queue. It claims only as many tasks as it
 *   has free slots (backpressure), plus `worker.prefetch` ahead that wait on
 *   this node for a slot, in one statement. LISTEN/NOTIFY wakes it as soon as
 *   work arrives or a slot frees up; `worker.poll_interval` is the backstop.
 * - `executor`: one run. Each handler runs in its own fiber under the task's
 *   timeout; whatever it ends with (success, a typed failure, a defect, an
 *   interruption) becomes an outcome by the rules of `TaskOutcome`.
 * - `completer`: outcomes are written in batches by one writer, each guarded by
 *   `(id, lease_epoch)` so a stale worker's late result is refused.
 * - `leaseKeeper`: one heartbeat statement per node extends every lease it
 *   holds, and doubles as the backstop for cancellations whose NOTIFY was
 *   missed; a lease found gone stops its handler.
 *
 * On shutdown: stop claiming, hand prefetched tasks back at once, give running
 * handlers `shutdown.grace`, then interrupt the rest and hand their tasks
 * straight back to `available` without using an attempt, so another node can
 * take them at once; pending completions are written before the audit log
 * flushes.
 */
import { Context, Duration, Effect, Fiber, FiberSet, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import type { RuntimeServices } from "./ApplicationModule.ts"
import * as AuditEvents from "./AuditEvents.ts"
import { AuditLog } from "./AuditLog.ts"
import { HealthRegistry, fail as healthFail, pass as healthPass } from "./Health.ts"
import * as Completer from "./internal/dispatcher/completer.ts"
import * as Executor from "./internal/dispatcher/executor.ts"
import * as LeaseKeeper from "./internal/dispatcher/leaseKeeper.ts"
import * as Pool from "./internal/dispatcher/pool.ts"
import * as Producer from "./internal/dispatcher/producer.ts"
import { NodeIdentity } from "./NodeIdentity.ts"
import { RuntimeConfig } from "./RuntimeConfig.ts"
import { ConfigInvalid, RuntimeError } from "./RuntimeError.ts"
import { TaskRegistry } from "./TaskRegistry.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * The most handlers one process runs at once, over all its queues; past it,
 * run more worker processes rather than larger pools.
 */
export const maxConcurrencyPerProcess = 64

/**
 * One queue's pool as health and admin views show it.
 *
 * @category models
 */
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

/** @category models */
export interface DispatcherShape {
  /** Every queue's pool, for health and admin views. */
  readonly status: Effect.Effect<ReadonlyArray<QueueStatus>>
}

/**
 * The task dispatcher of a node that runs handlers.
 *
 * @category services
 */
export class Dispatcher extends Context.Service<Dispatcher, DispatcherShape>()("@asterforge/runtime/Dispatcher") {}

/**
 * Runs the registered handlers of this node, one pool per queue. Fails with
 * `ConfigInvalid` when the queues' concurrency adds up to more than
 * `maxConcurrencyPerProcess`.
 *
 * @category layers
 */
export const layer: Layer.Layer<Dispatcher, RuntimeError, RuntimeServices | TaskRegistry> = Layer.effect(
  Dispatcher,
  Effect.gen(function*() {
    const config = yield* RuntimeConfig
    const sql = yield* SqlClient.SqlClient
    const pg = yield* PgClient.PgClient
    const node = yield* NodeIdentity
    const audit = yield* AuditLog
    const health = yield* HealthRegistry
    const registry = yield* TaskRegistry
    // Handlers need the runtime's services; the fibers they run in are forked from this layer's
    // context, so they inherit them without a per-task provide.
    yield* Effect.context<RuntimeServices>()
    const actor = AuditEvents.actors.node(node.id)
    const owner = node.id
    const leaseMs = Duration.toMillis(config.worker.leaseDuration)

    const queueNames = [...new Set([...registry.queues, ...config.worker.queues.keys()])]
    const pools = yield* Pool.make({
      queues: queueNames.map((queue) => ({ queue, concurrency: config.worker.queues.get(queue) ?? config.worker.concurrency })),
      prefetch: config.worker.prefetch,
      names: registry.names
    })
    const total = pools.all.reduce((n, p) => n + p.concurrency, 0)
    if (total > maxConcurrencyPerProcess) {
      return yield* new RuntimeError({
        reason: new ConfigInvalid({
          problems: [{
            key: "worker.concurrency",
            message: `concurrency over all queues is ${total} (${pools.all.map((p) => `${p.queue}=${p.concurrency}`).join(", ")}); at most ${maxConcurrencyPerProcess} per process: lower worker.concurrency / worker.queues or run more worker processes`
          }]
        })
      })
    }

    const completer = yield* Completer.make({ sql, audit, actor, pools, pollInterval: config.worker.pollInterval })
    const handlers = yield* FiberSet.make<void, never>()
    const traced = Option.isSome(config.telemetry.otlpEndpoint)
    const executor = Executor.make({ registry, pools, completer, actor, traced })
    const producer = yield* Producer.make({
      sql, pg, pools, registry, executor, completer, handlers, owner, actor, leaseMs,
      pollInterval: config.worker.pollInterval
    })
    yield* LeaseKeeper.start({ sql, pg, pools, producer, owner, leaseMs, heartbeatInterval: config.worker.heartbeatInterval })
    yield* producer.start

    // Registered last, so it runs first: before the fiber sets and the writer are torn down.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        pools.stopping = true
        yield* producer.stop
        if (Pool.active(pools) > 0) {
          yield* Effect.logInfo(`draining: waiting up to ${Duration.format(config.shutdown.grace)} for ${Pool.active(pools)} running task(s)`)
          yield* FiberSet.awaitEmpty(handlers).pipe(Effect.timeoutOption(config.shutdown.grace))
        }
        const left = pools.all.flatMap((p) => [...p.running.values()])
        if (left.length > 0) {
          yield* Effect.logInfo(`interrupting ${left.length} task(s) still running; they return to available`)
          yield* Effect.forEach(left, (e) => (e.handler ? Fiber.interrupt(e.handler) : Effect.void), { concurrency: "unbounded", discard: true })
          yield* FiberSet.awaitEmpty(handlers)
        }
        yield* completer.close(Duration.max(Duration.seconds(1), Duration.times(Duration.subtract(config.shutdown.timeout, config.shutdown.grace), 0.5)))
      }).pipe(Telemetry.component("dispatcher"))
    )

    const status = Effect.sync(() =>
      pools.all.map((p): QueueStatus => ({
        queue: p.queue,
        concurrency: p.concurrency,
        running: p.active,
        free: p.concurrency - p.active,
        restarts: p.restarts,
        lastError: p.lastError
      })))

    yield* health.register({
      name: "dispatcher",
      check: Effect.map(status, (queues) => {
        const data = { queues: Object.fromEntries(queues.map((q) => [q.queue, { concurrency: q.concurrency, running: q.running, free: q.free, restarts: q.restarts }])) }
        const failing = queues.filter((q) => q.lastError !== null)
        return failing.length > 0
          ? healthFail(`claim loop failing for ${failing.map((q) => `${q.queue} (${q.lastError})`).join(", ")}`, data)
          : pools.stopping ? healthFail("draining", data) : healthPass(undefined, data)
      })
    })
    yield* Effect.logInfo(`dispatcher started: ${pools.all.map((p) => `${p.queue} x${p.concurrency}`).join(", ") || "no queues (no tasks registered)"}`)
      .pipe(Telemetry.component("dispatcher"))

    return Dispatcher.of({ status })
  })
)
