/**
 * SQL for `tasks`, the maintenance lanes' side: promotion of due work, rescue
 * of expired leases, of dead nodes' tasks, of past deadlines and of timed-out
 * callbacks, and pruning of finished history. (Enqueue, lookups and admin
 * transitions are in tasks.ts; claims and leases in leases.ts.)
 *
 * Every statement here is one fenced, bounded batch in the shape described in
 * laneLeaders.ts; each names the partial index its pick follows, and takes its
 * state list from `TaskState`, so the list is the index predicate's text.
 */
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import * as TaskState from "../../TaskState.ts"
import { interval, states } from "./shared.ts"

type Sql = SqlClient.SqlClient
type Fence = Statement.Fragment

/** Unfinished states a lane may fail on a worker's behalf: every one but `running`, which its worker owns. */
const notRunning = TaskState.unfinished.filter((s) => s !== "running")

/** A timestamp in the ISO form `new Date().toISOString()` gives, for `at` and messages of errors entries. */
const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

/**
 * One `errors` entry in the `Task.ErrorDetail` shape, built in SQL from the
 * row being updated (alias `t`, old values), so a batch needs no round trip per row.
 */
const errorEntry = (sql: Sql, tag: string, message: Statement.Fragment) =>
  sql`jsonb_build_array(jsonb_build_object(
    'tag', ${tag}::text, 'message', ${message}, 'code', NULL::text, 'attempt', t.attempt, 'at', ${sql.literal(iso("now()"))}))`

// ---------------------------------------------------------------------------
// promotion

/**
 * Due scheduled/retryable tasks -> available. Picks oldest-due first through
 * `tasks_due` (its predicate is exactly `TaskState.delayed`). SKIP LOCKED: a
 * row a dispatcher is claiming right now is simply left to it (claims take due
 * scheduled/retryable rows directly). The state is checked again on the update
 * in case the row changed between pick and lock. Returns one row per queue,
 * and notifies each queue once.
 */
export const promoteDue = (sql: Sql, fence: Fence, options: { readonly limit: number }) =>
  sql<{ queue: string; promoted: number }>`
    WITH picked AS (
      SELECT id FROM tasks
      WHERE state IN ${states(sql, TaskState.delayed)} AND run_at <= now()
      ORDER BY run_at
      LIMIT ${options.limit}
      FOR UPDATE SKIP LOCKED
    ),
    promoted AS (
      UPDATE tasks t SET state = 'available'
      FROM picked
      WHERE t.id = picked.id AND t.state IN ${states(sql, TaskState.delayed)} AND ${fence}
      RETURNING t.queue
    )
    SELECT g.queue, g.promoted, pg_notify('asterforge_tasks', g.queue)::text AS notified
    FROM (SELECT queue, count(*)::int AS promoted FROM promoted GROUP BY queue) g`

// ---------------------------------------------------------------------------
// lease rescue and dead nodes' tasks

/** A running task taken from its worker. */
export interface Released {
  readonly id: string
  readonly name: string
  readonly queue: string
  readonly state: "available" | "failed" | "cancelled"
  readonly attempt: number
  /** The message of the `errors` entry the release appended. */
  readonly message: string
}

/**
 * Takes running tasks away from a worker that can no longer finish them, as
 * one update for a picked batch: cancel requested -> cancelled; no attempt
 * left -> failed; else available now. The attempt stays used (the worker did
 * start it), the lease is cleared and the reason appended to `errors`.
 * `lease_epoch` is not bumped: the old worker's late completion is refused
 * because the row is no longer `running` (leases.ts `finish`), and the next
 * claim bumps the epoch anyway.
 */
const releaseRunning = (
  sql: Sql,
  fence: Fence,
  options: {
    readonly picked: Statement.Fragment
    readonly tag: string
    readonly message: Statement.Fragment
    /**
     * Whether the release uses the attempt (a lease that expired: the run may
     * have crashed its worker) or gives it back (the node was declared dead:
     * a verdict on the node, which a paused node that was alive does not
     * deserve; such a release never fails a task).
     */
    readonly countsAttempt: boolean
  }
) => {
  const exhausted = options.countsAttempt ? sql`t.attempt >= t.max_attempts` : sql`false`
  return sql<Released>`
    WITH picked AS (${options.picked}),
    released AS (
      UPDATE tasks t SET
        state = CASE WHEN t.cancel_requested_at IS NOT NULL THEN 'cancelled'
                     WHEN ${exhausted} THEN 'failed'
                     ELSE 'available' END,
        run_at = CASE WHEN t.cancel_requested_at IS NULL AND NOT ${exhausted} THEN now() ELSE t.run_at END,
        finished_at = CASE WHEN t.cancel_requested_at IS NOT NULL OR ${exhausted} THEN now() END,
        attempt = CASE WHEN ${sql.literal(String(options.countsAttempt))} OR t.cancel_requested_at IS NOT NULL THEN t.attempt
                       ELSE greatest(t.attempt - 1, 0) END,
        errors = t.errors || ${errorEntry(sql, options.tag, options.message)},
        lease_owner = NULL,
        lease_expires_at = NULL
      FROM picked
      WHERE t.id = picked.id AND t.state = 'running' AND ${fence}
      RETURNING t.id, t.name, t.queue, t.state, t.attempt, t.errors->-1->>'message' AS message
    ),
    notified AS (
      SELECT count(pg_notify('asterforge_tasks', q.queue)) AS n
      FROM (SELECT DISTINCT queue FROM released WHERE state = 'available') q
    )
    SELECT r.id::text AS id, r.name, r.queue, r.state, r.attempt, r.message FROM released r CROSS JOIN notified
    ORDER BY r.id`
}

/**
 * Running tasks whose lease expired (the worker stopped heartbeating), oldest
 * expiry first through `tasks_running_expiry`. A lease its worker is extending
 * right now is locked and skipped; once extended it no longer matches.
 */
export const rescueExpiredLeases = (sql: Sql, fence: Fence, options: { readonly limit: number }) =>
  releaseRunning(sql, fence, {
    picked: sql`
      SELECT id FROM tasks
      WHERE state = 'running' AND lease_expires_at < now()
      ORDER BY lease_expires_at
      LIMIT ${options.limit}
      FOR UPDATE SKIP LOCKED`,
    tag: "LeaseExpired",
    countsAttempt: true,
    message: sql`'lease expired at ' || ${sql.literal(iso("t.lease_expires_at"))}
      || ': its worker (node ' || coalesce(t.lease_owner::text, 'unknown') || ') stopped extending it'`
  })

/**
 * Running tasks held by a node declared dead, released without waiting for
 * their leases to expire. Running tasks are few (bounded by the workers'
 * concurrency), so they are found through `tasks_running_expiry`'s partial
 * predicate and matched against the (small) set of dead nodes. Any dead node,
 * not only those declared in this pass: a pass interrupted between the two
 * statements is completed by the next one.
 */
export const releaseDeadNodesTasks = (sql: Sql, fence: Fence, options: { readonly limit: number }) =>
  releaseRunning(sql, fence, {
    picked: sql`
      SELECT id FROM tasks
      WHERE state = 'running' AND lease_owner IN (SELECT id FROM nodes WHERE status = 'dead')
      LIMIT ${options.limit}
      FOR UPDATE SKIP LOCKED`,
    tag: "NodeDead",
    countsAttempt: false,
    message: sql`'node ' || coalesce(t.lease_owner::text, 'unknown') || ' was declared dead (no heartbeat); its lease was released'`
  })

// ---------------------------------------------------------------------------
// deadlines and callbacks

/**
 * Unfinished, not running tasks past their deadline -> failed, through
 * `tasks_deadline` (earliest deadline first; its predicate, `NOT IN` the
 * finished states, is implied by this list). Running tasks are left to their
 * worker; a claim refuses past-deadline work itself. A parked task's callback
 * token is cleared, so a late callback answers 404.
 */
export const failPastDeadline = (sql: Sql, fence: Fence, options: { readonly limit: number }) =>
  sql<{ id: string; name: string; attempt: number; previous: string; deadline: Date; message: string }>`
    WITH picked AS (
      SELECT id, state FROM tasks
      WHERE deadline < now() AND state IN ${states(sql, notRunning)}
      ORDER BY deadline
      LIMIT ${options.limit}
      FOR UPDATE SKIP LOCKED
    )
    UPDATE tasks t SET
      state = 'failed',
      finished_at = now(),
      callback_token_hash = NULL,
      callback_expires_at = NULL,
      errors = t.errors || ${errorEntry(
        sql,
        "DeadlineExceeded",
        sql`'deadline ' || ${sql.literal(iso("t.deadline"))}
        || CASE WHEN t.state = 'waiting_callback' THEN ' passed while waiting for a callback' ELSE ' passed before the task could run' END`
      )}
    FROM picked
    WHERE t.id = picked.id AND t.state IN ${states(sql, notRunning)} AND ${fence}
    RETURNING t.id::text AS id, t.name, t.attempt, picked.state AS previous, t.deadline, t.errors->-1->>'message' AS message`

/**
 * Parked tasks whose callback timed out, through `tasks_callback_expiry`:
 * attempts left -> retryable now (claimable at once, and announced), else
 * failed. The token is cleared, so the callback can no longer resolve it; a
 * callback racing this waits for the row lock and then finds no token (404).
 */
export const expireCallbacks = (sql: Sql, fence: Fence, options: { readonly limit: number }) =>
  sql<{ id: string; name: string; queue: string; state: "retryable" | "failed"; attempt: number; message: string }>`
    WITH picked AS (
      SELECT id FROM tasks
      WHERE state = 'waiting_callback' AND callback_expires_at < now()
      ORDER BY callback_expires_at
      LIMIT ${options.limit}
      FOR UPDATE SKIP LOCKED
    ),
    expired AS (
      UPDATE tasks t SET
        state = CASE WHEN t.attempt < t.max_attempts THEN 'retryable' ELSE 'failed' END,
        run_at = CASE WHEN t.attempt < t.max_attempts THEN now() ELSE t.run_at END,
        finished_at = CASE WHEN t.attempt < t.max_attempts THEN NULL ELSE now() END,
        callback_token_hash = NULL,
        callback_expires_at = NULL,
        errors = t.errors || ${errorEntry(sql, "CallbackTimeout", sql`'no callback before ' || ${sql.literal(iso("t.callback_expires_at"))}`)}
      FROM picked
      WHERE t.id = picked.id AND t.state = 'waiting_callback' AND ${fence}
      RETURNING t.id, t.name, t.queue, t.state, t.attempt, t.errors->-1->>'message' AS message
    ),
    notified AS (
      SELECT count(pg_notify('asterforge_tasks', q.queue)) AS n
      FROM (SELECT DISTINCT queue FROM expired WHERE state = 'retryable') q
    )
    SELECT e.id::text AS id, e.name, e.queue, e.state, e.attempt, e.message FROM expired e CROSS JOIN notified
    ORDER BY e.id`

// ---------------------------------------------------------------------------
// retention

/**
 * Finished tasks past their state's retention, oldest first, through the
 * partial index `tasks_finished_at` (predicate: `TaskState.finished`): the
 * range condition uses the shortest retention, the per-state one filters.
 * (Failed rows younger than their retention but older than the succeeded one
 * are walked over by the range; the walk ends at the batch limit or at the
 * shortest cutoff.)
 */
export const pruneFinished = (
  sql: Sql,
  fence: Fence,
  options: {
    readonly succeededMs: number
    readonly failedMs: number
    readonly cancelledMs: number
    readonly limit: number
  }
) =>
  sql<{ deleted: number }>`
    WITH deleted AS (
      DELETE FROM tasks
      WHERE id IN (
        SELECT id FROM tasks
        WHERE state IN ${states(sql, TaskState.finished)}
          AND finished_at < now() - ${interval(sql, Math.min(options.succeededMs, options.failedMs, options.cancelledMs))}
          AND finished_at < now() - CASE state
            WHEN 'succeeded' THEN ${interval(sql, options.succeededMs)}
            WHEN 'failed' THEN ${interval(sql, options.failedMs)}
            ELSE ${interval(sql, options.cancelledMs)} END
        ORDER BY finished_at
        LIMIT ${options.limit}
        FOR UPDATE SKIP LOCKED
      ) AND ${fence}
      RETURNING 1
    )
    SELECT count(*)::int AS deleted FROM deleted`
