/**
 * The control plane's task operations: the filtered list with keyset pages,
 * a task with its history, single actions (retry, cancel, delete, enqueue)
 * and bulk actions in bounded batches. Every action is audited with the
 * caller as actor; a bulk action once, with its filter and count.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as AuditEvents from "../AuditEvents.ts"
import * as AdminTasksSql from "../internal/sql/adminTasks.ts"
import * as AdminViewsSql from "../internal/sql/adminViews.ts"
import { RuntimeError, TaskNotFound, TaskStateConflict, type TaskUnknown, TaskPayloadInvalid } from "../RuntimeError.ts"
import type * as Task from "../Task.ts"
import type { TaskInfo } from "../TaskQueue.ts"
import * as Telemetry from "../Telemetry.ts"
import { bounded, decodeCursor, type Deps, encodeCursor, invalid, iso, isoOrNull, isId, storeError } from "./Context.ts"
import { auditEntry } from "./Views.ts"
import type * as Models from "./Models.ts"
import { toDate } from "./Models.ts"

/** The list/bulk filter with dates as Dates. */
export const sqlFilter = (f: { readonly [K in keyof Models.TaskFilter]?: Models.TaskFilter[K] | undefined }): AdminTasksSql.Filter => ({
  states: f.state,
  queue: f.queue,
  name: f.name,
  createdAfter: f.createdAfter === undefined ? undefined : toDate(f.createdAfter),
  createdBefore: f.createdBefore === undefined ? undefined : toDate(f.createdBefore),
  finishedAfter: f.finishedAfter === undefined ? undefined : toDate(f.finishedAfter),
  finishedBefore: f.finishedBefore === undefined ? undefined : toDate(f.finishedBefore),
  payload: f.payload,
  errorCode: f.errorCode
})

/** One stored failure with the presentation text its task's definition gives its code. */
const errorView =
  (definition: Task.Definition | undefined, withStack = false) =>
  (raw: unknown): Models.TaskError => {
    const e = (typeof raw === "object" && raw !== null ? raw : {}) as Partial<Record<string, unknown>>
    const code = typeof e.code === "string" ? e.code : null
    return {
      tag: typeof e.tag === "string" ? e.tag : "Unknown",
      message: typeof e.message === "string" ? e.message : "",
      code,
      codeText: code === null ? null : (definition?.codes[code] ?? null),
      attempt: typeof e.attempt === "number" && Number.isInteger(e.attempt) ? e.attempt : null,
      at: typeof e.at === "string" ? e.at : null,
      ...(withStack && typeof e.stack === "string" ? { stack: e.stack } : {})
    }
  }

const summary = (deps: Deps, row: AdminTasksSql.Summary): Models.TaskSummary => ({
  id: row.id,
  name: row.name,
  queue: row.queue,
  state: row.state,
  priority: row.priority,
  runAt: iso(row.run_at),
  attempt: row.attempt,
  maxAttempts: row.max_attempts,
  lastError: row.last_error === null || row.last_error === undefined ? null : errorView(deps.registry.definition(row.name))(row.last_error),
  leaseOwner: row.lease_owner,
  createdAt: iso(row.created_at),
  attemptedAt: isoOrNull(row.attempted_at),
  finishedAt: isoOrNull(row.finished_at)
})

const detail = (deps: Deps, t: TaskInfo, audit: ReadonlyArray<Models.AuditEntry>): Models.TaskDetail => {
  const errors = t.errors.map(errorView(deps.registry.definition(t.name), true))
  return {
    id: t.id,
    name: t.name,
    queue: t.queue,
    state: t.state,
    priority: t.priority,
    runAt: iso(t.runAt),
    attempt: t.attempt,
    maxAttempts: t.maxAttempts,
    lastError: errors.at(-1) ?? null,
    leaseOwner: t.leaseOwner,
    createdAt: iso(t.createdAt),
    attemptedAt: isoOrNull(t.attemptedAt),
    finishedAt: isoOrNull(t.finishedAt),
    payload: t.payload,
    payloadVersion: t.payloadVersion,
    result: t.result ?? null,
    errors,
    uniqueKey: t.uniqueKey,
    deadline: isoOrNull(t.deadline),
    metadata: t.metadata,
    leaseEpoch: t.leaseEpoch,
    cancelRequested: t.cancelRequested,
    callbackExpiresAt: isoOrNull(t.callbackExpiresAt),
    audit
  }
}

/** A task's state after an action, or why the action does not apply. */
const notFound = (id: string) => new RuntimeError({ reason: new TaskNotFound({ id }) })

/** The task operations over `deps`. */
export const make = (deps: Deps) => {
  const list = (
    filter: { readonly [K in keyof Models.TaskFilter]?: Models.TaskFilter[K] | undefined },
    page: { readonly limit?: number | undefined; readonly cursor?: string | undefined }
  ) =>
    Effect.gen(function* () {
      const before = page.cursor === undefined ? undefined : decodeCursor(page.cursor, 1)?.[0]
      if (page.cursor !== undefined && (before === undefined || !isId(before))) return yield* invalid("cursor is not one this API gave")
      const limit = Math.min(page.limit ?? 50, deps.options.pageSize)
      const rows = yield* bounded(deps, AdminTasksSql.list(deps.sql, sqlFilter(filter), { limit, before }))
      return {
        items: rows.map((r) => summary(deps, r)),
        next: rows.length === limit ? encodeCursor([rows[rows.length - 1]!.id]) : null
      } satisfies Models.TaskPage
    })

  const get = (id: string) =>
    Effect.gen(function* () {
      if (!isId(id)) return yield* Effect.fail(notFound(id))
      const task = yield* deps.queue.get(id)
      const trail = yield* bounded(deps, AdminViewsSql.audit(deps.sql, { subject: `task:${id}` }, { limit: 100 }))
      return detail(deps, task, trail.map(auditEntry))
    })

  const retry = (id: string, actor: string) =>
    Effect.map(deps.queue.retry(id, actor), (t): Models.TaskChanged => ({ id: t.id, state: t.state }))

  const cancel = (id: string, actor: string) =>
    Effect.map(deps.queue.cancel(id, actor), (t): Models.TaskChanged => ({ id: t.id, state: t.state }))

  const remove = (id: string, actor: string) =>
    Effect.gen(function* () {
      const [row] = yield* AdminTasksSql.deleteFinished(deps.sql, id).pipe(Effect.mapError(storeError(deps.options)))
      if (row === undefined) {
        const current = yield* deps.queue.get(id)
        return yield* Effect.fail(
          new RuntimeError({
            reason: new TaskStateConflict({ id, state: current.state, operation: "delete", detail: "only finished tasks can be deleted" })
          })
        )
      }
      yield* deps.audit.record(AuditEvents.taskDeleted({ actor, subject: id, details: { name: row.name, state: row.state } }))
      return { id, state: row.state } satisfies Models.TaskChanged
    })

  const enqueue = (request: Models.EnqueueRequest, actor: string) =>
    Effect.gen(function* () {
      const enqueued = yield* deps.queue
        .enqueueByName(request.name, request.payload, {
          queue: request.queue,
          priority: request.priority,
          runAt: request.runAt === undefined ? undefined : toDate(request.runAt),
          delay: request.delaySeconds === undefined ? undefined : `${request.delaySeconds} seconds`,
          maxAttempts: request.maxAttempts,
          uniqueKey: request.uniqueKey,
          metadata: request.metadata
        })
        .pipe(
          // Enqueue by name validates on a node that knows the definition: an unknown name is the request's fault (422).
          Effect.catchReason("RuntimeError", "TaskUnknown", (e: TaskUnknown) =>
            Effect.fail(
              new RuntimeError({
                reason: new TaskPayloadInvalid({ name: e.name, detail: "no task of this name is registered on this node" })
              })
            )
          )
        )
      yield* deps.audit.record(
        AuditEvents.taskEnqueued({ actor, subject: enqueued.id, details: { name: request.name, existing: enqueued.existing } })
      )
      return enqueued satisfies Models.Enqueued
    })

  return { list, get, retry, cancel, remove, enqueue, bulk: bulk(deps, summary) }
}

const bulkEvents = {
  retry: AuditEvents.tasksBulkRetried,
  cancel: AuditEvents.tasksBulkCancelled,
  delete: AuditEvents.tasksBulkDeleted
} as const

/**
 * A bulk action. A dry run counts (up to the cap + 1) and samples the tasks
 * it would act on; a real run acts in batches of `control.bulk_batch_size`,
 * each its own short statement under the statement timeout, on at most
 * `min(limit, control.bulk_cap)` tasks in ascending id order, and is audited
 * once.
 */
const bulk =
  (deps: Deps, summary: (deps: Deps, row: AdminTasksSql.Summary) => Models.TaskSummary) => (request: Models.BulkRequest, actor: string) =>
    Effect.gen(function* () {
      const filter = sqlFilter(request.filter)
      const cap = Math.min(request.limit ?? deps.options.bulkCap, deps.options.bulkCap)
      const base = { action: request.action, cap }
      if (request.dryRun !== false) {
        const [counted] = yield* bounded(deps, AdminTasksSql.bulkPreview(deps.sql, request.action, filter, { upTo: cap + 1 }))
        const sample = yield* bounded(deps, AdminTasksSql.bulkSample(deps.sql, request.action, filter, { limit: 10 }))
        const n = counted?.count ?? 0
        return { ...base, dryRun: true, count: Math.min(n, cap), capped: n > cap, sample: sample.map((r) => summary(deps, r)) }
      }
      let after = "0"
      let total = 0
      let more = true
      while (more && total < cap) {
        const size = Math.min(deps.options.bulkBatchSize, cap - total)
        const [batch] = yield* bounded(deps, AdminTasksSql.bulkBatch(deps.sql, request.action, filter, { after, limit: size }))
        total += batch?.acted ?? 0
        more = batch !== undefined && batch.picked === size && batch.last !== null
        if (more) after = batch!.last!
      }
      const capped =
        more && ((yield* bounded(deps, AdminTasksSql.bulkPreview(deps.sql, request.action, filter, { upTo: 1, after })))[0]?.count ?? 0) > 0
      yield* Metric.update(Telemetry.labelled(Telemetry.metrics.controlBulkTasks, { action: request.action }), total)
      yield* deps.audit.record(
        bulkEvents[request.action]({ actor, details: { filter: request.filter as Record<string, never>, count: total, capped } })
      )
      return { ...base, dryRun: false, count: total, capped, sample: [] }
    })
