/**
 * SQL that belongs to no one table: a group of task states as list text, a
 * duration as an SQL interval (statements of several tables compare
 * timestamps with a configured age), and the trivial round trip the
 * system-health lane measures.
 */
import type { SqlClient } from "effect/sql"
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

/** The cheapest round trip: no table, no lock. */
export const ping = (sql: SqlClient.SqlClient) => sql<{ ok: number }>`SELECT 1 AS ok`
