/**
 * The admin API's handlers for tasks, queues, the system views and API
 * tokens: each reads the caller (`Caller`), calls the control plane with the
 * caller as actor, and maps its errors to API errors (`api`).
 */
import * as Effect from "effect/Effect"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as ControlPlane from "../../ControlPlane.ts"
import * as Auth from "../../control/Auth.ts"
import { jsonProblem, type Overview, type SystemHealth, type TaskDetail, type TaskError } from "../../control/Models.ts"
import { HealthRegistry } from "../../Health.ts"
import { InputInvalid, RuntimeError } from "../../RuntimeError.ts"
import { AdminApi, Caller } from "./Api.ts"
import { api } from "./Middleware.ts"

const invalid = (message: string) => Effect.fail(new RuntimeError({ reason: new InputInvalid({ message }) }))

/** The `payload` query parameter: a JSON object as text. */
const payloadFilter = (text: string | undefined) => {
  if (text === undefined) return Effect.succeed(undefined)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return invalid('payload must be a JSON object, e.g. {"customer":42}')
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return invalid('payload must be a JSON object, e.g. {"customer":42}')
  const problem = jsonProblem(value)
  return problem === undefined ? Effect.succeed(value as Record<string, unknown>) : invalid(`payload: ${problem}`)
}

const actor = Effect.map(Caller, (c) => c.actor)

const withoutStack = ({ stack: _stack, ...error }: TaskError): TaskError => error

/** A task as the caller may see it: a defect's stack is for admins only. */
const forCaller = (task: TaskDetail) =>
  Effect.map(
    Caller,
    (c): TaskDetail =>
      Auth.allows(c.role, "admin")
        ? task
        : { ...task, errors: task.errors.map(withoutStack), lastError: task.lastError === null ? null : withoutStack(task.lastError) }
  )

/** The tasks group: list, get, enqueue, bulk, retry, cancel, delete. */
export const layerTasks = HttpApiBuilder.group(
  AdminApi,
  "tasks",
  Effect.fn(function* (handlers) {
    const control = yield* ControlPlane.ControlPlane
    return handlers
      .handle("list", ({ query: { limit, cursor, payload, ...filter } }) =>
        api(
          Effect.flatMap(payloadFilter(payload), (p) =>
            control.listTasks({ ...filter, ...(p === undefined ? {} : { payload: p }) }, { limit, cursor })
          )
        )
      )
      .handle("get", ({ params }) => api(Effect.flatMap(control.getTask(params.id), forCaller)))
      .handle("enqueue", ({ payload }) => api(Effect.flatMap(actor, (a) => control.enqueue(payload, a))))
      .handle("bulk", ({ payload }) => api(Effect.flatMap(actor, (a) => control.bulk(payload, a))))
      .handle("retry", ({ params }) => api(Effect.flatMap(actor, (a) => control.retryTask(params.id, a))))
      .handle("cancel", ({ params }) => api(Effect.flatMap(actor, (a) => control.cancelTask(params.id, a))))
      .handle("delete", ({ params }) => api(Effect.flatMap(actor, (a) => control.deleteTask(params.id, a))))
  })
)

/** The queues group: the view, pause and resume. */
export const layerQueues = HttpApiBuilder.group(
  AdminApi,
  "queues",
  Effect.fn(function* (handlers) {
    const control = yield* ControlPlane.ControlPlane
    return handlers
      .handle("list", ({ query }) => api(control.queues({ minutes: query.minutes ?? 15 })))
      .handle("pause", ({ params }) => api(Effect.flatMap(actor, (a) => control.setPaused(params.queue, true, a))))
      .handle("resume", ({ params }) => api(Effect.flatMap(actor, (a) => control.setPaused(params.queue, false, a))))
  })
)

/** The system group: nodes, lanes, audit, codes. */
export const layerSystem = HttpApiBuilder.group(
  AdminApi,
  "system",
  Effect.fn(function* (handlers) {
    const control = yield* ControlPlane.ControlPlane
    const health = yield* HealthRegistry
    return handlers
      .handle("nodes", ({ query }) => api(Effect.map(control.nodes({ includeStopped: query.all === "true" }), (items) => ({ items }))))
      .handle("lanes", () => api(Effect.map(control.lanes, (items) => ({ items }))))
      .handle("audit", ({ query: { limit, cursor, ...filter } }) => api(control.audit(filter, { limit, cursor })))
      .handle("codes", () => control.codes)
      .handle("overview", ({ query }) =>
        api(
          Effect.gen(function* () {
            const report = yield* health.readiness
            const systemHealth: SystemHealth = {
              node: { id: report.node.id, name: report.node.name, mode: report.mode },
              ready: report.status === "ready",
              checks: report.checks.map((c) => ({ name: c.name, status: c.status, detail: c.detail ?? null })),
              stuckLeases: yield* control.stuckLeases
            }
            return {
              health: systemHealth,
              queues: yield* control.queues({ minutes: query.minutes ?? 30 }),
              nodes: yield* control.nodes({ includeStopped: false }),
              lanes: yield* control.lanes
            } satisfies Overview
          })
        )
      )
  })
)

/** The tokens group: list, create, revoke. */
export const layerTokens = HttpApiBuilder.group(
  AdminApi,
  "tokens",
  Effect.fn(function* (handlers) {
    const control = yield* ControlPlane.ControlPlane
    return handlers
      .handle("list", ({ query }) =>
        api(Effect.map(control.listTokens({ includeRevoked: query.revoked === "true" }), (items) => ({ items })))
      )
      .handle("create", ({ payload }) => api(Effect.flatMap(actor, (a) => control.createToken(payload, a))))
      .handle("revoke", ({ params }) => api(Effect.flatMap(actor, (a) => control.revokeToken(params.name, a))))
  })
)
