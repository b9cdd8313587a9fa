/**
 * SQL for `queue_settings`: operators pause and resume queues. The claim
 * (leases.ts) reads the paused flag of its queue by primary key in the same
 * statement, so a pause takes effect on every node at its next claim.
 */
import type * as SqlClient from "effect/sql/SqlClient"

/** A queue's settings row. */
export interface Row {
  readonly queue: string
  readonly paused: boolean
  readonly changed_by: string
  readonly changed_at: Date
}

/**
 * Pauses or resumes `queue`; returns the previous flag (false when the queue
 * had no row). A resume NOTIFYs the queue's dispatchers at commit, so claiming
 * restarts at once instead of at the next poll.
 */
export const setPaused = (sql: SqlClient.SqlClient, queue: string, paused: boolean, actor: string) =>
  sql<{ previous: boolean; notified: number }>`
    WITH previous AS (SELECT paused FROM queue_settings WHERE queue = ${queue}),
    upserted AS (
      INSERT INTO queue_settings (queue, paused, changed_by, changed_at) VALUES (${queue}, ${paused}, ${actor}, now())
      ON CONFLICT (queue) DO UPDATE SET paused = EXCLUDED.paused, changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at
      RETURNING queue
    )
    SELECT coalesce((SELECT paused FROM previous), false) AS previous,
           (SELECT count(pg_notify('asterforge_tasks', queue)) FROM upserted WHERE NOT ${paused})::int AS notified`

/** Every queue that has settings (a handful of rows). */
export const all = (sql: SqlClient.SqlClient) =>
  sql<Row>`SELECT queue, paused, changed_by, changed_at FROM queue_settings ORDER BY queue LIMIT 10000`

/** The paused queues, for readiness. */
export const paused = (sql: SqlClient.SqlClient) =>
  sql<Row>`SELECT queue, paused, changed_by, changed_at FROM queue_settings WHERE paused ORDER BY queue LIMIT 1000`
