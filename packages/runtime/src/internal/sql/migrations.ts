/** SQL around the migrations table and the migration lock. */
import * as Effect from "effect/Effect"
import type * as SqlClient from "effect/sql/SqlClient"

/**
 * One fixed key for "someone is migrating". A blocking session lock (not
 * try-lock): a second node waits for the first to finish rather than starting
 * against a half-migrated schema.
 */
export const lockKey = 0x41_46_4d_47 // "AFMG"
export const lock = "SELECT pg_advisory_lock($1)"
export const unlock = "SELECT pg_advisory_unlock($1)"

/** Highest applied id, 0 on a fresh database (the table does not exist yet). */
export const latestApplied = (sql: SqlClient.SqlClient, table: string) =>
  Effect.gen(function* () {
    const [exists] = yield* sql<{ present: boolean }>`SELECT to_regclass(${table}) IS NOT NULL AS present`
    if (!exists?.present) return 0
    const [row] = yield* sql<{ latest: number | null }>`SELECT max(migration_id)::int AS latest FROM ${sql(table)}`
    return row?.latest ?? 0
  })
