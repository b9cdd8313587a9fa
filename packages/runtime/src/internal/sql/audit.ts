/** SQL for `audit_events`. */
import type { SqlClient } from "effect/sql"

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
