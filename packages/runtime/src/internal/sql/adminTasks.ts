/**
 * SQL for the control plane's task views and actions: the filtered list,
 * deletion of finished tasks, and bulk actions in bounded batches.
 *
 * Every list is keyset-paginated on `id` (newest first) with a LIMIT, and runs
 * under the request's statement timeout (`bounded` in adminViews.ts). Which
 * index serves a filter:
 *
 * - no filter, or `queue` / `name` / payload / error code alone: the primary
 *   key backwards, stopping at the page size;
 * - `failed` / `cancelled`: `tasks_failed` (0007), which holds only those rows
 *   (each row enters it once, when it fails), so failure views never walk the
 *   succeeded history;
 * - unfinished states: their partial indexes (`tasks_claimable`, `tasks_due`,
 *   `tasks_running_expiry`, `tasks_callback_expiry`);
 * - a finished-time range: `tasks_finished_at`.
 *
 * There is deliberately no general (state, ...) or GIN index: every state
 * change of a task would pay an index insert (state changes are never HOT
 * updates), which is the hot path the dispatcher is measured on.
 */
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import * as TaskState from "../../TaskState.ts"
import { states } from "./shared.ts"
import type { Row } from "./tasks.ts"

/** What the admin list and bulk actions filter tasks by; every field narrows. */
export interface Filter {
  readonly states?: ReadonlyArray<TaskState.TaskState> | undefined
  readonly queue?: string | undefined
  readonly name?: string | undefined
  readonly createdAfter?: Date | undefined
  readonly createdBefore?: Date | undefined
  readonly finishedAfter?: Date | undefined
  readonly finishedBefore?: Date | undefined
  /** JSON containment: the stored payload contains this object (`{"customer": 42}`). */
  readonly payload?: Record<string, unknown> | undefined
  /** Any attempt's error carried this presentation code. */
  readonly errorCode?: string | undefined
}

/** The filter as SQL conditions (ANDed; `true` when empty). */
export const conditions = (sql: SqlClient.SqlClient, f: Filter): Array<Statement.Fragment> => {
  const finishedRange = f.finishedAfter !== undefined || f.finishedBefore !== undefined
  return [
    ...(f.states?.length ? [sql`state IN ${sql.in(f.states)}`] : []),
    ...(finishedRange ? [sql`state IN ${states(sql, TaskState.finished)}`] : []),
    ...(f.queue !== undefined ? [sql`queue = ${f.queue}`] : []),
    ...(f.name !== undefined ? [sql`name = ${f.name}`] : []),
    ...(f.createdAfter !== undefined ? [sql`created_at >= ${f.createdAfter}`] : []),
    ...(f.createdBefore !== undefined ? [sql`created_at < ${f.createdBefore}`] : []),
    ...(f.finishedAfter !== undefined ? [sql`finished_at >= ${f.finishedAfter}`] : []),
    ...(f.finishedBefore !== undefined ? [sql`finished_at < ${f.finishedBefore}`] : []),
    ...(f.payload !== undefined ? [sql`payload @> ${JSON.stringify(f.payload)}::jsonb`] : []),
    ...(f.errorCode !== undefined ? [sql`errors @> ${JSON.stringify([{ code: f.errorCode }])}::jsonb`] : []),
    sql`true`
  ]
}

/** A task as lists show it: no payload or result (they may be large), the last error only. */
export interface Summary {
  readonly id: string
  readonly name: string
  readonly queue: string
  readonly state: TaskState.TaskState
  readonly priority: number
  readonly run_at: Date
  readonly attempt: number
  readonly max_attempts: number
  readonly last_error: unknown
  readonly lease_owner: string | null
  readonly created_at: Date
  readonly attempted_at: Date | null
  readonly finished_at: Date | null
}

/** One page, newest first: tasks with an id below `before` (the previous page's last id). */
export const list = (sql: SqlClient.SqlClient, filter: Filter, page: { readonly limit: number; readonly before?: string | undefined }) =>
  sql<Summary>`
    SELECT id::text AS id, name, queue, state, priority, run_at, attempt, max_attempts,
           errors -> -1 AS last_error, lease_owner::text AS lease_owner, created_at, attempted_at, finished_at
    FROM tasks
    WHERE ${sql.and([...conditions(sql, filter), ...(page.before !== undefined ? [sql`id < ${BigInt(page.before)}`] : [])])}
    ORDER BY tasks.id DESC LIMIT ${page.limit}`

/** Removes one finished task; nothing when it does not exist or is not finished. */
export const deleteFinished = (sql: SqlClient.SqlClient, id: string) =>
  sql<Pick<Row, "id" | "name" | "state">>`
    DELETE FROM tasks WHERE id = ${BigInt(id)} AND state IN ${states(sql, TaskState.finished)}
    RETURNING id::text AS id, name, state`

/** The states each bulk action applies to; other matching tasks are left alone. */
export const bulkStates = {
  retry: TaskState.retriable,
  cancel: TaskState.unfinished,
  delete: TaskState.finished
} as const

export type BulkAction = keyof typeof bulkStates

const bulkWhere = (sql: SqlClient.SqlClient, action: BulkAction, filter: Filter) =>
  sql.and([...conditions(sql, filter), sql`state IN ${states(sql, bulkStates[action])}`])

/** How many tasks a bulk action would act on (with an id above `after`), counted up to `upTo`: a bounded count. */
export const bulkPreview = (
  sql: SqlClient.SqlClient,
  action: BulkAction,
  filter: Filter,
  options: { readonly upTo: number; readonly after?: string | undefined }
) =>
  sql<{ count: number }>`
    SELECT count(*)::int AS count FROM (
      SELECT 1 FROM tasks WHERE ${bulkWhere(sql, action, filter)} AND id > ${BigInt(options.after ?? "0")} LIMIT ${options.upTo}
    ) s`

/** The first tasks a bulk action would act on (ascending id, the order it acts in). */
export const bulkSample = (sql: SqlClient.SqlClient, action: BulkAction, filter: Filter, options: { readonly limit: number }) =>
  sql<Summary>`
    SELECT id::text AS id, name, queue, state, priority, run_at, attempt, max_attempts,
           errors -> -1 AS last_error, lease_owner::text AS lease_owner, created_at, attempted_at, finished_at
    FROM tasks WHERE ${bulkWhere(sql, action, filter)} ORDER BY tasks.id LIMIT ${options.limit}`

/** What one batch did: how many rows it picked (a short batch ends the run), acted on, and the last id it saw. */
export interface Batch {
  readonly picked: number
  readonly acted: number
  readonly last: string | null
}

const picked = (sql: SqlClient.SqlClient, action: BulkAction, filter: Filter, after: string, limit: number) =>
  sql`SELECT id FROM tasks WHERE ${bulkWhere(sql, action, filter)} AND id > ${BigInt(after)}
      ORDER BY id LIMIT ${limit} FOR UPDATE SKIP LOCKED`

/**
 * One batch of a bulk action: at most `limit` tasks with an id above `after`
 * (keyset, ascending), locked with SKIP LOCKED so a batch never waits on a
 * dispatcher; each batch is its own short statement. Retry and cancel repeat
 * the single-task statements of tasks.ts (fresh attempt budget; a running
 * task is flagged and its node told to interrupt it), with the NOTIFYs.
 */
export const bulkBatch = (
  sql: SqlClient.SqlClient,
  action: BulkAction,
  filter: Filter,
  page: { readonly after: string; readonly limit: number }
) => {
  const pick = picked(sql, action, filter, page.after, page.limit)
  const summary = sql.literal(`SELECT (SELECT count(*) FROM picked)::int AS picked, (SELECT count(*) FROM acted)::int AS acted,
           (SELECT max(id) FROM picked)::text AS last`)
  switch (action) {
    case "retry":
      return sql<Batch>`
        WITH picked AS (${pick}),
        acted AS (
          UPDATE tasks t SET state = 'available', attempt = 0, run_at = now(), finished_at = NULL,
                             cancel_requested_at = NULL, callback_token_hash = NULL, callback_expires_at = NULL
          FROM picked WHERE t.id = picked.id RETURNING t.id, t.queue
        ),
        notified AS (SELECT count(pg_notify('asterforge_tasks', q)) AS n FROM (SELECT DISTINCT queue AS q FROM acted) qs)
        ${summary}, (SELECT n FROM notified) AS notified`
    case "cancel":
      return sql<Batch>`
        WITH picked AS (${pick}),
        acted AS (
          UPDATE tasks t SET
            state = CASE WHEN t.state = 'running' THEN t.state ELSE 'cancelled' END,
            finished_at = CASE WHEN t.state = 'running' THEN t.finished_at ELSE now() END,
            callback_token_hash = CASE WHEN t.state = 'running' THEN t.callback_token_hash ELSE NULL END,
            cancel_requested_at = now()
          FROM picked WHERE t.id = picked.id RETURNING t.id, t.state
        ),
        notified AS (SELECT count(pg_notify('asterforge_cancel', id::text)) AS n FROM acted WHERE state = 'running')
        ${summary}, (SELECT n FROM notified) AS notified`
    case "delete":
      return sql<Batch>`
        WITH picked AS (${pick}),
        acted AS (DELETE FROM tasks t USING picked WHERE t.id = picked.id RETURNING t.id)
        ${summary}`
  }
}
