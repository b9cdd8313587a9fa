/**
 * OIDC sign-in end to end against a real OpenID provider (`oidc-provider`,
 * running in this test on loopback), not a mock: the redirect with state,
 * nonce and PKCE, the provider's login and consent, the callback that
 * exchanges the code and checks the ID token, the session it opens with the
 * role from the token's claim, a callback replayed or past its flow's expiry
 * (refused, audited), and an expired flow removed by the login_flow_cleanup
 * lane.
 */
import * as Http from "node:http"
import Provider from "oidc-provider"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Kit from "../support/kit.ts"

let db: Kit.FreshDatabase
let node: Kit.TestNode
let nodeUrl: string
let issuer: string
let providerServer: Http.Server

const roles: Record<string, string> = { alice: "operator", carol: "superuser" }

beforeAll(async () => {
  db = await Kit.freshDatabase("control_oidc")
  const [providerPort, nodePort] = [await Kit.freePort(), await Kit.freePort()]
  issuer = `http://127.0.0.1:${providerPort}`
  nodeUrl = `http://127.0.0.1:${nodePort}`
  const redirectUrl = `${nodeUrl}/admin/api/session/oidc/callback`
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: "asterforge-admin",
        client_secret: "provider-test-secret",
        redirect_uris: [redirectUrl],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_post"
      }
    ],
    findAccount: async (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: async () => ({ sub, email: `${sub}@example.com`, ...(roles[sub] === undefined ? {} : { asterforge_role: roles[sub] }) })
    }),
    claims: { openid: ["sub"], email: ["email"], asterforge: ["asterforge_role"] },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    cookies: { keys: ["oidc-test-cookie-key"] }
  })
  providerServer = Http.createServer(provider.callback())
  await new Promise<void>((resolve) => providerServer.listen(providerPort, "127.0.0.1", resolve))
  node = await Kit.startNode({
    url: db.url,
    env: {
      ASTERFORGE_SERVER_PORT: String(nodePort),
      ASTERFORGE_SECURITY_OIDC_ISSUER: issuer,
      ASTERFORGE_SECURITY_OIDC_CLIENT_ID: "asterforge-admin",
      ASTERFORGE_SECURITY_OIDC_CLIENT_SECRET: "provider-test-secret",
      ASTERFORGE_SECURITY_OIDC_REDIRECT_URL: redirectUrl,
      ASTERFORGE_SECURITY_OIDC_SCOPES: "openid,email,asterforge",
      ASTERFORGE_MAINTENANCE_LOGIN_FLOW_CLEANUP_INTERVAL: "200ms",
      ASTERFORGE_TELEMETRY_LOG_LEVEL: "none"
    }
  })
}, 120_000)

afterAll(async () => {
  await node?.close()
  await new Promise((resolve) => providerServer?.close(resolve))
  await db?.drop()
})

/** A browser in miniature: follows nothing by itself, keeps the provider's cookies. */
const browser = () => {
  const jar = new Map<string, string>()
  const remember = (res: Response) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";")
      const eq = pair!.indexOf("=")
      jar.set(pair!.slice(0, eq), pair!.slice(eq + 1))
    }
  }
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join("; ")
  return {
    get: async (url: string) => {
      const res = await fetch(url, { redirect: "manual", headers: { cookie: cookie() } })
      remember(res)
      return res
    },
    form: async (url: string, fields: Record<string, string>) => {
      const res = await fetch(url, {
        method: "POST",
        redirect: "manual",
        headers: { cookie: cookie(), "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(fields).toString()
      })
      remember(res)
      return res
    }
  }
}

const absolute = (base: string, location: string | null) => new URL(location ?? "", base).href

/** Signs in as `user` at the provider: login, then consent; returns the callback URL the provider sends the browser to. */
const signInAtProvider = async (b: ReturnType<typeof browser>, authorizationUrl: string, user: string) => {
  let res = await b.get(authorizationUrl)
  for (let step = 0; step < 10; step++) {
    const location = absolute(issuer, res.headers.get("location"))
    if (location.startsWith(nodeUrl)) return location
    if (res.status >= 300 && res.status < 400 && /\/interaction\/[^/]+$/.test(new URL(location).pathname)) {
      const page = await b.get(location)
      const html = await page.text()
      res = await b.form(
        location,
        html.includes('name="login"') ? { prompt: "login", login: user, password: "any" } : { prompt: "consent" }
      )
      continue
    }
    res = await b.get(location)
  }
  throw new Error(`the provider never redirected back (last: ${res.status} ${res.headers.get("location")})`)
}

/** Starts a sign-in at the node: its redirect to the provider. */
const begin = async (b: ReturnType<typeof browser>, redirect = "/admin/tasks") => {
  const res = await b.get(`${nodeUrl}/admin/api/session/oidc?redirect=${encodeURIComponent(redirect)}`)
  expect(res.status).toBe(302)
  return res.headers.get("location")!
}

const audit = (code: string) =>
  Kit.query<{ actor: string; details: Record<string, unknown> }>(
    db.url,
    "SELECT actor, details FROM audit_events WHERE code = $1 ORDER BY id",
    [code]
  )

describe("OIDC sign-in against oidc-provider", () => {
  it("redirects with state, nonce and PKCE; the callback opens a session with the role from the ID token; a replay is refused", async () => {
    const b = browser()
    const authorization = new URL(await begin(b))
    expect(authorization.origin).toBe(issuer)
    expect(authorization.searchParams.get("code_challenge_method")).toBe("S256")
    expect(authorization.searchParams.get("nonce")).toMatch(/.{20,}/)
    const state = authorization.searchParams.get("state")!
    const [flow] = await Kit.query<{ redirect_to: string }>(db.url, "SELECT redirect_to FROM control_login_flows WHERE state = $1", [state])
    expect(flow).toEqual({ redirect_to: "/admin/tasks" })

    const callback = await signInAtProvider(b, authorization.href, "alice")
    expect(new URL(callback).searchParams.get("state")).toBe(state)
    const done = await fetch(callback, { redirect: "manual" })
    expect(done.status, await done.clone().text()).toBe(302)
    expect(done.headers.get("location")).toBe("/admin/tasks")
    const cookie = (done.headers.get("set-cookie") ?? "").split(";")[0]!
    expect(cookie).toMatch(/^asterforge_session=/)
    expect(await Kit.query(db.url, "SELECT 1 FROM control_login_flows WHERE state = $1", [state])).toEqual([])

    const me = await fetch(`${nodeUrl}/admin/api/session`, { headers: { cookie } })
    expect(await me.json()).toMatchObject({ actor: "oidc:alice@example.com", role: "operator", via: "session" })

    const replay = await fetch(callback, { redirect: "manual" })
    expect(replay.status).toBe(401)
    expect(((await replay.json()) as { error: { message: string } }).error.message).toContain("unknown or expired login")
    await Kit.eventually(async () => ((await audit("login.failed")).length > 0 ? true : undefined), "the refused replay to be audited")
    expect((await audit("login.failed"))[0]).toMatchObject({ actor: "anonymous", details: { via: "oidc" } })
    await Kit.eventually(
      async () => ((await audit("session.created")).some((r) => r.actor === "oidc:alice@example.com") ? true : undefined),
      "the session to be audited"
    )
  })

  it("users whose token has no valid role claim get security.oidc.default_role (viewer)", async () => {
    for (const user of ["bob", "carol"]) {
      const b = browser()
      const done = await fetch(await signInAtProvider(b, await begin(b, "/admin/"), user), { redirect: "manual" })
      expect(done.status).toBe(302)
      const cookie = (done.headers.get("set-cookie") ?? "").split(";")[0]!
      const me = await (await fetch(`${nodeUrl}/admin/api/session`, { headers: { cookie } })).json()
      expect(me).toMatchObject({ actor: `oidc:${user}@example.com`, role: "viewer" })
    }
  })

  it("a login that comes back after its flow expired is refused; the login_flow_cleanup lane removes expired flows", async () => {
    const late = browser()
    const authorization = await begin(late)
    const state = new URL(authorization).searchParams.get("state")!
    const callback = await signInAtProvider(late, authorization, "alice")
    await Kit.query(db.url, "UPDATE control_login_flows SET expires_at = now() - interval '1 second' WHERE state = $1", [state])
    const refused = await fetch(callback, { redirect: "manual" })
    expect(refused.status).toBe(401)

    // A flow abandoned at the provider: expired, and the lane (every 200 ms here) removes it.
    const abandoned = new URL(await begin(browser())).searchParams.get("state")!
    const pending = new URL(await begin(browser())).searchParams.get("state")!
    await Kit.query(db.url, "UPDATE control_login_flows SET expires_at = now() - interval '1 second' WHERE state = $1", [abandoned])
    await Kit.eventually(
      async () =>
        (await Kit.query(db.url, "SELECT 1 FROM control_login_flows WHERE state = $1", [abandoned])).length === 0 ? true : undefined,
      "the expired flow to be removed by login_flow_cleanup"
    )
    expect(await Kit.query(db.url, "SELECT state FROM control_login_flows WHERE state = $1", [pending])).toEqual([{ state: pending }])
    const [lane] = await Kit.query<{ last_counts: Record<string, number> }>(
      db.url,
      "SELECT last_counts FROM lane_leaders WHERE lane = 'login_flow_cleanup'"
    )
    expect(lane!.last_counts).toHaveProperty("deleted")
  })
})
