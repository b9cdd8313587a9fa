/**
 * SQL for `lane_leaders`: elections, and the epoch fence every maintenance
 * write carries.
 *
 * Shapes shared by every lane's write (statements in the per-table files):
 *
 * - The lane's fence (`fence` below) is in the WHERE clause of the writing
 *   statement itself, so the leadership check and the write are one statement:
 *   a node that lost the lane changes nothing. Being uncorrelated, Postgres
 *   evaluates it once per statement (an InitPlan).
 * - Work is picked in bounded batches, `LIMIT n FOR UPDATE SKIP LOCKED`: one
 *   statement never locks more than `n` rows, never waits on rows a dispatcher
 *   or another writer holds (they are taken by a later pass), and each batch
 *   is its own short transaction.
 * - Each pick follows a partial index whose predicate it repeats (state lists
 *   from `TaskState`), so its cost follows the rows it acts on, not the size
 *   of the history.
 * - Tasks made claimable are announced with pg_notify('asterforge_tasks',
 *   queue) once per queue in the same statement, delivered at commit.
 */
import type * as SqlClient from "effect/sql/SqlClient"

/**
 * After winning the lane's advisory lock: take the lane, with a new epoch.
 * Any write still in flight from the previous leader fails its fence from now on.
 */
export const takeOver = (sql: SqlClient.SqlClient, lane: string, nodeId: string) =>
  sql<{ epoch: string }>`
    INSERT INTO lane_leaders (lane, epoch, node_id, elected_at) VALUES (${lane}, 1, ${nodeId}, now())
    ON CONFLICT (lane) DO UPDATE SET epoch = lane_leaders.epoch + 1, node_id = EXCLUDED.node_id, elected_at = now()
    RETURNING epoch::text AS epoch`

/**
 * The fence: a boolean SQL expression true only while `epoch` is the lane's
 * current epoch. Put it in the WHERE clause of every maintenance write, so the
 * check and the write are one statement (no window between them).
 */
export const fence = (sql: SqlClient.SqlClient, lane: string, epoch: number) =>
  sql`EXISTS (SELECT 1 FROM lane_leaders WHERE lane = ${lane} AND epoch = ${epoch})`

/**
 * After a successful pass, for status pages on any node (the admin API's
 * lanes view); fenced by the epoch itself, so a stale leader's pass is not
 * recorded.
 */
export const markRun = (
  sql: SqlClient.SqlClient,
  lane: string,
  epoch: number,
  pass: { readonly counts: Readonly<Record<string, number>>; readonly durationMs: number; readonly intervalMs: number }
) =>
  sql`UPDATE lane_leaders SET last_run_at = now(), last_counts = ${JSON.stringify(pass.counts)}::jsonb,
        last_duration_ms = ${pass.durationMs}, interval_ms = ${pass.intervalMs}
      WHERE lane = ${lane} AND epoch = ${epoch}`

/** After a failed pass: its one-line reason and time, for the admin API's lanes view (kept after later passes succeed). */
export const markFailed = (sql: SqlClient.SqlClient, lane: string, epoch: number, message: string) =>
  sql`UPDATE lane_leaders SET last_error = ${message.slice(0, 2000)}, last_error_at = now() WHERE lane = ${lane} AND epoch = ${epoch}`

/**
 * The fence held for a transaction: the leader's row, share-locked while
 * `epoch` is still current (no row when it is not). For writes that are
 * several statements (a source's batch through `TaskQueue`): a new leader's
 * `takeOver` waits for this transaction to end, so the batch commits under the
 * old epoch or not at all.
 */
export const holdEpoch = (sql: SqlClient.SqlClient, lane: string, epoch: number) =>
  sql<{ ok: number }>`SELECT 1 AS ok FROM lane_leaders WHERE lane = ${lane} AND epoch = ${epoch} FOR SHARE`
