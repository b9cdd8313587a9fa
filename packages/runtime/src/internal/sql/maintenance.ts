/**
 * SQL of the maintenance lanes (src/lanes). Shapes shared by every write here:
 *
 * - The lane's fence (`EXISTS (... lane_leaders ... epoch ...)`) is in the
 *   WHERE clause of the writing statement itself, so the leadership check and
 *   the write are one statement: a node that lost the lane changes nothing.
 *   Being uncorrelated, Postgres evaluates it once per statement.
 * - Work is picked in bounded batches, `LIMIT n FOR UPDATE SKIP LOCKED`: one
 *   statement never locks more than `n` rows, never waits on rows a dispatcher
 *   or another writer holds (they are taken by a later pass), and each batch
 *   is its own short transaction.
 * - Each pick follows one of the partial indexes of migrations 0001-0004, so
 *   its cost follows the rows it acts on, not the size of the history.
 * - Tasks made claimable are announced with pg_notify('asterforge_tasks',
 *   queue) once per queue in the same statement, delivered at commit.
 */
import type { SqlClient, Statement } from "effect/sql"

type Sql = SqlClient.SqlClient
type Fence = Statement.Fragment

/** Unfinished task states, and the finished ones (tasks.ts `finishedStates`). */
export const unfinishedStates = ["scheduled", "available", "running", "retryable", "waiting_callback"] as const
export const finishedStates = ["succeeded", "failed", "cancelled"] as const

/** `now()` in the ISO form `new Date().toISOString()` gives, for `at` of errors entries. */
const isoNow = `to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

/**
 * One `errors` entry in the `Task.ErrorDetail` shape, built in SQL from the
 * row being updated (alias `t`, old values), so a batch needs no round trip per row.
 */
const errorEntry = (sql: Sql, tag: string, message: Statement.Fragment) =>
  sql`jsonb_build_array(jsonb_build_object(
    'tag', ${tag}::text, 'message', ${message}, 'code', NULL::text, 'attempt', t.attempt, 'at', ${sql.literal(isoNow)}))`

const ms = (sql: Sql, millis: number) => sql`(${millis}::double precision * interval '1 millisecond')`

// ---------------------------------------------------------------------------
// promotion

/**
 * Due scheduled/retryable tasks -> available. Picks oldest-due first through
 * `tasks_due` (its predicate is exactly this state list). SKIP LOCKED: a row a
 * dispatcher is claiming right now is simply left to it (claims take due
 * scheduled/retryable rows directly). The state is checked again on the update
 * in case the row changed between pick and lock. Returns one row per queue,
 * and notifies each queue once.
 */
export const promoteDue = (sql: Sql, fence: Fence, options: { readonly limit: number }) =>
  sql<{ queue: string; promoted: number }>`
    WITH picked AS (
      SELECT id FROM tasks
      WHERE state IN ('scheduled', 'retryable') AND run_at <= now()
      ORDER BY run_at
      LIMIT ${options.limit}
      FOR UPDATE SKIP LOCKED
    ),
    promoted AS (
      UPDATE tasks t SET state = 'available'
      FROM picked
      WHERE t.id = picked.id AND t.state IN ('scheduled', 'retryable') AND ${fence}
      RETURNING t.queue
    )
    SELECT g.queue, g.promoted, pg_notify('asterforge_tasks', g.queue)::text AS notified
    FROM (SELECT queue, count(*)::int AS promoted FROM promoted GROUP BY queue) g`

// ---------------------------------------------------------------------------
// lease rescue and dead nodes

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
const releaseRunning = (sql: Sql, fence: Fence, options: {
  readonly picked: Statement.Fragment
  readonly tag: string
  readonly message: Statement.Fragment
}) =>
  sql<Released>`
    WITH picked AS (${options.picked}),
    released AS (
      UPDATE tasks t SET
        state = CASE WHEN t.cancel_requested_at IS NOT NULL THEN 'cancelled'
                     WHEN t.attempt >= t.max_attempts THEN 'failed'
                     ELSE 'available' END,
        run_at = CASE WHEN t.cancel_requested_at IS NULL AND t.attempt < t.max_attempts THEN now() ELSE t.run_at END,
        finished_at = CASE WHEN t.cancel_requested_at IS NOT NULL OR t.attempt >= t.max_attempts THEN now() END,
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
    message: sql`'node ' || coalesce(t.lease_owner::text, 'unknown') || ' was declared dead (no heartbeat); its lease was released'`
  })

/**
 * Running nodes whose heartbeat is older than `staleMs` -> dead. Through the
 * partial index `nodes_running_heartbeat`. A node heartbeating right now holds
 * its row: skipped, and fresh once it commits.
 */
export const declareDeadNodes = (sql: Sql, fence: Fence, options: { readonly staleMs: number; readonly limit: number }) =>
  sql<{ id: string; name: string; mode: string; host: string; pid: number; heartbeat_at: Date }>`
    UPDATE nodes SET status = 'dead', stopped_at = now()
    WHERE id IN (
      SELECT id FROM nodes
      WHERE status = 'running' AND heartbeat_at < now() - ${ms(sql, options.staleMs)}
      ORDER BY heartbeat_at
      LIMIT ${options.limit}
      FOR UPDATE SKIP LOCKED
    ) AND status = 'running' AND ${fence}
    RETURNING id::text AS id, name, mode, host, pid, heartbeat_at`

/** Rows of nodes stopped or dead for longer than `retentionMs`. The table is small: no index needed. */
export const removeOldNodes = (sql: Sql, fence: Fence, options: { readonly retentionMs: number; readonly limit: number }) =>
  sql<{ removed: number }>`
    WITH removed AS (
      DELETE FROM nodes
      WHERE id IN (
        SELECT id FROM nodes
        WHERE status IN ('stopped', 'dead') AND coalesce(stopped_at, heartbeat_at) < now() - ${ms(sql, options.retentionMs)}
        LIMIT ${options.limit}
        FOR UPDATE SKIP LOCKED
      ) AND ${fence}
      RETURNING 1
    )
    SELECT count(*)::int AS removed FROM removed`

// ---------------------------------------------------------------------------
// deadlines and callbacks

/**
 * Unfinished, not running tasks past their deadline -> failed, through
 * `tasks_deadline` (earliest deadline first). Running tasks are left to their
 * worker; a claim refuses past-deadline work itself. A parked task's callback
 * token is cleared, so a late callback answers 404.
 */
export const failPastDeadline = (sql: Sql, fence: Fence, options: { readonly limit: number }) =>
  sql<{ id: string; name: string; attempt: number; previous: string; deadline: Date; message: string }>`
    WITH picked AS (
      SELECT id, state FROM tasks
      WHERE deadline < now() AND state IN ('scheduled', 'available', 'retryable', 'waiting_callback')
      ORDER BY deadline
      LIMIT ${options.limit}
      FOR UPDATE SKIP LOCKED
    )
    UPDATE tasks t SET
      state = 'failed',
      finished_at = now(),
      callback_token = NULL,
      callback_expires_at = NULL,
      errors = t.errors || ${errorEntry(sql, "DeadlineExceeded", sql`'deadline ' || ${sql.literal(iso("t.deadline"))}
        || CASE WHEN t.state = 'waiting_callback' THEN ' passed while waiting for a callback' ELSE ' passed before the task could run' END`)}
    FROM picked
    WHERE t.id = picked.id AND t.state IN ('scheduled', 'available', 'retryable', 'waiting_callback') AND ${fence}
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
        callback_token = NULL,
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
 * partial index `tasks_finished_at`: the range condition uses the shortest
 * retention, the per-state one filters. (Failed rows younger than their
 * retention but older than the succeeded one are walked over by the range;
 * the walk ends at the batch limit or at the shortest cutoff.)
 */
export const pruneFinishedTasks = (sql: Sql, fence: Fence, options: {
  readonly succeededMs: number
  readonly failedMs: number
  readonly cancelledMs: number
  readonly limit: number
}) =>
  sql<{ deleted: number }>`
    WITH deleted AS (
      DELETE FROM tasks
      WHERE id IN (
        SELECT id FROM tasks
        WHERE state IN ('succeeded', 'failed', 'cancelled')
          AND finished_at < now() - ${ms(sql, Math.min(options.succeededMs, options.failedMs, options.cancelledMs))}
          AND finished_at < now() - CASE state
            WHEN 'succeeded' THEN ${ms(sql, options.succeededMs)}
            WHEN 'failed' THEN ${ms(sql, options.failedMs)}
            ELSE ${ms(sql, options.cancelledMs)} END
        ORDER BY finished_at
        LIMIT ${options.limit}
        FOR UPDATE SKIP LOCKED
      ) AND ${fence}
      RETURNING 1
    )
    SELECT count(*)::int AS deleted FROM deleted`

/** Audit events older than the retention, oldest first through `audit_events_at`. */
export const pruneAuditEvents = (sql: Sql, fence: Fence, options: { readonly retentionMs: number; readonly limit: number }) =>
  sql<{ deleted: number }>`
    WITH deleted AS (
      DELETE FROM audit_events
      WHERE id IN (
        SELECT id FROM audit_events
        WHERE at < now() - ${ms(sql, options.retentionMs)}
        ORDER BY at
        LIMIT ${options.limit}
        FOR UPDATE SKIP LOCKED
      ) AND ${fence}
      RETURNING 1
    )
    SELECT count(*)::int AS deleted FROM deleted`

// ---------------------------------------------------------------------------
// queue statistics and health

export interface QueueStat {
  readonly queue: string
  readonly state: string
  readonly count: number
  /** The group vanished since the last refresh; its row was deleted. */
  readonly removed: boolean
}

/**
 * Recomputes queue_stats in one statement. Each unfinished group is counted
 * through the partial index whose predicate it repeats exactly (claimable,
 * running, parked), so the scan covers unfinished rows only (unless they are a
 * large share of the table, when the planner rightly prefers a sequential scan).
 * Finished counts cover the window, through `tasks_finished_at`; they can be
 * many more rows, so the caller asks for them less often (`finishedWindowMs`
 * null: finished groups are neither recounted nor deleted this time).
 * Upsert and delete of vanished groups are fenced; they touch disjoint rows
 * (in `fresh` or not), so the two modifying CTEs never meet on a row.
 */
export const refreshQueueStats = (sql: Sql, fence: Fence, options: { readonly finishedWindowMs: number | null }) => {
  const finished = options.finishedWindowMs === null
    ? sql.literal("")
    : sql`
      UNION ALL
      SELECT queue, state, count(*), NULL::timestamptz
      FROM tasks WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at > now() - ${ms(sql, options.finishedWindowMs)}
      GROUP BY queue, state`
  const removable = options.finishedWindowMs === null
    ? sql.literal("AND s.state IN ('scheduled', 'available', 'running', 'retryable', 'waiting_callback')")
    : sql.literal("")
  return sql<QueueStat>`
    WITH fresh AS (
      SELECT queue, state, count(*) AS count, min(created_at) AS oldest_at
      FROM tasks WHERE state IN ('available', 'scheduled', 'retryable') GROUP BY queue, state
      UNION ALL
      SELECT queue, state, count(*), min(created_at)
      FROM tasks WHERE state = 'running' GROUP BY queue, state
      UNION ALL
      SELECT queue, state, count(*), min(created_at)
      FROM tasks WHERE state = 'waiting_callback' GROUP BY queue, state
      ${finished}
    ),
    upserted AS (
      INSERT INTO queue_stats (queue, state, count, oldest_at, refreshed_at)
      SELECT queue, state, count, oldest_at, now() FROM fresh WHERE ${fence}
      ON CONFLICT (queue, state) DO UPDATE
        SET count = EXCLUDED.count, oldest_at = EXCLUDED.oldest_at, refreshed_at = EXCLUDED.refreshed_at
      RETURNING queue, state, count
    ),
    removed AS (
      DELETE FROM queue_stats s
      WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.queue = s.queue AND f.state = s.state) ${removable} AND ${fence}
      RETURNING queue, state
    )
    SELECT queue, state, count::float8 AS count, false AS removed FROM upserted
    UNION ALL
    SELECT queue, state, 0::float8, true FROM removed
    ORDER BY queue, state`
}

/** The cheapest round trip: no table, no lock. */
export const ping = (sql: Sql) => sql<{ ok: number }>`SELECT 1 AS ok`

/** Unfinished tasks over all queues, as of the last queue-stats pass (never counts `tasks`). */
export const unfinishedDepth = (sql: Sql) =>
  sql<{ depth: number }>`
    SELECT coalesce(sum(count), 0)::float8 AS depth FROM queue_stats
    WHERE state IN ('scheduled', 'available', 'running', 'retryable', 'waiting_callback')`
