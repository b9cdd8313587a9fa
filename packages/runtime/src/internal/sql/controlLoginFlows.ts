/**
 * SQL for `control_login_flows`: OIDC logins between the redirect to the
 * provider and its callback. A flow is used once (the callback deletes it) or
 * removed by the login_flow_cleanup lane after it expires.
 */
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import { interval, removeExpired as removeExpiredRows } from "./shared.ts"

/** A pending login. */
export interface Row {
  readonly state: string
  readonly nonce: string
  readonly code_verifier: string
  readonly redirect_to: string
}

/** A new flow, valid for `ttlMs`. */
export const insert = (sql: SqlClient.SqlClient, flow: Row & { readonly client: string; readonly ttlMs: number }) =>
  sql`
    INSERT INTO control_login_flows (state, nonce, code_verifier, redirect_to, client, expires_at)
    VALUES (${flow.state}, ${flow.nonce}, ${flow.code_verifier}, ${flow.redirect_to}, ${flow.client}, now() + ${interval(sql, flow.ttlMs)})`

/** Takes the live flow with this state: deleted in the same statement, so a callback can use it only once. */
export const take = (sql: SqlClient.SqlClient, state: string) =>
  sql<Row & { expired: boolean }>`
    DELETE FROM control_login_flows WHERE state = ${state}
    RETURNING state, nonce, code_verifier, redirect_to, expires_at <= now() AS expired`

/** Expired flows through `control_login_flows_expires_at`; one fenced batch (login_flow_cleanup lane). */
export const removeExpired = (sql: SqlClient.SqlClient, fence: Statement.Fragment, options: { readonly limit: number }) =>
  removeExpiredRows(sql, fence, { table: "control_login_flows", key: "state", limit: options.limit })
