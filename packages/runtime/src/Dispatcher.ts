/**
 * Dispatcher: claims tasks, runs their handlers with bounded concurrency, and
 * records what happened, under leases.
 *
 * This module is the service, its `[worker]` configuration and the wiring;
 * each job has its own module in `internal/dispatcher/` (River's producer /
 * job executor / job completer split): `producer` (per-queue claim loops with
 * backpressure and prefetch, woken by LISTEN/NOTIFY, polling as backstop),
 * `executor` (one run: context, timeout, span; its end becomes an outcome by
 * the rules of `TaskOutcome`), `completer` (batched writes fenced by
 * `(id, lease_epoch)`), `leaseKeeper` (one heartbeat per node, cancel NOTIFY
 * and its backstop, lost leases) and `pool` (their shared state).
 *
 * On shutdown: stop claiming, hand prefetched tasks back at once, give running
 * handlers `shutdown.grace`, then interrupt the rest and hand their tasks
 * straight back to `available` without using an attempt, so another node can
 * take them at once; pending completions are written before the audit log
 * flushes, and then any task still leased to this node (a claim whose answer
 * was lost) is handed back too.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as References from "effect/References"
import { identity } from "effect/Function"
import * as SqlClient from "effect/sql/SqlClient"
import * as AuditEvents from "./AuditEvents.ts"
import { AuditLog } from "./AuditLog.ts"
import { HealthRegistry } from "./Health.ts"
import * as Completer from "./internal/dispatcher/completer.ts"
import * as Executor from "./internal/dispatcher/executor.ts"
import * as LeaseKeeper from "./internal/dispatcher/leaseKeeper.ts"
import * as Pool from "./internal/dispatcher/pool.ts"
import * as Producer from "./internal/dispatcher/producer.ts"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import { NodeIdentity } from "./NodeIdentity.ts"
import { Notifications } from "./Notifications.ts"
import { ConfigInvalid, RuntimeError } from "./RuntimeError.ts"
import * as Shutdown from "./Shutdown.ts"
import { TaskRegistry } from "./TaskRegistry.ts"
import * as Telemetry from "./Telemetry.ts"

/** The most handlers one process runs at once, over all its queues (`Pool.maxConcurrencyPerProcess`). */
export const maxConcurrencyPerProcess = Pool.maxConcurrencyPerProcess

const queueName = { pattern: /^[a-z0-9_.-]{1,64}$/i, describe: "1-64 characters of [a-z0-9_.-]" }

/**
 * `[worker]`: how a dispatching node claims and runs tasks.
 *
 * @category config
 */
export const Config = ConfigSection.make(
  "worker",
  {
    inline: ConfigSection.key(ConfigSchema.Boolean, {
      default: true,
      doc: "primary nodes also run the task dispatcher",
      aliases: [{ name: "DISABLE_INLINE_WORKER", shown: "DISABLE_INLINE_WORKER=1", map: (s) => (s.trim() === "1" ? false : undefined) }]
    }),
    concurrency: ConfigSection.key(ConfigSchema.Int(1, maxConcurrencyPerProcess), {
      default: 4,
      doc: "handlers run at once per queue, unless worker.queues says otherwise"
    }),
    prefetch: ConfigSection.key(ConfigSchema.Int(0, 4096), {
      default: 0,
      doc: "tasks per queue claimed ahead of a free slot (helps many short tasks; idle until a slot frees, so keep 0 for long ones)"
    }),
    queues: ConfigSection.key(ConfigSchema.NamedValues(ConfigSchema.Int(1, maxConcurrencyPerProcess), queueName), {
      default: "",
      doc: 'per-queue concurrency overrides, e.g. "default=8,mail=2"; listed queues are served even with no registered task'
    }),
    pollInterval: ConfigSection.key(ConfigSchema.Duration({ minimum: "10 millis", maximum: "1 hour" }), {
      default: "1 second",
      doc: "claim attempt when no NOTIFY arrived (the backstop)"
    }),
    leaseDuration: ConfigSection.key(ConfigSchema.Duration({ minimum: "1 second", maximum: "1 day" }), {
      default: "15 seconds",
      doc: "a claimed task is rescued if its lease is not extended in this time"
    }),
    heartbeatInterval: ConfigSection.key(ConfigSchema.Duration({ minimum: "100 millis", maximum: "12 hours" }), {
      default: "5 seconds",
      doc: "how often one statement extends every lease this node holds"
    })
  },
  {
    check: (c) => [
      ...(Duration.isLessThan(Duration.times(c.heartbeatInterval, 2), c.leaseDuration)
        ? []
        : [
            {
              key: "worker.heartbeat_interval",
              message: "must be less than half of worker.lease_duration, or healthy leases expire between heartbeats"
            }
          ]),
      ...queuePlan(c, []).problems
    ]
  }
)
export type Config = ConfigSection.TypeOf<typeof Config>

/**
 * The pools a dispatcher runs, and the problems with them (the concurrency
 * total). `Runtime` checks it with the modules' queues before anything starts.
 */
export const queuePlan = Pool.plan

/**
 * One queue's pool as health and admin views show it.
 *
 * @category models
 */
export type QueueStatus = Pool.QueueStatus

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
export const layer: Layer.Layer<
  Dispatcher,
  RuntimeError,
  | SqlClient.SqlClient
  | Notifications
  | NodeIdentity
  | AuditLog
  | HealthRegistry
  | TaskRegistry
  | ConfigSection.Tag<"worker">
  | ConfigSection.Tag<"shutdown">
  | ConfigSection.Tag<"telemetry">
> = Layer.effect(
  Dispatcher,
  Effect.gen(function* () {
    const config = { worker: yield* Config, shutdown: yield* Shutdown.Config, telemetry: yield* Telemetry.Config }
    const sql = yield* SqlClient.SqlClient
    const notifications = yield* Notifications
    const node = yield* NodeIdentity
    const audit = yield* AuditLog
    const health = yield* HealthRegistry
    const registry = yield* TaskRegistry
    // Handlers need the runtime's services (checked by ApplicationModule.make): their fibers are
    // forked with this layer's context, which Runtime builds on the whole core, so they have them
    // without a per-task provide.
    const actor = AuditEvents.actors.node(node.id)
    const owner = node.id
    const leaseMs = Duration.toMillis(config.worker.leaseDuration)

    const plan = queuePlan(config.worker, registry.queues)
    if (plan.problems.length > 0) return yield* new RuntimeError({ reason: new ConfigInvalid({ problems: plan.problems }) })
    const pools = yield* Pool.make({ queues: plan.pools, prefetch: config.worker.prefetch, names: registry.names })

    const traced = Option.isSome(config.telemetry.otlpEndpoint)
    const { completer, producer } = yield* Effect.gen(function* () {
      const completer = yield* Completer.make({ sql, audit, actor, owner, pools, pollInterval: config.worker.pollInterval })
      const executor = Executor.make({ registry, pools, completer, actor, traced, context: yield* Effect.context<never>() })
      const producer = yield* Producer.make({
        sql,
        notifications,
        pools,
        registry,
        executor,
        completer,
        owner,
        actor,
        leaseMs,
        pollInterval: config.worker.pollInterval
      })
      yield* LeaseKeeper.start({
        sql,
        notifications,
        pools,
        producer,
        completer,
        owner,
        leaseMs,
        heartbeatInterval: config.worker.heartbeatInterval
      })
      yield* producer.start
      return { completer, producer }
    }).pipe(
      // With no exporter, the spans of every claim, completion and statement would be built for
      // nobody (~5 % of a worker's CPU in pnpm bench): the dispatcher's fibers, handlers included,
      // run with the tracer off (they fork from here and inherit it).
      traced ? identity : Effect.provideService(References.TracerEnabled, false)
    )

    // Registered last, so it runs first: before the fiber sets and the writer are torn down.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        pools.stopping = true
        yield* producer.stop
        if (Pool.active(pools) > 0) {
          yield* Effect.logInfo(
            `draining: waiting up to ${Duration.format(config.shutdown.grace)} for ${Pool.active(pools)} running task(s)`
          )
          yield* Pool.awaitIdle(pools).pipe(Effect.timeoutOption(config.shutdown.grace))
        }
        const left = pools.all.flatMap((p) => [...p.running.values()])
        if (left.length > 0) {
          yield* Effect.logInfo(`interrupting ${left.length} task(s) still running; they return to available`)
          yield* Effect.forEach(left, (e) => (e.handler ? Fiber.interrupt(e.handler) : Effect.void), {
            concurrency: "unbounded",
            discard: true
          })
          yield* Pool.awaitIdle(pools)
        }
        yield* completer.close(
          Duration.max(Duration.seconds(1), Duration.times(Duration.subtract(config.shutdown.timeout, config.shutdown.grace), 0.5))
        )
        yield* producer.reconcile
      }).pipe(Telemetry.component("dispatcher"))
    )

    yield* health.register({ name: "dispatcher", check: Effect.sync(() => Pool.readiness(pools)) })
    yield* Effect.logInfo(
      `dispatcher started: ${pools.all.map((p) => `${p.queue} x${p.concurrency}`).join(", ") || "no queues (no tasks registered)"}`
    ).pipe(Telemetry.component("dispatcher"))

    return Dispatcher.of({ status: Effect.sync(() => Pool.status(pools)) })
  })
)
