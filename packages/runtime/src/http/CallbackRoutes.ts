/**
 * `POST /callbacks/:token`: resumes a task parked by `AwaitCallback`, exactly
 * once.
 *
 * Body: `{ "result": <value> }` completes the task (the value must match the
 * task's result Schema), `{ "error": { "message": "...", "retryable": true,
 * "code": "..." } }` fails the attempt (retried while attempts remain, unless
 * `retryable` is false). A bad body is a 400 with the reason and changes
 * nothing, so the caller can fix it and call again; a used or unknown token is
 * a 404.
 *
 * The route owns HTTP only (parsing, status codes, the once-only update); what
 * the task becomes is `TaskOutcome.ofCallback`, the rules the dispatcher uses.
 */
import { Effect, type Layer, Result, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { SqlClient } from "effect/sql"
import * as AuditEvents from "../AuditEvents.ts"
import { AuditLog } from "../AuditLog.ts"
import * as LeaseSql from "../internal/sql/leases.ts"
import * as Task from "../Task.ts"
import * as TaskOutcome from "../TaskOutcome.ts"
import { TaskRegistry } from "../TaskRegistry.ts"

const Body = Schema.Union([
  Schema.Struct({ result: Schema.Unknown }),
  Schema.Struct({
    error: Schema.Struct({
      message: Schema.NonEmptyString,
      retryable: Schema.optional(Schema.Boolean),
      code: Schema.optional(Schema.String)
    })
  })
])
const decodeBody = Schema.decodeUnknownResult(Body)

const problem = (status: number, error: string, details?: unknown) =>
  HttpServerResponse.jsonUnsafe({ error, ...(details === undefined ? {} : { details }) }, { status })

export const layer: Layer.Layer<never, never, HttpRouter.HttpRouter | SqlClient.SqlClient | AuditLog | TaskRegistry> = HttpRouter.use(
  Effect.fn(function* (router) {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* AuditLog
    const registry = yield* TaskRegistry

    yield* router.add("POST", "/callbacks/:token", (request) =>
      Effect.gen(function* () {
        const { token = "" } = yield* HttpRouter.params
        const text = yield* request.text.pipe(Effect.orElseSucceed(() => ""))
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          return problem(400, 'body must be JSON: {"result": ...} or {"error": {"message": "..."}}')
        }
        const body = decodeBody(json)
        if (Result.isFailure(body)) {
          return problem(
            400,
            'body must be {"result": ...} or {"error": {"message": "...", "retryable"?: boolean, "code"?: string}}',
            Task.describeIssue(body.failure.issue)
          )
        }
        const [task] = yield* LeaseSql.findByCallbackToken(sql, token)
        if (task === undefined) return problem(404, "unknown or already used callback token")
        const actor = AuditEvents.actors.callback
        const outcome = TaskOutcome.ofCallback(registry.definition(task.name), task, body.success, actor)
        if (Result.isFailure(outcome))
          return problem(400, `result does not match the result schema of task "${task.name}"`, outcome.failure)
        const [updated] = yield* LeaseSql.resolveCallback(sql, token, outcome.success)
        // Someone else used the token between our look-up and the update.
        if (updated === undefined) return problem(404, "unknown or already used callback token")
        yield* audit.record(
          AuditEvents.taskCallbackReceived({ actor, subject: updated.id, details: { name: updated.name, state: updated.state } })
        )
        if (outcome.success.audit !== undefined) yield* audit.record(outcome.success.audit)
        if (updated.state === "retryable") yield* sql`SELECT pg_notify('asterforge_tasks', ${updated.queue})`
        return HttpServerResponse.jsonUnsafe({ id: updated.id, state: updated.state })
      }).pipe(
        Effect.catchCause((cause) =>
          Effect.logError("callback failed", cause).pipe(Effect.as(problem(503, "the task store is unavailable; retry the callback")))
        )
      )
    )
  })
)
