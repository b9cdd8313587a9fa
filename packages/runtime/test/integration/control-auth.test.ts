/**
 * The admin API's doors, against a real node and Postgres: each endpoint's
 * role (401 without or with bad credentials, 403 below its role, 2xx at it),
 * API tokens (hashed, shown once, revoked), browser sessions (cookie flags,
 * CSRF, sign-out, expiry), failed logins (audited, rate-limited per client),
 * every error as `{ error: { tag, message } }`, the statement timeout, the
 * OpenAPI document and docs page, and the metrics token.
 */
import { describe, expect, layer } from "@effect/vitest"
import { type Context, Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import * as Crypto from "node:crypto"
import { AuditLog } from "../../src/AuditLog.ts"
import * as ControlContext from "../../src/control/Context.ts"
import * as ControlPlane from "../../src/ControlPlane.ts"
import { TaskQueue } from "../../src/TaskQueue.ts"
import * as T from "../fixtures/test-tasks.ts"
import * as Admin from "../support/admin.ts"
import * as Kit from "../support/kit.ts"

const metricsToken = "test-metrics-token-0123456789"

const env = {
  ASTERFORGE_SECURITY_ADMIN_TOKEN: Admin.adminToken,
  ASTERFORGE_SECURITY_METRICS_TOKEN: metricsToken,
  ASTERFORGE_CONTROL_LOGIN_MAX_FAILURES: "100000",
  ASTERFORGE_CONTROL_MAX_BODY_BYTES: "4096",
  ASTERFORGE_TELEMETRY_LOG_LEVEL: "none"
}

const Db = Kit.database("control_auth")
const TestNode = Kit.node({ modules: [T.TestTasks], env }).pipe(Layer.provideMerge(Kit.setUp(T.createTables)), Layer.provideMerge(Db))

const flush = Effect.flatMap(AuditLog, (a) => a.flush)

type Role = "viewer" | "operator" | "admin"
const roles: ReadonlyArray<Role> = ["viewer", "operator", "admin"]

/** One endpoint: its method, the role it needs, and how to make a request it answers with 2xx. */
interface Door {
  readonly method: "GET" | "POST" | "DELETE"
  readonly role: Role
  readonly ok: number
  readonly request: Effect.Effect<{ readonly path: string; readonly body?: unknown }, unknown, any>
}

const parked = (key: string) => Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Record, { key }, { queue: "parked" }))

const doors: Record<string, Door> = {
  "list tasks": { method: "GET", role: "viewer", ok: 200, request: Effect.succeed({ path: "/admin/api/tasks?state=available" }) },
  "get a task": {
    method: "GET",
    role: "viewer",
    ok: 200,
    request: Effect.map(parked("door-get"), (t) => ({ path: `/admin/api/tasks/${t.id}` }))
  },
  enqueue: {
    method: "POST",
    role: "operator",
    ok: 201,
    request: Effect.succeed({ path: "/admin/api/tasks", body: { name: "test.record", payload: { key: "door" }, queue: "parked" } })
  },
  retry: {
    method: "POST",
    role: "operator",
    ok: 200,
    request: Effect.gen(function* () {
      const t = yield* parked(`door-retry-${Crypto.randomUUID()}`)
      yield* Effect.flatMap(TaskQueue, (q) => q.cancel(t.id))
      return { path: `/admin/api/tasks/${t.id}/retry` }
    })
  },
  cancel: {
    method: "POST",
    role: "operator",
    ok: 200,
    request: Effect.map(parked("door-cancel"), (t) => ({ path: `/admin/api/tasks/${t.id}/cancel` }))
  },
  delete: {
    method: "DELETE",
    role: "admin",
    ok: 200,
    request: Effect.gen(function* () {
      const t = yield* parked(`door-delete-${Crypto.randomUUID()}`)
      yield* Effect.flatMap(TaskQueue, (q) => q.cancel(t.id))
      return { path: `/admin/api/tasks/${t.id}` }
    })
  },
  bulk: {
    method: "POST",
    role: "admin",
    ok: 200,
    request: Effect.succeed({ path: "/admin/api/tasks/bulk", body: { filter: { queue: "parked" }, action: "cancel" } })
  },
  queues: { method: "GET", role: "viewer", ok: 200, request: Effect.succeed({ path: "/admin/api/queues" }) },
  pause: { method: "POST", role: "operator", ok: 200, request: Effect.succeed({ path: "/admin/api/queues/door/pause" }) },
  resume: { method: "POST", role: "operator", ok: 200, request: Effect.succeed({ path: "/admin/api/queues/door/resume" }) },
  nodes: { method: "GET", role: "viewer", ok: 200, request: Effect.succeed({ path: "/admin/api/nodes" }) },
  lanes: { method: "GET", role: "viewer", ok: 200, request: Effect.succeed({ path: "/admin/api/lanes" }) },
  audit: { method: "GET", role: "viewer", ok: 200, request: Effect.succeed({ path: "/admin/api/audit" }) },
  codes: { method: "GET", role: "viewer", ok: 200, request: Effect.succeed({ path: "/admin/api/codes" }) },
  "list tokens": { method: "GET", role: "admin", ok: 200, request: Effect.succeed({ path: "/admin/api/tokens" }) },
  "create a token": {
    method: "POST",
    role: "admin",
    ok: 201,
    request: Effect.sync(() => ({
      path: "/admin/api/tokens",
      body: { name: `door-${Crypto.randomBytes(4).toString("hex")}`, role: "viewer" }
    }))
  },
  "revoke a token": {
    method: "DELETE",
    role: "admin",
    ok: 200,
    request: Effect.map(Admin.createToken(`door-revoke-${Crypto.randomBytes(4).toString("hex")}`, "viewer"), () => ({
      path: "/admin/api/tokens/" // completed below: the name is in the token list
    }))
  },
  whoami: { method: "GET", role: "viewer", ok: 200, request: Effect.succeed({ path: "/admin/api/session" }) },
  "sign out": { method: "DELETE", role: "viewer", ok: 204, request: Effect.succeed({ path: "/admin/api/session" }) }
}

/** The request a door's prepared input makes (the revoke door names the newest live door-revoke token). */
const prepared = (door: Door) =>
  Effect.gen(function* () {
    const r = yield* door.request
    if (r.path !== "/admin/api/tokens/") return r
    const [row] = yield* Kit.queryDb<{ name: string }>(
      "SELECT name FROM api_tokens WHERE name LIKE 'door-revoke-%' AND revoked_at IS NULL ORDER BY created_at DESC LIMIT 1"
    )
    return { path: `/admin/api/tokens/${row!.name}` }
  })

layer(TestNode, { excludeTestServices: true })("admin API: authentication and authorization", (it) => {
  const tokens = new Map<Role, string>()
  const tokenOf = (role: Role) =>
    Effect.gen(function* () {
      const existing = tokens.get(role)
      if (existing !== undefined) return existing
      const created = yield* Admin.createToken(`role-${role}`, role)
      tokens.set(role, created)
      return created
    })

  describe("roles", () => {
    for (const [what, door] of Object.entries(doors)) {
      it.effect(`${what}: 401 without credentials or with a bad token, 403 below ${door.role}, ${door.ok} as ${door.role}`, () =>
        Effect.gen(function* () {
          const { path, body } = yield* prepared(door)
          const anonymous = yield* Admin.request(door.method, path, { body })
          expect(anonymous.status, anonymous.text).toBe(401)
          expect(Admin.isErrorBody(anonymous.json)).toBe(true)
          const forged = yield* Admin.request(door.method, path, { body, token: `aft_${Crypto.randomBytes(32).toString("base64url")}` })
          expect(forged.status).toBe(401)
          for (const below of roles.slice(0, roles.indexOf(door.role))) {
            const refused = yield* Admin.request(door.method, path, { body, token: yield* tokenOf(below) })
            expect(refused.status, `${below}: ${refused.text}`).toBe(403)
            expect(refused.json.error.message).toContain(`needs ${door.role}`)
          }
          const allowed = yield* Admin.request(door.method, path, { body, token: yield* tokenOf(door.role) })
          expect(allowed.status, allowed.text).toBe(door.ok)
        })
      )
    }

    it.effect("the configured admin token is an admin; its actor is admin_token", () =>
      Effect.gen(function* () {
        const me = yield* Admin.get("/admin/api/session")
        expect(me.json).toEqual({ actor: "admin_token", role: "admin", via: "admin_token", csrfToken: null, expiresAt: null })
      })
    )
  })

  describe("API tokens", () => {
    it.effect("are shown once, stored only as a SHA-256, listed without the secret, and stop working when revoked (audited)", () =>
      Effect.gen(function* () {
        const created = yield* Admin.post("/admin/api/tokens", { name: "ops-bot", role: "operator", expiresIn: "30d" })
        expect(created.status).toBe(201)
        const token: string = created.json.token
        expect(token).toMatch(/^aft_[A-Za-z0-9_-]{43}$/)
        const [row] = yield* Kit.queryDb<Record<string, unknown>>("SELECT * FROM api_tokens WHERE name = 'ops-bot'")
        expect(row!.token_hash).toBe(Crypto.createHash("sha256").update(token).digest("hex"))
        expect(Object.values(row!).some((v) => typeof v === "string" && v.includes(token))).toBe(false)
        expect(new Date(row!.expires_at as string).getTime() - Date.now()).toBeGreaterThan(29 * 86_400_000)

        const listed = yield* Admin.get("/admin/api/tokens")
        expect(listed.text).not.toContain(token)
        expect(listed.json.items.find((t: { name: string }) => t.name === "ops-bot")).toMatchObject({
          role: "operator",
          prefix: token.slice(0, 12)
        })

        const me = yield* Admin.get("/admin/api/session", { token })
        expect(me.json).toMatchObject({ actor: "token:ops-bot", role: "operator", via: "api_token" })
        expect((yield* Admin.post("/admin/api/tokens", { name: "ops-bot", role: "viewer" })).status).toBe(409)

        const revoked = yield* Admin.del("/admin/api/tokens/ops-bot")
        expect(revoked.json).toMatchObject({ name: "ops-bot" })
        expect((yield* Admin.get("/admin/api/session", { token })).status).toBe(401)
        expect((yield* Admin.del("/admin/api/tokens/ops-bot")).status).toBe(404)
        yield* flush
        expect(yield* Admin.auditRows("token.created")).toContainEqual({
          actor: "admin_token",
          subject: "token:ops-bot",
          details: { role: "operator", expiresAt: expect.any(String) }
        })
        expect(yield* Admin.auditRows("token.revoked")).toContainEqual({
          actor: "admin_token",
          subject: "token:ops-bot",
          details: { role: "operator", sessions: 0 }
        })
      })
    )

    it.effect("an expired token is refused", () =>
      Effect.gen(function* () {
        const token = yield* Admin.createToken("short-lived", "viewer")
        expect((yield* Admin.get("/admin/api/session", { token })).status).toBe(200)
        yield* Kit.queryDb("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'short-lived'")
        expect((yield* Admin.get("/admin/api/session", { token })).status).toBe(401)
      })
    )
  })

  describe("browser sessions", () => {
    it.effect(
      "a token signs in: an HttpOnly, SameSite=Strict cookie; reads work, writes need X-CSRF-Token; sign-out ends it (audited)",
      () =>
        Effect.gen(function* () {
          const operator = yield* tokenOf("operator")
          const signedIn = yield* Admin.post("/admin/api/session", { token: operator }, {})
          expect(signedIn.status, signedIn.text).toBe(200)
          const setCookie = signedIn.headers.get("set-cookie") ?? ""
          expect(setCookie).toMatch(/^asterforge_session=[A-Za-z0-9_-]{43};/)
          expect(setCookie).toContain("HttpOnly")
          expect(setCookie).toContain("SameSite=Strict")
          expect(setCookie).toContain("Path=/admin")
          expect(setCookie).toContain("Max-Age=43200")
          expect(setCookie).not.toContain("Secure") // plain HTTP here; control.secure_cookies = auto
          const cookie = setCookie.split(";")[0]!
          const csrf: string = signedIn.json.csrfToken
          expect(signedIn.json).toMatchObject({ actor: "token:role-operator", role: "operator", via: "session" })

          expect((yield* Admin.get("/admin/api/tasks", { cookie })).status).toBe(200)
          const noCsrf = yield* Admin.post("/admin/api/queues/session-q/pause", undefined, { cookie })
          expect(noCsrf.status).toBe(403)
          expect(noCsrf.json.error.tag).toBe("CsrfTokenMissing")
          expect((yield* Admin.post("/admin/api/queues/session-q/pause", undefined, { cookie, csrf: "wrong" })).status).toBe(403)
          expect((yield* Admin.post("/admin/api/queues/session-q/resume", undefined, { cookie, csrf })).status).toBe(200)
          // The session carries its token's role.
          expect((yield* Admin.get("/admin/api/tokens", { cookie })).status).toBe(403)

          const signedOut = yield* Admin.del("/admin/api/session", { cookie, csrf })
          expect(signedOut.status).toBe(204)
          expect(signedOut.headers.get("set-cookie")).toMatch(/^asterforge_session=;.*Max-Age=0/)
          expect((yield* Admin.get("/admin/api/tasks", { cookie })).status).toBe(401)
          yield* flush
          expect((yield* Admin.auditRows("session.created")).some((r) => r.actor === "token:role-operator")).toBe(true)
          expect((yield* Admin.auditRows("session.ended")).some((r) => r.actor === "token:role-operator")).toBe(true)
          expect(
            (yield* Admin.auditRows("queue.resumed")).some((r) => r.actor === "token:role-operator" && r.subject === "queue:session-q")
          ).toBe(true)
        })
    )

    it.effect("an idle or expired session is refused; revoking its token ends it; a refused bearer token wins over a cookie", () =>
      Effect.gen(function* () {
        const viewer = yield* Admin.createToken("session-viewer", "viewer")
        const open = () =>
          Effect.map(Admin.post("/admin/api/session", { token: viewer }, {}), (a) => (a.headers.get("set-cookie") ?? "").split(";")[0]!)
        const idle = yield* open()
        yield* Kit.queryDb("UPDATE control_sessions SET expires_at = now() - interval '1 second' WHERE actor = 'token:session-viewer'")
        expect((yield* Admin.get("/admin/api/session", { cookie: idle })).status).toBe(401)

        const live = yield* open()
        expect((yield* Admin.get("/admin/api/session", { cookie: live })).status).toBe(200)
        const bad = yield* Admin.get("/admin/api/session", { cookie: live, token: "aft_not-a-real-token" })
        expect(bad.status).toBe(401)
        expect(bad.json.error.message).toContain("token")
        expect((yield* Admin.del("/admin/api/tokens/session-viewer")).json.name).toBe("session-viewer")
        expect((yield* Admin.get("/admin/api/session", { cookie: live })).status).toBe(401)
        expect((yield* Admin.post("/admin/api/session", { token: viewer }, {})).status).toBe(401)
      })
    )
  })

  describe("errors", () => {
    it.effect("every refusal is JSON { error: { tag, message } } with the reason", () =>
      Effect.gen(function* () {
        const cases: ReadonlyArray<[Effect.Effect<Admin.Answer, never, Kit.NodeAddress>, number, string]> = [
          [Admin.get("/admin/api/tasks?limit=0"), 400, "limit"],
          [Admin.get("/admin/api/tasks?state=bogus"), 400, "state"],
          [Admin.get("/admin/api/tasks?createdAfter=yesterday"), 400, "createdAfter"],
          [Admin.get("/admin/api/tasks?payload=%5B1%5D"), 400, "payload"],
          [Admin.get("/admin/api/tasks?cursor=bm90LWEtY3Vyc29y"), 400, "cursor"],
          [Admin.get("/admin/api/tasks/99999999999999999999"), 400, "id"],
          [Admin.get("/admin/api/tasks/12345678"), 404, "not found"],
          [Admin.request("POST", "/admin/api/tasks", { token: Admin.adminToken, body: "{not json" }), 400, "JSON"],
          [
            Admin.request("POST", "/admin/api/tasks", { token: Admin.adminToken, body: "x", contentType: "text/plain" }),
            415,
            "application/json"
          ],
          [Admin.post("/admin/api/tasks", { name: "test.record", payload: { key: "x".repeat(5000) } }), 413, "max_body_bytes"],
          [Admin.post("/admin/api/tasks", { name: "test.record", payload: { key: 42 } }), 422, "key"],
          [Admin.post("/admin/api/tasks", { name: "no.such_task", payload: {} }), 422, "registered"],
          [Admin.post("/admin/api/tasks", { name: "test.record", payload: { key: "nul\u0000" } }), 400, "NUL"],
          [Admin.post("/admin/api/tasks/bulk", { filter: {}, action: "explode" }), 400, "action"],
          [Admin.get("/admin/api/no-such-thing"), 404, "openapi.json"]
        ]
        for (const [call, status, reason] of cases) {
          const answer = yield* call
          expect(answer.status, answer.text).toBe(status)
          expect(Admin.isErrorBody(answer.json), answer.text).toBe(true)
          expect(answer.json.error.message).toContain(reason)
        }
      })
    )

    it.effect("an admin query past control.statement_timeout is QueryTimeout (422), not an outage", () =>
      Effect.gen(function* () {
        const deps = yield* ControlPlane.deps
        const short = { ...deps, options: { ...deps.options, statementTimeout: Duration.millis(50) } }
        const sql = yield* SqlClient.SqlClient
        const error = yield* Effect.flip(ControlContext.bounded(short, sql`SELECT pg_sleep(2)`))
        expect(error.reason._tag).toBe("QueryTimeout")
        expect(error.httpStatus).toBe(422)
        // The timeout is local to that transaction.
        expect(yield* ControlContext.bounded(deps, sql<{ ok: number }>`SELECT 1 AS ok`)).toEqual([{ ok: 1 }])
      })
    )
  })

  describe("documents", () => {
    it.effect("the OpenAPI 3.1 document and the docs page need no credentials; the page loads nothing from elsewhere", () =>
      Effect.gen(function* () {
        const doc = yield* Admin.get("/admin/api/openapi.json", {})
        expect(doc.status).toBe(200)
        expect(doc.json.openapi).toBe("3.1.0")
        expect(Object.keys(doc.json.paths).sort()).toEqual(
          [
            "/admin/api/audit",
            "/admin/api/codes",
            "/admin/api/lanes",
            "/admin/api/nodes",
            "/admin/api/overview",
            "/admin/api/queues",
            "/admin/api/queues/{queue}/pause",
            "/admin/api/queues/{queue}/resume",
            "/admin/api/session",
            "/admin/api/session/methods",
            "/admin/api/session/oidc",
            "/admin/api/session/oidc/callback",
            "/admin/api/tasks",
            "/admin/api/tasks/bulk",
            "/admin/api/tasks/{id}",
            "/admin/api/tasks/{id}/cancel",
            "/admin/api/tasks/{id}/retry",
            "/admin/api/tokens",
            "/admin/api/tokens/{name}"
          ].sort()
        )
        expect(Object.keys(doc.json.components.securitySchemes).sort()).toEqual(["bearer", "session"])
        const page = yield* Admin.get("/admin/api/docs", {})
        expect(page.status).toBe(200)
        expect(page.headers.get("content-type")).toContain("text/html")
        expect(page.text).not.toMatch(/<(script|link)[^>]+(src|href)=["']https?:/)
      })
    )

    it.effect("/health/metrics needs security.metrics_token when it is set; /health and /health/ready show no secret", () =>
      Effect.gen(function* () {
        const { baseUrl } = yield* Kit.NodeAddress
        const plain = yield* Effect.promise(() => fetch(`${baseUrl}/health/metrics`))
        expect(plain.status).toBe(401)
        const authorized = yield* Effect.promise(() =>
          fetch(`${baseUrl}/health/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })
        )
        expect(authorized.status).toBe(200)
        expect(yield* Effect.promise(() => authorized.text())).toContain("asterforge_control_login_failures_total")
        for (const path of ["/health", "/health/ready"]) {
          const text = yield* Effect.promise(() => fetch(`${baseUrl}${path}`).then((r) => r.text()))
          expect(text).not.toContain(Admin.adminToken)
          expect(text).not.toContain(metricsToken)
        }
      })
    )
  })
})

layer(Db, { excludeTestServices: true })("admin API: failed logins", (it) => {
  it.effect("are audited with the reason and the client, and limited per client: 429 with Retry-After, valid tokens included", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const node = yield* Layer.build(Kit.node({ env: { ...env, ASTERFORGE_CONTROL_LOGIN_MAX_FAILURES: "3" } }))
        const inNode = <A, E>(e: Effect.Effect<A, E, any>) => Effect.provideContext(e, node as Context.Context<any>)
        for (let i = 0; i < 3; i++) expect((yield* inNode(Admin.get("/admin/api/tasks", { token: `wrong-${i}` }))).status).toBe(401)
        expect((yield* inNode(Admin.post("/admin/api/session", { token: "wrong-again" }, {}))).status).toBe(429)
        const limited = yield* inNode(Admin.get("/admin/api/tasks"))
        expect(limited.status).toBe(429)
        expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0)
        expect(limited.json.error.tag).toBe("RateLimited")
        yield* inNode(flush)
        const failures = yield* Admin.auditRows("login.failed")
        expect(failures).toHaveLength(3)
        expect(failures[0]).toEqual({
          actor: "anonymous",
          subject: null,
          details: { reason: "unknown, expired or revoked token", via: "bearer", client: expect.any(String) }
        })
      })
    )
  )
})
