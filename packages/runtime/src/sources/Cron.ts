/**
 * CronSource: scheduled tasks, from a cron expression in a time zone (parsed
 * and stepped by Effect's own `Cron` module, so daylight-saving changes are
 * handled there) or from a fixed interval.
 *
 * A schedule is a leader-placed source: one node at a time (elected like a
 * lane) computes the fires that are due and claims each in ONE statement that
 * compares-and-swaps the schedule's `last_fire_at` and inserts the task (see
 * internal/sql/schedules.ts), fenced on the leader's epoch. So a fire is
 * enqueued exactly once across nodes, leader changes and restarts: a second
 * claim of the same fire finds `last_fire_at` already moved on.
 *
 * Fires missed while no node led the schedule (all nodes down, a long
 * failover): `missed: "coalesce"` (the default) enqueues only the latest of
 * them, once; `missed: { catchUp: n }` enqueues the latest `n` in order. The
 * rest are counted as skipped (`asterforge_schedule_fires_total{outcome="skipped"}`).
 * A schedule seen for the first time fires from then on, never for the past.
 *
 * `Schedules` (on every node) lists schedules with their last and next fire,
 * and pauses, resumes and triggers them; the control plane serves these.
 *
 * ```ts
 * const Nightly = CronSource.make({
 *   name: "reports.nightly",
 *   cron: "0 3 * * *",
 *   timeZone: "Europe/Berlin",
 *   task: BuildReport,
 *   payload: (fire) => ({ day: fire.toISOString().slice(0, 10) })
 * })
 * ApplicationModule.make({ name: "reports", tasks: [...], sources: [Nightly] })
 * ```
 *
 * @since 0.3.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as EffectCron from "effect/Cron"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as SqlClient from "effect/sql/SqlClient"
import * as AuditEvents from "../AuditEvents.ts"
import { AuditLog } from "../AuditLog.ts"
import { HealthRegistry, pass } from "../Health.ts"
import * as ScheduleSql from "../internal/sql/schedules.ts"
import * as RuntimeError from "../RuntimeError.ts"
import * as Task from "../Task.ts"
import { type Enqueued, TaskQueue, toNew } from "../TaskQueue.ts"
import * as TaskSource from "../TaskSource.ts"
import * as Telemetry from "../Telemetry.ts"

// ---------------------------------------------------------------------------
// When a schedule fires (pure)

/**
 * When a schedule fires. Interval schedules fire at `anchor + k * interval`
 * (the anchor is when the schedule was first registered); cron schedules
 * ignore the anchor.
 *
 * @category models
 */
export interface Spec {
  /** As status views show it: `cron "0 3 * * *" Europe/Berlin`, `every 5m`. */
  readonly text: string
  /** The first fire strictly after `after`. */
  readonly next: (after: Date, anchor: Date) => Date
  /** The last fire strictly before `before`, if any. */
  readonly previous: (before: Date, anchor: Date) => Date | undefined
}

/**
 * A cron expression (5 fields, or 6 with seconds first) in an IANA time zone;
 * the failure says what is wrong.
 *
 * @category constructors
 */
export const cronSpec = (expression: string, timeZone = "UTC"): Result.Result<Spec, string> =>
  Result.match(EffectCron.parse(expression, timeZone), {
    onFailure: (e) => Result.fail(`invalid cron expression ${JSON.stringify(expression)} in ${timeZone}: ${e.message}`),
    onSuccess: (cron) =>
      Result.succeed({
        text: `cron ${JSON.stringify(expression)} ${timeZone}`,
        next: (after: Date) => EffectCron.next(cron, after),
        previous: (before: Date) => EffectCron.prev(cron, before)
      })
  })

/**
 * A fixed interval, anchored where the schedule was first registered.
 *
 * @category constructors
 */
export const everySpec = (interval: Duration.Input): Result.Result<Spec, string> => {
  const d = Duration.fromInput(interval)
  if (Option.isNone(d) || Duration.toMillis(d.value) < 1 || !Duration.isFinite(d.value))
    return Result.fail(`invalid interval ${JSON.stringify(interval)}: a positive, finite duration`)
  const ms = Duration.toMillis(d.value)
  return Result.succeed({
    text: `every ${Duration.format(d.value)}`,
    next: (after, anchor) => new Date(anchor.getTime() + Math.max(0, Math.floor((after.getTime() - anchor.getTime()) / ms) + 1) * ms),
    previous: (before, anchor) => {
      const k = Math.ceil((before.getTime() - anchor.getTime()) / ms) - 1
      return k < 0 ? undefined : new Date(anchor.getTime() + k * ms)
    }
  })
}

/**
 * What to do with fires missed while no node led the schedule: run the latest
 * once (`"coalesce"`), or the latest `catchUp` of them in order.
 *
 * @category models
 */
export type Missed = "coalesce" | { readonly catchUp: number }

/** What is due now. */
export interface Plan {
  /** The fires to enqueue, oldest first. */
  readonly fires: ReadonlyArray<Date>
  /** Due fires left out by `missed` (counted up to a bound). */
  readonly skipped: number
  /** The first fire after now. */
  readonly next: Date
}

/** Counting skipped fires stops here: after a long downtime a seconds schedule has missed millions. */
const skippedCountCap = 1000

/**
 * The fires due at `now` for a schedule whose fires up to `since` (its last
 * fire, its registration, its resume) are done.
 *
 * @category fires
 */
export const plan = (
  spec: Spec,
  options: { readonly since: Date; readonly anchor: Date; readonly now: Date; readonly missed: Missed }
): Plan => {
  const limit = options.missed === "coalesce" ? 1 : options.missed.catchUp
  const due: Array<Date> = []
  let skipped = 0
  let before = new Date(options.now.getTime() + 1)
  while (skipped < skippedCountCap) {
    const fire = spec.previous(before, options.anchor)
    if (fire === undefined || fire.getTime() <= options.since.getTime()) break
    if (due.length < limit) due.push(fire)
    else skipped++
    before = fire
  }
  return { fires: due.reverse(), skipped, next: spec.next(options.now, options.anchor) }
}

/** The moment after which a schedule's fires can be due: its last fire, registration or resume, whichever is last. */
export const doneUntil = (row: Pick<ScheduleSql.Row, "created_at" | "last_fire_at" | "resumed_at">): Date =>
  new Date(Math.max(row.created_at.getTime(), row.last_fire_at?.getTime() ?? 0, row.resumed_at?.getTime() ?? 0))

// ---------------------------------------------------------------------------
// The source

/** @category models */
export interface Options<P> {
  /** The source's name (also the schedule's, in `schedules` and the admin API). */
  readonly name: string
  /** A cron expression: `"0 3 * * *"`, or with seconds first `"*\/10 * * * * *"`. Give `cron` or `every`. */
  readonly cron?: string | undefined
  /** IANA zone the cron expression's fields are read in (default UTC). */
  readonly timeZone?: string | undefined
  /** A fixed interval instead of a cron expression. */
  readonly every?: Duration.Input | undefined
  readonly task: Task.Definition<P, any>
  /** The payload of the task for a fire (the fire's scheduled instant). */
  readonly payload: (fire: Date) => P
  /** Default `"coalesce"`. */
  readonly missed?: Missed | undefined
  /** Enqueue options for the fires' tasks. */
  readonly queue?: string | undefined
  readonly priority?: number | undefined
  readonly maxAttempts?: number | undefined
}

/**
 * A schedule as a source: a `TaskSource` (leader-placed) that also carries
 * what `Schedules` needs to list and trigger it.
 *
 * @category models
 */
export interface CronSource extends TaskSource.TaskSource<SqlClient.SqlClient> {
  readonly kind: "cron"
  readonly spec: Spec
  readonly task: Task.Definition<any, any>
  readonly payloadFor: (fire: Date) => unknown
  readonly missed: Missed
}

/** Whether a source is a schedule. */
export const isCronSource = (source: TaskSource.Any): source is CronSource =>
  source.kind === "cron" && "spec" in source && "payloadFor" in source

/** The longest sleep between two looks at the schedule's row (a pause, a resume). */
const maxSleep = Duration.seconds(30)

/**
 * Declares a schedule. A bad expression, zone, interval or bound is a
 * programming error, thrown with the schedule's name.
 *
 * @category constructors
 */
export const make = <P>(options: Options<P>): CronSource => {
  const fail = (message: string): never => {
    throw new Error(`invalid schedule ${JSON.stringify(options.name)}: ${message}`)
  }
  const specResult =
    options.cron !== undefined && options.every === undefined
      ? cronSpec(options.cron, options.timeZone)
      : options.every !== undefined && options.cron === undefined
        ? everySpec(options.every)
        : Result.fail("give either cron or every")
  if (Result.isFailure(specResult)) return fail(specResult.failure)
  const missed = options.missed ?? "coalesce"
  if (missed !== "coalesce" && !(Number.isInteger(missed.catchUp) && missed.catchUp >= 1 && missed.catchUp <= 1000))
    fail("missed.catchUp must be an integer between 1 and 1000")
  const spec = specResult.success
  const source: CronSource = {
    name: options.name,
    kind: "cron",
    placement: "leader",
    spec,
    task: options.task,
    payloadFor: options.payload,
    missed,
    run: (publisher) => fireLoop(source, options, publisher)
  }
  TaskSource.make(source)
  return source
}

/** One fire: claimed and enqueued in one statement; false when the claim was refused (moved on, paused, fenced). */
const fireOnce = <P>(
  options: Options<P>,
  publisher: TaskSource.Publisher,
  claim: { readonly prev: Date | null; readonly fire: Date; readonly next: Date }
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const encoded = Task.encodePayload(options.task, options.payload(claim.fire))
    if (Result.isFailure(encoded))
      return yield* RuntimeError.fail(new RuntimeError.TaskPayloadInvalid({ name: options.task.name, detail: encoded.failure }))
    const span = yield* Effect.option(Effect.currentSpan)
    const task = toNew(
      options.task,
      encoded.success,
      {
        queue: options.queue,
        priority: options.priority,
        maxAttempts: options.maxAttempts,
        uniqueKey: publisher.uniqueKey(claim.fire.toISOString()),
        metadata: { source: options.name, node: publisher.node, fire: claim.fire.toISOString() }
      },
      Option.isSome(span) ? Telemetry.traceparentOf(span.value) : null
    )
    const [row] = yield* ScheduleSql.fire(sql, { name: options.name, ...claim, fence: publisher.fence }, task)
    if (row === undefined || row.claimed === 0) return false
    const enqueued: Enqueued = { id: row.task_id ?? "", existing: row.task_id === null }
    yield* publisher.published([enqueued])
    if (!enqueued.existing)
      yield* Metric.update(Telemetry.labelled(Telemetry.metrics.tasksEnqueued, { queue: task.queue, task: task.name }), 1)
    return true
  }).pipe(
    Effect.withSpan(Telemetry.spans.scheduleFire, {
      root: true,
      attributes: { "asterforge.source": options.name, "asterforge.schedule.fire": claim.fire.toISOString() }
    })
  )

/** While this node leads the schedule: enqueue what is due, sleep until the next fire, again. */
const fireLoop = <P>(source: CronSource, options: Options<P>, publisher: TaskSource.Publisher) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const fires = (outcome: string) => Telemetry.labelled(Telemetry.metrics.scheduleFires, { source: source.name, outcome })
    yield* ScheduleSql.ensure(sql, source.name, source.spec.text)
    while (true) {
      const [row] = yield* ScheduleSql.get(sql, source.name)
      if (row === undefined) {
        // Deleted behind our back (an operator's clean-up): registered again, firing from now on.
        yield* ScheduleSql.ensure(sql, source.name, source.spec.text)
        continue
      }
      const now = new Date(yield* Clock.currentTimeMillis)
      const due = plan(source.spec, { since: doneUntil(row), anchor: row.created_at, now, missed: source.missed })
      let prev = row.last_fire_at
      let fired = 0
      let refused = false
      if (!row.paused) {
        for (const fire of due.fires) {
          if (!(yield* fireOnce(options, publisher, { prev, fire, next: due.next }))) {
            refused = true
            break
          }
          prev = fire
          fired++
        }
        if (fired > 0) yield* Metric.update(fires("enqueued"), fired)
        if (due.skipped > 0 && !refused) {
          yield* Metric.update(fires("skipped"), due.skipped)
          yield* Effect.logInfo(
            `skipped ${due.skipped}${due.skipped >= skippedCountCap ? "+" : ""} missed fire(s) (${JSON.stringify(source.missed)})`
          )
        }
      }
      yield* ScheduleSql.setNext(sql, source.name, due.next, publisher.fence)
      yield* publisher.report({
        schedule: source.spec.text,
        paused: row.paused,
        last_fire_at: prev?.toISOString() ?? null,
        next_fire_at: row.paused ? null : due.next.toISOString()
      })
      yield* publisher.event
      // A refused claim means the row changed under us (a pause, a lost lead): look again shortly.
      const untilNext = Duration.millis(Math.max(0, due.next.getTime() - now.getTime()))
      yield* Effect.sleep(refused ? Duration.seconds(1) : Duration.min(untilNext, maxSleep))
    }
  })

// ---------------------------------------------------------------------------
// Schedules: what the control plane serves

/**
 * A schedule as the admin API lists it.
 *
 * @category models
 */
export interface ScheduleView {
  readonly name: string
  readonly spec: string
  readonly task: string
  readonly missed: Missed
  readonly paused: boolean
  readonly last_fire_at: string | null
  /** When it fires next; in the past while no node leads it. */
  readonly next_fire_at: string
  readonly fired_count: number
}

/** @category models */
export interface SchedulesShape {
  readonly list: Effect.Effect<ReadonlyArray<ScheduleView>, RuntimeError.RuntimeError>
  readonly get: (name: string) => Effect.Effect<ScheduleView, RuntimeError.RuntimeError>
  /** Stops enqueueing fires until `resume`; audited. */
  readonly pause: (name: string, actor?: string) => Effect.Effect<ScheduleView, RuntimeError.RuntimeError>
  /** Fires again from now on (the pause's fires are skipped); audited. */
  readonly resume: (name: string, actor?: string) => Effect.Effect<ScheduleView, RuntimeError.RuntimeError>
  /** Enqueues the schedule's task now, outside its cadence (which is unchanged); audited. */
  readonly triggerNow: (name: string, actor?: string) => Effect.Effect<Enqueued, RuntimeError.RuntimeError>
}

/**
 * The schedules this build knows, on any node.
 *
 * @category services
 */
export class Schedules extends Context.Service<Schedules, SchedulesShape>()("@asterforge/runtime/Schedules") {}

const storeError = (e: unknown) =>
  RuntimeError.make(new RuntimeError.TaskStoreUnavailable({ message: RuntimeError.messageOf(e), cause: e }))

const view = (source: CronSource, row: ScheduleSql.Row | undefined, now: Date): ScheduleView => {
  const since = row === undefined ? now : doneUntil(row)
  return {
    name: source.name,
    spec: source.spec.text,
    task: source.task.name,
    missed: source.missed,
    paused: row?.paused ?? false,
    last_fire_at: row?.last_fire_at?.toISOString() ?? null,
    next_fire_at: source.spec.next(since, row?.created_at ?? now).toISOString(),
    fired_count: Number(row?.fired_count ?? 0)
  }
}

/**
 * `Schedules` over the schedules among `sources`.
 *
 * @category layers
 */
export const layerSchedules = (
  sources: ReadonlyArray<TaskSource.Any>
): Layer.Layer<Schedules, never, SqlClient.SqlClient | TaskQueue | AuditLog | HealthRegistry> =>
  Layer.effect(
    Schedules,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const queue = yield* TaskQueue
      const audit = yield* AuditLog
      const health = yield* HealthRegistry
      const known = new Map(sources.filter(isCronSource).map((s) => [s.name, s]))
      const find = (name: string) =>
        Effect.suspend(() => {
          const source = known.get(name)
          return source === undefined ? RuntimeError.fail(new RuntimeError.ScheduleNotFound({ name })) : Effect.succeed(source)
        })
      const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))
      const get = (name: string) =>
        Effect.gen(function* () {
          const source = yield* find(name)
          const [row] = yield* ScheduleSql.get(sql, name).pipe(Effect.mapError(storeError))
          return view(source, row, yield* now)
        })
      const setPaused =
        (paused: boolean) =>
        (name: string, actor: string = AuditEvents.actors.system) =>
          Effect.gen(function* () {
            const source = yield* find(name)
            const [row] = yield* ScheduleSql.setPaused(sql, name, source.spec.text, paused).pipe(Effect.mapError(storeError))
            const event = paused ? AuditEvents.schedulePaused : AuditEvents.scheduleResumed
            yield* audit.record(event({ actor, subject: name, details: { spec: source.spec.text } }))
            return view(source, row, yield* now)
          })
      const list = Effect.gen(function* () {
        const rows = new Map((yield* ScheduleSql.list(sql).pipe(Effect.mapError(storeError))).map((r) => [r.name, r]))
        const at = yield* now
        return [...known.values()].map((s) => view(s, rows.get(s.name), at))
      })
      // Every node shows the schedules with their next fire; the database check reports an outage, not this one.
      if (known.size > 0)
        yield* health.register({
          name: "schedules",
          check: list.pipe(
            Effect.map((all) =>
              pass(`${all.length} schedule(s)`, { schedules: Object.fromEntries(all.map(({ name, ...rest }) => [name, rest])) })
            ),
            Effect.orElseSucceed(() => pass("schedules unavailable (the database is not answering)"))
          )
        })
      return Schedules.of({
        list,
        get,
        pause: setPaused(true),
        resume: setPaused(false),
        triggerNow: (name, actor = AuditEvents.actors.system) =>
          Effect.gen(function* () {
            const source = yield* find(name)
            const at = yield* now
            const enqueued = yield* queue.enqueue(source.task, source.payloadFor(at), {
              uniqueKey: `${name}:manual:${at.toISOString()}`,
              metadata: { source: name, trigger: "manual", actor }
            })
            yield* audit.record(
              AuditEvents.scheduleTriggered({ actor, subject: name, details: { task: source.task.name, taskId: enqueued.id } })
            )
            return enqueued
          })
      })
    })
  )
