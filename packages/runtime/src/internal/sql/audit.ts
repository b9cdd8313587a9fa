/** SQL for `audit_events`. */
import type { SqlClient } from "effect/sql"

export interface Row {
  readonly code: string
  readonly actor: string
  readonly subject: string | null
  /** Already-serialised JSON; the column type makes the server parse it as jsonb. */
  readonly details: string
  readonly at: Date
  readonly node_id: string
}

/**
 * One statement per batch. Columns travel as arrays through `unnest`, so the
 * statement text is the same for every batch size: one prepared statement,
 * and six bind parameters instead of six per row.
 */
export const insert = (sql: SqlClient.SqlClient, rows: ReadonlyArray<Row>) =>
  sql`
    INSERT INTO audit_events (code, actor, subject, details, at, node_id)
    SELECT * FROM unnest(
      ${rows.map((r) => r.code)}::text[],
      ${rows.map((r) => r.actor)}::text[],
      ${rows.map((r) => r.subject)}::text[],
      ${rows.map((r) => r.details)}::jsonb[],
      ${rows.map((r) => r.at)}::timestamptz[],
      ${rows.map((r) => r.node_id)}::uuid[]
    )`
