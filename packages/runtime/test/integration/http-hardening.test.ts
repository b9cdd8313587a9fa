/**
 * The HTTP server's bounds, on real node processes over real sockets:
 * metric labels and log lines name route templates, never a path (no
 * callback token, no junk path, and the number of series does not grow with
 * junk traffic); a body over `server.body_limit` is answered 413 with a JSON
 * reason, before it is read when its length is announced, when it overflows
 * when it is chunked; a client stalling in its request line or headers is
 * disconnected after `server.headers_timeout`, an idle keep-alive connection
 * after `server.keep_alive_timeout`; with `server.max_connections = N` the
 * connection N+1 is closed unanswered while the N stay usable.
 *
 * Times are measured and printed, never asserted: the tests wait on events
 * (a response, a close), each bounded only by the test timeout.
 */
import * as Crypto from "node:crypto"
import * as Net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as T from "../fixtures/test-tasks.ts"
import { eventually, freshDatabase, query, type FreshDatabase } from "../support/kit.ts"
import { fixture, spawnNode, type Spawned } from "../support/process.ts"

let db: FreshDatabase
const running: Array<Spawned> = []
/** What the tests measured, printed once at the end. */
const measured: Record<string, string> = {}

beforeAll(async () => {
  db = await freshDatabase("http_hardening")
  for (const statement of T.createTables) await query(db.url, statement)
})
afterAll(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()))
  await db?.drop()
  console.log(
    `http-hardening measurements:\n${Object.entries(measured)
      .map(([k, v]) => `  ${k}: ${v}`)
      .join("\n")}`
  )
})

/** A primary of the tasks fixture app on its own process; resolves once it listens. */
const startTasksNode = async (env: Record<string, string>) => {
  const node = spawnNode(fixture("tasks-app.ts"), ["start"], {
    DATABASE_URL: db.url,
    ASTERFORGE_MODE: "primary",
    ASTERFORGE_SERVER_PORT: "0",
    ...env
  })
  running.push(node)
  const baseUrl = await node.baseUrl()
  return { node, baseUrl, port: Number(new URL(baseUrl).port) }
}

/** A `test.callback` task parked for its callback by the spawned primary, and its token. */
const park = async () => {
  const [row] = await query<{ id: string }>(
    db.url,
    "INSERT INTO tasks (name, queue, state, max_attempts, payload) VALUES ('test.callback', 'default', 'available', 2, '{}') RETURNING id::text"
  )
  await query(db.url, "SELECT pg_notify('asterforge_tasks', 'default')")
  const id = row!.id
  return eventually(async () => {
    const [t] = await query<{ state: string; note: string | null }>(
      db.url,
      "SELECT t.state, r.note FROM tasks t LEFT JOIN test_task_runs r ON r.task_id = t.id WHERE t.id = $1",
      [id]
    )
    return t?.state === "waiting_callback" && t.note !== null ? { id, token: t.note } : undefined
  }, `task ${id} to wait for its callback`)
}

const rowOf = async (id: string) =>
  (await query<{ row: string }>(db.url, "SELECT row_to_json(t)::text AS row FROM tasks t WHERE id = $1", [id]))[0]!.row

const postCallback = async (baseUrl: string, token: string, body: string | object) => {
  const res = await fetch(`${baseUrl}/callbacks/${token}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body)
  })
  return { status: res.status, body: await res.text() }
}

// ---------------------------------------------------------------------------
// Prometheus text

interface Series {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** Every sample line of the exposition, parsed. */
const seriesOf = (body: string): Array<Series> =>
  body.split("\n").flatMap((line) => {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) return []
    const labels = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((p) => [p[1]!, p[2]!]))
    return [{ name: m[1]!, labels, value: Number(m[3]) }]
  })

const httpSeries = (body: string) => seriesOf(body).filter((s) => s.name.startsWith("asterforge_http_"))

/** The request counter for one route/method/status; 0 while the series does not exist yet. */
const requests = (body: string, labels: { route: string; method: string; status: string }) =>
  httpSeries(body).find(
    (s) =>
      s.name === "asterforge_http_requests_total" &&
      s.labels.route === labels.route &&
      s.labels.method === labels.method &&
      s.labels.status === labels.status
  )?.value ?? 0

/** The routes the fixture app serves, as templates, and the one label of every unmatched path. */
const knownRoutes = ["/health", "/health/ready", "/health/metrics", "/callbacks/:token", "unmatched"]

// ---------------------------------------------------------------------------
// Raw HTTP over a socket: what fetch cannot do (stall, announce a length and not send it, count connections).

/** A parsed HTTP/1.1 response (content-length bodies only: what the node sends). */
const parseResponse = (text: string) => {
  const end = text.indexOf("\r\n\r\n")
  if (end < 0) return undefined
  const [statusLine = "", ...headerLines] = text.slice(0, end).split("\r\n")
  const headers = Object.fromEntries(
    headerLines.map((l) => {
      const i = l.indexOf(":")
      return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()]
    })
  )
  const body = text.slice(end + 4)
  const length = Number(headers["content-length"] ?? 0)
  if (Buffer.byteLength(body) < length) return undefined
  return { status: Number(statusLine.split(" ")[1]), statusLine, headers, body: body.slice(0, length), rest: body.slice(length) }
}

/** One TCP connection to the node, recording what arrives and when, and who closed it. */
class Conn {
  readonly socket: Net.Socket
  readonly openedAt = performance.now()
  received = ""
  /** When the first byte of an answer arrived. */
  firstByteAt: number | undefined
  closedAt: number | undefined
  /** The socket error that ended it, if any (a refused connection may be reset). */
  error: string | undefined
  /** True once this side ended or destroyed the connection: a close after that is not the server's doing. */
  closedByUs = false
  readonly connected: Promise<boolean>
  readonly closed: Promise<void>
  private readonly waiters: Array<() => void> = []

  constructor(port: number) {
    this.socket = Net.connect(port, "127.0.0.1")
    this.socket.setEncoding("utf8")
    this.connected = new Promise((resolve) => {
      this.socket.once("connect", () => resolve(true))
      this.socket.once("close", () => resolve(false))
    })
    this.socket.on("data", (chunk: string) => {
      this.firstByteAt ??= performance.now()
      this.received += chunk
      this.wake()
    })
    this.socket.on("error", (e: NodeJS.ErrnoException) => {
      this.error = e.code ?? e.message
    })
    this.closed = new Promise((resolve) =>
      this.socket.once("close", () => {
        this.closedAt = performance.now()
        this.wake()
        resolve()
      })
    )
  }

  static async open(port: number): Promise<Conn> {
    const conn = new Conn(port)
    await conn.connected
    return conn
  }

  get isClosed(): boolean {
    return this.closedAt !== undefined
  }

  /** Writes and waits until the bytes are handed to the OS (or the write failed: the server may have closed). */
  write(text: string): Promise<void> {
    if (this.socket.destroyed || !this.socket.writable) return Promise.resolve()
    return new Promise((resolve) => this.socket.write(text, () => resolve()))
  }

  /** Resolves once a whole response has arrived, or with undefined if the connection closed without one. */
  response(): Promise<ReturnType<typeof parseResponse>> {
    return new Promise((resolve) => {
      const check = () => {
        const parsed = parseResponse(this.received)
        if (parsed !== undefined || this.isClosed) return resolve(parsed)
        this.waiters.push(check)
      }
      check()
    })
  }

  /** Consumes what was received so far (the next response on a keep-alive connection starts fresh). */
  take(): string {
    const text = this.received
    this.received = ""
    return text
  }

  close(): void {
    this.closedByUs = true
    this.socket.destroy()
  }

  private wake() {
    for (const w of this.waiters.splice(0)) w()
  }
}

const get = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`
const ms = (from: number, to: number | undefined) => `${Math.round((to ?? Number.NaN) - from)} ms`

// ---------------------------------------------------------------------------

describe("labels, logs and limits of one node (debug logs, body limit 4 KiB)", () => {
  let node: Spawned
  let baseUrl: string
  let port: number
  const bodyLimit = 4096

  beforeAll(async () => {
    ;({ node, baseUrl, port } = await startTasksNode({
      ASTERFORGE_TELEMETRY_LOG_LEVEL: "debug",
      ASTERFORGE_SERVER_BODY_LIMIT: String(bodyLimit),
      // A late callback must be refused by the route itself, not rescued away before it arrives.
      ASTERFORGE_MAINTENANCE_DISABLED_LANES: "callback_rescue,deadline_rescue"
    }))
  })

  const scrape = async () => {
    const res = await fetch(`${baseUrl}/health/metrics`)
    expect(res.status).toBe(200)
    return res.text()
  }

  it("callbacks answered 400, 404 and 410 leave their token in no metric and no log line; the route is labelled /callbacks/:token", async () => {
    const before = await scrape()
    const answered = await park()
    const late = await park()
    const unknown = Crypto.randomBytes(32).toString("base64url")

    const bad = await postCallback(baseUrl, answered.token, { result: { ok: "yes" } })
    expect(bad.status).toBe(400)
    await query(db.url, "UPDATE tasks SET callback_expires_at = now() - interval '1 minute' WHERE id = $1", [late.id])
    expect((await postCallback(baseUrl, late.token, { result: { ok: true } })).status).toBe(410)
    expect((await postCallback(baseUrl, unknown, { result: { ok: true } })).status).toBe(404)

    const after = await scrape()
    const tokens = [answered.token, late.token, unknown]
    for (const token of tokens) expect(after).not.toContain(token)
    const delta = (status: string) =>
      requests(after, { route: "/callbacks/:token", method: "POST", status }) -
      requests(before, { route: "/callbacks/:token", method: "POST", status })
    expect({ 400: delta("400"), 404: delta("404"), 410: delta("410") }).toEqual({ 400: 1, 404: 1, 410: 1 })
    // Every route label of every http series (counters and duration buckets) is a template.
    const routes = new Set(httpSeries(after).map((s) => s.labels.route))
    expect(routes.has("/callbacks/:token")).toBe(true)
    for (const route of routes) expect(knownRoutes).toContain(route)
    expect(
      httpSeries(after).some((s) => s.name.startsWith("asterforge_http_request_duration_seconds") && s.labels.route === "/callbacks/:token")
    ).toBe(true)

    // The node logs each request at debug level, by template: the lines exist, and hold no token.
    await node.waitFor(/POST \/callbacks\/:token 410 /)
    await node.waitFor(/POST \/callbacks\/:token 404 /)
    await node.waitFor(/POST \/callbacks\/:token 400 /)
    for (const token of tokens) expect(node.output).not.toContain(token)
  })

  it("1,000 requests to distinct junk paths: no junk in metrics or logs, the same number of http series before and after", async () => {
    /** Junk of several shapes, each with the label its request must be counted under and the refusal it gets. */
    const noRoute = { tag: "RouteNotFound", message: "no route matches this method and path" }
    const noCallback = { tag: "CallbackNotFound", message: "unknown or already used callback token" }
    const shapes = [
      { method: "GET", path: (j: string) => `/junk/${j}`, label: { route: "unmatched", method: "GET" }, error: noRoute },
      { method: "GET", path: (j: string) => `/health/${j}`, label: { route: "unmatched", method: "GET" }, error: noRoute },
      { method: "GET", path: (j: string) => `/${j}?token=${j}`, label: { route: "unmatched", method: "GET" }, error: noRoute },
      { method: "DELETE", path: (j: string) => `/tasks/${j}`, label: { route: "unmatched", method: "DELETE" }, error: noRoute },
      { method: "PURGE", path: (j: string) => `/${j}`, label: { route: "unmatched", method: "OTHER" }, error: noRoute },
      { method: "POST", path: (j: string) => `/callbacks/${j}/more`, label: { route: "unmatched", method: "POST" }, error: noRoute },
      { method: "POST", path: (j: string) => `/callbacks/${j}`, label: { route: "/callbacks/:token", method: "POST" }, error: noCallback }
    ] as const
    const junkIds: Array<string> = []
    const send = async (i: number) => {
      const shape = shapes[i % shapes.length]!
      const junk = `junk${Crypto.randomUUID().replaceAll("-", "")}`
      junkIds.push(junk)
      const res = await fetch(`${baseUrl}${shape.path(junk)}`, {
        method: shape.method,
        ...(shape.method === "POST" ? { headers: { "content-type": "application/json" }, body: '{"result": {"ok": true}}' } : {})
      })
      const text = await res.text()
      // Every 404 says why, in JSON, and never echoes the path.
      expect(res.headers.get("content-type")).toMatch(/^application\/json/)
      expect(JSON.parse(text)).toEqual({ error: shape.error })
      expect(text).not.toContain(junk)
      return res.status
    }

    // Warm-up: one request of each shape, and a scrape, so every series they touch exists.
    for (let i = 0; i < shapes.length; i++) expect(await send(i)).toBe(404)
    await scrape()
    const before = await scrape()
    const seriesBefore = httpSeries(before).length

    const total = 1000
    const statuses: Array<number> = []
    let next = 0
    const startedAt = performance.now()
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < total) statuses.push(await send(next++))
      })
    )
    measured["1,000 junk requests (16 at a time)"] = ms(startedAt, performance.now())
    expect(statuses).toHaveLength(total)
    expect(new Set(statuses)).toEqual(new Set([404]))

    const after = await scrape()
    expect(httpSeries(after).length).toBe(seriesBefore)
    for (const junk of junkIds) expect(after).not.toContain(junk)
    // They were counted, each under its shape's label.
    const expected = new Map<string, number>()
    for (let i = 0; i < total; i++) {
      const { route, method } = shapes[i % shapes.length]!.label
      const key = `${route} ${method}`
      expected.set(key, (expected.get(key) ?? 0) + 1)
    }
    for (const [key, n] of expected) {
      const [route, method] = key.split(" ") as [string, string]
      expect(requests(after, { route, method, status: "404" }) - requests(before, { route, method, status: "404" }), key).toBe(n)
    }
    for (const route of new Set(httpSeries(after).map((s) => s.labels.route))) expect(knownRoutes).toContain(route)

    await node.waitFor(/OTHER unmatched 404 /)
    const output = node.output
    for (const junk of junkIds) expect(output).not.toContain(junk)
  })

  it("a Content-Length over the limit is answered 413 with a JSON reason while almost none of the body was sent", async () => {
    const task = await park()
    const before = await rowOf(task.id)
    const announced = 50 * 1024 * 1024
    const conn = await Conn.open(port)
    const sentAt = performance.now()
    await conn.write(
      `POST /callbacks/${task.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${announced}\r\n\r\n` +
        `{"result": {"ok": true}, "padding": "${"x".repeat(1000)}`
    )
    const res = await conn.response()
    measured["413 for an announced 50 MiB body (1 KiB of it sent)"] = ms(sentAt, conn.firstByteAt)
    expect(res?.status).toBe(413)
    expect(res?.headers["content-type"]).toMatch(/^application\/json/)
    expect(JSON.parse(res!.body)).toEqual({
      error: { tag: "PayloadTooLarge", message: `request body too large: at most 4 KiB (${bodyLimit} bytes)` }
    })
    // The answer came with almost none of the body sent: the server did not wait for (or read) the rest.
    expect(conn.socket.bytesWritten).toBeLessThan(2048)
    expect(res?.headers.connection).toBe("close")
    await conn.closed
    expect(conn.closedByUs).toBe(false)
    expect(await rowOf(task.id)).toBe(before)
  })

  it("a chunked body that grows past the limit is answered 413 with a JSON reason; one within it is read", async () => {
    const task = await park()
    const before = await rowOf(task.id)
    const conn = await Conn.open(port)
    await conn.write(
      `POST /callbacks/${task.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`
    )
    const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`
    await conn.write(chunk(`{"result": {"ok": true}, "padding": "`))
    // Keep sending, never the final chunk, until the server answers or 1 MiB is out: the answer cannot wait for an end.
    let sent = 0
    const sentAt = performance.now()
    while (parseResponse(conn.received) === undefined && !conn.isClosed && sent < 1024 * 1024) {
      await conn.write(chunk("y".repeat(1024)))
      sent += 1024
    }
    const res = await conn.response()
    expect(res?.status).toBe(413)
    expect(res?.headers["content-type"]).toMatch(/^application\/json/)
    expect(JSON.parse(res!.body)).toEqual({
      error: { tag: "PayloadTooLarge", message: `request body too large: at most 4 KiB (${bodyLimit} bytes)` }
    })
    expect(sent).toBeGreaterThan(bodyLimit)
    measured["413 for a chunked body that never ends (from its first chunk)"] =
      `${ms(sentAt, conn.firstByteAt)}, ${sent / 1024} KiB written by then`
    conn.close()
    expect(await rowOf(task.id)).toBe(before)

    // Chunked and within the limit: read, and the task completes.
    const ok = await Conn.open(port)
    await ok.write(
      `POST /callbacks/${task.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`
    )
    await ok.write(chunk('{"result": '))
    await ok.write(`${chunk('{"ok": true}}')}0\r\n\r\n`)
    const done = await ok.response()
    expect(done?.status).toBe(200)
    expect(JSON.parse(done!.body)).toEqual({ id: task.id, state: "succeeded" })
    ok.close()
  })
})

describe("timeouts (headers 1s, request 2s, keep-alive 1s)", () => {
  let port: number
  beforeAll(async () => {
    ;({ port } = await startTasksNode({
      ASTERFORGE_TELEMETRY_LOG_LEVEL: "info",
      ASTERFORGE_SERVER_HEADERS_TIMEOUT: "1s",
      ASTERFORGE_SERVER_REQUEST_TIMEOUT: "2s",
      ASTERFORGE_SERVER_KEEP_ALIVE_TIMEOUT: "1s"
    }))
  })

  it("a client that stalls inside its request line, or inside its headers, is answered 408 and disconnected", async () => {
    for (const [what, partial] of [
      ["request line", "GET /heal"],
      ["headers", "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "]
    ] as const) {
      const conn = await Conn.open(port)
      await conn.write(partial)
      await conn.closed
      measured[`stalled in its ${what}: disconnected after`] = ms(conn.openedAt, conn.closedAt)
      expect(conn.closedByUs, what).toBe(false)
      expect(conn.received, what).toMatch(/^HTTP\/1\.1 408 /)
    }
  })

  it("a client trickling header lines (slowloris) is disconnected once its headers took longer than the timeout", async () => {
    const conn = await Conn.open(port)
    await conn.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    let lines = 0
    const trickle = setInterval(() => {
      lines++
      void conn.write(`X-Trickle-${lines}: a\r\n`)
    }, 100)
    try {
      await conn.closed
    } finally {
      clearInterval(trickle)
    }
    measured["slowloris disconnected after"] = `${ms(conn.openedAt, conn.closedAt)} (${lines} header lines sent)`
    expect(conn.closedByUs).toBe(false)
    expect(conn.received).toMatch(/^HTTP\/1\.1 408 /)
    // It was still sending when it was cut off: trickling bytes is not enough to stay.
    expect(lines).toBeGreaterThan(0)
  })

  it("an idle keep-alive connection is closed by the server after a complete exchange", async () => {
    const conn = await Conn.open(port)
    await conn.write(get("/health"))
    const res = await conn.response()
    expect(res?.status).toBe(200)
    expect(res?.headers["keep-alive"]).toBe("timeout=1")
    const answeredAt = performance.now()
    await conn.closed
    measured["idle keep-alive connection closed after"] = ms(answeredAt, conn.closedAt)
    expect(conn.closedByUs).toBe(false)
    expect(parseResponse(conn.received)?.rest).toBe("")
  })
})

describe("connection cap (max_connections = 3)", () => {
  let port: number
  const cap = 3
  beforeAll(async () => {
    ;({ port } = await startTasksNode({
      ASTERFORGE_TELEMETRY_LOG_LEVEL: "info",
      ASTERFORGE_SERVER_MAX_CONNECTIONS: String(cap),
      // Nothing here may time out while the test holds its connections.
      ASTERFORGE_SERVER_HEADERS_TIMEOUT: "5m",
      ASTERFORGE_SERVER_REQUEST_TIMEOUT: "10m",
      ASTERFORGE_SERVER_KEEP_ALIVE_TIMEOUT: "10m"
    }))
  })

  /** One keep-alive exchange on `conn`: the status of `GET /health`, or undefined when the connection closed instead. */
  const health = async (conn: Conn) => {
    conn.take()
    await conn.write(get("/health"))
    return (await conn.response())?.status
  }

  it("connection N+1 is closed unanswered while the N open ones keep being served; a freed slot is usable again", async () => {
    const held: Array<Conn> = []
    try {
      // Each of the N is accepted and served before the next opens: the server counts all N.
      for (let i = 0; i < cap; i++) {
        const conn = await Conn.open(port)
        held.push(conn)
        expect(await health(conn)).toBe(200)
      }

      const extra = new Conn(port)
      await extra.connected
      await extra.write(get("/health"))
      await extra.closed
      measured["connection N+1 closed after"] = `${ms(extra.openedAt, extra.closedAt)}${extra.error ? ` (${extra.error})` : ""}`
      expect(extra.closedByUs).toBe(false)
      expect(extra.received).toBe("")

      // The N stay open and served.
      for (const conn of held) {
        expect(conn.isClosed).toBe(false)
        expect(await health(conn)).toBe(200)
      }

      // Closing one frees its slot: a new connection is served once the server has seen the close.
      held.shift()!.close()
      const status = await eventually(async () => {
        const conn = await Conn.open(port)
        try {
          return (await health(conn)) === 200 ? 200 : undefined
        } finally {
          conn.close()
        }
      }, "a new connection to be served after one of the N closed")
      expect(status).toBe(200)
      for (const conn of held) expect(await health(conn)).toBe(200)
    } finally {
      for (const conn of held) conn.close()
    }
  })
})
