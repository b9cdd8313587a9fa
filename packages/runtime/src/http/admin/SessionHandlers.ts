/**
 * The admin API's sign-in handlers: a session from a token (`POST /session`),
 * the caller (`GET /session`), sign-out (`DELETE /session`), and the OIDC
 * redirect and callback. The session cookie is HttpOnly, SameSite=Strict,
 * scoped to `/admin`, Secure per `control.secure_cookies`.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as Auth from "../../control/Auth.ts"
import type { LoginMethods } from "../../control/Models.ts"
import * as Oidc from "../../control/Oidc.ts"
import { ResourceNotFound, RuntimeError, Unauthorized } from "../../RuntimeError.ts"
import { AdminApi, Caller, sessionCookie } from "./Api.ts"
import { AdminAuth, api, clientOf, secureFor } from "./Middleware.ts"

const cookieOptions = (secure: boolean, maxAgeSeconds: number) => ({
  httpOnly: true,
  secure,
  sameSite: "strict" as const,
  path: "/admin",
  maxAge: Duration.seconds(maxAgeSeconds)
})

/** Sets the session cookie on the response this request gets. */
const setCookie = (secret: string, maxAgeSeconds: number) =>
  Effect.gen(function* () {
    const { secureCookies } = yield* AdminAuth
    const request = yield* HttpServerRequest.HttpServerRequest
    yield* HttpApiBuilder.securitySetCookie(sessionCookie, secret, cookieOptions(secureFor(secureCookies, request), maxAgeSeconds))
  })

/** The session group: who am I, sign out. */
export const layerSession = HttpApiBuilder.group(
  AdminApi,
  "session",
  Effect.fn(function* (handlers) {
    const { auth } = yield* AdminAuth
    return handlers
      .handle("current", () => Effect.map(Caller, Auth.view))
      .handle("end", () =>
        Effect.gen(function* () {
          const caller = yield* Caller
          yield* api(auth.logout(caller))
          if (caller.session !== null) yield* setCookie("", 0)
        })
      )
  })
)

const refused = (message: string) =>
  new RuntimeError({ reason: new Unauthorized({ message: `sign-in refused by the provider: ${message}` }) })

const oidcOff = new RuntimeError({ reason: new ResourceNotFound({ kind: "sign-in method", id: "oidc (no [security.oidc] issuer)" }) })

/** The login group: sign in with a token, or through the OpenID provider. */
export const layerLogin = HttpApiBuilder.group(
  AdminApi,
  "login",
  Effect.fn(function* (handlers) {
    const { auth, oidc, sessionTtlSeconds } = yield* AdminAuth
    const oidcConfig = yield* Oidc.Config
    const methods: LoginMethods = {
      token: true,
      oidc:
        oidc === undefined || Option.isNone(oidcConfig.issuer)
          ? null
          : { label: new URL(oidcConfig.issuer.value).host, url: "/admin/api/session/oidc" }
    }
    return handlers
      .handle("methods", () => Effect.succeed(methods))
      .handle("token", ({ payload }) =>
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const opened = yield* api(auth.login(payload.token, clientOf(request)))
          yield* setCookie(opened.secret, sessionTtlSeconds)
          return Auth.view(opened.principal)
        })
      )
      .handle("oidc", ({ query }) =>
        Effect.gen(function* () {
          if (oidc === undefined) return yield* api(Effect.fail(oidcOff))
          const request = yield* HttpServerRequest.HttpServerRequest
          const url = yield* api(oidc.begin(query.redirect, clientOf(request)))
          return HttpServerResponse.redirect(url, { status: 302 })
        })
      )
      .handle("oidcCallback", ({ query }) =>
        Effect.gen(function* () {
          if (oidc === undefined) return yield* api(Effect.fail(oidcOff))
          const request = yield* HttpServerRequest.HttpServerRequest
          const client = clientOf(request)
          const search = request.url.includes("?") ? request.url.slice(request.url.indexOf("?") + 1) : ""
          const login =
            query.state === undefined
              ? Effect.fail(refused(query.error ?? "the callback has no state"))
              : oidc.complete(search, query.state)
          const opened = yield* api(
            auth.checkLimit(client).pipe(
              Effect.andThen(login),
              Effect.tapError((e) =>
                e.reason._tag === "Unauthorized" || e.reason._tag === "Forbidden"
                  ? auth.recordFailure(client, "oidc", e.message)
                  : Effect.void
              ),
              Effect.flatMap((who) =>
                Effect.map(auth.openSession({ actor: who.actor, role: who.role, source: "oidc", tokenId: null }, client), (session) => ({
                  session,
                  redirectTo: who.redirectTo
                }))
              )
            )
          )
          yield* setCookie(opened.session.secret, sessionTtlSeconds)
          return HttpServerResponse.redirect(opened.redirectTo, { status: 302 })
        })
      )
  })
)
