/** SQL for `nodes`, the liveness table. */
import type { SqlClient } from "effect/sql"
import type { NodeIdentityShape } from "../../NodeIdentity.ts"

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
  readonly stopped_at: Date | null
}

/** A new id per process start, so this never conflicts; a restart is a new row. */
export const insert = (sql: SqlClient.SqlClient, node: NodeIdentityShape) =>
  sql`
    INSERT INTO nodes (id, name, mode, host, pid, version, status, started_at, heartbeat_at)
    VALUES (${node.id}, ${node.name}, ${node.mode}, ${node.host}, ${node.pid}, ${node.version}, 'running', ${node.startedAt}, now())`

/**
 * Database time, not ours: liveness is judged by comparing heartbeats of
 * different hosts, whose clocks may disagree. Only a running row is refreshed,
 * so a node declared dead stays dead (the update count tells it so).
 */
export const heartbeat = (sql: SqlClient.SqlClient, id: string) =>
  sql<{ id: string }>`UPDATE nodes SET heartbeat_at = now() WHERE id = ${id} AND status = 'running' RETURNING id`

export const markStopped = (sql: SqlClient.SqlClient, id: string) =>
  sql`UPDATE nodes SET status = 'stopped', stopped_at = now() WHERE id = ${id}`
