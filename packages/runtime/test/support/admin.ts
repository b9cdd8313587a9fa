/**
 * A client of the admin API for tests: real HTTP requests to an in-process
 * node (`Kit.NodeAddress`), with a bearer token, a session cookie (and its
 * CSRF token) or nothing, and the answer's status, headers and JSON.
 */
import { Effect } from "effect"
import * as Kit from "./kit.ts"

/** The admin token the test nodes are configured with. */
export const adminToken = "test-admin-token-0123456789abcdef0123456789"

export interface Credentials {
  readonly token?: string | undefined
  readonly cookie?: string | undefined
  readonly csrf?: string | undefined
}

export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly json: any
}

/** One request; `body` is sent as JSON unless it is a string (sent as is, with `contentType`). */
export const request = (
  method: string,
  path: string,
  options: Credentials & { readonly body?: unknown; readonly contentType?: string; readonly baseUrl?: string } = {}
): Effect.Effect<Answer, never, Kit.NodeAddress> =>
  Effect.flatMap(Kit.NodeAddress, ({ baseUrl }) =>
    Effect.promise(async () => {
      const headers: Record<string, string> = {}
      if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
      if (options.cookie !== undefined) headers.cookie = options.cookie
      if (options.csrf !== undefined) headers["x-csrf-token"] = options.csrf
      if (options.body !== undefined) headers["content-type"] = options.contentType ?? "application/json"
      const res = await fetch(`${options.baseUrl ?? baseUrl}${path}`, {
        method,
        headers,
        redirect: "manual",
        ...(options.body === undefined ? {} : { body: typeof options.body === "string" ? options.body : JSON.stringify(options.body) })
      })
      const text = await res.text()
      let json: unknown
      try {
        json = text === "" ? undefined : JSON.parse(text)
      } catch {
        json = undefined
      }
      return { status: res.status, headers: res.headers, text, json }
    })
  )

/** GET/POST/DELETE as the admin token (or `credentials`). */
export const get = (path: string, credentials: Credentials = { token: adminToken }) => request("GET", path, credentials)
export const post = (path: string, body?: unknown, credentials: Credentials = { token: adminToken }) =>
  request("POST", path, { ...credentials, body })
export const del = (path: string, credentials: Credentials = { token: adminToken }) => request("DELETE", path, credentials)

/** A new API token of `role`, created through the API with the admin token. */
export const createToken = (name: string, role: "viewer" | "operator" | "admin") =>
  Effect.map(post("/admin/api/tokens", { name, role }), (a) => {
    if (a.status !== 201) throw new Error(`token ${name}: ${a.status} ${a.text}`)
    return a.json.token as string
  })

/** Every error answer has the same body: `{ error: { tag, message } }`. */
export const isErrorBody = (json: unknown): boolean => {
  const e = (json as { error?: { tag?: unknown; message?: unknown } } | undefined)?.error
  return typeof e?.tag === "string" && typeof e.message === "string" && e.message.length > 0
}

/** The audit rows with `code`, oldest first (flush the node's buffer first: `AuditLog.flush`). */
export const auditRows = (code: string) =>
  Kit.queryDb<{ actor: string; subject: string | null; details: Record<string, unknown> }>(
    "SELECT actor, subject, details FROM audit_events WHERE code = $1 ORDER BY id",
    [code]
  )
