/**
 * The admin API's definition (`effect/http-api`): every endpoint under
 * `/admin/api`, its inputs, answers, errors and the role it needs. The
 * OpenAPI 3.1 document served at `/admin/api/openapi.json` is generated from
 * this definition.
 *
 * Roles: viewer (read) < operator (retry, cancel, pause, resume, enqueue) <
 * admin (delete, bulk, tokens). Credentials: `Authorization: Bearer <token>`
 * (the configured admin token or an API token), or the session cookie that
 * `POST /admin/api/session` sets (writes then need `X-CSRF-Token`).
 */
import * as Context from "effect/Context"
import * as Schema from "effect/Schema"
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as HttpApiMiddleware from "effect/http-api/HttpApiMiddleware"
import * as HttpApiSchema from "effect/http-api/HttpApiSchema"
import * as HttpApiSecurity from "effect/http-api/HttpApiSecurity"
import * as OpenApi from "effect/http-api/OpenApi"
import type { Principal } from "../../control/Auth.ts"
import * as Models from "../../control/Models.ts"
import { version } from "../../NodeIdentity.ts"
import * as Errors from "./Errors.ts"

/** The role an endpoint needs (an endpoint annotation; viewer when absent). */
export class RequiredRole extends Context.Service<RequiredRole, Models.Role>()("@asterforge/runtime/http/admin/RequiredRole") {}

/** The authenticated caller, provided to handlers by `Authentication`. */
export class Caller extends Context.Service<Caller, Principal>()("@asterforge/runtime/http/admin/Caller") {}

/** The session cookie's name. */
export const sessionCookieName = "asterforge_session"

/** The session cookie, as a security scheme of the document. */
export const sessionCookie = HttpApiSecurity.apiKey({ in: "cookie", key: sessionCookieName }).pipe(
  HttpApiSecurity.annotate(OpenApi.Description, "set by POST /admin/api/session; writes also need the X-CSRF-Token header")
)

/**
 * Authentication and authorization: a bearer token or the session cookie,
 * checked against the endpoint's `RequiredRole`.
 */
export class Authentication extends HttpApiMiddleware.Service<Authentication, { provides: Caller }>()(
  "@asterforge/runtime/http/admin/Authentication",
  {
    security: { bearer: HttpApiSecurity.bearer, session: sessionCookie },
    error: [Errors.Unauthorized, Errors.Forbidden, Errors.TooManyRequests]
  }
) {}

/**
 * Every request's failures as JSON errors: a request that does not decode is
 * a 400 with the reason, a body over the limit a 413, a body that is not JSON
 * a 415; and every error class the handlers use.
 */
export class RequestErrors extends HttpApiMiddleware.Service<RequestErrors>()("@asterforge/runtime/http/admin/RequestErrors", {
  error: Errors.all
}) {}

const doc = (role: Models.Role | "public", summary: string, description?: string) =>
  OpenApi.annotations({
    summary,
    description: `${role === "public" ? "No credentials needed." : `Role: ${role}.`}${description ? ` ${description}` : ""}`
  })

const taskListQuery = {
  state: Schema.optional(Schema.Array(Models.TaskStateName)),
  queue: Schema.optional(Models.QueueName),
  name: Schema.optional(Models.TaskName),
  createdAfter: Schema.optional(Models.DateTimeText),
  createdBefore: Schema.optional(Models.DateTimeText),
  finishedAfter: Schema.optional(Models.DateTimeText),
  finishedBefore: Schema.optional(Models.DateTimeText),
  payload: Schema.optional(Models.Text(10_000).annotate({ description: 'JSON object the payload contains, e.g. {"customer":42}' })),
  errorCode: Schema.optional(Models.Text(200)),
  limit: Schema.optional(Models.Limit),
  cursor: Schema.optional(Models.Cursor)
}

const taskId = { id: Models.TaskId }

/** Tasks: list, inspect, act on one, enqueue, act in bulk. */
export class TasksGroup extends HttpApiGroup.make("tasks")
  .add(
    HttpApiEndpoint.get("list", "/tasks", { query: taskListQuery, success: Models.TaskPage }).annotateMerge(
      doc("viewer", "List tasks", "Newest first; filters narrow; `next` is the cursor of the following page.")
    ),
    HttpApiEndpoint.post("enqueue", "/tasks", { payload: Models.EnqueueRequest, success: Models.Enqueued.pipe(HttpApiSchema.status(201)) })
      .annotate(RequiredRole, "operator")
      .annotateMerge(
        doc("operator", "Enqueue a task by name", "The payload (encoded JSON) is checked by the task's Schema: 422 otherwise.")
      ),
    HttpApiEndpoint.post("bulk", "/tasks/bulk", { payload: Models.BulkRequest, success: Models.BulkResult })
      .annotate(RequiredRole, "admin")
      .annotateMerge(
        doc(
          "admin",
          "Retry, cancel or delete every task a filter matches",
          "A dry run (the default) counts and samples; the real run is capped by control.bulk_cap."
        )
      ),
    HttpApiEndpoint.get("get", "/tasks/:id", { params: taskId, success: Models.TaskDetail }).annotateMerge(
      doc(
        "viewer",
        "A task",
        "Payload, result, every attempt's error with its code's text (and, for admins, a defect's stack), lease, and its audit trail."
      )
    ),
    HttpApiEndpoint.post("retry", "/tasks/:id/retry", { params: taskId, success: Models.TaskChanged })
      .annotate(RequiredRole, "operator")
      .annotateMerge(doc("operator", "Retry a failed or cancelled task", "Back to available with a fresh attempt budget.")),
    HttpApiEndpoint.post("cancel", "/tasks/:id/cancel", { params: taskId, success: Models.TaskChanged })
      .annotate(RequiredRole, "operator")
      .annotateMerge(doc("operator", "Cancel a task", "A running task's handler is interrupted on whichever node runs it.")),
    HttpApiEndpoint.delete("delete", "/tasks/:id", { params: taskId, success: Models.TaskChanged })
      .annotate(RequiredRole, "admin")
      .annotateMerge(doc("admin", "Delete a finished task"))
  )
  .middleware(Authentication) {}

/** Queues: depth, throughput, pause and resume. */
export class QueuesGroup extends HttpApiGroup.make("queues")
  .add(
    HttpApiEndpoint.get("list", "/queues", {
      query: { minutes: Schema.optional(Models.Minutes) },
      success: Models.QueueList
    }).annotateMerge(
      doc("viewer", "Queues", "Depth by state, throughput per minute over the last `minutes` (15), oldest available task, pause state.")
    ),
    HttpApiEndpoint.post("pause", "/queues/:queue/pause", { params: { queue: Models.QueueName }, success: Models.QueueChanged })
      .annotate(RequiredRole, "operator")
      .annotateMerge(
        doc("operator", "Pause a queue", "No node claims its tasks until it is resumed; enqueue still works; running tasks finish.")
      ),
    HttpApiEndpoint.post("resume", "/queues/:queue/resume", { params: { queue: Models.QueueName }, success: Models.QueueChanged })
      .annotate(RequiredRole, "operator")
      .annotateMerge(doc("operator", "Resume a queue"))
  )
  .middleware(Authentication) {}

/** Nodes, lanes, the audit trail and the presentation codes. */
export class SystemGroup extends HttpApiGroup.make("system")
  .add(
    HttpApiEndpoint.get("nodes", "/nodes", {
      query: { all: Schema.optional(Schema.Literals(["true", "false"])) },
      success: Models.NodeList
    }).annotateMerge(
      doc("viewer", "Nodes", "Running nodes (all=true: stopped and dead ones too) with the leases they hold and the lanes they lead.")
    ),
    HttpApiEndpoint.get("lanes", "/lanes", { success: Models.LaneList }).annotateMerge(
      doc("viewer", "Maintenance lanes", "Leader, epoch, last run, counts, last error and interval of each lane.")
    ),
    HttpApiEndpoint.get("audit", "/audit", {
      query: {
        code: Schema.optional(Models.AuditCode),
        actor: Schema.optional(Models.Text(500)),
        subject: Schema.optional(Models.Text(500)),
        from: Schema.optional(Models.DateTimeText),
        to: Schema.optional(Models.DateTimeText),
        limit: Schema.optional(Models.Limit),
        cursor: Schema.optional(Models.Cursor)
      },
      success: Models.AuditPage
    }).annotateMerge(doc("viewer", "Audit trail", "Newest first.")),
    HttpApiEndpoint.get("codes", "/codes", { success: Models.Codes }).annotateMerge(
      doc("viewer", "Presentation codes", "Audit codes and task failure codes with their text, for screens to show.")
    ),
    HttpApiEndpoint.get("overview", "/overview", {
      query: { minutes: Schema.optional(Models.Minutes) },
      success: Models.Overview
    }).annotateMerge(
      doc(
        "viewer",
        "Everything a dashboard shows, in one request",
        "Queues (as /queues, throughput over the last `minutes`, 30 by default), running nodes, lanes, and what is unhealthy: the serving node's readiness checks and running tasks whose lease expired over a minute ago without a rescue. Read one after another, never at once, to spare the database."
      )
    )
  )
  .middleware(Authentication) {}

/** API tokens. */
export class TokensGroup extends HttpApiGroup.make("tokens")
  .add(
    HttpApiEndpoint.get("list", "/tokens", {
      query: { revoked: Schema.optional(Schema.Literals(["true", "false"])) },
      success: Models.TokenList
    })
      .annotate(RequiredRole, "admin")
      .annotateMerge(doc("admin", "API tokens", "Never the tokens themselves.")),
    HttpApiEndpoint.post("create", "/tokens", {
      payload: Models.CreateTokenRequest,
      success: Models.TokenCreated.pipe(HttpApiSchema.status(201))
    })
      .annotate(RequiredRole, "admin")
      .annotateMerge(
        doc("admin", "Create an API token", "The answer carries the token: it is shown this once; only its SHA-256 is stored.")
      ),
    HttpApiEndpoint.delete("revoke", "/tokens/:name", { params: { name: Models.TokenName }, success: Models.TokenView })
      .annotate(RequiredRole, "admin")
      .annotateMerge(doc("admin", "Revoke an API token", "Its browser sessions end too."))
  )
  .middleware(Authentication) {}

/** The caller's session. */
export class SessionGroup extends HttpApiGroup.make("session")
  .add(
    HttpApiEndpoint.get("current", "/session", { success: Models.SessionView }).annotateMerge(
      doc("viewer", "Who am I", "The caller's actor and role (and the session's CSRF token).")
    ),
    HttpApiEndpoint.delete("end", "/session", { success: HttpApiSchema.NoContent }).annotateMerge(
      doc("viewer", "Sign out", "Ends the session and clears its cookie.")
    )
  )
  .middleware(Authentication) {}

const redirect = HttpApiSchema.Empty(302).annotate({ description: "redirect (Location header)" })

/** Sign-in: with a token, or through the OIDC provider. */
export class LoginGroup extends HttpApiGroup.make("login").add(
  HttpApiEndpoint.get("methods", "/session/methods", { success: Models.LoginMethods }).annotateMerge(
    doc("public", "Sign-in methods", "Token sign-in, and the OpenID provider when [security.oidc] is configured.")
  ),
  HttpApiEndpoint.post("token", "/session", { payload: Models.SessionRequest, success: Models.SessionView }).annotateMerge(
    doc(
      "public",
      "Sign in with a token",
      "Sets the HttpOnly, SameSite=Strict session cookie. Failed sign-ins are audited and limited per client (429)."
    )
  ),
  HttpApiEndpoint.get("oidc", "/session/oidc", { query: { redirect: Schema.optional(Models.Text(500)) }, success: redirect }).annotateMerge(
    doc("public", "Sign in through the OpenID provider", "Redirects to the provider; 404 when [security.oidc] is not configured.")
  ),
  HttpApiEndpoint.get("oidcCallback", "/session/oidc/callback", {
    query: {
      code: Schema.optional(Models.Text(2000)),
      state: Schema.optional(Models.Text(500)),
      error: Schema.optional(Models.Text(500)),
      error_description: Schema.optional(Models.Text(2000)),
      iss: Schema.optional(Models.Text(2000)),
      session_state: Schema.optional(Models.Text(2000))
    },
    success: redirect
  }).annotateMerge(doc("public", "The OpenID provider's callback", "Opens a session and redirects to where the sign-in started."))
) {}

/** The whole admin API. */
export class AdminApi extends HttpApi.make("asterforge-admin")
  .add(TasksGroup)
  .add(QueuesGroup)
  .add(SystemGroup)
  .add(TokensGroup)
  .add(SessionGroup)
  .add(LoginGroup)
  .middleware(RequestErrors)
  .prefix("/admin/api")
  .annotateMerge(
    OpenApi.annotations({
      title: "AsterForge admin API",
      version,
      description:
        "Tasks, bulk actions, queues (pause and resume), nodes, lanes, the audit trail and presentation codes. Errors are JSON: { error: { tag, message } }."
    })
  ) {}
