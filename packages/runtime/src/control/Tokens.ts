/**
 * API tokens of the admin API: `aft_` and 256 random bits (base64url). Only
 * the SHA-256 of a token is stored, and a token is found by that hash: the
 * token itself is shown once, at creation, and never again. A slow password
 * hash would add nothing (the input is random, not a password) and cost every
 * request.
 */
import * as Effect from "effect/Effect"
import * as Crypto from "node:crypto"
import * as AuditEvents from "../AuditEvents.ts"
import * as ApiTokensSql from "../internal/sql/apiTokens.ts"
import { ResourceConflict, ResourceNotFound, RuntimeError } from "../RuntimeError.ts"
import { bounded, type Deps, iso, isoOrNull } from "./Context.ts"
import type * as Models from "./Models.ts"

/** The hash a token is stored and found by. */
export const hash = (token: string): string => Crypto.createHash("sha256").update(token, "utf8").digest("hex")

/** A new random token. */
export const generate = (): string => `aft_${Crypto.randomBytes(32).toString("base64url")}`

/** `30d`, `12h`, `90m` in milliseconds. */
export const expiresInMs = (text: string): number => {
  const n = Number(text.slice(0, -1))
  const unit = text.slice(-1)
  return n * (unit === "d" ? 86_400_000 : unit === "h" ? 3_600_000 : 60_000)
}

/** A token row as the API shows it. */
export const view = (row: ApiTokensSql.Row): Models.TokenView => ({
  id: row.id,
  name: row.name,
  role: row.role,
  prefix: row.prefix,
  createdBy: row.created_by,
  createdAt: iso(row.created_at),
  expiresAt: isoOrNull(row.expires_at),
  lastUsedAt: isoOrNull(row.last_used_at),
  revokedAt: isoOrNull(row.revoked_at)
})

/** The token operations over `deps`. */
export const make = (deps: Deps) => ({
  create: (request: Models.CreateTokenRequest, actor: string) =>
    Effect.gen(function* () {
      const token = generate()
      const [row] = yield* bounded(
        deps,
        ApiTokensSql.insert(deps.sql, {
          id: Crypto.randomUUID(),
          name: request.name,
          role: request.role,
          hash: hash(token),
          prefix: token.slice(0, 12),
          createdBy: actor,
          expiresInMs: request.expiresIn === undefined ? null : expiresInMs(request.expiresIn)
        })
      )
      if (row === undefined) {
        return yield* Effect.fail(
          new RuntimeError({
            reason: new ResourceConflict({ message: `a live token named ${JSON.stringify(request.name)} exists; revoke it first` })
          })
        )
      }
      yield* deps.audit.record(
        AuditEvents.tokenCreated({ actor, subject: row.name, details: { role: row.role, expiresAt: isoOrNull(row.expires_at) } })
      )
      return { ...view(row), token } satisfies Models.TokenCreated
    }),

  list: (options: { readonly includeRevoked: boolean }) =>
    Effect.map(bounded(deps, ApiTokensSql.list(deps.sql, options)), (rows) => rows.map(view)),

  revoke: (name: string, actor: string) =>
    Effect.gen(function* () {
      const [row] = yield* bounded(deps, ApiTokensSql.revoke(deps.sql, name))
      if (row === undefined) return yield* Effect.fail(new RuntimeError({ reason: new ResourceNotFound({ kind: "token", id: name }) }))
      yield* deps.audit.record(AuditEvents.tokenRevoked({ actor, subject: row.name, details: { role: row.role, sessions: row.sessions } }))
      return view(row)
    }),

  /** The live token `token` is, if any (marks it used). */
  verify: (token: string) => Effect.map(bounded(deps, ApiTokensSql.use(deps.sql, hash(token))), (rows) => rows[0])
})
