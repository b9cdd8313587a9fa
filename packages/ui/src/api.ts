/**
 * The admin API client: the only way the UI talks to the node. Every call goes
 * to `/admin/api` with the session cookie; writes carry the session's CSRF
 * token. A refusal becomes an `ApiError` with the API's own status, tag and
 * message (`{ error: { tag, message } }`), which views show as it is.
 *
 * The types are the API's own Schemas (`packages/runtime/src/control/Models.ts`),
 * imported as types only: nothing of the runtime reaches the bundle.
 */
import type * as Models from "../../runtime/src/control/Models.ts"

export type {
  AuditEntry,
  AuditPage,
  BulkResult,
  Codes,
  LaneView,
  LoginMethods,
  NodeView,
  Overview,
  QueueView,
  Role,
  SessionView,
  TaskDetail,
  TaskError,
  TaskPage,
  TaskSummary
} from "../../runtime/src/control/Models.ts"

/** A refusal or failure of the API, as it answered. */
export class ApiError extends Error {
  readonly status: number
  readonly tag: string
  constructor(status: number, tag: string, message: string) {
    super(message)
    this.status = status
    this.tag = tag
  }
}

let csrfToken: string | null = null
let onUnauthorized: (() => void) | undefined

/** Remembers the session's CSRF token (from sign-in or `GET /session`) for writes. */
export const setCsrfToken = (token: string | null): void => {
  csrfToken = token
}

/** Called when a request made while signed in answers 401 (the session ended). */
export const setUnauthorizedHandler = (handler: () => void): void => {
  onUnauthorized = handler
}

/** Query parameters: undefined and empty values are left out; arrays repeat the key. */
export type Query = Record<string, string | number | ReadonlyArray<string> | undefined>

const queryString = (query: Query | undefined): string => {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === "") continue
    if (Array.isArray(value)) for (const v of value) params.append(key, v)
    else params.set(key, String(value))
  }
  const text = params.toString()
  return text === "" ? "" : `?${text}`
}

const request = async <A>(method: string, path: string, options: { query?: Query; body?: unknown } = {}): Promise<A> => {
  const headers: Record<string, string> = { accept: "application/json" }
  if (options.body !== undefined) headers["content-type"] = "application/json"
  if (method !== "GET" && csrfToken !== null) headers["x-csrf-token"] = csrfToken
  let response: Response
  try {
    response = await fetch(`/admin/api${path}${queryString(options.query)}`, {
      method,
      headers,
      credentials: "same-origin",
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) })
    })
  } catch (e) {
    throw new ApiError(0, "NetworkError", `the node cannot be reached (${e instanceof Error ? e.message : String(e)})`)
  }
  if (response.status === 204) return undefined as A
  const text = await response.text()
  let json: unknown
  try {
    json = text === "" ? undefined : JSON.parse(text)
  } catch {
    json = undefined
  }
  if (!response.ok) {
    const error = (json as { error?: { tag?: unknown; message?: unknown } } | undefined)?.error
    const tag = typeof error?.tag === "string" ? error.tag : `HTTP ${response.status}`
    const message = typeof error?.message === "string" ? error.message : text.slice(0, 300) || response.statusText
    if (response.status === 401 && path !== "/session") onUnauthorized?.()
    throw new ApiError(response.status, tag, message)
  }
  return json as A
}

/** The endpoints the UI uses, typed by the API's Schemas. */
export const api = {
  loginMethods: () => request<Models.LoginMethods>("GET", "/session/methods"),
  signIn: (token: string) => request<Models.SessionView>("POST", "/session", { body: { token } }),
  session: () => request<Models.SessionView>("GET", "/session"),
  signOut: () => request<void>("DELETE", "/session"),
  overview: (minutes: number) => request<Models.Overview>("GET", "/overview", { query: { minutes } }),
  tasks: (query: Query) => request<Models.TaskPage>("GET", "/tasks", { query }),
  task: (id: string) => request<Models.TaskDetail>("GET", `/tasks/${encodeURIComponent(id)}`),
  retry: (id: string) => request<Models.TaskChanged>("POST", `/tasks/${encodeURIComponent(id)}/retry`),
  cancel: (id: string) => request<Models.TaskChanged>("POST", `/tasks/${encodeURIComponent(id)}/cancel`),
  remove: (id: string) => request<Models.TaskChanged>("DELETE", `/tasks/${encodeURIComponent(id)}`),
  bulk: (body: Models.BulkRequest) => request<Models.BulkResult>("POST", "/tasks/bulk", { body }),
  queues: (minutes: number) => request<Models.QueueList>("GET", "/queues", { query: { minutes } }),
  pause: (queue: string) => request<Models.QueueChanged>("POST", `/queues/${encodeURIComponent(queue)}/pause`),
  resume: (queue: string) => request<Models.QueueChanged>("POST", `/queues/${encodeURIComponent(queue)}/resume`),
  nodes: (all: boolean) => request<{ readonly items: ReadonlyArray<Models.NodeView> }>("GET", "/nodes", { query: { all: String(all) } }),
  lanes: () => request<{ readonly items: ReadonlyArray<Models.LaneView> }>("GET", "/lanes"),
  audit: (query: Query) => request<Models.AuditPage>("GET", "/audit", { query }),
  codes: () => request<Models.Codes>("GET", "/codes")
}

let codes: Promise<Models.Codes> | undefined

/** The presentation catalogue, fetched once per page load (it changes only with a deployment). */
export const presentationCodes = (): Promise<Models.Codes> => {
  codes ??= api.codes().catch((e) => {
    codes = undefined
    throw e
  })
  return codes
}

/** The message a view shows for a failure: the API's status, tag and message. */
export const describeError = (e: unknown): string =>
  e instanceof ApiError ? (e.status === 0 ? e.message : `${e.status} ${e.tag}: ${e.message}`) : e instanceof Error ? e.message : String(e)
