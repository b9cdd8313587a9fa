/** SQL for `audit_events`: the audit writer's batch insert and the retention lane's delete. */
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import { interval } from "./shared.ts"

export interface Row {
  readonly code: string
  readonly actor: string
  readonly subject: string | null
  readonly details: Record<string, unknown>
  readonly at: Date
  readonly node_id: string
}

/**
 * One statement per batch, with the whole batch as a single jsonb parameter
 * expanded by `jsonb_to_recordset`: the statement text is the same for every
 * batch size (one prepared statement), NULL subjects need no typed-array
 * inference, and details keep their JSON shape without double encoding.
 */
export const insert = (sql: SqlClient.SqlClient, rows: ReadonlyArray<Row>) =>
  sql`
    INSERT INTO audit_events (code, actor, subject, details, at, node_id)
    SELECT code, actor, subject, coalesce(details, '{}'::jsonb), at, node_id
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
      AS r(code text, actor text, subject text, details jsonb, at timestamptz, node_id uuid)`

/**
 * Audit events older than the retention, oldest first through `audit_events_at`;
 * one fenced batch (laneLeaders.ts). Nothing else ever deletes audit rows.
 */
export const prune = (
  sql: SqlClient.SqlClient,
  fence: Statement.Fragment,
  options: { readonly retentionMs: number; readonly limit: number }
) =>
  sql<{ deleted: number }>`
    WITH deleted AS (
      DELETE FROM audit_events
      WHERE id IN (
        SELECT id FROM audit_events
        WHERE at < now() - ${interval(sql, options.retentionMs)}
        ORDER BY at
        LIMIT ${options.limit}
        FOR UPDATE SKIP LOCKED
      ) AND ${fence}
      RETURNING 1
    )
    SELECT count(*)::int AS deleted FROM deleted`
