/**
 * The admin API's middleware implementations and the services its handlers
 * share (`AdminAuth`: sign-in, sessions, OIDC; the cookie settings).
 *
 * Authentication tries the bearer token, then the session cookie. A bearer
 * token that is presented and refused is the answer (401, or 403 for its
 * role), even with a cookie beside it. A cookie-authenticated write (any
 * method but GET/HEAD) must carry the session's CSRF token in `X-CSRF-Token`.
 */
import * as ByteSize from "effect/ByteSize"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as HttpEffect from "effect/http/HttpEffect"
import * as HttpIncomingMessage from "effect/http/HttpIncomingMessage"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as HttpApiError from "effect/http-api/HttpApiError"
import * as Crypto from "node:crypto"
import type * as SqlClient from "effect/sql/SqlClient"
import type { AuditLog } from "../../AuditLog.ts"
import * as Auth from "../../control/Auth.ts"
import type * as ConfigSection from "../../ConfigSection.ts"
import * as ControlPlane from "../../ControlPlane.ts"
import * as Oidc from "../../control/Oidc.ts"
import * as RuntimeConfig from "../../RuntimeConfig.ts"
import { isRuntimeError, type RuntimeError } from "../../RuntimeError.ts"
import type { TaskQueue } from "../../TaskQueue.ts"
import type { TaskRegistry } from "../../TaskRegistry.ts"
import * as Telemetry from "../../Telemetry.ts"
import { Authentication, Caller, RequestErrors, RequiredRole } from "./Api.ts"
import * as Errors from "./Errors.ts"

/** What the admin handlers share: authentication, the OIDC sign-in (when configured), cookie settings. */
export interface AdminAuthShape {
  readonly auth: Auth.Auth
  readonly oidc: Oidc.Oidc | undefined
  readonly secureCookies: "auto" | "always" | "never"
  readonly sessionTtlSeconds: number
}

/** The admin handlers' shared authentication services. */
export class AdminAuth extends Context.Service<AdminAuth, AdminAuthShape>()("@asterforge/runtime/http/admin/AdminAuth") {}

/** The admin API's shared services, from the node's configuration and database. */
export const layerAdminAuth: Layer.Layer<
  AdminAuth,
  never,
  | SqlClient.SqlClient
  | AuditLog
  | TaskQueue
  | TaskRegistry
  | ConfigSection.Tag<"control">
  | ConfigSection.Tag<"security">
  | ConfigSection.Tag<"security.oidc">
> = Layer.effect(
  AdminAuth,
  Effect.gen(function* () {
    const deps = yield* ControlPlane.deps
    const control = yield* ControlPlane.Config
    const security = yield* RuntimeConfig.Security
    const oidc = yield* Oidc.Config
    return AdminAuth.of({
      auth: Auth.make(deps, {
        adminToken: security.adminToken,
        sessionTtl: control.sessionTtl,
        sessionIdleTimeout: control.sessionIdleTimeout,
        loginMaxFailures: control.loginMaxFailures,
        loginWindow: control.loginWindow
      }),
      oidc: Oidc.make(deps, oidc),
      secureCookies: control.secureCookies,
      sessionTtlSeconds: Math.round(Duration.toMillis(control.sessionTtl) / 1000)
    })
  })
)

/** The client a request came from (its peer address; a trusted-proxy middleware may rewrite it). */
export const clientOf = (request: HttpServerRequest.HttpServerRequest): string => Option.getOrElse(request.remoteAddress, () => "unknown")

/** Whether the session cookie gets the Secure flag for this request. */
export const secureFor = (mode: AdminAuthShape["secureCookies"], request: HttpServerRequest.HttpServerRequest): boolean =>
  mode === "always" || (mode === "auto" && (request.protocol === "https" || request.headers["x-forwarded-proto"] === "https"))

/** An API error for a runtime error; a 429 also gets its Retry-After header. */
const toApiError = (e: RuntimeError) =>
  Effect.gen(function* () {
    if (e.reason._tag === "RateLimited") {
      const seconds = String(e.reason.retryAfterSeconds)
      yield* HttpEffect.appendPreResponseHandler((_req, response) =>
        Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", seconds))
      )
    }
    return Errors.fromRuntimeError(e)
  })

const safeMethods = new Set(["GET", "HEAD", "OPTIONS"])

const sameText = (a: string, b: string) => {
  const x = Crypto.createHash("sha256").update(a).digest()
  const y = Crypto.createHash("sha256").update(b).digest()
  return Crypto.timingSafeEqual(x, y)
}

/** The role check, and the CSRF check of cookie-authenticated writes. */
const authorize = (
  principal: Auth.Principal,
  endpoint: { readonly annotations: Context.Context<never> },
  request: HttpServerRequest.HttpServerRequest
) => {
  const need = Context.getOrUndefined(endpoint.annotations, RequiredRole) ?? "viewer"
  if (!Auth.allows(principal.role, need)) {
    return Effect.fail(Errors.make(403, "Forbidden", `${principal.actor} has the role ${principal.role}; this needs ${need}`))
  }
  if (principal.session !== null && !safeMethods.has(request.method)) {
    const sent = request.headers["x-csrf-token"]
    if (typeof sent !== "string" || !sameText(sent, principal.session.csrfToken)) {
      return Effect.fail(Errors.make(403, "CsrfTokenMissing", "a write with the session cookie needs the session's X-CSRF-Token header"))
    }
  }
  return Effect.void
}

const noCredentials = Errors.make(
  401,
  "Unauthorized",
  "no credentials: send Authorization: Bearer <token>, or sign in with POST /admin/api/session"
)

/** Bearer verdicts by request: a refused bearer token is the answer even when a cookie follows. */
const verdicts = new WeakMap<object, Errors.ApiError>()

/** The `Authentication` middleware. */
export const layerAuthentication: Layer.Layer<Authentication, never, AdminAuth> = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const { auth } = yield* AdminAuth
    const check = (principal: Effect.Effect<Auth.Principal, RuntimeError>, endpoint: { readonly annotations: Context.Context<never> }) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const p = yield* principal.pipe(Effect.catch((e) => Effect.flatMap(toApiError(e), Effect.fail)))
        yield* authorize(p, endpoint, request)
        return p
      })
    return Authentication.of({
      bearer: (httpEffect, { credential, endpoint }) =>
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const token = Redacted.value(credential)
          if (token === "") return yield* Effect.fail(noCredentials)
          const principal = yield* check(auth.bearer(token, clientOf(request)), endpoint).pipe(
            Effect.tapError((e) => Effect.sync(() => verdicts.set(request, e)))
          )
          return yield* Effect.provideService(httpEffect, Caller, principal)
        }),
      session: (httpEffect, { credential, endpoint }) =>
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const refused = verdicts.get(request)
          if (refused !== undefined) return yield* Effect.fail(refused)
          const secret = Redacted.value(credential)
          if (secret === "") return yield* Effect.fail(noCredentials)
          const principal = yield* check(auth.session(secret, clientOf(request)), endpoint)
          return yield* Effect.provideService(httpEffect, Caller, principal)
        })
    })
  })
)

const requestKinds = new Set(["Params", "Headers", "Query", "Payload"])

const isBodyTooLarge = (defect: unknown): boolean => {
  const reason = (defect as { _tag?: string; reason?: { _tag?: string; reason?: string } } | null)?.reason
  return (
    (defect as { _tag?: string } | null)?._tag === "HttpServerError" &&
    reason?._tag === "RequestParseError" &&
    reason.reason === "BodyTooLarge"
  )
}

/** The first lines of a decode failure, without the input (which may be large). */
const decodeMessage = (e: HttpApiError.HttpApiSchemaError): string => {
  const text = e.cause.message
    .split("\n")
    .slice(0, 8)
    .join("\n")
    .replace(/\n\s+at /g, " at ")
    .replace(/\n/g, "; ")
  return `invalid ${e.kind.toLowerCase()}: ${text.length > 1000 ? `${text.slice(0, 1000)}...` : text}`
}

/** The `RequestErrors` middleware: failures as JSON errors, bodies limited to `control.max_body_bytes`. */
export const layerRequestErrors: Layer.Layer<RequestErrors, never, ConfigSection.Tag<"control">> = Layer.effect(
  RequestErrors,
  Effect.map(ControlPlane.Config, (config) => {
    const limit = ByteSize.bytes(config.maxBodyBytes)
    return RequestErrors.of((httpEffect) =>
      httpEffect.pipe(
        Effect.provideService(HttpIncomingMessage.MaxBodySize, limit),
        Effect.flatMap((response) =>
          response.status === 415
            ? Effect.fail(Errors.make(415, "UnsupportedMediaType", "the request body must be application/json"))
            : Effect.succeed(response)
        ),
        Effect.catchIf(
          (e: unknown) => HttpApiError.HttpApiSchemaError.is(e) && requestKinds.has(e.kind),
          (e) => Effect.fail(Errors.make(400, "BadRequest", decodeMessage(e as unknown as HttpApiError.HttpApiSchemaError)))
        ),
        Effect.catchCause((cause) => {
          const failure = cause.reasons.find(Cause.isFailReason)?.error
          if (failure !== undefined && !HttpApiError.HttpApiSchemaError.is(failure)) return Effect.failCause(cause)
          if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
          const defect = cause.reasons.find(Cause.isDieReason)?.defect
          if (isBodyTooLarge(defect)) {
            return Effect.fail(
              Errors.make(413, "PayloadTooLarge", `the request body is larger than control.max_body_bytes (${config.maxBodyBytes})`)
            )
          }
          return Effect.logError("admin API request failed", cause).pipe(
            Telemetry.component("http"),
            Effect.andThen(Effect.fail(Errors.make(500, "Internal", "unexpected failure; the details are in the node's log")))
          )
        })
      )
    )
  })
)

/** Maps a handler's runtime errors to API errors. */
export const api = <A, R>(
  effect: Effect.Effect<A, RuntimeError, R>
): Effect.Effect<A, Errors.ApiError, R | HttpServerRequest.HttpServerRequest> =>
  Effect.catch(effect, (e) => (isRuntimeError(e) ? Effect.flatMap(toApiError(e), Effect.fail) : Effect.fail(Errors.fromRuntimeError(e))))

export { Caller }
