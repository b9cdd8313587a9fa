/**
 * SQL of the lease protocol: claim, heartbeat, finish and release. Every write
 * after the claim names `(id, lease_epoch)`: the epoch is the fencing token, so
 * a worker whose lease was rescued and re-claimed elsewhere can no longer
 * change the row.
 */
import * as Effect from "effect/Effect"
import type * as SqlClient from "effect/sql/SqlClient"
import type * as SqlError from "effect/sql/SqlError"
import * as Crypto from "node:crypto"
import * as TaskState from "../../TaskState.ts"
import { states } from "./shared.ts"
import type * as Task from "../../Task.ts"
import type * as TaskOutcome from "../../TaskOutcome.ts"

/**
 * One statement claims up to `limit` due tasks of a queue: by priority (lower
 * first), then due time. SKIP LOCKED lets concurrent claimers take disjoint
 * rows without waiting. Due `scheduled`/`retryable` rows are claimed directly,
 * so time-based work runs even before a promotion pass. A queue an operator
 * paused (`queue_settings`) is not claimed: the NOT EXISTS is uncorrelated, one
 * primary-key probe per statement (an InitPlan). Only a node whose row is
 * `running` claims. The claimed tasks come back in claim order as one JSON
 * array of positional arrays (`ClaimedRow`): one `JSON.parse` of the batch
 * costs the worker far less than decoding its rows column by column, and
 * without keys the text is half as long.
 */
export const claim = (sql: SqlClient.SqlClient, options: ClaimOptions): Effect.Effect<ReadonlyArray<Task.Claimed>, SqlError.SqlError> =>
  claimStatement(sql, options).pipe(Effect.map((rows) => (rows[0]?.tasks ?? []).map((row) => toClaimed(options.queue, row))))

/** One claimed task as the claim sends it: the columns of `claimStatement`'s json_build_array, in order. */
export type ClaimedRow = readonly [
  id: string,
  name: string,
  payload: unknown,
  payloadVersion: number,
  attempt: number,
  maxAttempts: number,
  leaseEpoch: number,
  metadata: Record<string, unknown>,
  deadline: string | null,
  deadlinePassed: boolean,
  traceparent: string | null,
  queuedMs: number
]

const toClaimed = (queue: string, r: ClaimedRow): Task.Claimed => ({
  id: r[0],
  name: r[1],
  queue,
  payload: r[2],
  payloadVersion: r[3],
  attempt: r[4],
  maxAttempts: r[5],
  leaseEpoch: r[6],
  metadata: r[7],
  // JSON has no dates: the (rare) deadline arrives as text.
  deadline: r[8] === null ? null : new Date(r[8]),
  deadlinePassed: r[9],
  traceparent: r[10],
  queuedMs: r[11]
})

/** What a claim takes. */
export interface ClaimOptions {
  readonly queue: string
  /** Only tasks this node has handlers for: unknown names stay for a node that knows them. */
  readonly names: ReadonlyArray<string>
  readonly limit: number
  readonly owner: string
  readonly leaseMs: number
}

/** The claim's statement, answering one row whose `tasks` is the JSON array (`claim` unpacks it; `EXPLAIN` needs the statement). */
export const claimStatement = (sql: SqlClient.SqlClient, options: ClaimOptions) =>
  sql<{ tasks: Array<ClaimedRow> }>`
    WITH picked AS (
      SELECT id FROM tasks
      WHERE queue = ${options.queue} AND state IN ${states(sql, TaskState.claimable)} AND run_at <= now()
        AND name IN ${sql.in(options.names)}
        -- A node declared dead claims nothing, even before its own heartbeat tells it so.
        AND EXISTS (SELECT 1 FROM nodes WHERE id = ${options.owner} AND status = 'running')
        AND NOT EXISTS (SELECT 1 FROM queue_settings s WHERE s.queue = ${options.queue} AND s.paused)
      ORDER BY priority, run_at, id
      LIMIT ${options.limit}
      FOR UPDATE SKIP LOCKED
    ),
    claimed AS (
      UPDATE tasks t SET
        state = 'running',
        attempt = t.attempt + 1,
        lease_owner = ${options.owner},
        lease_expires_at = now() + ${options.leaseMs} * interval '1 millisecond',
        lease_epoch = t.lease_epoch + 1,
        attempted_at = now()
      -- Through the primary key however large the table: a join with picked let the planner
      -- seq-scan a small table (20,000 rows: 6-13 ms a batch instead of 2.5).
      WHERE t.id = ANY(ARRAY(SELECT id FROM picked))
      RETURNING t.id, t.name, t.payload, t.payload_version, t.attempt, t.max_attempts, t.lease_epoch, t.metadata,
                t.deadline, t.traceparent, t.created_at, t.priority, t.run_at
    )
    SELECT coalesce(json_agg(json_build_array(
      c.id::text, c.name, c.payload, c.payload_version, c.attempt, c.max_attempts, c.lease_epoch, c.metadata,
      c.deadline, coalesce(c.deadline <= now(), false), c.traceparent, round(extract(epoch FROM now() - c.created_at) * 1000)
    ) ORDER BY c.priority, c.run_at, c.id), '[]') AS tasks
    FROM claimed c`

/**
 * One statement per node extends every lease it holds (found by id through the
 * primary key, and still owned by this node). Returns the tasks an admin asked
 * to cancel, as a backstop for a missed NOTIFY.
 *
 * `lease_owner` is set by the claim and cleared by every way out of `running`
 * (finish, rescue, hand-back), so owning the row means holding its lease; no
 * `state = 'running'` condition, which would let the planner read the partial
 * index of every running task instead (see `finish`).
 */
export const heartbeat = (
  sql: SqlClient.SqlClient,
  options: { readonly owner: string; readonly ids: ReadonlyArray<string>; readonly leaseMs: number }
) =>
  sql<{ id: string; cancelRequested: boolean }>`
    UPDATE tasks SET lease_expires_at = now() + ${options.leaseMs} * interval '1 millisecond'
    WHERE id = ANY(${idArray(options.ids)}::bigint[]) AND lease_owner = ${options.owner}
    RETURNING id::text AS id, cancel_requested_at IS NOT NULL AS "cancelRequested"`

/**
 * Hands back, at once and with the attempt unused, the running tasks leased
 * to `owner` (in one queue, or all) except the `held` ones: claims that
 * committed while their answer was lost with the connection, so the node
 * never ran them. A task whose cancel was requested meanwhile is cancelled.
 * The epoch is left alone: this node never knew these leases, so nothing of
 * it can write under them, and the next claim bumps the epoch anyway.
 */
export const reconcile = (
  sql: SqlClient.SqlClient,
  options: { readonly owner: string; readonly queue: string | undefined; readonly held: ReadonlyArray<string> }
) =>
  sql<{ id: string; queue: string; state: string }>`
    WITH released AS (
      UPDATE tasks SET
        state = CASE WHEN cancel_requested_at IS NULL THEN 'available' ELSE 'cancelled' END,
        finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE now() END,
        attempt = greatest(attempt - 1, 0),
        run_at = CASE WHEN cancel_requested_at IS NULL THEN now() ELSE run_at END,
        lease_owner = NULL,
        lease_expires_at = NULL
      WHERE lease_owner = ${options.owner} AND state = 'running'
        AND ${options.queue === undefined ? sql`true` : sql`queue = ${options.queue}`}
        AND NOT (id = ANY(${idArray(options.held)}::bigint[]))
      RETURNING id, queue, state
    ),
    notified AS (
      SELECT count(pg_notify('asterforge_tasks', q.queue)) AS n
      FROM (SELECT DISTINCT queue FROM released WHERE state = 'available') q
    )
    SELECT r.id::text AS id, r.queue, r.state FROM released r CROSS JOIN notified ORDER BY r.id`

/**
 * One row of `finish`: the next state of one task under the lease epoch it
 * was claimed with. Only what differs from a plain success is present (the
 * statement reads a missing key as NULL, or 0 for `attempt_delta`): most rows
 * are `{ id, epoch, state }`, so a batch of a thousand is small to build, send
 * and parse.
 */
export interface Finish {
  readonly id: string
  readonly epoch: number
  readonly state: TaskOutcome.NextState
  readonly result?: unknown
  readonly error?: unknown
  /** run_at = now() + this, for retryable/scheduled/available. */
  readonly delay_ms?: number
  /** -1 gives back the attempt the claim took (snooze, shutdown release). */
  readonly attempt_delta?: number
  /** SHA-256 (hex) of the task's callback token: the token itself is never stored. */
  readonly callback_token_hash?: string
  readonly callback_timeout_ms?: number
}

/** The `finish` row of a claimed task's outcome: the one place outcomes meet column names. */
export const finishRow = (task: Pick<Task.Claimed, "id" | "leaseEpoch">, outcome: TaskOutcome.Outcome): Finish => {
  const row: { -readonly [K in keyof Finish]: Finish[K] } = { id: task.id, epoch: task.leaseEpoch, state: outcome.state }
  if (outcome.result !== null && outcome.result !== undefined) row.result = outcome.result
  if (outcome.error !== null) row.error = outcome.error
  if (outcome.delayMs !== null) row.delay_ms = outcome.delayMs
  if (outcome.attemptDelta !== 0) row.attempt_delta = outcome.attemptDelta
  if (outcome.callbackToken !== null) row.callback_token_hash = hashToken(outcome.callbackToken)
  if (outcome.callbackTimeoutMs !== null) row.callback_timeout_ms = outcome.callbackTimeoutMs
  return row
}

/**
 * Writes a batch of outcomes in one statement. Only rows still leased to
 * `owner` under the same epoch change (the fence: a rescue clears the owner,
 * a new claim moves the epoch on); the ids returned are the refused ones
 * (stale), usually none, so the answer costs nothing to read. Tasks made
 * available again are announced at commit.
 *
 * The rows are found through the primary key (`id = ANY`, estimated at the
 * batch's size). The fence names the owner, not `state = 'running'`: with
 * that condition the planner reads the partial index of every running task
 * (`tasks_running_expiry`) and filters it by id, and with statistics taken
 * while none ran it believes that index holds one row, so each batch cost
 * grew with the tasks running on every node (`pnpm explain:leases`).
 */
export const finish = (sql: SqlClient.SqlClient, owner: string, batch: ReadonlyArray<Finish>) =>
  sql<{ id: string }>`
    WITH c AS (
      SELECT r.*, ${owner}::uuid AS owner FROM jsonb_to_recordset(${JSON.stringify(batch)}::jsonb)
        AS r(id bigint, epoch int, state text, result jsonb, error jsonb, delay_ms double precision,
             attempt_delta int, callback_token_hash text, callback_timeout_ms double precision)
    ),
    updated AS (
      UPDATE tasks t SET
        state = c.state,
        result = coalesce(c.result, t.result),
        errors = CASE WHEN c.error IS NULL THEN t.errors ELSE t.errors || jsonb_build_array(c.error) END,
        run_at = CASE WHEN c.delay_ms IS NULL THEN t.run_at ELSE now() + c.delay_ms * interval '1 millisecond' END,
        attempt = t.attempt + coalesce(c.attempt_delta, 0),
        finished_at = CASE WHEN c.state IN ${states(sql, TaskState.finished)} THEN now() END,
        callback_token_hash = c.callback_token_hash,
        callback_expires_at = CASE WHEN c.callback_timeout_ms IS NULL THEN NULL
                                   ELSE now() + c.callback_timeout_ms * interval '1 millisecond' END,
        lease_owner = NULL,
        lease_expires_at = NULL
      FROM c
      WHERE t.id = ANY(${idArray(batch.map((r) => r.id))}::bigint[])
        AND t.id = c.id AND t.lease_epoch = c.epoch AND t.lease_owner = c.owner
      RETURNING t.id, t.state, t.queue, t.run_at
    ),
    notified AS (
      SELECT count(pg_notify('asterforge_tasks', q)) AS n
      FROM (SELECT DISTINCT queue AS q FROM updated WHERE state = 'available' AND run_at <= now()) qs
    )
    SELECT c.id::text AS id FROM c CROSS JOIN notified WHERE NOT EXISTS (SELECT 1 FROM updated u WHERE u.id = c.id)`

/** Task ids as one `bigint[]` literal: one parameter however many, and compact to send. */
const idArray = (ids: ReadonlyArray<string>): string => `{${ids.join(",")}}`

/** SHA-256 (hex) of a callback token: what the database holds and looks up. */
export const hashToken = (token: string): string => Crypto.createHash("sha256").update(token).digest("hex")

/**
 * Resolves a parked task once, as its callback's outcome says: only the first
 * caller with the token changes it, and only while the callback is in time
 * (before `callback_expires_at` and the task's `deadline`, by the database's
 * clock: the rescue lanes may not have run yet). An `undefined` result keeps
 * the stored one.
 */
export const resolveCallback = (
  sql: SqlClient.SqlClient,
  token: string,
  outcome: TaskOutcome.Outcome<"succeeded" | "failed" | "retryable">
) => {
  const error = outcome.error === null ? null : JSON.stringify(outcome.error)
  return sql<{ id: string; name: string; state: string; queue: string }>`
    UPDATE tasks SET
      state = ${outcome.state},
      result = coalesce(${outcome.result === undefined ? null : JSON.stringify(outcome.result)}::jsonb, result),
      errors = CASE WHEN ${error}::jsonb IS NULL THEN errors ELSE errors || jsonb_build_array(${error}::jsonb) END,
      run_at = CASE WHEN ${outcome.delayMs}::double precision IS NULL THEN run_at
                    ELSE now() + ${outcome.delayMs}::double precision * interval '1 millisecond' END,
      finished_at = CASE WHEN ${outcome.state} IN ${states(sql, TaskState.finished)} THEN now() END,
      callback_token_hash = NULL,
      callback_expires_at = NULL
    WHERE callback_token_hash = ${hashToken(token)} AND state = 'waiting_callback'
      AND (callback_expires_at IS NULL OR callback_expires_at > now()) AND (deadline IS NULL OR deadline > now())
    RETURNING id::text AS id, name, state, queue`
}

/** A task parked for a callback, and whether its callback or its deadline has passed. */
export interface Parked extends TaskOutcome.Attempt {
  readonly callbackExpiresAt: Date | null
  readonly deadline: Date | null
  /** `callback_expires_at` or `deadline` is past, by the database's clock. */
  readonly expired: boolean
}

/** The task parked under a callback token, if it still waits (expired or not). */
export const findByCallbackToken = (sql: SqlClient.SqlClient, token: string) =>
  sql<Parked>`
    SELECT id::text AS id, name, attempt, max_attempts AS "maxAttempts",
           callback_expires_at AS "callbackExpiresAt", deadline,
           coalesce(callback_expires_at <= now(), false) OR coalesce(deadline <= now(), false) AS expired
    FROM tasks
    WHERE callback_token_hash = ${hashToken(token)} AND state = 'waiting_callback'`
