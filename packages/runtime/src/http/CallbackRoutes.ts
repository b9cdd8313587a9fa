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
 */
import { Duration, Effect, Layer, Result, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { SqlClient } from "effect/sql"
import * as AuditEvents from "../AuditEvents.ts"
import { AuditLog } from "../AuditLog.ts"
import * as LeaseSql from "../internal/sql/leases.ts"
import * as Task from "../Task.ts"
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
  Effect.fn(function*(router) {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* AuditLog
    const registry = yield* TaskRegistry

    yield* router.add("POST", "/callbacks/:token", (request) =>
      Effect.gen(function*() {
        const { token = "" } = yield* HttpRouter.params
        const text = yield* request.text.pipe(Effect.orElseSucceed(() => ""))
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          return problem(400, "body must be JSON: {\"result\": ...} or {\"error\": {\"message\": \"...\"}}")
        }
        const body = decodeBody(json)
        if (Result.isFailure(body)) {
          return problem(400, "body must be {\"result\": ...} or {\"error\": {\"message\": \"...\", \"retryable\"?: boolean, \"code\"?: string}}", Task.describeIssue(body.failure.issue))
        }
        const [task] = yield* LeaseSql.findByCallbackToken(sql, token)
        if (task === undefined) return problem(404, "unknown or already used callback token")
        const definition = registry.definition(task.name)

        let resolution: Parameters<typeof LeaseSql.resolveCallback>[1]
        if ("result" in body.success) {
          let stored: unknown = body.success.result
          if (definition !== undefined) {
            const decoded = Task.decodeResult(definition, body.success.result)
            if (Result.isFailure(decoded)) return problem(400, `result does not match the result schema of task "${task.name}"`, decoded.failure)
            stored = Result.getOrThrow(Task.encodeResult(definition, decoded.success))
          }
          resolution = { token, state: "succeeded", result: stored ?? null, error: null, delay_ms: null }
        } else {
          const e = body.success.error
          const retry = e.retryable !== false && task.attempt < task.max_attempts
          const detail: Task.ErrorDetail = {
            tag: "CallbackError",
            message: e.message,
            code: e.code ?? null,
            attempt: task.attempt,
            at: new Date().toISOString()
          }
          const delay = retry && definition !== undefined ? Duration.toMillis(definition.retry.backoff(task.attempt)) : retry ? 0 : null
          resolution = { token, state: retry ? "retryable" : "failed", result: undefined, error: detail, delay_ms: delay }
        }
        const [updated] = yield* LeaseSql.resolveCallback(sql, resolution)
        // Someone else used the token between our look-up and the update.
        if (updated === undefined) return problem(404, "unknown or already used callback token")
        const actor = AuditEvents.actors.callback
        yield* audit.record(AuditEvents.taskCallbackReceived({ actor, subject: updated.id, details: { name: updated.name, state: updated.state } }))
        if (updated.state === "failed" && resolution.error !== null) {
          const e = resolution.error as Task.ErrorDetail
          yield* audit.record(AuditEvents.taskFailed({
            actor,
            subject: updated.id,
            details: { name: updated.name, attempt: task.attempt, tag: e.tag, message: e.message, code: e.code, exhausted: task.attempt >= task.max_attempts }
          }))
        }
        if (updated.state === "retryable") yield* sql`SELECT pg_notify('asterforge_tasks', ${updated.queue})`
        return HttpServerResponse.jsonUnsafe({ id: updated.id, state: updated.state })
      }).pipe(
        Effect.catchCause((cause) =>
          Effect.logError("callback failed", cause).pipe(Effect.as(problem(503, "the task store is unavailable; retry the callback"))))
      ))
  })
)

