/**
 * SourceRunner: runs the task sources placed on this node, and reports them.
 *
 * Every-node sources get one supervised fiber each; leader-placed ones ask
 * `Leadership` to lead `source:<name>` and run while this node leads (the
 * nodes that do not run lanes are given `Leadership.layerNever`, so they never
 * lead). A run that fails or dies is logged, counted and started again after
 * a backoff (doubling from 1 s to 1 minute); interrupting the layer stops
 * every source. `Runtime` places this layer above the dispatcher, so on
 * shutdown sources stop before the dispatcher drains.
 *
 * Each source's status (running here, leading, last event, last error,
 * published count, the source's own facts such as a schedule's next fire) is
 * in `/health/ready` under `sources`, and in the `asterforge_source_*` metrics.
 * Sources report, they do not gate readiness: an unreachable mailbox is an
 * alert, not a reason to stop serving.
 *
 * @since 0.3.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as HttpRouter from "effect/http/HttpRouter"
import * as SqlClient from "effect/sql/SqlClient"
import { HealthRegistry, pass } from "../Health.ts"
import * as LaneSql from "../internal/sql/laneLeaders.ts"
import { Leadership } from "../Leadership.ts"
import { NodeIdentity } from "../NodeIdentity.ts"
import * as RuntimeError from "../RuntimeError.ts"
import type * as Task from "../Task.ts"
import { type Enqueued, TaskQueue, type TaskQueueShape } from "../TaskQueue.ts"
import * as TaskSource from "../TaskSource.ts"
import * as Telemetry from "../Telemetry.ts"

/**
 * One source as this node sees it, as `/health/ready` shows it.
 *
 * @category models
 */
export interface Status {
  readonly kind: string
  readonly placement: TaskSource.Placement
  /** Its run is active on this node (a leader-placed one: this node leads it). */
  readonly running: boolean
  readonly epoch: number | null
  readonly last_event_at: string | null
  readonly last_error: string | null
  readonly last_error_at: string | null
  readonly consecutive_failures: number
  /** Tasks this node published for it since start: new ones, and events whose key a task already held. */
  readonly published: number
  readonly existing: number
  readonly details: Readonly<Record<string, unknown>>
}

/** @category models */
export interface SourcesShape {
  readonly status: Effect.Effect<Readonly<Record<string, Status>>>
  /** The publisher a source's routes use (every-node: no epoch). */
  readonly publisher: (name: string) => TaskSource.Publisher
}

/**
 * The sources of this node.
 *
 * @category services
 */
export class Sources extends Context.Service<Sources, SourcesShape>()("@asterforge/runtime/Sources") {}

interface Tracked {
  running: boolean
  epoch: number | null
  lastEventAt: number | null
  lastError: string | null
  lastErrorAt: number | null
  failures: number
  published: number
  existing: number
  details: Readonly<Record<string, unknown>>
}

const fresh = (): Tracked => ({
  running: false,
  epoch: null,
  lastEventAt: null,
  lastError: null,
  lastErrorAt: null,
  failures: 0,
  published: 0,
  existing: 0,
  details: {}
})

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

/** Delay after `failures` failed runs in a row: 1 s doubling, at most a minute. */
export const failureBackoff = (failures: number): Duration.Duration =>
  Duration.millis(Math.min(60_000, 1000 * 2 ** Math.max(0, Math.min(failures - 1, 16))))

/** A run that lasted this long before failing starts the backoff over. */
const healthyRun = 60_000

interface Deps {
  readonly sql: SqlClient.SqlClient
  readonly queue: TaskQueueShape
  readonly nodeId: string
}

const storeError = (e: unknown) =>
  RuntimeError.make(new RuntimeError.TaskStoreUnavailable({ message: RuntimeError.messageOf(e), cause: e }))

/** The publisher of `source` on this node, under `epoch` when it is leader-placed. */
const makePublisher = (deps: Deps, name: string, t: Tracked, epoch: number | undefined): TaskSource.Publisher => {
  const { sql, queue } = deps
  const lane = TaskSource.leadershipKey(name)
  const attributes = { source: name }
  const uniqueKey = (key: string) => `${name}:${key}`
  const event = Effect.suspend(() => {
    t.lastEventAt = Date.now()
    // Working again: the failures are history (last_error stays, with its time).
    t.failures = 0
    return Metric.update(Telemetry.labelled(Telemetry.metrics.sourceLastEvent, attributes), t.lastEventAt / 1000)
  })
  const published = (enqueued: ReadonlyArray<Enqueued>) =>
    Effect.suspend(() => {
      const existing = enqueued.filter((e) => e.existing).length
      t.published += enqueued.length - existing
      t.existing += existing
      return Effect.all(
        [
          Metric.update(
            Telemetry.labelled(Telemetry.metrics.sourcePublished, { ...attributes, outcome: "new" }),
            enqueued.length - existing
          ),
          Metric.update(Telemetry.labelled(Telemetry.metrics.sourcePublished, { ...attributes, outcome: "existing" }), existing),
          event
        ],
        { discard: true }
      )
    })
  const publish = <P>(definition: Task.Definition<P, any>, items: ReadonlyArray<TaskSource.Publication<P>>) => {
    const batch = queue.enqueueEach(
      definition,
      items.map((i) => ({
        payload: i.payload,
        options: { ...i.options, uniqueKey: uniqueKey(i.key), metadata: { source: name, node: deps.nodeId, ...i.options?.metadata } }
      }))
    )
    const fenced =
      epoch === undefined
        ? batch
        : sql
            .withTransaction(
              Effect.gen(function* () {
                const held = yield* LaneSql.holdEpoch(sql, lane, epoch).pipe(Effect.mapError(storeError))
                if (held.length === 0) return yield* RuntimeError.fail(new RuntimeError.SourceFenced({ source: name, epoch }))
                return yield* batch
              })
            )
            .pipe(Effect.mapError((e) => (RuntimeError.isRuntimeError(e) ? e : storeError(e))))
    return fenced.pipe(
      Effect.tap(published),
      Effect.withSpan(Telemetry.spans.sourcePublish, {
        attributes: { "asterforge.source": name, "asterforge.task.name": definition.name, "messaging.batch.message_count": items.length }
      })
    )
  }
  return {
    source: name,
    node: deps.nodeId,
    epoch,
    fence: epoch === undefined ? sql`true` : LaneSql.fence(sql, lane, epoch),
    uniqueKey,
    publish,
    published,
    event,
    report: (details) =>
      Effect.sync(() => {
        t.details = details
      })
  }
}

/** Runs `source` with `publisher` until interrupted; failures restart it after a backoff. */
const supervise = <R>(source: TaskSource.TaskSource<R>, t: Tracked, publisher: TaskSource.Publisher): Effect.Effect<void, never, R> => {
  const running = Telemetry.labelled(Telemetry.metrics.sourceRunning, { source: source.name })
  const setRunning = (on: boolean) =>
    Effect.suspend(() => {
      t.running = on
      return Metric.update(running, on ? 1 : 0)
    })
  return Effect.gen(function* () {
    while (true) {
      yield* setRunning(true)
      const started = Date.now()
      const exit = yield* Effect.exit(source.run!(publisher))
      yield* setRunning(false)
      if (Exit.isSuccess(exit)) return yield* Effect.logInfo("source run finished")
      t.failures = Date.now() - started > healthyRun ? 1 : t.failures + 1
      t.lastError = RuntimeError.messageOf(Cause.squash(exit.cause)).split("\n")[0] || "run failed"
      t.lastErrorAt = Date.now()
      yield* Metric.update(Telemetry.labelled(Telemetry.metrics.sourceErrors, { source: source.name }), 1)
      const wait = failureBackoff(t.failures)
      yield* Effect.logWarning(`source failed (${t.failures} in a row); restarting in ${Duration.format(wait)}`, exit.cause)
      yield* Effect.sleep(wait)
    }
  }).pipe(Effect.ensuring(setRunning(false)))
}

const statusOf = (source: TaskSource.Any, t: Tracked): Status => ({
  kind: source.kind,
  placement: source.placement,
  running: t.running,
  epoch: t.epoch,
  last_event_at: iso(t.lastEventAt),
  last_error: t.lastError,
  last_error_at: iso(t.lastErrorAt),
  consecutive_failures: t.failures,
  published: t.published,
  existing: t.existing,
  details: t.details
})

/**
 * Runs `sources` as their placements say, while the layer lives. Two sources
 * with one name are a defect (`ApplicationModule.validate` reports it first).
 *
 * @category layers
 */
export const layer = <R>(
  sources: ReadonlyArray<TaskSource.TaskSource<R>>
): Layer.Layer<Sources, never, Leadership | SqlClient.SqlClient | TaskQueue | HealthRegistry | NodeIdentity | R> =>
  Layer.effect(
    Sources,
    Effect.gen(function* () {
      const deps: Deps = { sql: yield* SqlClient.SqlClient, queue: yield* TaskQueue, nodeId: (yield* NodeIdentity).id }
      const leadership = yield* Leadership
      const health = yield* HealthRegistry
      const tracked = new Map<string, Tracked>()
      for (const source of sources) {
        if (tracked.has(source.name)) return yield* Effect.die(new Error(`two sources are named "${source.name}"`))
        tracked.set(source.name, fresh())
      }
      for (const source of sources) {
        if (source.run === undefined) continue
        const t = tracked.get(source.name)!
        const annotate = Effect.annotateLogs({ component: `source:${source.name}` })
        if (source.placement === "every-node") {
          yield* Effect.forkScoped(supervise(source, t, makePublisher(deps, source.name, t, undefined)).pipe(annotate))
          continue
        }
        const lead = (epoch: number) =>
          Effect.suspend(() => {
            t.epoch = epoch
            return supervise(source, t, makePublisher(deps, source.name, t, epoch))
          }).pipe(
            Effect.ensuring(
              Effect.sync(() => {
                t.epoch = null
              })
            ),
            annotate
          )
        yield* Effect.forkScoped(leadership.lead(TaskSource.leadershipKey(source.name), lead))
      }
      const status = Effect.sync(() => Object.fromEntries(sources.map((s) => [s.name, statusOf(s, tracked.get(s.name)!)])))
      if (sources.length > 0) {
        yield* health.register({
          name: "sources",
          check: Effect.map(status, (all) => {
            const here = Object.values(all).filter((s) => s.running).length
            return pass(`${here} of ${sources.length} source(s) running here`, { sources: all })
          })
        })
        yield* Effect.logInfo(`sources: ${sources.map((s) => `${s.name} (${s.kind}, ${s.placement})`).join(", ")}`).pipe(
          Telemetry.component("sources")
        )
      }
      return Sources.of({
        status,
        publisher: (name) => {
          const t = tracked.get(name)
          if (t === undefined) throw new Error(`no source named "${name}" runs on this node`)
          return makePublisher(deps, name, t, undefined)
        }
      })
    })
  )

/**
 * The HTTP routes of `sources` (served by full-API nodes), each given its
 * source's publisher.
 *
 * @category layers
 */
export const routes = <R>(
  sources: ReadonlyArray<TaskSource.TaskSource<R>>
): Layer.Layer<never, never, HttpRouter.HttpRouter | Sources | R> => {
  const layers = sources.flatMap((source) =>
    source.routes === undefined ? [] : [Layer.unwrap(Effect.map(Sources, (s) => source.routes!(s.publisher(source.name))))]
  )
  return layers.length === 0 ? Layer.empty : Layer.mergeAll(...(layers as [Layer.Layer<never, never, any>]))
}
