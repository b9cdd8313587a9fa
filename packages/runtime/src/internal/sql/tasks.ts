/**
 * SQL for `tasks`: enqueue, lookups and admin transitions (claims and leases
 * are in leases.ts, the maintenance lanes' transitions in taskMaintenance.ts).
 * State lists come from `TaskState`, so each is the text of the index
 * predicate it must match.
 */
import type * as SqlClient from "effect/sql/SqlClient"
import * as TaskState from "../../TaskState.ts"
import { states } from "./shared.ts"

export type State = TaskState.TaskState

export interface Row {
  readonly id: string
  readonly name: string
  readonly queue: string
  readonly state: State
  readonly priority: number
  readonly run_at: Date
  readonly attempt: number
  readonly max_attempts: number
  readonly payload: unknown
  readonly payload_version: number
  readonly result: unknown
  readonly errors: ReadonlyArray<unknown>
  readonly unique_key: string | null
  readonly deadline: Date | null
  readonly metadata: Record<string, unknown>
  readonly lease_owner: string | null
  readonly lease_expires_at: Date | null
  readonly lease_epoch: number
  readonly callback_expires_at: Date | null
  readonly cancel_requested_at: Date | null
  readonly created_at: Date
  readonly attempted_at: Date | null
  readonly finished_at: Date | null
}

/** Columns returned to clients; the callback token is a secret and never leaves the database this way. */
const columns = `id::text AS id, name, queue, state, priority, run_at, attempt, max_attempts, payload, payload_version,
  result, errors, unique_key, deadline, metadata, lease_owner, lease_expires_at, lease_epoch,
  callback_expires_at, cancel_requested_at, created_at, attempted_at, finished_at`

export interface NewTask {
  readonly name: string
  readonly queue: string
  readonly priority: number
  /** Milliseconds from the database's now(); 0 = due now. Relative, so client clocks do not matter. */
  readonly delay_ms: number
  /** Absolute time, when the caller gave one (overrides delay_ms). */
  readonly run_at: string | null
  readonly max_attempts: number
  readonly payload: unknown
  readonly payload_version: number
  readonly unique_key: string | null
  readonly deadline: string | null
  readonly metadata: Record<string, unknown>
  readonly traceparent: string | null
}

/**
 * A row as the insert's jsonb carries it: the fields at their default are left
 * out (the recordset reads them as NULL and the statement fills the default),
 * so Postgres parses about a third less per task.
 */
const insertRow = (t: NewTask): Record<string, unknown> => {
  const row: Record<string, unknown> = {
    name: t.name,
    queue: t.queue,
    max_attempts: t.max_attempts,
    payload: t.payload,
    payload_version: t.payload_version
  }
  if (t.priority !== 0) row.priority = t.priority
  if (t.delay_ms !== 0) row.delay_ms = t.delay_ms
  if (t.run_at !== null) row.run_at = t.run_at
  if (t.unique_key !== null) row.unique_key = t.unique_key
  if (t.deadline !== null) row.deadline = t.deadline
  if (Object.keys(t.metadata).length > 0) row.metadata = t.metadata
  if (t.traceparent !== null) row.traceparent = t.traceparent
  return row
}

/**
 * Inserts a batch in one statement (the batch travels as one jsonb parameter).
 * Rows are inserted in input order, so ascending ids map back to the inputs
 * that were inserted. A task whose unique key an unfinished task already holds
 * is skipped (the conflict target repeats `tasks_unique_key`'s predicate, so
 * Postgres infers that index); the caller looks the holder up. A batch without
 * unique keys has no conflict clause: `ON CONFLICT` makes every row a
 * speculative insertion. Due tasks are `available`, later ones `scheduled`.
 * NOTIFY wakes idle dispatchers of each queue at commit.
 */
export const insert = (sql: SqlClient.SqlClient, tasks: ReadonlyArray<NewTask>) =>
  sql<{ id: string; unique_key: string | null }>`
    WITH input AS (
      SELECT r.*, coalesce(r.run_at, now() + coalesce(r.delay_ms, 0) * interval '1 millisecond') AS due
      FROM ROWS FROM (jsonb_to_recordset(${JSON.stringify(tasks.map(insertRow))}::jsonb)
        AS (name text, queue text, priority int, delay_ms double precision, run_at timestamptz, max_attempts int,
            payload jsonb, payload_version int, unique_key text, deadline timestamptz, metadata jsonb, traceparent text))
        WITH ORDINALITY AS r(name, queue, priority, delay_ms, run_at, max_attempts, payload, payload_version,
                             unique_key, deadline, metadata, traceparent, ord)
    ),
    inserted AS (
      INSERT INTO tasks (name, queue, state, priority, run_at, max_attempts, payload, payload_version,
                         unique_key, deadline, metadata, traceparent)
      SELECT name, queue, CASE WHEN due <= now() THEN 'available' ELSE 'scheduled' END, coalesce(priority, 0), due, max_attempts,
             payload, payload_version, unique_key, deadline, coalesce(metadata, '{}'::jsonb), traceparent
      FROM input ORDER BY ord
      ${
        tasks.some((t) => t.unique_key !== null)
          ? sql`ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state NOT IN ${states(sql, TaskState.finished)} DO NOTHING`
          : sql``
      }
      RETURNING id, unique_key
    ),
    notified AS (
      SELECT count(pg_notify('asterforge_tasks', q)) AS n FROM (SELECT DISTINCT queue AS q FROM input) qs
    )
    SELECT i.id::text AS id, i.unique_key FROM inserted i CROSS JOIN notified ORDER BY i.id`

/** The unfinished holders of unique keys, through `tasks_unique_key` (whose predicate this repeats). */
export const findUnfinishedByKeys = (sql: SqlClient.SqlClient, keys: ReadonlyArray<string>) =>
  sql<Row>`SELECT ${sql.literal(columns)} FROM tasks
    WHERE unique_key IN ${sql.in(keys)} AND state NOT IN ${states(sql, TaskState.finished)}`

export const getMany = (sql: SqlClient.SqlClient, ids: ReadonlyArray<string>) =>
  sql<Row>`SELECT ${sql.literal(columns)} FROM tasks WHERE id IN ${sql.in(ids.map(BigInt))} ORDER BY tasks.id`

export interface ListFilter {
  readonly state?: ReadonlyArray<State> | undefined
  readonly queue?: string | undefined
  readonly name?: string | undefined
}

/** Keyset pagination on id (descending): stable under concurrent inserts, no OFFSET scans. */
export const list = (
  sql: SqlClient.SqlClient,
  filter: ListFilter,
  page: { readonly limit: number; readonly before?: string | undefined }
) =>
  sql<Row>`SELECT ${sql.literal(columns)} FROM tasks
    WHERE ${sql.and([
      ...(filter.state?.length ? [sql`state IN ${sql.in(filter.state)}`] : []),
      ...(filter.queue ? [sql`queue = ${filter.queue}`] : []),
      ...(filter.name ? [sql`name = ${filter.name}`] : []),
      ...(page.before ? [sql`id < ${BigInt(page.before)}`] : []),
      sql`true`
    ])}
    ORDER BY tasks.id DESC LIMIT ${page.limit}`

/**
 * Cancel: a task that is not running is cancelled here and now; a running one
 * is flagged, and the node running it is told (NOTIFY) to interrupt its handler
 * and record the cancellation under its lease.
 */
export const cancel = (sql: SqlClient.SqlClient, id: string) =>
  sql<{ id: string; state: State; previous: State }>`
    WITH target AS (SELECT id, state FROM tasks WHERE id = ${BigInt(id)} FOR UPDATE),
    updated AS (
      UPDATE tasks t SET
        state = CASE WHEN t.state = 'running' THEN t.state ELSE 'cancelled' END,
        finished_at = CASE WHEN t.state = 'running' THEN t.finished_at ELSE now() END,
        callback_token_hash = CASE WHEN t.state = 'running' THEN t.callback_token_hash ELSE NULL END,
        cancel_requested_at = now()
      FROM target
      WHERE t.id = target.id AND target.state NOT IN ${states(sql, TaskState.finished)}
      RETURNING t.id, t.state, target.state AS previous
    )
    SELECT u.id::text AS id, u.state, u.previous,
           CASE WHEN u.state = 'running' THEN pg_notify('asterforge_cancel', u.id::text) END AS notified
    FROM updated u`

/** Failed or cancelled back to available, with a fresh attempt budget; returns the row as updated. */
export const retry = (sql: SqlClient.SqlClient, id: string) =>
  sql<Row>`
    WITH updated AS (
      UPDATE tasks SET state = 'available', attempt = 0, run_at = now(), finished_at = NULL,
                       cancel_requested_at = NULL, callback_token_hash = NULL, callback_expires_at = NULL
      WHERE id = ${BigInt(id)} AND state IN ${states(sql, TaskState.retriable)}
      RETURNING *
    ),
    notified AS (SELECT count(pg_notify('asterforge_tasks', queue)) AS n FROM updated)
    SELECT ${sql.literal(columns)} FROM updated CROSS JOIN notified`
