/**
 * SQL that belongs to no one table: a group of task states as list text, a
 * duration as an SQL interval (statements of several tables compare
 * timestamps with a configured age), one fenced batch of expired rows for the
 * cleanup lanes, and the trivial round trip the system-health lane measures.
 */
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import * as TaskState from "../../TaskState.ts"

/**
 * `('succeeded', 'failed', 'cancelled')` for `state IN ...`, from a `TaskState`
 * group: constant text, so a statement that repeats a partial index's
 * predicate repeats it exactly, and the groups cannot drift apart.
 */
export const states = (sql: SqlClient.SqlClient, group: ReadonlyArray<TaskState.TaskState>) => sql.literal(TaskState.inList(group))

/**
 * `millis` as an SQL interval. A bound double, not text: one statement text
 * whatever the value, and sub-second precision kept.
 */
export const interval = (sql: SqlClient.SqlClient, millis: number) => sql`(${millis}::double precision * interval '1 millisecond')`

/**
 * Deletes up to `limit` rows of `table` whose `expires_at` has passed, oldest
 * first through its `expires_at` index, found by `key`; one batch under a
 * lane's fence. Answers how many went.
 */
export const removeExpired = (
  sql: SqlClient.SqlClient,
  fence: Statement.Fragment,
  options: { readonly table: string; readonly key: string; readonly limit: number }
) =>
  sql<{ deleted: number }>`
    WITH deleted AS (
      DELETE FROM ${sql(options.table)}
      WHERE ${sql(options.key)} IN (
        SELECT ${sql(options.key)} FROM ${sql(options.table)} WHERE expires_at <= now()
        ORDER BY expires_at LIMIT ${options.limit} FOR UPDATE SKIP LOCKED
      ) AND ${fence}
      RETURNING 1
    )
    SELECT count(*)::int AS deleted FROM deleted`

/** The cheapest round trip: no table, no lock. */
export const ping = (sql: SqlClient.SqlClient) => sql<{ ok: number }>`SELECT 1 AS ok`
