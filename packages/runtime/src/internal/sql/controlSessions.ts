/**
 * SQL for `control_sessions`: browser sessions of the admin API. The cookie
 * holds a random secret; the row's `id` is its SHA-256. `expires_at` is the
 * earlier of the absolute and the idle expiry, moved forward on use.
 */
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import { interval, removeExpired as removeExpiredRows } from "./shared.ts"

/** A live session. */
export interface Row {
  readonly id: string
  readonly csrf_token: string
  readonly actor: string
  readonly role: "viewer" | "operator" | "admin"
  readonly source: string
  readonly token_id: string | null
  readonly created_at: Date
  readonly expires_at: Date
}

const columns = `id, csrf_token, actor, role, source, token_id::text AS token_id, created_at, expires_at`

/** A new session, valid for `absoluteMs` at most and `idleMs` without use. */
export const insert = (
  sql: SqlClient.SqlClient,
  session: {
    readonly id: string
    readonly csrfToken: string
    readonly actor: string
    readonly role: string
    readonly source: string
    readonly tokenId: string | null
    readonly client: string
    readonly absoluteMs: number
    readonly idleMs: number
  }
) =>
  sql<Row>`
    INSERT INTO control_sessions (id, csrf_token, actor, role, source, token_id, client, absolute_expires_at, expires_at)
    VALUES (${session.id}, ${session.csrfToken}, ${session.actor}, ${session.role}, ${session.source}, ${session.tokenId}::uuid,
            ${session.client}, now() + ${interval(sql, session.absoluteMs)},
            least(now() + ${interval(sql, session.absoluteMs)}, now() + ${interval(sql, session.idleMs)}))
    RETURNING ${sql.literal(columns)}`

/**
 * The live session with this id, its idle expiry moved forward (at most once
 * every `touchMs`, so reads do not write on every request).
 */
export const use = (sql: SqlClient.SqlClient, id: string, options: { readonly idleMs: number; readonly touchMs: number }) =>
  sql<Row>`
    WITH found AS (SELECT id FROM control_sessions WHERE id = ${id} AND expires_at > now()),
    touched AS (
      UPDATE control_sessions s
      SET last_seen_at = now(), expires_at = least(s.absolute_expires_at, now() + ${interval(sql, options.idleMs)})
      FROM found WHERE s.id = found.id AND s.last_seen_at < now() - ${interval(sql, options.touchMs)}
      RETURNING s.id
    )
    SELECT ${sql.literal(columns)} FROM control_sessions WHERE id IN (SELECT id FROM found)`

/** Ends a session (logout). */
export const remove = (sql: SqlClient.SqlClient, id: string) =>
  sql<{ actor: string }>`DELETE FROM control_sessions WHERE id = ${id} RETURNING actor`

/** Expired sessions, oldest first through `control_sessions_expires_at`; one fenced batch (session_cleanup lane). */
export const removeExpired = (sql: SqlClient.SqlClient, fence: Statement.Fragment, options: { readonly limit: number }) =>
  removeExpiredRows(sql, fence, { table: "control_sessions", key: "id", limit: options.limit })
