/**
 * SQL for `queue_stats`: counts per (queue, state), recomputed by the
 * queue-stats lane and read by status views and the system-health lane, so
 * nothing counts the tasks table on request.
 */
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import * as TaskState from "../../TaskState.ts"
import { interval, states } from "./shared.ts"

export interface Stat {
  readonly queue: string
  readonly state: string
  readonly count: number
  /** The group vanished since the last refresh; its row was deleted. */
  readonly removed: boolean
}

/**
 * Recomputes queue_stats in one statement. Each unfinished group is counted
 * through the partial index whose predicate it repeats exactly (claimable:
 * `tasks_claimable`, running: `tasks_running_expiry`, parked:
 * `tasks_callback_expiry`), so the scan covers unfinished rows only (unless
 * they are a large share of the table, when the planner rightly prefers a
 * sequential scan). Finished counts cover the window, through
 * `tasks_finished_at`; they can be many more rows, so the caller asks for them
 * less often (`finishedWindowMs` null: finished groups are neither recounted
 * nor deleted this time). Upsert and delete of vanished groups are fenced;
 * they touch disjoint rows (in `fresh` or not), so the two modifying CTEs
 * never meet on a row.
 */
export const refresh = (sql: SqlClient.SqlClient, fence: Statement.Fragment, options: { readonly finishedWindowMs: number | null }) => {
  const finished =
    options.finishedWindowMs === null
      ? sql.literal("")
      : sql`
      UNION ALL
      SELECT queue, state, count(*), NULL::timestamptz
      FROM tasks WHERE state IN ${states(sql, TaskState.finished)} AND finished_at > now() - ${interval(sql, options.finishedWindowMs)}
      GROUP BY queue, state`
  const removable = options.finishedWindowMs === null ? sql`AND s.state IN ${states(sql, TaskState.unfinished)}` : sql.literal("")
  return sql<Stat>`
    WITH fresh AS (
      SELECT queue, state, count(*) AS count, min(created_at) AS oldest_at
      FROM tasks WHERE state IN ${states(sql, TaskState.claimable)} GROUP BY queue, state
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

/** Unfinished tasks over all queues, as of the last refresh (never counts `tasks`). */
export const unfinishedDepth = (sql: SqlClient.SqlClient) =>
  sql<{ depth: number }>`
    SELECT coalesce(sum(count), 0)::float8 AS depth FROM queue_stats
    WHERE state IN ${states(sql, TaskState.unfinished)}`
