/** SQL for `lane_leaders`: elections and the epoch fence every maintenance write carries. */
import type { SqlClient } from "effect/sql"

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

export const markRun = (sql: SqlClient.SqlClient, lane: string, epoch: number) =>
  sql`UPDATE lane_leaders SET last_run_at = now() WHERE lane = ${lane} AND epoch = ${epoch}`
