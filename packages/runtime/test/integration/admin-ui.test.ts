/**
 * The admin web UI in a real browser (Debian's chromium through
 * playwright-core) against a real node and PostgreSQL holding a few hundred
 * tasks in mixed states: sign in by keyboard; the overview's counts match the
 * database and the stuck lease is at the top; filter failed tasks, open one,
 * retry it and see it succeed; bulk-cancel by filter after a dry run whose
 * count matches the database; pause a queue and see no claims until it is
 * resumed; the nodes, lanes and audit pages; a viewer sees no action button
 * and a forged action shows the API's 403; narrow screens; sign out. Every
 * page must log no console error and have no unlabelled control; each page
 * is saved as a screenshot under test-artifacts/admin-ui/.
 *
 * Also the admin API additions the UI uses: `GET /admin/api/overview`,
 * `GET /admin/api/session/methods`, and a defect's stack for admins only.
 */
import { Effect } from "effect"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { tasksBulkCancelled } from "../../src/AuditEvents.ts"
import { contentSecurityPolicy } from "../../src/http/AdminUi.ts"
import { NodeIdentity } from "../../src/NodeIdentity.ts"
import { TaskQueue } from "../../src/TaskQueue.ts"
import * as Shop from "../fixtures/shop-tasks.ts"
import * as Browsers from "../support/browser.ts"
import { eventually, type FreshDatabase, freshDatabase, query, startNode, type TestNode } from "../support/kit.ts"

const adminToken = "ui-test-admin-token-0123456789abcdef0123456789"

const env = {
  ASTERFORGE_SECURITY_ADMIN_TOKEN: adminToken,
  ASTERFORGE_MAINTENANCE_QUEUE_STATS_INTERVAL: "200ms",
  ASTERFORGE_MAINTENANCE_QUEUE_STATS_FINISHED_REFRESH: "1s",
  ASTERFORGE_WORKER_POLL_INTERVAL: "100ms",
  ASTERFORGE_WORKER_CONCURRENCY: "16",
  // Off, so the one stuck lease the test makes stays stuck and the overview shows it.
  ASTERFORGE_MAINTENANCE_DISABLED_LANES: "lease_rescue",
  ASTERFORGE_TELEMETRY_LOG_LEVEL: "none"
}

let db: FreshDatabase
let node: TestNode
let browser: Browser
let closeBrowser: () => Promise<void>
let admin: Browsers.WatchedPage
let stuckId: string

const sql = <Row = Record<string, unknown>>(text: string, params: ReadonlyArray<unknown> = []) => query<Row>(db.url, text, params)
const url = (path: string) => `${node.baseUrl}${path}`
const enqueue = <P>(def: Parameters<TaskQueue["Service"]["enqueueMany"]>[0], payloads: ReadonlyArray<P>, options = {}) =>
  node.run(Effect.flatMap(TaskQueue, (q) => q.enqueueMany(def as never, payloads as never, options)))

/** One request to the admin API with a bearer token (or none). */
const apiCall = async (method: string, path: string, token: string | undefined, body?: unknown) => {
  const res = await fetch(url(`/admin/api${path}`), {
    method,
    headers: {
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { "content-type": "application/json" })
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, json: text === "" ? undefined : JSON.parse(text) }
}

/** The task counts by queue and state, from the database. */
const dbCounts = async () =>
  new Map(
    (await sql<{ queue: string; state: string; n: number }>("SELECT queue, state, count(*)::int AS n FROM tasks GROUP BY 1, 2")).map(
      (r) => [`${r.queue}|${r.state}`, r.n]
    )
  )

/** The counts the overview's queue table shows, by queue and state. */
const shownCounts = (page: Page) =>
  page.evaluate(() =>
    Array.from(document.querySelectorAll("[data-testid=queue-depth] tr[data-queue] td[data-state]")).map((td) => [
      `${td.closest("tr")!.getAttribute("data-queue")}|${td.getAttribute("data-state")}`,
      Number(td.getAttribute("data-count"))
    ])
  )

/** No console error, no uncaught exception and no unlabelled control on the page as it is now. */
const clean = async (watched: Browsers.WatchedPage) => {
  expect(watched.problems).toEqual([])
  expect(await Browsers.unlabelledControls(watched.page)).toEqual([])
}

const signIn = async (watched: Browsers.WatchedPage, token: string) => {
  await watched.page.goto(url("/admin/"))
  const field = watched.page.getByLabel("Admin token or API token")
  await field.fill(token)
  await watched.page.getByRole("button", { name: "Sign in" }).click()
  await watched.page.getByRole("heading", { name: "Overview", level: 1 }).waitFor()
}

const rows = (page: Page) => page.locator("[data-testid=tasks] tbody tr")

/** Waits until the task table shows exactly `count` rows, all in `state`. */
const untilRows = (page: Page, count: number, state: string) =>
  page.waitForFunction(
    ([n, s]) => {
      const trs = Array.from(document.querySelectorAll("[data-testid=tasks] tbody tr"))
      return trs.length === n && trs.every((tr) => tr.querySelector(`[data-state="${s}"]`) !== null)
    },
    [count, state] as const
  )

beforeAll(async () => {
  db = await freshDatabase("admin_ui")
  for (const statement of Shop.createTables) await sql(statement)
  node = await startNode({ url: db.url, modules: [Shop.ShopTasks], env })
  const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1)
  await enqueue(
    Shop.Ship,
    range(150).map((order) => ({ order }))
  )
  await enqueue(
    Shop.Charge,
    range(40).map((customer) => ({ customer, amount: 10 + customer }))
  )
  await enqueue(
    Shop.Label,
    range(3).map((order) => ({ order }))
  )
  await enqueue(
    Shop.Confirm,
    range(10).map((order) => ({ order }))
  )
  await enqueue(
    Shop.Mail,
    range(20).map((i) => ({ to: `customer${i}@example.com` }))
  )
  await enqueue(
    Shop.Report,
    range(120).map((i) => ({ day: `2026-11-${String((i % 28) + 1).padStart(2, "0")}` })),
    { delay: "1 hour" }
  )
  // A lease that expired long ago on a task no lane rescues: the overview must put it at the top.
  const [stuck] = await enqueue(Shop.Ship, [{ order: 9999 }], { queue: "legacy" })
  stuckId = stuck!.id
  const nodeId = await node.run(Effect.map(NodeIdentity, (n) => n.id))
  await sql(
    `UPDATE tasks SET state = 'running', attempt = 1, lease_owner = $1, lease_epoch = lease_epoch + 1,
       attempted_at = now() - interval '10 minutes', lease_expires_at = now() - interval '5 minutes' WHERE id = $2`,
    [nodeId, stuckId]
  )
  await eventually(async () => {
    const [r] = await sql<{ n: number }>(
      "SELECT count(*)::int AS n FROM tasks WHERE state IN ('available', 'retryable') OR (state = 'running' AND queue <> 'legacy')"
    )
    return r!.n === 0 ? true : undefined
  }, "every runnable task to have run")
  ;({ browser, close: closeBrowser } = await Browsers.launch())
}, 120_000)

afterAll(async () => {
  await closeBrowser?.()
  await node?.close()
  await db?.drop()
})

describe("admin API additions the UI uses", () => {
  it("GET /admin/api/session/methods needs no credentials and offers token sign-in (no OIDC configured)", async () => {
    const answer = await apiCall("GET", "/session/methods", undefined)
    expect(answer).toMatchObject({ status: 200, json: { token: true, oidc: null } })
  })

  it("GET /admin/api/overview: queues, running nodes, lanes, readiness checks and the stuck lease, in one answer", async () => {
    expect((await apiCall("GET", "/overview", undefined)).status).toBe(401)
    const { status, json } = await apiCall("GET", "/overview?minutes=5", adminToken)
    expect(status).toBe(200)
    expect(json.health).toMatchObject({ ready: true, stuckLeases: { count: 1, afterSeconds: 60 } })
    expect(json.health.checks.map((c: { name: string }) => c.name)).toEqual(expect.arrayContaining(["database", "queues"]))
    expect(json.queues.minutes).toBe(5)
    expect(json.queues.items.map((q: { name: string }) => q.name)).toEqual(expect.arrayContaining(["payments", "reports", "shipping"]))
    expect(json.nodes).toHaveLength(1)
    expect(json.lanes.map((l: { lane: string }) => l.lane)).toContain("queue_stats")
  })

  it("a defect's stack is in a task's errors for admins only, never in lists", async () => {
    const viewer = (await apiCall("POST", "/tokens", adminToken, { name: "stack-viewer", role: "viewer" })).json.token as string
    const list = await apiCall("GET", "/tasks?name=shop.print_label&state=failed", adminToken)
    expect(list.json.items).toHaveLength(3)
    expect(list.json.items[0].lastError).not.toHaveProperty("stack")
    const id = list.json.items[0].id as string
    const asAdmin = (await apiCall("GET", `/tasks/${id}`, adminToken)).json
    expect(asAdmin.errors[0]).toMatchObject({ tag: "Defect", message: "label printer driver: unexpected paper size" })
    expect(asAdmin.errors[0].stack).toContain("unexpected paper size")
    expect(asAdmin.lastError.stack).toContain("unexpected paper size")
    const asViewer = (await apiCall("GET", `/tasks/${id}`, viewer)).json
    expect(asViewer.errors[0]).toMatchObject({ tag: "Defect", message: "label printer driver: unexpected paper size" })
    expect(asViewer.errors[0]).not.toHaveProperty("stack")
    expect(asViewer.lastError).not.toHaveProperty("stack")
  })
})

describe("serving", () => {
  it("the page and its assets come from the node with a strict CSP; unknown UI paths get the page, unknown files a 404", async () => {
    const page = await fetch(url("/admin/tasks?state=failed"), { headers: { "accept-encoding": "gzip" } })
    expect(page.status).toBe(200)
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8")
    expect(page.headers.get("cache-control")).toBe("no-cache")
    expect(page.headers.get("content-security-policy")).toBe(contentSecurityPolicy)
    expect(contentSecurityPolicy).toContain("script-src 'self'")
    const html = await page.text()
    const script = /src="(\/admin\/assets\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1]
    expect(script).toBeDefined()
    const asset = await fetch(url(script!), { headers: { "accept-encoding": "gzip" } })
    expect(asset.status).toBe(200)
    expect(asset.headers.get("content-type")).toBe("text/javascript; charset=utf-8")
    expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable")
    expect(asset.headers.get("content-encoding")).toBe("gzip")
    const bare = await fetch(url("/admin"), { redirect: "manual" })
    expect(bare.status).toBe(302)
    expect(bare.headers.get("location")).toBe("/admin/")
    expect((await fetch(url("/admin/assets/missing-0000.js"))).status).toBe(404)
    expect((await apiCall("GET", "/no-such-endpoint", adminToken)).status).toBe(404)
  })
})

describe("admin UI in chromium", () => {
  it("signs in by keyboard; the overview's counts match the database, the stuck lease is at the top", async () => {
    admin = await Browsers.open(browser)
    const { page } = admin
    await page.goto(url("/admin/"))
    const field = page.getByLabel("Admin token or API token")
    await field.waitFor()
    await Browsers.screenshot(page, "login")
    await clean(admin)
    await field.focus()
    await page.keyboard.type(adminToken)
    await page.keyboard.press("Enter")
    await page.getByRole("heading", { name: "Overview", level: 1 }).waitFor()
    expect(await page.getByTestId("role").textContent()).toBe("admin")

    const matched = await eventually(
      async () => {
        const expected = await dbCounts()
        const shown = new Map((await shownCounts(page)) as Array<[string, number]>)
        for (const [k, n] of expected) if (shown.get(k) !== n) return undefined
        for (const [k, n] of shown) if (n !== (expected.get(k) ?? 0)) return undefined
        return expected
      },
      "the overview to show the database's counts",
      60_000
    )
    expect(matched.get("payments|failed")).toBe(40)
    expect(matched.get("reports|scheduled")).toBe(120)
    expect(matched.get("shipping|succeeded")).toBe(150)
    expect(matched.get("payments|waiting_callback")).toBe(10)
    const totalFailed = Number(await page.locator("[data-testid=totals] [data-state=failed]").getAttribute("data-count"))
    expect(totalFailed).toBe(43)
    await page.getByTestId("attention").getByText("1 running task holds a lease that expired").waitFor()
    await page.locator("[data-testid=throughput-chart] canvas").first().waitFor()
    await Browsers.screenshot(page, "overview")
    await clean(admin)
  })

  it("filters failed tasks (the filter in the URL), opens one, retries it and sees it succeed", async () => {
    const { page } = admin
    await page.getByRole("link", { name: "Tasks", exact: true }).click()
    await page.getByRole("heading", { name: "Tasks", level: 1 }).waitFor()
    await page.getByRole("checkbox", { name: "failed", exact: true }).check()
    await page.getByLabel("Queue", { exact: true }).fill("payments")
    await page.getByRole("button", { name: "Apply filters" }).click()
    await page.waitForURL(/\/admin\/tasks\?/)
    const params = new URL(page.url()).searchParams
    expect(params.getAll("state")).toEqual(["failed"])
    expect(params.get("queue")).toBe("payments")
    await untilRows(page, 40, "failed")
    await Browsers.screenshot(page, "tasks")
    await clean(admin)

    const first = rows(page).first()
    const id = (await first.getAttribute("data-task"))!
    await first.getByRole("link", { name: `#${id}` }).click()
    await page.waitForURL(new RegExp(`/admin/tasks/${id}$`))
    await page.locator("[data-testid=task-state] [data-state=failed]").waitFor()
    await page.getByTestId("timeline").getByText("the payment provider did not answer; retry once it is back").waitFor()
    await page.getByTestId("timeline").getByText("payment provider timed out after 30 s").waitFor()
    await page.getByRole("heading", { name: "Payload" }).waitFor()
    await Browsers.screenshot(page, "task-detail")
    await clean(admin)

    await sql(Shop.providerUp)
    await page.getByRole("button", { name: "Retry" }).click()
    await page.getByTestId("notice").getByText("Retried").waitFor()
    await page.locator("[data-testid=task-state] [data-state=succeeded]").waitFor({ timeout: 30_000 })
    const [row] = await sql<{ state: string; result: unknown }>("SELECT state, result FROM tasks WHERE id = $1", [id])
    expect(row).toEqual({ state: "succeeded", result: { charged: expect.any(Number) } })
    await page.getByRole("heading", { name: "Result" }).waitFor()
    await page.getByLabel("Result").getByText("charged").waitFor()
    await clean(admin)

    // A defect's stack is shown to admins.
    await page.goto(url("/admin/tasks?name=shop.print_label&state=failed"))
    await untilRows(page, 3, "failed")
    await rows(page).first().getByRole("link").click()
    await page.getByText("Stack trace (shown to admins)").click()
    await page.locator(".stack pre").getByText("unexpected paper size").first().waitFor()
    await clean(admin)
  })

  it("bulk-cancels every task a filter matches, after a dry run whose count matches the database", async () => {
    const { page } = admin
    await page.goto(url("/admin/tasks?queue=reports&state=scheduled"))
    await untilRows(page, 50, "scheduled")
    await page.getByRole("checkbox", { name: "Select every task on this page" }).check()
    await page.getByRole("button", { name: "Select every task matching this filter" }).click()
    await page.getByTestId("selection").getByText("every task matching this filter").waitFor()
    await page.getByRole("button", { name: "Cancel…" }).click()
    const preview = page.getByTestId("preview-count")
    await preview.waitFor()
    const [{ n: matching }] = (await sql<{ n: number }>(
      "SELECT count(*)::int AS n FROM tasks WHERE queue = 'reports' AND state = 'scheduled'"
    )) as [{ n: number }]
    expect(matching).toBe(120)
    expect(Number(await preview.getAttribute("data-count"))).toBe(matching)
    expect(await preview.textContent()).toBe("120 tasks")
    await Browsers.screenshot(page, "bulk-cancel-preview")
    await page.getByTestId("confirm").click()
    await page.getByTestId("notice").getByText("Cancelled 120 tasks.").waitFor()
    const after = await sql<{ state: string; n: number }>("SELECT state, count(*)::int AS n FROM tasks WHERE queue = 'reports' GROUP BY 1")
    expect(after).toEqual([{ state: "cancelled", n: 120 }])
    await page.getByTestId("no-tasks").waitFor()
    await clean(admin)
  })

  it("pauses a queue: no node claims its tasks until it is resumed", async () => {
    const { page } = admin
    await page.getByRole("link", { name: "Queues", exact: true }).click()
    const mail = page.locator("[data-testid=queues] tr[data-queue=mail]")
    await mail.getByRole("button", { name: "Pause queue mail" }).click()
    await mail.getByTestId("queue-state").getByText("paused").waitFor()
    await page.getByTestId("notice").getByText("Queue mail is paused").waitFor()
    const held = await enqueue(
      Shop.Mail,
      [1, 2, 3, 4, 5].map((i) => ({ to: `held${i}@example.com` }))
    )
    const ids = held.map((t) => t.id)
    // The point is that nothing happens: give the dispatcher many poll intervals (100 ms) to not claim them.
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const states = await sql<{ state: string; attempt: number }>("SELECT state, attempt FROM tasks WHERE id = ANY($1::bigint[])", [ids])
    expect(states).toEqual(ids.map(() => ({ state: "available", attempt: 0 })))
    await page.goto(url("/admin/tasks?queue=mail&state=available"))
    await untilRows(page, 5, "available")
    await page.getByRole("link", { name: "Queues", exact: true }).click()
    await mail.getByRole("button", { name: "Resume queue mail" }).waitFor()
    await Browsers.screenshot(page, "queues")
    await mail.getByRole("button", { name: "Resume queue mail" }).click()
    await mail.getByRole("button", { name: "Pause queue mail" }).waitFor()
    await eventually(async () => {
      const done = await sql<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1::bigint[]) AND state = 'succeeded'", [
        ids
      ])
      return done[0]!.n === ids.length ? true : undefined
    }, "the held mail to run once the queue is resumed")
    await clean(admin)
  })

  it("shows the nodes, the lanes, and the audit log with its filters, presentation text and details", async () => {
    const { page } = admin
    const me = await node.run(NodeIdentity)
    await page.getByRole("link", { name: "Nodes", exact: true }).click()
    const row = page.getByTestId("nodes").locator("tbody tr", { hasText: me.id })
    await row.getByRole("rowheader", { name: new RegExp(`^${me.name}`) }).waitFor()
    await row.getByRole("cell", { name: "primary", exact: true }).waitFor()
    await Browsers.screenshot(page, "nodes")
    await clean(admin)

    await page.getByRole("link", { name: "Lanes", exact: true }).click()
    await page.getByTestId("lanes").getByRole("rowheader", { name: "queue_stats" }).waitFor()
    await Browsers.screenshot(page, "lanes")
    await clean(admin)

    await page.getByRole("link", { name: "Audit log", exact: true }).click()
    await page.getByTestId("audit").waitFor()
    await page.getByLabel("Event", { exact: true }).selectOption(tasksBulkCancelled.code)
    await page.getByRole("button", { name: "Apply filters" }).click()
    await page.waitForURL(/code=tasks\.bulk_cancelled/)
    const event = page.locator("[data-testid=audit] tbody tr")
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=audit] tbody tr").length === 1)
    await event.getByText(tasksBulkCancelled.title).waitFor()
    await event.getByText("admin_token").waitFor()
    await event.getByText("3 fields").click()
    await event.getByText("count").waitFor()
    await event.locator(".json-number", { hasText: /^120$/ }).waitFor()
    await Browsers.screenshot(page, "audit")
    await clean(admin)
  })

  it("a viewer sees no action button, and a forged action shows the API's 403", async () => {
    const token = (await apiCall("POST", "/tokens", adminToken, { name: "ui-viewer", role: "viewer" })).json.token as string
    const viewer = await Browsers.open(browser)
    const { page } = viewer
    await signIn(viewer, token)
    expect(await page.getByTestId("role").textContent()).toBe("viewer")
    await page.goto(url("/admin/tasks?state=failed&queue=payments"))
    await untilRows(page, 39, "failed")
    expect(await page.locator("[data-testid=tasks] input[type=checkbox]").count()).toBe(0)
    const id = (await rows(page).first().getAttribute("data-task"))!
    await page.goto(url(`/admin/tasks/${id}`))
    await page.locator("[data-testid=task-state] [data-state=failed]").waitFor()
    for (const action of ["Retry", "Cancel", "Delete"]) expect(await page.getByRole("button", { name: action }).count()).toBe(0)
    await page.goto(url("/admin/queues"))
    await page.locator("[data-testid=queues] tr[data-queue=mail]").waitFor()
    expect(await page.getByRole("button", { name: /^(Pause|Resume) queue/ }).count()).toBe(0)
    await clean(viewer)

    // The UI is told the session is an operator's: it offers Retry, and the API refuses.
    await page.route("**/admin/api/session", async (route) => {
      const response = await route.fetch()
      await route.fulfill({ response, json: { ...(await response.json()), role: "operator" } })
    })
    await page.goto(url(`/admin/tasks/${id}`))
    expect(await page.getByTestId("role").textContent()).toBe("operator")
    await page.getByRole("button", { name: "Retry" }).click()
    const refusal = page.getByRole("alert")
    await refusal.getByText("403 Forbidden: token:ui-viewer has the role viewer; this needs operator").waitFor()
    await Browsers.screenshot(page, "viewer-forged-action-refused")
    const [row] = await sql<{ state: string }>("SELECT state FROM tasks WHERE id = $1", [id])
    expect(row!.state).toBe("failed")
    // The refused request is the page's only console error.
    expect(viewer.problems).toHaveLength(1)
    expect(viewer.problems[0]).toMatch(/403/)
    await viewer.context.close()
  })

  it("is readable on a narrow screen: nothing wider than the viewport", async () => {
    const narrow = await Browsers.open(browser, { width: 390, height: 844 })
    const { page } = narrow
    await signIn(narrow, adminToken)
    await page.locator("[data-testid=queue-depth]").waitFor()
    await Browsers.screenshot(page, "overview-narrow")
    const widths = () => page.evaluate(() => ({ page: document.documentElement.scrollWidth, viewport: window.innerWidth }))
    expect((await widths()).page).toBeLessThanOrEqual((await widths()).viewport)
    await page.goto(url(`/admin/tasks/${stuckId}`))
    await page.locator("[data-testid=task-state] [data-state=running]").waitFor()
    await Browsers.screenshot(page, "task-detail-narrow")
    const detail = await widths()
    expect(detail.page).toBeLessThanOrEqual(detail.viewport)
    await clean(narrow)
    await narrow.context.close()
  })

  it("offers 'Sign in with <provider>' when an OpenID provider is configured", async () => {
    // A follower of the same database with [security.oidc] set: the sign-in page links to the provider's sign-in.
    const follower = await startNode({
      url: db.url,
      mode: "follower",
      modules: [Shop.ShopTasks],
      env: {
        ...env,
        ASTERFORGE_SECURITY_OIDC_ISSUER: "http://127.0.0.1:9/issuer",
        ASTERFORGE_SECURITY_OIDC_CLIENT_ID: "asterforge-admin",
        ASTERFORGE_SECURITY_OIDC_REDIRECT_URL: "http://127.0.0.1:9/admin/api/session/oidc/callback"
      }
    })
    try {
      const methods = await (await fetch(`${follower.baseUrl}/admin/api/session/methods`)).json()
      expect(methods).toEqual({ token: true, oidc: { label: "127.0.0.1:9", url: "/admin/api/session/oidc" } })
      const visitor = await Browsers.open(browser)
      await visitor.page.goto(`${follower.baseUrl}/admin/queues`)
      const link = visitor.page.getByRole("link", { name: "Sign in with 127.0.0.1:9" })
      await link.waitFor()
      expect(await link.getAttribute("href")).toBe(`/admin/api/session/oidc?redirect=${encodeURIComponent("/admin/queues?signin=oidc")}`)
      await clean(visitor)
      await visitor.context.close()
    } finally {
      await follower.close()
    }
  })

  it("signs out: the session ends, and the UI shows the sign-in page", async () => {
    const { page } = admin
    await page.getByTestId("sign-out").click()
    await page.getByLabel("Admin token or API token").waitFor()
    expect((await page.request.get(url("/admin/api/session"))).status()).toBe(401)
    await page.goto(url("/admin/tasks"))
    await page.getByLabel("Admin token or API token").waitFor()
    await clean(admin)
    await admin.context.close()
  })
})
