/**
 * `POST /callbacks/:token`: resumes a task parked by `AwaitCallback`, exactly
 * once, and only while the callback is in time.
 *
 * Body (`Content-Type: application/json`, else 415): `{ "result": <value> }`
 * completes the task (the value must match the task's result Schema);
 * `{ "error": { "message": "...", "retryable": true, "code": "..." } }` fails
 * the attempt (retried while attempts remain, unless `retryable` is false).
 * Exactly one of the two (both: 400). A bad body is a 400 with the reason and
 * changes nothing, so the caller can fix it and call again; so is text the
 * database cannot store (a NUL character, a lone surrogate).
 *
 * The token is checked before the body is read: an unknown or used token is a
 * 404; a callback past its timeout or the task's deadline is a 410 (whether or
 * not the rescue lanes have run yet); a task this node has no definition for
 * is a 409 (its result could not be checked). Tokens are looked up by their
 * SHA-256: the database never holds one in clear.
 *
 * Every refusal is a `Problem` (`{ "error": { "tag", "message" } }`, a bad
 * body's reason in `error.details`): 400 `BadRequest` (not JSON, not the
 * shape), `TaskResultInvalid` (not the result Schema) or `InputInvalid` (text
 * the database cannot store); 404 `CallbackNotFound`; 409 `TaskUnknown`; 410
 * `CallbackExpired`; 413 `PayloadTooLarge`; 415 `UnsupportedMediaType`; 503
 * `TaskStoreUnavailable`.
 *
 * The route owns HTTP only (parsing, status codes, the once-only update); what
 * the task becomes is `TaskOutcome.ofCallback`, the rules the dispatcher uses.
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as SqlClient from "effect/sql/SqlClient"
import * as AuditEvents from "../AuditEvents.ts"
import { AuditLog } from "../AuditLog.ts"
import * as LeaseSql from "../internal/sql/leases.ts"
import * as TaskInput from "../internal/taskInput.ts"
import * as Task from "../Task.ts"
import * as TaskOutcome from "../TaskOutcome.ts"
import { TaskRegistry } from "../TaskRegistry.ts"
import * as Problem from "./Problem.ts"
import { bodyTooLargeResponse, isBodyTooLarge } from "./Server.ts"

const ErrorBody = Schema.Struct({
  message: Schema.NonEmptyString,
  retryable: Schema.optional(Schema.Boolean),
  code: Schema.optional(Schema.String)
})
const Body = Schema.Union([Schema.Struct({ result: Schema.Unknown }), Schema.Struct({ error: ErrorBody })])
const decodeBody = Schema.decodeUnknownResult(Body)

const shape = '{"result": ...} or {"error": {"message": "...", "retryable"?: boolean, "code"?: string}}'

const isJson = (contentType: string | undefined): boolean => /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(contentType ?? "")

/** The parsed body, or the 400 that says what is wrong with it. */
const parseBody = (text: string): Result.Result<typeof Body.Type, HttpServerResponse.HttpServerResponse> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return Result.fail(Problem.make(400, "BadRequest", `body must be JSON: ${shape}`))
  }
  if (typeof json === "object" && json !== null && "result" in json && "error" in json) {
    return Result.fail(Problem.make(400, "BadRequest", `body must have "result" or "error", not both: ${shape}`))
  }
  const body = decodeBody(json)
  return Result.isFailure(body)
    ? Result.fail(Problem.make(400, "BadRequest", `body must be ${shape}`, { extra: { details: Task.describeIssue(body.failure.issue) } }))
    : Result.succeed(body.success)
}

const lateProblem = (task: LeaseSql.Parked) =>
  Problem.make(
    410,
    "CallbackExpired",
    task.deadline !== null && task.deadline.getTime() <= Date.now()
      ? `the task's deadline (${task.deadline.toISOString()}) has passed; the callback is no longer accepted`
      : `the callback expired at ${task.callbackExpiresAt?.toISOString()}; it is no longer accepted`
  )

export const layer: Layer.Layer<never, never, HttpRouter.HttpRouter | SqlClient.SqlClient | AuditLog | TaskRegistry> = HttpRouter.use(
  Effect.fn(function* (router) {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* AuditLog
    const registry = yield* TaskRegistry

    yield* router.add("POST", "/callbacks/:token", (request) =>
      Effect.gen(function* () {
        if (!isJson(request.headers["content-type"])) {
          return Problem.make(415, "UnsupportedMediaType", `Content-Type must be application/json; the body is ${shape}`)
        }
        const { token = "" } = yield* HttpRouter.params
        const [task] = yield* LeaseSql.findByCallbackToken(sql, token)
        if (task === undefined) return Problem.make(404, "CallbackNotFound", "unknown or already used callback token")
        if (task.expired) return lateProblem(task)
        const definition = registry.definition(task.name)
        if (definition === undefined) {
          return Problem.make(
            409,
            "TaskUnknown",
            `task "${task.name}" is not served by this node, so its result cannot be checked; send the callback to a node that runs its module`
          )
        }
        // The body is read only now, within the server's body limit (a larger one is a 413).
        const body = parseBody(yield* request.text)
        if (Result.isFailure(body)) return body.failure
        const actor = AuditEvents.actors.callback
        const outcome = TaskOutcome.ofCallback(definition, task, body.success, actor)
        if (Result.isFailure(outcome))
          return Problem.make(400, "TaskResultInvalid", `result does not match the result schema of task "${task.name}"`, {
            extra: { details: outcome.failure }
          })
        // What would be written (the result, the error) must be text Postgres can store: else a 400, not a failed UPDATE read as an outage.
        const unstorable = TaskInput.unstorableText({ result: outcome.success.result, error: outcome.success.error }, "body")
        if (unstorable !== undefined) return Problem.make(400, "InputInvalid", `${unstorable}; send text without it`)
        const [updated] = yield* LeaseSql.resolveCallback(sql, token, outcome.success)
        if (updated === undefined) {
          // Used by someone else since the look-up, or it expired meanwhile.
          const [still] = yield* LeaseSql.findByCallbackToken(sql, token)
          return still?.expired === true
            ? lateProblem(still)
            : Problem.make(404, "CallbackNotFound", "unknown or already used callback token")
        }
        yield* audit.record(
          AuditEvents.taskCallbackReceived({ actor, subject: updated.id, details: { name: updated.name, state: updated.state } })
        )
        if (outcome.success.audit !== undefined) yield* audit.record(outcome.success.audit)
        if (updated.state === "retryable") yield* sql`SELECT pg_notify('asterforge_tasks', ${updated.queue})`
        return HttpServerResponse.jsonUnsafe({ id: updated.id, state: updated.state })
      }).pipe(
        // A body read past the limit is the caller's (413); anything else failing here is the database.
        Effect.catch((e) =>
          isBodyTooLarge(e)
            ? bodyTooLargeResponse
            : Effect.logError("callback failed", e).pipe(
                Effect.as(Problem.make(503, "TaskStoreUnavailable", "the task store is unavailable; retry the callback"))
              )
        )
      )
    )
  })
)
