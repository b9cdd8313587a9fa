/**
 * Who is calling the admin API, and what they may do.
 *
 * Credentials: the configured `security.admin_token` (role admin), API tokens
 * (found by their SHA-256, see Tokens.ts), and browser sessions opened with
 * either (or through OIDC): the cookie holds a random secret, the database
 * its SHA-256, with an absolute and an idle expiry and a CSRF token that
 * cookie-authenticated writes must send back.
 *
 * Failed logins (a refused token or session) are audited (`login.failed`),
 * counted, and limited per client: after `control.login_max_failures` within
 * `control.login_window` a client gets 429 until the window passes, without
 * a database query or an audit row per attempt. The limit is per node.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import * as AuditEvents from "../AuditEvents.ts"
import * as ControlSessionsSql from "../internal/sql/controlSessions.ts"
import { RateLimited, RuntimeError, Unauthorized } from "../RuntimeError.ts"
import * as Telemetry from "../Telemetry.ts"
import { bounded, type Deps } from "./Context.ts"
import type * as Models from "./Models.ts"
import * as Tokens from "./Tokens.ts"

const rank: Record<Models.Role, number> = { viewer: 0, operator: 1, admin: 2 }

/** Whether `have` may do what needs `need`: viewer < operator < admin. */
export const allows = (have: Models.Role, need: Models.Role): boolean => rank[have] >= rank[need]

/** The authenticated caller. */
export interface Principal {
  /** As the audit trail shows it: `admin_token`, `token:<name>`, `oidc:<email>`. */
  readonly actor: string
  readonly role: Models.Role
  readonly via: "admin_token" | "api_token" | "session"
  readonly tokenId: string | null
  readonly session: { readonly id: string; readonly csrfToken: string; readonly expiresAt: Date } | null
}

/** What opens a session: the principal it is for, and how it signed in. */
export interface SessionOwner {
  readonly actor: string
  readonly role: Models.Role
  readonly source: "admin_token" | "api_token" | "oidc"
  readonly tokenId: string | null
}

/** A new session: the cookie's secret (never stored) and the CSRF token the client sends back on writes. */
export interface NewSession {
  readonly secret: string
  readonly principal: Principal
}

/** What authentication is configured with: the admin token, session lifetimes, failed-login limits. */
export interface AuthOptions {
  readonly adminToken: Option.Option<Redacted.Redacted<string>>
  readonly sessionTtl: Duration.Duration
  readonly sessionIdleTimeout: Duration.Duration
  readonly loginMaxFailures: number
  readonly loginWindow: Duration.Duration
}

const sha256 = (text: string) => Crypto.createHash("sha256").update(text, "utf8").digest()

/** Failed logins per client within a window; at most `maxClients` tracked (the oldest forgotten first). */
const limiter = (options: AuthOptions, maxClients = 10_000) => {
  const windowMs = Duration.toMillis(options.loginWindow)
  const failures = new Map<string, { count: number; since: number }>()
  const current = (client: string, now: number) => {
    const entry = failures.get(client)
    return entry !== undefined && now - entry.since < windowMs ? entry : undefined
  }
  return {
    /** Seconds the client must wait, or 0. */
    blockedFor: (client: string): number => {
      const now = Date.now()
      const entry = current(client, now)
      return entry !== undefined && entry.count >= options.loginMaxFailures ? Math.ceil((entry.since + windowMs - now) / 1000) : 0
    },
    fail: (client: string): void => {
      const now = Date.now()
      const entry = current(client, now) ?? { count: 0, since: now }
      failures.delete(client)
      failures.set(client, { count: entry.count + 1, since: entry.since })
      if (failures.size > maxClients) failures.delete(failures.keys().next().value!)
    }
  }
}

const randomText = (bytes: number) => Crypto.randomBytes(bytes).toString("base64url")

/** Opens a session for `owner`; audited as `session.created`. */
const sessionOpener =
  (deps: Deps, options: AuthOptions) =>
  (owner: SessionOwner, client: string): Effect.Effect<NewSession, RuntimeError> =>
    Effect.gen(function* () {
      const secret = randomText(32)
      const [row] = yield* bounded(
        deps,
        ControlSessionsSql.insert(deps.sql, {
          id: sha256(secret).toString("hex"),
          csrfToken: randomText(24),
          actor: owner.actor,
          role: owner.role,
          source: owner.source,
          tokenId: owner.tokenId,
          client,
          absoluteMs: Duration.toMillis(options.sessionTtl),
          idleMs: Duration.toMillis(options.sessionIdleTimeout)
        })
      )
      yield* deps.audit.record(
        AuditEvents.sessionCreated({
          actor: owner.actor,
          subject: row!.id.slice(0, 12),
          details: { role: owner.role, source: owner.source, client }
        })
      )
      return {
        secret,
        principal: {
          actor: owner.actor,
          role: owner.role,
          via: "session",
          tokenId: owner.tokenId,
          session: { id: row!.id, csrfToken: row!.csrf_token, expiresAt: row!.expires_at }
        }
      }
    })

/** Sign-out: ends the caller's session (a bearer caller has none: nothing happens); audited as `session.ended`. */
const logout = (deps: Deps) => (principal: Principal) =>
  principal.session === null
    ? Effect.void
    : Effect.gen(function* () {
        const removed = yield* bounded(deps, ControlSessionsSql.remove(deps.sql, principal.session!.id))
        if (removed.length > 0) {
          yield* deps.audit.record(
            AuditEvents.sessionEnded({ actor: principal.actor, subject: principal.session!.id.slice(0, 12), details: {} })
          )
        }
      })

/** Authentication over `deps`. */
export const make = (deps: Deps, options: AuthOptions) => {
  const limits = limiter(options)
  const tokens = Tokens.make(deps)
  const adminDigest = Option.map(options.adminToken, (t) => sha256(Redacted.value(t)))

  const unauthorized = (message: string) => new RuntimeError({ reason: new Unauthorized({ message }) })

  /** Counts and audits a failed login. */
  const recordFailure = (client: string, via: string, reason: string) =>
    Effect.gen(function* () {
      limits.fail(client)
      yield* Metric.update(Telemetry.labelled(Telemetry.metrics.controlLoginFailures, { via }), 1)
      yield* deps.audit.record(AuditEvents.loginFailed({ actor: AuditEvents.actors.anonymous, details: { reason, via, client } }))
    })

  /** Counts, audits and refuses a failed login. */
  const failed = (client: string, via: string, reason: string) =>
    Effect.andThen(recordFailure(client, via, reason), Effect.fail(unauthorized(reason)))

  const checkLimit = (client: string) => {
    const wait = limits.blockedFor(client)
    return wait > 0
      ? Effect.fail(
          new RuntimeError({
            reason: new RateLimited({ message: `too many failed logins from this client; retry in ${wait} s`, retryAfterSeconds: wait })
          })
        )
      : Effect.void
  }

  /** A bearer token: the configured admin token, or a live API token. */
  const bearer = (token: string, client: string): Effect.Effect<Principal, RuntimeError> =>
    Effect.gen(function* () {
      yield* checkLimit(client)
      if (Option.isSome(adminDigest) && Crypto.timingSafeEqual(sha256(token), adminDigest.value)) {
        return { actor: AuditEvents.actors.adminToken, role: "admin", via: "admin_token", tokenId: null, session: null } satisfies Principal
      }
      const row = token.startsWith("aft_") && token.length <= 200 ? yield* tokens.verify(token) : undefined
      if (row === undefined) return yield* failed(client, "bearer", "unknown, expired or revoked token")
      return {
        actor: AuditEvents.actors.token(row.name),
        role: row.role,
        via: "api_token",
        tokenId: row.id,
        session: null
      } satisfies Principal
    })

  /** A session cookie's secret. */
  const session = (secret: string, client: string): Effect.Effect<Principal, RuntimeError> =>
    Effect.gen(function* () {
      yield* checkLimit(client)
      const id = sha256(secret).toString("hex")
      const [row] = yield* bounded(
        deps,
        ControlSessionsSql.use(deps.sql, id, { idleMs: Duration.toMillis(options.sessionIdleTimeout), touchMs: 60_000 })
      )
      if (row === undefined) return yield* failed(client, "session", "unknown or expired session; sign in again")
      return {
        actor: row.actor,
        role: row.role,
        via: "session",
        tokenId: row.token_id,
        session: { id: row.id, csrfToken: row.csrf_token, expiresAt: row.expires_at }
      } satisfies Principal
    })

  const openSession = sessionOpener(deps, options)

  /** Sign-in with a token: checks it like a bearer token, then opens a session. */
  const login = (token: string, client: string) =>
    Effect.flatMap(bearer(token, client), (p) =>
      openSession(
        { actor: p.actor, role: p.role, source: p.via === "admin_token" ? "admin_token" : "api_token", tokenId: p.tokenId },
        client
      )
    )

  return { bearer, session, openSession, login, logout: logout(deps), recordFailure, checkLimit }
}

/** The authentication operations (`make`). */
export type Auth = ReturnType<typeof make>

/** The caller as `GET /session` shows it. */
export const view = (p: Principal): Models.SessionView => ({
  actor: p.actor,
  role: p.role,
  via: p.via,
  csrfToken: p.session?.csrfToken ?? null,
  expiresAt: p.session === null ? null : p.session.expiresAt.toISOString()
})
