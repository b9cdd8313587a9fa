/**
 * SQL for `api_tokens`: bearer tokens of the admin API. Only the token's
 * SHA-256 is stored; the look-up is by that hash (a unique index), so the
 * database never compares secrets.
 */
import type * as SqlClient from "effect/sql/SqlClient"

/** A token as lists show it: never the token or its hash. */
export interface Row {
  readonly id: string
  readonly name: string
  readonly role: "viewer" | "operator" | "admin"
  readonly prefix: string
  readonly created_by: string
  readonly created_at: Date
  readonly expires_at: Date | null
  readonly last_used_at: Date | null
  readonly revoked_at: Date | null
}

const columns = `id::text AS id, name, role, prefix, created_by, created_at, expires_at, last_used_at, revoked_at`

/** A new token; fails on the live-name unique index when the name is taken (the caller checks first). */
export const insert = (
  sql: SqlClient.SqlClient,
  token: {
    readonly id: string
    readonly name: string
    readonly role: string
    readonly hash: string
    readonly prefix: string
    readonly createdBy: string
    readonly expiresInMs: number | null
  }
) =>
  sql<Row>`
    INSERT INTO api_tokens (id, name, role, token_hash, prefix, created_by, expires_at)
    VALUES (${token.id}, ${token.name}, ${token.role}, ${token.hash}, ${token.prefix}, ${token.createdBy},
            CASE WHEN ${token.expiresInMs}::double precision IS NULL THEN NULL
                 ELSE now() + ${token.expiresInMs}::double precision * interval '1 millisecond' END)
    ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING
    RETURNING ${sql.literal(columns)}`

/**
 * The live token with this hash, if any; marks it used (at most once a
 * minute, so a busy client does not write on every request).
 */
export const use = (sql: SqlClient.SqlClient, hash: string) =>
  sql<Row>`
    WITH found AS (
      SELECT id FROM api_tokens
      WHERE token_hash = ${hash} AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
    ),
    touched AS (
      UPDATE api_tokens t SET last_used_at = now() FROM found
      WHERE t.id = found.id AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute')
      RETURNING t.id
    )
    SELECT ${sql.literal(columns)} FROM api_tokens WHERE id IN (SELECT id FROM found)`

/** Every token, live ones first then by name; revoked ones are kept for the record. */
export const list = (sql: SqlClient.SqlClient, options: { readonly includeRevoked: boolean }) =>
  sql<Row>`
    SELECT ${sql.literal(columns)} FROM api_tokens
    WHERE ${options.includeRevoked} OR revoked_at IS NULL
    ORDER BY revoked_at IS NOT NULL, name, created_at DESC LIMIT 10000`

/** Revokes the live token named `name`; its browser sessions end with it. */
export const revoke = (sql: SqlClient.SqlClient, name: string) =>
  sql<Row & { sessions: number }>`
    WITH revoked AS (
      UPDATE api_tokens SET revoked_at = now() WHERE name = ${name} AND revoked_at IS NULL RETURNING *
    ),
    ended AS (
      DELETE FROM control_sessions WHERE token_id IN (SELECT id FROM revoked) RETURNING 1
    )
    SELECT id::text AS id, name, role, prefix, created_by, created_at, expires_at, last_used_at, revoked_at,
           (SELECT count(*) FROM ended)::int AS sessions
    FROM revoked`
