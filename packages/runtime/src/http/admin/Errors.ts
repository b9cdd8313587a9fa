/**
 * The admin API's error responses: one class per status, each with the body
 * `{ "error": { "tag": "...", "message": "..." } }`, where `tag` names the
 * reason (`TaskNotFound`, `TaskStateConflict`, `BadRequest`, ...) and
 * `message` says what to change. `fromRuntimeError` maps the runtime's
 * tagged reasons by their `httpStatus`, so a status is decided in one place
 * (RuntimeError.ts). The bodies are built by `Problem.body`, the node's one
 * shape for refusals, so the API's errors and the server's own (the body
 * limit's 413, the 404 of an unmatched path) agree.
 */
import * as Schema from "effect/Schema"
import { isRuntimeError } from "../../RuntimeError.ts"
import * as Problem from "../Problem.ts"

/** The body of every error response: `Problem.Body` without extra facts (the document allows none). */
export const ErrorBody = Schema.Struct({
  error: Schema.Struct({ tag: Schema.String, message: Schema.String })
})

const body = (tag: string, message: string): typeof ErrorBody.Type => Problem.body(tag, message)

/** 400: the request does not decode (the message says where and why). */
export class BadRequest extends Schema.Error<BadRequest>("BadRequest")(ErrorBody, {
  httpApiStatus: 400,
  description: "the request is malformed: a parameter, the body or a cursor"
}) {}

/** 401: no credentials, or ones that are not valid. */
export class Unauthorized extends Schema.Error<Unauthorized>("Unauthorized")(ErrorBody, {
  httpApiStatus: 401,
  description: "no credentials, or an unknown, expired or revoked token or session"
}) {}

/** 403: the caller's role does not allow this (or a cookie-authenticated write lacks X-CSRF-Token). */
export class Forbidden extends Schema.Error<Forbidden>("Forbidden")(ErrorBody, {
  httpApiStatus: 403,
  description: "the caller's role does not allow this, or a session write lacks its X-CSRF-Token"
}) {}

/** 404: no such task, token or route. */
export class NotFound extends Schema.Error<NotFound>("NotFound")(ErrorBody, { httpApiStatus: 404, description: "not found" }) {}

/** 409: the task's state does not allow the action; a token name is taken. */
export class Conflict extends Schema.Error<Conflict>("Conflict")(ErrorBody, {
  httpApiStatus: 409,
  description: "the current state does not allow this"
}) {}

/** 413: the body is larger than `control.max_body_bytes`. */
export class PayloadTooLarge extends Schema.Error<PayloadTooLarge>("PayloadTooLarge")(ErrorBody, {
  httpApiStatus: 413,
  description: "the request body is larger than control.max_body_bytes"
}) {}

/** 415: the body is not `application/json`. */
export class UnsupportedMediaType extends Schema.Error<UnsupportedMediaType>("UnsupportedMediaType")(ErrorBody, {
  httpApiStatus: 415,
  description: "the request body must be application/json"
}) {}

/** 422: well-formed but not processable: a payload the task's Schema refuses, a query past the statement timeout. */
export class Unprocessable extends Schema.Error<Unprocessable>("Unprocessable")(ErrorBody, {
  httpApiStatus: 422,
  description: "a payload the task's Schema refuses, an unknown task name, or a query longer than control.statement_timeout"
}) {}

/** 429: too many failed logins from this client. */
export class TooManyRequests extends Schema.Error<TooManyRequests>("TooManyRequests")(ErrorBody, {
  httpApiStatus: 429,
  description: "too many failed logins from this client; see Retry-After"
}) {}

/** 500: a bug; the details are in the node's log. */
export class InternalError extends Schema.Error<InternalError>("InternalError")(ErrorBody, {
  httpApiStatus: 500,
  description: "a bug in the node; the details are in its log"
}) {}

/** 503: the database is unavailable; retry. */
export class Unavailable extends Schema.Error<Unavailable>("Unavailable")(ErrorBody, {
  httpApiStatus: 503,
  description: "the database is unavailable; retry later"
}) {}

/** Every error response of the API. */
export const all = [
  BadRequest,
  Unauthorized,
  Forbidden,
  NotFound,
  Conflict,
  PayloadTooLarge,
  UnsupportedMediaType,
  Unprocessable,
  TooManyRequests,
  InternalError,
  Unavailable
] as const

export type ApiError = InstanceType<(typeof all)[number]>

const byStatus: Record<number, (b: ReturnType<typeof body>) => ApiError> = {
  400: (b) => new BadRequest(b),
  401: (b) => new Unauthorized(b),
  403: (b) => new Forbidden(b),
  404: (b) => new NotFound(b),
  409: (b) => new Conflict(b),
  413: (b) => new PayloadTooLarge(b),
  415: (b) => new UnsupportedMediaType(b),
  422: (b) => new Unprocessable(b),
  429: (b) => new TooManyRequests(b),
  503: (b) => new Unavailable(b)
}

/** An error response with `status`, `tag` and `message`. */
export const make = (status: number, tag: string, message: string): ApiError =>
  (byStatus[status] ?? ((b) => new InternalError(b)))(body(tag, message))

/** The response for a runtime error: its reason's status, tag and message. */
export const fromRuntimeError = (e: unknown): ApiError =>
  isRuntimeError(e)
    ? make(e.httpStatus, e.reason._tag, e.message)
    : make(500, "Internal", "unexpected failure; the details are in the node's log")
