/**
 * SQL for `nodes`, the liveness table: a node's own row (insert, heartbeat,
 * stop) and the liveness lane's judgement of the others (declare dead, remove
 * old rows). Node statuses are `running`, `stopped` and `dead`.
 */
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import type { NodeIdentityShape } from "../../NodeIdentity.ts"
import { interval } from "./shared.ts"

/** A node's liveness row. */
export interface Row {
  readonly id: string
  readonly name: string
  readonly mode: string
  readonly host: string
  readonly pid: number
  readonly version: string
  readonly status: "running" | "stopped" | "dead"
  readonly started_at: Date
  readonly heartbeat_at: Date
  readonly heartbeat_interval_ms: number
  readonly stopped_at: Date | null
}

/**
 * A new id per process start, so this never conflicts; a restart is a new
 * row. The row carries the node's heartbeat period: others judge it by that.
 */
export const insert = (sql: SqlClient.SqlClient, node: NodeIdentityShape, heartbeatIntervalMs: number) =>
  sql`
    INSERT INTO nodes (id, name, mode, host, pid, version, status, started_at, heartbeat_at, heartbeat_interval_ms)
    VALUES (${node.id}, ${node.name}, ${node.mode}, ${node.host}, ${node.pid}, ${node.version}, 'running', ${node.startedAt}, now(),
            ${heartbeatIntervalMs})`

/**
 * Database time, not ours: liveness is judged by comparing heartbeats of
 * different hosts, whose clocks may disagree. Only a running row is refreshed,
 * so a node declared dead stays dead (the update count tells it so).
 */
export const heartbeat = (sql: SqlClient.SqlClient, id: string) =>
  sql<{ id: string }>`UPDATE nodes SET heartbeat_at = now() WHERE id = ${id} AND status = 'running' RETURNING id`

/** A graceful stop: the node's last word on its row. */
export const markStopped = (sql: SqlClient.SqlClient, id: string) =>
  sql`UPDATE nodes SET status = 'stopped', stopped_at = now() WHERE id = ${id}`

/** A node the liveness lane declared dead, as it was last seen. */
export interface Declared {
  readonly id: string
  readonly name: string
  readonly mode: string
  readonly host: string
  readonly pid: number
  readonly heartbeat_at: Date
}

/**
 * Running nodes that missed `missed` of their own heartbeat periods -> dead;
 * one fenced batch. The running rows are few (partial index
 * `nodes_running_heartbeat`). A node heartbeating right now holds its row:
 * skipped, and fresh once it commits.
 *
 * `healthyForMs`, when the judge's own heartbeat failed lately, is how long it
 * has been writing again: a node is only judged once the judge has been able
 * to see a whole window of that node's heartbeats (a duration on the judge's
 * clock, never compared with the database's).
 */
export const declareDead = (
  sql: SqlClient.SqlClient,
  fence: Statement.Fragment,
  options: { readonly missed: number; readonly healthyForMs: number | null; readonly limit: number; readonly self: string }
) =>
  sql<Declared>`
    UPDATE nodes SET status = 'dead', stopped_at = now()
    WHERE id IN (
      SELECT id FROM nodes
      WHERE status = 'running' AND id <> ${options.self}
        AND heartbeat_at < now() - make_interval(secs => heartbeat_interval_ms * ${options.missed} / 1000.0)
        AND (${options.healthyForMs}::bigint IS NULL OR heartbeat_interval_ms::bigint * ${options.missed} < ${options.healthyForMs}::bigint)
      ORDER BY heartbeat_at
      LIMIT ${options.limit}
      FOR UPDATE SKIP LOCKED
    ) AND status = 'running' AND ${fence}
    RETURNING id::text AS id, name, mode, host, pid, heartbeat_at`

/** Rows of nodes stopped or dead for longer than `retentionMs`; one fenced batch. The table is small: no index needed. */
export const removeOld = (
  sql: SqlClient.SqlClient,
  fence: Statement.Fragment,
  options: { readonly retentionMs: number; readonly limit: number }
) =>
  sql<{ removed: number }>`
    WITH removed AS (
      DELETE FROM nodes
      WHERE id IN (
        SELECT id FROM nodes
        WHERE status IN ('stopped', 'dead') AND coalesce(stopped_at, heartbeat_at) < now() - ${interval(sql, options.retentionMs)}
        LIMIT ${options.limit}
        FOR UPDATE SKIP LOCKED
      ) AND ${fence}
      RETURNING 1
    )
    SELECT count(*)::int AS removed FROM removed`
