/**
 * Traces across processes: an HTTP request that enqueues a task in one process
 * and the handler that runs it in another form one trace, exported over
 * OTLP/HTTP to a receiver on loopback (the test's own small server: no
 * collector binary can be installed here), and the handler's JSON log lines
 * carry that trace's id.
 */
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, freshDatabase, query, type FreshDatabase } from "../support/kit.ts"
import { fixture, repoRoot, spawnNode, type Spawned } from "../support/process.ts"

interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly kind: number
  readonly service: string
  readonly attributes: Record<string, unknown>
}

/** Collects spans posted to /v1/traces (OTLP/HTTP, JSON encoding). */
const startReceiver = () =>
  new Promise<{ url: string; spans: Array<OtlpSpan>; close: () => Promise<void> }>((resolve) => {
    const spans: Array<OtlpSpan> = []
    const server = Http.createServer((req, res) => {
      let body = ""
      req.setEncoding("utf8")
      req.on("data", (c) => (body += c))
      req.on("end", () => {
        if (req.url === "/v1/traces") {
          const doc = JSON.parse(body) as {
            resourceSpans: Array<{
              resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> }
              scopeSpans: Array<{ spans: Array<any> }>
            }>
          }
          for (const rs of doc.resourceSpans ?? []) {
            const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "?"
            for (const ss of rs.scopeSpans ?? []) {
              for (const s of ss.spans ?? []) {
                spans.push({
                  traceId: s.traceId,
                  spanId: s.spanId,
                  parentSpanId: s.parentSpanId || undefined,
                  name: s.name,
                  kind: s.kind,
                  service,
                  attributes: Object.fromEntries((s.attributes ?? []).map((a: any) => [a.key, Object.values(a.value)[0]]))
                })
              }
            }
          }
        }
        res.writeHead(200, { "content-type": "application/json" })
        res.end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      resolve({ url: `http://127.0.0.1:${port}`, spans, close: () => new Promise((r) => server.close(() => r())) })
    })
  })

let db: FreshDatabase
beforeAll(async () => {
  db = await freshDatabase("tracing")
  await query(db.url, "CREATE TABLE signups (email text PRIMARY KEY)")
})
afterAll(async () => {
  await db?.drop()
})

describe("tracing", () => {
  it("one trace links the HTTP request that enqueued a task in one process to the handler that ran it in another", async () => {
    const receiver = await startReceiver()
    const example = Path.join(repoRoot, "packages/runtime/examples/tasks-app.ts")
    const env = (service: string, mode: string) => ({
      DATABASE_URL: db.url,
      ASTERFORGE_SERVER_PORT: "0",
      ASTERFORGE_MODE: mode,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: service,
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test"
    })
    const api: Spawned = spawnNode(example, ["start"], env("shop-api", "follower"))
    const worker: Spawned = spawnNode(example, ["start"], env("shop-worker", "worker"))
    try {
      const base = await api.baseUrl()
      await worker.baseUrl()
      // The caller is itself traced: its traceparent must be continued, not replaced.
      const traceId = Crypto.randomBytes(16).toString("hex")
      const callerSpan = Crypto.randomBytes(8).toString("hex")
      const res = await fetch(`${base}/signups/ada@example.org`, {
        method: "POST",
        headers: { traceparent: `00-${traceId}-${callerSpan}-01` }
      })
      expect(res.status).toBe(202)
      const { id } = (await res.json()) as { id: string }
      await eventually(async () => {
        const [row] = await query<{ state: string }>(db.url, "SELECT state FROM tasks WHERE id = $1", [id])
        return row?.state === "succeeded" ? true : undefined
      }, `task ${id} to succeed`)
      const [stored] = await query<{ traceparent: string | null }>(db.url, "SELECT traceparent FROM tasks WHERE id = $1", [id])
      expect(stored?.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`))
      // Spans are flushed on shutdown.
      api.kill("SIGTERM")
      worker.kill("SIGTERM")
      expect((await api.exited).code).toBe(0)
      expect((await worker.exited).code).toBe(0)

      const trace = receiver.spans.filter((s) => s.traceId === traceId)
      const server = trace.find((s) => s.kind === 2 && s.service === "shop-api")
      const enqueue = trace.find((s) => s.name === "TaskQueue.enqueue")
      const run = trace.find((s) => s.name === "Dispatcher.run")
      expect(server, JSON.stringify(trace, null, 1)).toBeDefined()
      expect(server!.parentSpanId).toBe(callerSpan)
      expect(enqueue?.service).toBe("shop-api")
      // enqueue sits below the request span (possibly through intermediate spans).
      const byId = new Map(trace.map((s) => [s.spanId, s]))
      let cursor: OtlpSpan | undefined = enqueue
      while (cursor && cursor.spanId !== server!.spanId) cursor = cursor.parentSpanId ? byId.get(cursor.parentSpanId) : undefined
      expect(cursor?.spanId).toBe(server!.spanId)
      expect(run?.service).toBe("shop-worker")
      expect(run?.parentSpanId).toBe(enqueue!.spanId)
      expect(run?.kind).toBe(5) // CONSUMER
      expect(run?.attributes).toMatchObject({
        "messaging.system": "asterforge",
        "messaging.destination.name": "mail",
        "asterforge.task.name": "mail.send_welcome",
        "messaging.message.id": id
      })
      expect(enqueue?.attributes).toMatchObject({ "messaging.operation.type": "send", "messaging.destination.name": "mail" })

      // The handler's log line is JSON and names the trace it ran in.
      const logLine = worker.logs.find((l) => String(l.message).startsWith("welcome mail to ada@example.org"))
      expect(logLine).toMatchObject({ level: "info", trace_id: traceId, task: "mail.send_welcome", task_id: id })
      expect(logLine?.span_id).toMatch(/^[0-9a-f]{16}$/)
      // Every stderr line of both processes is a JSON object.
      for (const line of [...api.stderr, ...worker.stderr].filter((l) => l.trim() !== ""))
        expect(() => JSON.parse(line), line).not.toThrow()
    } finally {
      await api.stop()
      await worker.stop()
      await receiver.close()
    }
  })

  it("a scheduled task's trace starts at its fire: source -> queue -> worker -> handler", async () => {
    const receiver = await startReceiver()
    const node = spawnNode(fixture("sources-app.ts"), ["start"], {
      DATABASE_URL: db.url,
      ASTERFORGE_SERVER_PORT: "0",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: "ticker"
    })
    try {
      await node.baseUrl()
      const [task] = await eventually(async () => {
        const rows = await query<{ id: string; traceparent: string }>(
          db.url,
          "SELECT id::text, traceparent FROM tasks WHERE name = 'test.tick' AND state = 'succeeded' ORDER BY id LIMIT 1"
        )
        return rows.length > 0 ? rows : undefined
      }, "a fire's task to succeed")
      node.kill("SIGTERM")
      expect((await node.exited).code).toBe(0)
      const run = receiver.spans.find((s) => s.name === "Dispatcher.run" && s.attributes["messaging.message.id"] === task!.id)
      const fire = receiver.spans.find((s) => s.name === "CronSource.fire" && s.spanId === run?.parentSpanId)
      expect(fire, JSON.stringify(receiver.spans.map((s) => s.name))).toBeDefined()
      expect(fire!.parentSpanId).toBeUndefined()
      expect(run!.traceId).toBe(fire!.traceId)
      expect(task!.traceparent).toBe(`00-${fire!.traceId}-${fire!.spanId}-01`)
      expect(fire!.attributes["asterforge.source"]).toBe("test.tick")
    } finally {
      await node.stop()
      await receiver.close()
    }
  })
})
