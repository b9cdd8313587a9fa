/**
 * The node's one vocabulary for HTTP refusals: every JSON 4xx and 5xx it
 * answers, on every route, has the body
 *
 * ```json
 * { "error": { "tag": "CallbackExpired", "message": "the callback expired at ..." } }
 * ```
 *
 * where `tag` names the reason in PascalCase (a `RuntimeError` reason's tag
 * where one fits: `TaskNotFound`, `TaskPayloadInvalid`, `TaskStoreUnavailable`,
 * ...) and `message` says what to change. Facts a client may act on
 * (`details` of a refused body) go inside `error`, never beside it. The admin
 * API's error classes (`admin/Errors.ts`) build their bodies here too, so a
 * refusal the server answers before the admin API sees the request (the body
 * limit's 413, an unmatched path's 404) matches the API's documented shape.
 *
 * This module owns the body and the tags of refusals built outside the admin
 * API's handlers; the status of a runtime error stays with its reason
 * (`RuntimeError.ts`). (The admin UI's static files answer a browser in plain
 * text; they are pages, not an API.)
 */
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type { RuntimeError } from "../RuntimeError.ts"

/**
 * The tags of the refusals built outside the admin API's handlers, by status.
 * Five are `RuntimeError` reason tags, reused because the reason is the same;
 * `PayloadTooLarge`, `UnsupportedMediaType`, `BadRequest` and `RouteNotFound`
 * are the admin API's own tags for the same refusals.
 */
export const tags = {
  /** 400: the body is not JSON or not of the expected shape. */
  BadRequest: "BadRequest",
  /** 400: text the database cannot store (a NUL character, a lone surrogate). */
  InputInvalid: "InputInvalid",
  /** 400: a webhook's body carries no idempotency key (header or payload). */
  IdempotencyKeyMissing: "IdempotencyKeyMissing",
  /** 400: a webhook's body does not match the task's payload Schema. */
  TaskPayloadInvalid: "TaskPayloadInvalid",
  /** 400: a callback's result does not match the task's result Schema. */
  TaskResultInvalid: "TaskResultInvalid",
  /** 401: missing or wrong credentials (the metrics token). */
  Unauthorized: "Unauthorized",
  /** 401: a webhook's signature is missing or wrong. */
  SignatureInvalid: "SignatureInvalid",
  /** 404: no route matches the method and path. */
  RouteNotFound: "RouteNotFound",
  /** 404: the callback token is unknown or already used. */
  CallbackNotFound: "CallbackNotFound",
  /** 409: the parked task's name is not registered on this node. */
  TaskUnknown: "TaskUnknown",
  /** 410: the callback's timeout or the task's deadline has passed. */
  CallbackExpired: "CallbackExpired",
  /** 413: the body is larger than the limit in force (the same tag as the admin API's own 413). */
  PayloadTooLarge: "PayloadTooLarge",
  /** 415: the body must be `application/json`. */
  UnsupportedMediaType: "UnsupportedMediaType",
  /** 503: the database is unavailable; retry. */
  TaskStoreUnavailable: "TaskStoreUnavailable"
} as const

/** A tag of `tags`, or a `RuntimeError` reason's tag. */
export type Tag = (typeof tags)[keyof typeof tags] | RuntimeError["reason"]["_tag"]

/** Facts beside the message, inside `error` (never `tag` or `message`): `details` of a refused body, say. */
export type Extra = { readonly [key: string]: unknown } & { readonly tag?: never; readonly message?: never }

/** The body of every refusal. */
export interface Body {
  readonly error: { readonly tag: string; readonly message: string; readonly [extra: string]: unknown }
}

/** The body `{ error: { tag, message, ...extra } }`; `extra` entries that are `undefined` are left out. */
export const body = (tag: string, message: string, extra?: Extra): Body => {
  const defined = Object.entries(extra ?? {}).filter(([, v]) => v !== undefined)
  return { error: { tag, message, ...Object.fromEntries(defined) } }
}

/**
 * The JSON response of a refusal: `status` with `body(tag, message, extra)`.
 * A 413 also closes the connection (the rest of the body is not read).
 */
export const make = (
  status: number,
  // An app's routes use tags of their own too.
  tag: Tag | (string & {}),
  message: string,
  options: { readonly extra?: Extra | undefined; readonly headers?: Record<string, string> | undefined } = {}
): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.jsonUnsafe(body(tag, message, options.extra), {
    status,
    headers: { ...(status === 413 ? { connection: "close" } : {}), ...options.headers }
  })

/** The refusal for a runtime error: its reason's tag and message, its status (an outage is a 503). */
export const fromRuntimeError = (e: RuntimeError): HttpServerResponse.HttpServerResponse =>
  make(e.httpStatus >= 500 ? 503 : e.httpStatus, e.reason._tag, e.message)

/**
 * The admin API's 404 for a path under `/admin/api` that no endpoint serves:
 * the API's own routes and the UI's (which answer `/admin/*` on every
 * full-API node, also where the API's code is not loaded yet) both use it.
 */
export const adminEndpointNotFound = (): HttpServerResponse.HttpServerResponse =>
  make(404, tags.RouteNotFound, "no such admin API endpoint; the endpoints are in /admin/api/openapi.json")
