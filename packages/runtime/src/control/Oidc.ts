/**
 * Sign-in through an OpenID Connect provider (optional): the authorization
 * code flow with PKCE, a nonce and a state, for browser sessions of the admin
 * API.
 *
 * `begin` stores a login flow (`control_login_flows`: state, nonce, PKCE
 * verifier, where to return, an expiry) and answers the provider's
 * authorization URL; `complete` takes the flow back by its state (deleted in
 * the same statement, so a callback works once), exchanges the code with the
 * verifier, and checks the ID token (issuer, audience, signature, nonce)
 * with `openid-client`. The role comes from the ID token's `role_claim` when
 * it names one, else `default_role` (`none` refuses users without the claim).
 * Expired flows are removed by the `login_flow_cleanup` lane.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as ConfigSchema from "../ConfigSchema.ts"
import * as ConfigSection from "../ConfigSection.ts"
import * as LoginFlowsSql from "../internal/sql/controlLoginFlows.ts"
import { Forbidden, RuntimeError, Unauthorized } from "../RuntimeError.ts"
import * as AuditEvents from "../AuditEvents.ts"
import { bounded, type Deps } from "./Context.ts"
import * as Models from "./Models.ts"

const loopback = /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(\/|$)/

/**
 * `[security.oidc]`: the OpenID provider browser sessions may sign in with.
 *
 * @category config
 */
export const Config = ConfigSection.make(
  "security.oidc",
  {
    issuer: ConfigSection.optionalKey(ConfigSchema.HttpUrl, {
      doc: "the provider's issuer URL (https; http only on loopback, for tests); unset = OIDC sign-in off"
    }),
    clientId: ConfigSection.optionalKey(ConfigSchema.NonEmptyString, { doc: "this application's client id at the provider" }),
    clientSecret: ConfigSection.optionalKey(ConfigSchema.Secret, {
      doc: "the client secret (unset for a public client: PKCE alone)",
      secret: true
    }),
    redirectUrl: ConfigSection.optionalKey(ConfigSchema.HttpUrl, {
      doc: "the callback URL registered at the provider: https://<node>/admin/api/session/oidc/callback"
    }),
    scopes: ConfigSection.key(ConfigSchema.List(ConfigSchema.NonEmptyString), {
      default: "openid,email,profile",
      doc: "scopes asked for"
    }),
    roleClaim: ConfigSection.key(ConfigSchema.NonEmptyString, {
      default: "asterforge_role",
      doc: "ID token claim naming the user's role (viewer, operator or admin)"
    }),
    defaultRole: ConfigSection.key(ConfigSchema.Literals(["none", ...Models.roles]), {
      default: "viewer",
      doc: "role of users whose ID token has no valid role claim; none = refuse them"
    }),
    flowTtl: ConfigSection.key(ConfigSchema.Duration({ minimum: "10 seconds", maximum: "1 hour" }), {
      default: "10 minutes",
      doc: "a login must come back from the provider within this time"
    })
  },
  {
    check: (c) => {
      if (Option.isNone(c.issuer)) return []
      const problems = [
        ...(Option.isNone(c.clientId) ? [{ key: "security.oidc.client_id", message: "required when security.oidc.issuer is set" }] : []),
        ...(Option.isNone(c.redirectUrl)
          ? [{ key: "security.oidc.redirect_url", message: "required when security.oidc.issuer is set" }]
          : [])
      ]
      const issuer = c.issuer.value
      if (issuer.startsWith("http://") && !loopback.test(issuer)) {
        problems.push({ key: "security.oidc.issuer", message: "must be https (http only on a loopback address)" })
      }
      return problems
    }
  }
)
export type Config = ConfigSection.TypeOf<typeof Config>

/** Where a login returns to: a path on this site, never another origin. */
export const safeRedirect = (to: string | undefined): string =>
  to !== undefined && /^\/[A-Za-z0-9/_.~%?=&-]{0,500}$/.test(to) && !to.startsWith("//") ? to : "/admin/"

/** Who signed in, from a completed login. */
export interface Completed {
  readonly actor: string
  readonly role: Models.Role
  readonly redirectTo: string
}

const unauthorized = (message: string) => new RuntimeError({ reason: new Unauthorized({ message }) })

/** The OIDC sign-in over `deps`, or undefined when `[security.oidc]` has no issuer. */
export const make = (deps: Deps, config: Config) => {
  if (Option.isNone(config.issuer) || Option.isNone(config.clientId) || Option.isNone(config.redirectUrl)) return undefined
  const issuer = config.issuer.value
  const clientId = config.clientId.value
  const redirectUrl = config.redirectUrl.value
  const secret = Option.map(config.clientSecret, Redacted.value)
  // Discovery happens on the first login and is kept; a failed one is tried again next time.
  let discovered: Promise<import("openid-client").Configuration> | undefined
  const client = Effect.tryPromise({
    try: async () => {
      const oidc = await import("openid-client")
      discovered ??= oidc
        .discovery(new URL(issuer), clientId, Option.getOrUndefined(secret), undefined, {
          ...(issuer.startsWith("http://") ? { execute: [oidc.allowInsecureRequests] } : {})
        })
        .catch((e) => {
          discovered = undefined
          throw e
        })
      return { oidc, configuration: await discovered }
    },
    catch: (e) => unauthorized(`the OpenID provider cannot be reached: ${e instanceof Error ? e.message : String(e)}`)
  })

  const begin = (redirectTo: string | undefined, caller: string) =>
    Effect.gen(function* () {
      const { oidc, configuration } = yield* client
      const flow = {
        state: oidc.randomState(),
        nonce: oidc.randomNonce(),
        code_verifier: oidc.randomPKCECodeVerifier(),
        redirect_to: safeRedirect(redirectTo)
      }
      const challenge = yield* Effect.promise(() => oidc.calculatePKCECodeChallenge(flow.code_verifier))
      yield* bounded(deps, LoginFlowsSql.insert(deps.sql, { ...flow, client: caller, ttlMs: Duration.toMillis(config.flowTtl) }))
      return oidc.buildAuthorizationUrl(configuration, {
        redirect_uri: redirectUrl,
        scope: config.scopes.join(" "),
        state: flow.state,
        nonce: flow.nonce,
        code_challenge: challenge,
        code_challenge_method: "S256"
      }).href
    })

  /** The callback: `query` is the callback URL's query string as the provider sent it. */
  const complete = (query: string, state: string) =>
    Effect.gen(function* () {
      const [flow] = yield* bounded(deps, LoginFlowsSql.take(deps.sql, state))
      if (flow === undefined || flow.expired) return yield* Effect.fail(unauthorized("unknown or expired login; start again"))
      const { oidc, configuration } = yield* client
      const tokens = yield* Effect.tryPromise({
        try: () =>
          oidc.authorizationCodeGrant(configuration, new URL(`${redirectUrl}?${query}`), {
            pkceCodeVerifier: flow.code_verifier,
            expectedState: flow.state,
            expectedNonce: flow.nonce,
            idTokenExpected: true
          }),
        catch: (e) => unauthorized(`the provider did not confirm the login: ${e instanceof Error ? e.message : String(e)}`)
      })
      const claims = tokens.claims()
      if (claims === undefined) return yield* Effect.fail(unauthorized("the provider returned no ID token"))
      const claimed = claims[config.roleClaim]
      const role = (Models.roles as ReadonlyArray<unknown>).includes(claimed) ? (claimed as Models.Role) : config.defaultRole
      const who = typeof claims.email === "string" && claims.email !== "" ? claims.email : claims.sub
      if (role === "none") {
        return yield* Effect.fail(new RuntimeError({ reason: new Forbidden({ message: `${who} has no role for the admin API` }) }))
      }
      return { actor: AuditEvents.actors.oidc(who), role, redirectTo: flow.redirect_to } satisfies Completed
    })

  return { begin, complete }
}

export type Oidc = NonNullable<ReturnType<typeof make>>
