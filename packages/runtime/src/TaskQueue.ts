/**
 * TaskQueue: the client side of the task queue, usable on every node.
 *
 * `enqueue` runs inside the caller's SQL transaction when there is one, so an
 * application's own write and the task it implies commit or roll back
 * together. Payloads are validated and encoded with the definition's Schema
 * before anything is written: a bad payload is a typed error and inserts
 * nothing. Admin operations (`cancel`, `retry`) are audited.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as SqlClient from "effect/sql/SqlClient"
import * as AuditEvents from "./AuditEvents.ts"
import { AuditLog } from "./AuditLog.ts"
import * as TasksSql from "./internal/sql/tasks.ts"
import * as TaskInput from "./internal/taskInput.ts"
import {
  messageOf,
  type Reason,
  RuntimeError,
  TaskNotFound,
  TaskOptionsInvalid,
  TaskPayloadInvalid,
  TaskStateConflict,
  TaskStoreUnavailable,
  TaskUnknown
} from "./RuntimeError.ts"
import * as Task from "./Task.ts"
import * as TaskState from "./TaskState.ts"
import { TaskRegistry } from "./TaskRegistry.ts"
import * as Telemetry from "./Telemetry.ts"

/** SQLSTATE of a database error, if it carries one. */
const sqlState = (e: unknown): string | undefined => {
  for (let current: unknown = e, depth = 0; current !== null && typeof current === "object" && depth < 6; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

/**
 * A failed statement as a `RuntimeError`: the database refusing the data
 * (SQLSTATE class 22, e.g. a value out of range) is the caller's input, not an
 * outage; anything else is the store being unavailable (retryable).
 */
const storeError = (e: unknown) =>
  sqlState(e)?.startsWith("22") === true
    ? new RuntimeError({ reason: new TaskOptionsInvalid({ message: `the database refused the task's data: ${messageOf(e)}` }) })
    : new RuntimeError({ reason: new TaskStoreUnavailable({ message: messageOf(e), cause: e }) })

const isUniqueViolation = (e: unknown): boolean => sqlState(e) === "23505"

/** Retrying a task whose unique key an unfinished task took meanwhile: a conflict naming the holder. */
const keyTaken = (sql: SqlClient.SqlClient, task: TaskInfo): Effect.Effect<never, RuntimeError> =>
  TasksSql.findUnfinishedByKeys(sql, [task.uniqueKey ?? ""]).pipe(
    Effect.mapError(storeError),
    Effect.flatMap(([holder]) =>
      failWith(
        new TaskStateConflict({
          id: task.id,
          state: task.state,
          operation: "retry",
          detail: `its unique key ${JSON.stringify(task.uniqueKey)} is held by unfinished task ${holder?.id ?? "(just finished; retry)"}`
        })
      )
    )
  )

const failWith = (reason: Reason) => Effect.fail(new RuntimeError({ reason }))

// ---------------------------------------------------------------------------
// Shapes

export interface EnqueueOptions {
  /** Absolute due time; wins over `delay`. */
  readonly runAt?: Date | undefined
  readonly delay?: Duration.Input | undefined
  readonly priority?: number | undefined
  readonly queue?: string | undefined
  /** While an unfinished task holds this key, enqueue returns that task instead. */
  readonly uniqueKey?: string | undefined
  readonly maxAttempts?: number | undefined
  /** After this moment the task is failed instead of run. */
  readonly deadline?: Date | undefined
  readonly metadata?: Record<string, unknown> | undefined
}

export interface TaskInfo {
  readonly id: string
  readonly name: string
  readonly queue: string
  readonly state: TaskState.TaskState
  readonly priority: number
  readonly runAt: Date
  readonly attempt: number
  readonly maxAttempts: number
  /** Stored (encoded) payload. */
  readonly payload: unknown
  readonly payloadVersion: number
  /** Stored (encoded) result. */
  readonly result: unknown
  readonly errors: ReadonlyArray<Task.ErrorDetail>
  readonly uniqueKey: string | null
  readonly deadline: Date | null
  readonly metadata: Record<string, unknown>
  readonly leaseOwner: string | null
  readonly leaseEpoch: number
  readonly cancelRequested: boolean
  readonly callbackExpiresAt: Date | null
  readonly createdAt: Date
  readonly attemptedAt: Date | null
  readonly finishedAt: Date | null
}

export interface Enqueued {
  readonly id: string
  /** True when a task with the same unique key already existed and was returned instead. */
  readonly existing: boolean
}

/** One task of an `enqueueEach` batch: its payload and its own options. */
export interface Item<P> {
  readonly payload: P
  readonly options?: EnqueueOptions | undefined
}

export interface Page {
  readonly tasks: ReadonlyArray<TaskInfo>
  /** Pass as `before` for the next (older) page; absent on the last page. */
  readonly next?: string | undefined
}

/**
 * Every operation fails with a `RuntimeError` whose reason says why:
 * `TaskPayloadInvalid`, `TaskOptionsInvalid`, `TaskUnknown`, `TaskNotFound`,
 * `TaskStateConflict` (the caller's input; not retryable) or
 * `TaskStoreUnavailable` (the database; retryable).
 */
export interface TaskQueueShape {
  readonly enqueue: <P>(definition: Task.Definition<P, any>, payload: P, options?: EnqueueOptions) => Effect.Effect<Enqueued, RuntimeError>
  /** Inserts all in one statement; the result is in input order. */
  readonly enqueueMany: <P>(
    definition: Task.Definition<P, any>,
    payloads: ReadonlyArray<P>,
    options?: EnqueueOptions
  ) => Effect.Effect<ReadonlyArray<Enqueued>, RuntimeError>
  /**
   * Inserts all in one statement, each item with its own options (a source's
   * unique key per event); the result is in input order.
   */
  readonly enqueueEach: <P>(
    definition: Task.Definition<P, any>,
    items: ReadonlyArray<Item<P>>
  ) => Effect.Effect<ReadonlyArray<Enqueued>, RuntimeError>
  /** For callers holding only a name and JSON (HTTP, admin tools): `payload` is the encoded form. */
  readonly enqueueByName: (name: string, payload: unknown, options?: EnqueueOptions) => Effect.Effect<Enqueued, RuntimeError>
  readonly get: (id: string) => Effect.Effect<TaskInfo, RuntimeError>
  readonly list: (
    filter?: TasksSql.ListFilter,
    page?: { readonly limit?: number; readonly before?: string }
  ) => Effect.Effect<Page, RuntimeError>
  /** A running task's handler is interrupted on whichever node runs it. */
  readonly cancel: (id: string, actor?: string) => Effect.Effect<{ readonly id: string; readonly state: TaskState.TaskState }, RuntimeError>
  /** Failed or cancelled back to available, with a fresh attempt budget. */
  readonly retry: (id: string, actor?: string) => Effect.Effect<TaskInfo, RuntimeError>
}

export class TaskQueue extends Context.Service<TaskQueue, TaskQueueShape>()("@asterforge/runtime/TaskQueue") {}

// ---------------------------------------------------------------------------
// Implementation

export const toInfo = (row: TasksSql.Row): TaskInfo => ({
  id: row.id,
  name: row.name,
  queue: row.queue,
  state: row.state,
  priority: row.priority,
  runAt: row.run_at,
  attempt: row.attempt,
  maxAttempts: row.max_attempts,
  payload: row.payload,
  payloadVersion: row.payload_version,
  result: row.result,
  errors: row.errors as ReadonlyArray<Task.ErrorDetail>,
  uniqueKey: row.unique_key,
  deadline: row.deadline,
  metadata: row.metadata,
  leaseOwner: row.lease_owner,
  leaseEpoch: row.lease_epoch,
  cancelRequested: row.cancel_requested_at !== null,
  callbackExpiresAt: row.callback_expires_at,
  createdAt: row.created_at,
  attemptedAt: row.attempted_at,
  finishedAt: row.finished_at
})

const optionsError = (options: EnqueueOptions): RuntimeError | undefined => {
  const problem = TaskInput.optionsProblem(options)
  return problem === undefined ? undefined : new RuntimeError({ reason: new TaskOptionsInvalid({ message: problem }) })
}

/** The row `enqueue` inserts for one task (statements that insert a task themselves build it here too). */
export const toNew = (
  definition: Task.Definition,
  encoded: unknown,
  options: EnqueueOptions,
  traceparent: string | null
): TasksSql.NewTask => ({
  name: definition.name,
  queue: options.queue ?? definition.queue,
  priority: options.priority ?? definition.priority,
  delay_ms: options.delay === undefined ? 0 : Duration.toMillis(Duration.fromInputUnsafe(options.delay)),
  run_at: options.runAt?.toISOString() ?? null,
  max_attempts: options.maxAttempts ?? definition.retry.maxAttempts,
  payload: encoded,
  payload_version: definition.version,
  unique_key: options.uniqueKey ?? null,
  deadline: options.deadline?.toISOString() ?? null,
  metadata: options.metadata ?? {},
  traceparent
})

/**
 * Which task each row is, in input order, after an insert that skipped rows
 * whose unique key an unfinished task holds: its own new row, the holder
 * (`existing`), or undefined when the holder finished in between (its key is
 * free: place the row again).
 */
export const assign = (
  rows: ReadonlyArray<TasksSql.NewTask>,
  inserted: ReadonlyArray<{ readonly id: string; readonly unique_key: string | null }>,
  holders: ReadonlyMap<string, string>
): Array<Enqueued | undefined> => {
  const byKey = new Map(inserted.filter((r) => r.unique_key !== null).map((r) => [r.unique_key!, r.id]))
  const unkeyed = inserted.filter((r) => r.unique_key === null).map((r) => r.id)
  const seen = new Set<string>()
  return rows.map((r) => {
    if (r.unique_key === null) return { id: unkeyed.shift()!, existing: false }
    const own = byKey.get(r.unique_key)
    if (own !== undefined && !seen.has(r.unique_key)) {
      seen.add(r.unique_key)
      return { id: own, existing: false }
    }
    const holder = holders.get(r.unique_key) ?? own
    return holder === undefined ? undefined : { id: holder, existing: true }
  })
}

/**
 * Inserts `rows` and answers, in input order, the task each one is: its own
 * new row, or the unfinished task already holding its unique key.
 */
const place = (
  sql: SqlClient.SqlClient,
  definition: Task.Definition,
  rows: ReadonlyArray<TasksSql.NewTask>,
  round: number
): Effect.Effect<ReadonlyArray<Enqueued>, RuntimeError> =>
  Effect.gen(function* () {
    const inserted = yield* TasksSql.insert(sql, rows).pipe(Effect.mapError(storeError))
    yield* Metric.update(
      Telemetry.labelled(Telemetry.metrics.tasksEnqueued, { queue: rows[0]?.queue ?? definition.queue, task: definition.name }),
      inserted.length
    )
    if (inserted.length === rows.length) return inserted.map((r): Enqueued => ({ id: r.id, existing: false }))
    // Some unique keys were taken: look up the holders of the keys not inserted.
    const insertedKeys = new Set(inserted.map((r) => r.unique_key))
    const missing = rows.flatMap((r) => (r.unique_key !== null && !insertedKeys.has(r.unique_key) ? [r.unique_key] : []))
    const holders = missing.length === 0 ? [] : yield* TasksSql.findUnfinishedByKeys(sql, missing).pipe(Effect.mapError(storeError))
    const out = assign(rows, inserted, new Map(holders.map((h) => [h.unique_key!, h.id])))
    // A holder finished between our insert and the look-up, freeing its key: place those rows again.
    const orphaned = rows.flatMap((_r, i) => (out[i] === undefined ? [i] : []))
    if (orphaned.length === 0) return out as ReadonlyArray<Enqueued>
    if (round >= 3) {
      return yield* failWith(
        new TaskStoreUnavailable({ message: `unique keys kept changing hands during enqueue (${orphaned.length} task(s)); retry` })
      )
    }
    const again = yield* place(
      sql,
      definition,
      orphaned.map((i) => rows[i]!),
      round + 1
    )
    orphaned.forEach((i, j) => {
      out[i] = again[j]
    })
    return out as ReadonlyArray<Enqueued>
  })

/** Encodes every payload with the definition's Schema, and checks the result is text Postgres can store. */
const encodeAll = <P>(
  definition: Task.Definition<P, any>,
  payloads: ReadonlyArray<P>
): Effect.Effect<ReadonlyArray<unknown>, RuntimeError> =>
  Effect.suspend(() => {
    const out: Array<unknown> = []
    for (const [i, p] of payloads.entries()) {
      const where = payloads.length > 1 ? `item ${i}: ` : ""
      const r = Task.encodePayload(definition, p)
      if (Result.isFailure(r)) return failWith(new TaskPayloadInvalid({ name: definition.name, detail: `${where}${r.failure}` }))
      const unstorable = TaskInput.unstorableText(r.success, "payload")
      if (unstorable !== undefined) return failWith(new TaskPayloadInvalid({ name: definition.name, detail: `${where}${unstorable}` }))
      out.push(r.success)
    }
    return Effect.succeed(out)
  })

export const layer: Layer.Layer<TaskQueue, never, SqlClient.SqlClient | AuditLog | TaskRegistry> = Layer.effect(
  TaskQueue,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* AuditLog
    const registry = yield* TaskRegistry

    const insertAll = Effect.fn("TaskQueue.enqueue")(function* (
      definition: Task.Definition,
      encoded: ReadonlyArray<unknown>,
      options: (index: number) => EnqueueOptions
    ) {
      for (let i = 0; i < encoded.length; i++) {
        const invalid = optionsError(options(i))
        if (invalid !== undefined) return yield* invalid
      }
      // The enqueue span is where the worker's span continues the trace, in whichever process runs it.
      const span = yield* Effect.option(Effect.currentSpan)
      const traceparent = Option.isSome(span) ? Telemetry.traceparentOf(span.value) : null
      const rows = encoded.map((e, i) => toNew(definition, e, options(i), traceparent))
      yield* Effect.annotateCurrentSpan({
        "messaging.system": "asterforge",
        "messaging.operation.type": "send",
        "messaging.destination.name": rows[0]?.queue ?? definition.queue,
        "asterforge.task.name": definition.name,
        "messaging.batch.message_count": rows.length
      })
      return yield* place(sql, definition, rows, 1)
    })

    const enqueueMany = <P>(definition: Task.Definition<P, any>, payloads: ReadonlyArray<P>, options: EnqueueOptions = {}) =>
      payloads.length === 0
        ? Effect.succeed([] as ReadonlyArray<Enqueued>)
        : Effect.flatMap(encodeAll(definition, payloads), (encoded) => insertAll(definition, encoded, () => options))

    const enqueueEach = <P>(definition: Task.Definition<P, any>, items: ReadonlyArray<Item<P>>) =>
      items.length === 0
        ? Effect.succeed([] as ReadonlyArray<Enqueued>)
        : Effect.flatMap(
            encodeAll(
              definition,
              items.map((i) => i.payload)
            ),
            (encoded) => insertAll(definition, encoded, (i) => items[i]!.options ?? {})
          )

    const get = (id: string) =>
      Effect.gen(function* () {
        // Not a task id at all (too long for a bigint, not digits): no such task, not a database error.
        const valid = TaskInput.taskId(id)
        if (valid === undefined) return yield* failWith(new TaskNotFound({ id }))
        const [row] = yield* TasksSql.getMany(sql, [valid]).pipe(Effect.mapError(storeError))
        if (row === undefined) return yield* failWith(new TaskNotFound({ id }))
        return toInfo(row)
      })

    return TaskQueue.of({
      enqueue: (definition, payload, options) => Effect.map(enqueueMany(definition, [payload], options), (r) => r[0]!),
      enqueueMany,
      enqueueEach,
      enqueueByName: (name, payload, options) =>
        Effect.gen(function* () {
          const definition = registry.definition(name)
          if (definition === undefined) return yield* failWith(new TaskUnknown({ name }))
          // The caller sent the encoded form: decode it to validate, then store the canonical encoding.
          const decoded = Task.decodePayload(definition, payload, definition.version)
          if (Result.isFailure(decoded)) return yield* failWith(new TaskPayloadInvalid({ name, detail: decoded.failure }))
          const [enqueued] = yield* enqueueMany(definition, [decoded.success], options)
          return enqueued!
        }),
      get,
      list: (filter = {}, page = {}) =>
        Effect.gen(function* () {
          const problem = listProblem(filter, page)
          if (problem !== undefined) return yield* failWith(new TaskOptionsInvalid({ message: problem }))
          const limit = Math.min(Math.max(page.limit ?? 50, 1), 500)
          const rows = yield* TasksSql.list(sql, filter, { limit, before: page.before }).pipe(Effect.mapError(storeError))
          return { tasks: rows.map(toInfo), next: rows.length === limit ? rows[rows.length - 1]!.id : undefined }
        }),
      cancel: (id, actor = AuditEvents.actors.system) =>
        Effect.gen(function* () {
          const current = yield* get(id)
          const [row] = yield* TasksSql.cancel(sql, current.id).pipe(Effect.mapError(storeError))
          if (row === undefined) return yield* failWith(new TaskStateConflict({ id, state: current.state, operation: "cancel" }))
          if (row.state === "cancelled") {
            const details = { name: current.name, previous: row.previous, attempt: current.attempt }
            yield* audit.record(AuditEvents.taskCancelled({ actor, subject: id, details }))
          }
          return { id, state: row.state }
        }),
      retry: (id, actor = AuditEvents.actors.system) =>
        Effect.gen(function* () {
          const current = yield* get(id)
          const [row] = yield* TasksSql.retry(sql, current.id).pipe(
            Effect.catch((e) => (isUniqueViolation(e) ? keyTaken(sql, current) : Effect.fail(storeError(e))))
          )
          if (row === undefined) return yield* failWith(new TaskStateConflict({ id, state: current.state, operation: "retry" }))
          yield* audit.record(AuditEvents.taskRetried({ actor, subject: id, details: { name: current.name, previous: current.state } }))
          return toInfo(row)
        })
    })
  })
)

/** The first thing wrong with a list request: states, a cursor that is not a task id, a limit. */
const listProblem = (filter: TasksSql.ListFilter, page: { readonly limit?: number; readonly before?: string }): string | undefined => {
  const badState = filter.state?.find((s) => !TaskState.isTaskState(s))
  if (badState !== undefined) return `unknown state ${JSON.stringify(badState)} (one of ${TaskState.all.join(", ")})`
  if (page.before !== undefined && TaskInput.taskId(page.before) === undefined)
    return `cursor ${JSON.stringify(page.before)} is not a task id`
  if (page.limit !== undefined && !Number.isInteger(page.limit)) return "limit must be an integer"
  const text = TaskInput.unstorableText([filter.queue, filter.name], "filter")
  return text
}
