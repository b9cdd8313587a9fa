/**
 * The admin API fuzzed from its own OpenAPI document, by tools no one here
 * wrote: `json-schema-faker` generates valid parameters and bodies for every
 * operation from the served document; each is then broken in the ways
 * clients break things (wrong types, missing required fields, huge numbers,
 * NUL bytes, very long strings, bodies that are not JSON or not objects, no
 * credentials). `openapi-backend` checks every answer against the document.
 *
 * The bar: no answer is a 5xx, every status is one the operation documents,
 * every body matches its schema, and every 4xx carries `{ error: { tag,
 * message } }`.
 */
import { createGeneratorSync } from "json-schema-faker"
import { OpenAPIBackend } from "openapi-backend"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as T from "../fixtures/test-tasks.ts"
import * as Kit from "../support/kit.ts"
import { adminToken, isErrorBody } from "../support/admin.ts"

type Json = any

let db: Kit.FreshDatabase
let node: Kit.TestNode
let document: Json
let backend: OpenAPIBackend
const knownIds: Array<string> = []

beforeAll(async () => {
  db = await Kit.freshDatabase("control_fuzz")
  await Kit.query(db.url, T.createRunsTable)
  await Kit.query(db.url, T.createLatchesTable)
  node = await Kit.startNode({
    url: db.url,
    modules: [T.TestTasks],
    env: {
      ASTERFORGE_SECURITY_ADMIN_TOKEN: adminToken,
      ASTERFORGE_CONTROL_LOGIN_MAX_FAILURES: "100000",
      ASTERFORGE_TELEMETRY_LOG_LEVEL: "none"
    }
  })
  document = await (await fetch(`${node.baseUrl}/admin/api/openapi.json`)).json()
  backend = new OpenAPIBackend({ definition: document, strict: false, quick: false, validate: true })
  await backend.init()
  // Real tasks, so generated requests also meet existing ids in every state.
  for (const [name, payload, queue] of [
    ["test.record", { key: "fuzz" }, "default"],
    ["test.terminal", {}, "default"],
    ["test.record", { key: "parked" }, "parked"],
    ["test.flaky", { failTimes: 9 }, "default"]
  ] as const) {
    const res = await fetch(`${node.baseUrl}/admin/api/tasks`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name, payload, queue })
    })
    knownIds.push(((await res.json()) as { id: string }).id)
  }
}, 120_000)

afterAll(async () => {
  await node?.close()
  await db?.drop()
})

interface Parameter {
  readonly name: string
  readonly in: "path" | "query"
  readonly required?: boolean
  readonly schema: Json
}

interface Operation {
  readonly operationId: string
  readonly method: string
  readonly path: string
  readonly parameters?: ReadonlyArray<Parameter>
  readonly requestBody?: { readonly content: Record<string, { readonly schema: Json }> }
  readonly responses: Record<string, { readonly content?: Record<string, unknown> }>
}

/** One request: path and query values, and the body (a value sent as JSON, or raw text). */
interface Case {
  readonly what: string
  readonly path: Record<string, unknown>
  readonly query: Record<string, unknown>
  readonly body?: { readonly json: unknown } | { readonly raw: string; readonly contentType: string } | undefined
  readonly token?: string | undefined
  /** Appended to the query string as is: malformed percent-encoding. */
  readonly rawQuery?: string | undefined
}

const generator = createGeneratorSync({ seed: 20261129, maxDepth: 4, optionalsProbability: 0.6 })
const fake = (schema: Json): unknown => generator.generate({ ...schema, components: document.components })

const bodySchema = (op: Operation): Json | undefined => op.requestBody?.content["application/json"]?.schema

/** A valid request from the document's schemas (half the time with the id of a real task). */
const validCase = (op: Operation, i: number): Case => {
  const path: Record<string, unknown> = {}
  const query: Record<string, unknown> = {}
  for (const p of op.parameters ?? []) {
    const value = p.name === "id" && i % 2 === 0 ? knownIds[i % knownIds.length] : fake(p.schema)
    if (p.in === "path") path[p.name] = value
    else if (p.required || i % 3 !== 0) query[p.name] = value
  }
  const schema = bodySchema(op)
  return { what: `valid #${i}`, path, query, body: schema === undefined ? undefined : { json: fake(schema) }, token: adminToken }
}

const hugeNumbers = [1e308, -1e308, 2 ** 63, -(2 ** 63) - 2048, 2 ** 53 + 1, 0.5, -1]
const nastyStrings = [
  "",
  "\u0000",
  `nul\u0000byte`,
  "\ud800",
  "x".repeat(100_000),
  "🙂".repeat(1000),
  "'; DROP TABLE tasks; --",
  "{}",
  "null"
]
const wrongTypes: ReadonlyArray<unknown> = [
  42,
  true,
  null,
  [],
  {},
  [1, "a"],
  { nested: { deeper: [null] } },
  ...hugeNumbers,
  ...nastyStrings
]

/** The same request broken one field at a time. */
const invalidCases = (op: Operation, base: Case): ReadonlyArray<Case> => {
  const cases: Array<Case> = [
    { ...base, what: "no credentials", token: undefined },
    ...["%", "%FF", "%ED%A0%80", "a=%00", "limit=%FF"].map((rawQuery) => ({ ...base, what: `query ${rawQuery}`, rawQuery }))
  ]
  for (const p of op.parameters ?? []) {
    // An empty path parameter names another operation's path (`/tasks/` is the list): not a broken request to this one.
    for (const v of p.in === "path" ? wrongTypes.filter((x) => x !== "") : wrongTypes) {
      // URLs over ~16 KB are refused by Node's HTTP parser itself, before any route: keep them shorter.
      const value = typeof v === "string" && v.length > 8000 ? v.slice(0, 8000) : v
      const target = p.in === "path" ? "path" : "query"
      cases.push({
        ...base,
        what: `${p.in} ${p.name} = ${JSON.stringify(value).slice(0, 40)}`,
        [target]: { ...base[target], [p.name]: value }
      })
    }
  }
  const schema = bodySchema(op)
  if (schema !== undefined) {
    const json = (base.body as { json: Record<string, unknown> }).json
    const props = Object.keys(schema.properties ?? {})
    for (const prop of props) {
      const { [prop]: _, ...without } = json ?? {}
      cases.push({ ...base, what: `body without ${prop}`, body: { json: without } })
      for (const v of wrongTypes)
        cases.push({ ...base, what: `body ${prop} = ${JSON.stringify(v).slice(0, 40)}`, body: { json: { ...json, [prop]: v } } })
      // Number literals no JavaScript number holds, as raw JSON text.
      for (const literal of ["1e400", "-1e400", "123456789012345678901234567890"]) {
        const raw = JSON.stringify({ ...json, [prop]: "__HUGE__" }).replace('"__HUGE__"', literal)
        cases.push({ ...base, what: `body ${prop} = ${literal}`, body: { raw, contentType: "application/json" } })
      }
      cases.push({ ...base, what: `body ${prop} = 1.1 MB`, body: { json: { ...json, [prop]: "x".repeat(1_100_000) } } })
    }
    for (const raw of ["", "{", "[]", "null", "42", '"text"', `{"a":${"[".repeat(5000)}${"]".repeat(5000)}}`]) {
      cases.push({ ...base, what: `body ${raw.slice(0, 20)}`, body: { raw, contentType: "application/json" } })
    }
    cases.push({ ...base, what: "body as text/plain", body: { raw: JSON.stringify(json), contentType: "text/plain" } })
    cases.push({ ...base, what: "body as form", body: { raw: "a=1&b=2", contentType: "application/x-www-form-urlencoded" } })
  }
  return cases
}

/** Percent-encoded; a lone surrogate goes out as the (invalid UTF-8) bytes a careless client would send. */
const encode = (v: unknown) =>
  Array.from(typeof v === "string" ? v : JSON.stringify(v), (ch) =>
    /^[\ud800-\udfff]$/.test(ch) ? "%ED%A0%80" : encodeURIComponent(ch)
  ).join("")

const url = (op: Operation, c: Case) => {
  const path = op.path.replace(/\{(\w+)\}/g, (_, name: string) => encode(c.path[name] ?? "1"))
  const query = Object.entries(c.query)
    .flatMap(([k, v]) => (v === undefined ? [] : Array.isArray(v) ? v.map((x) => `${k}=${encode(x)}`) : [`${k}=${encode(v)}`]))
    .join("&")
  const all = [query, c.rawQuery ?? ""].filter((q) => q !== "").join("&")
  return `${node.baseUrl}${path}${all ? `?${all}` : ""}`
}

/** How often each status was answered, for the measure line. */
const statuses = new Map<number, number>()

interface Finding {
  readonly operation: string
  readonly what: string
  readonly status: number
  readonly problem: string
}

const send = async (op: Operation, c: Case): Promise<Finding | undefined> => {
  const headers: Record<string, string> = {}
  if (c.token !== undefined) headers.authorization = `Bearer ${c.token}`
  let body: string | undefined
  if (c.body !== undefined && "json" in c.body) {
    headers["content-type"] = "application/json"
    body = JSON.stringify(c.body.json)
  } else if (c.body !== undefined) {
    headers["content-type"] = c.body.contentType
    body = c.body.raw
  }
  const res = await fetch(url(op, c), {
    method: op.method.toUpperCase(),
    headers,
    redirect: "manual",
    ...(body === undefined ? {} : { body })
  })
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
  const text = await res.text()
  const found = (problem: string): Finding => ({
    operation: op.operationId,
    what: c.what,
    status: res.status,
    problem: `${problem}: ${text.slice(0, 300)}`
  })
  if (res.status >= 500) return found("a 5xx")
  const documented = op.responses[String(res.status)]
  if (documented === undefined) return found(`status ${res.status} is not documented`)
  if (documented.content === undefined) return text === "" ? undefined : found("a body where the document has none")
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return found("not JSON")
  }
  const validation = backend.validateResponse(json, op.operationId, res.status)
  if (validation.errors && validation.errors.length > 0)
    return found(`does not match the document (${JSON.stringify(validation.errors).slice(0, 300)})`)
  if (res.status >= 400 && !isErrorBody(json)) return found("an error without { error: { tag, message } }")
  return undefined
}

describe("admin API fuzzed from its OpenAPI document", () => {
  it("no 5xx, every status documented, every body matching the document, for valid and broken requests to every operation", async () => {
    const operations = backend.getOperations() as unknown as ReadonlyArray<Operation>
    expect(operations.length).toBe(24)
    const findings: Array<Finding> = []
    let requests = 0
    const started = performance.now()
    for (const op of operations) {
      for (let i = 0; i < 12; i++) {
        const base = validCase(op, i)
        const cases = i === 0 ? [base, ...invalidCases(op, base)] : [base]
        for (const c of cases) {
          const finding = await send(op, c)
          requests++
          if (finding !== undefined) findings.push(finding)
        }
      }
    }
    const byStatus = [...statuses]
      .sort(([a], [b]) => a - b)
      .map(([status, n]) => `${status}: ${n}`)
      .join(", ")
    console.log(
      `[measure] admin API fuzz: ${requests} requests over ${operations.length} operations in ${Math.round(performance.now() - started)} ms (${byStatus})`
    )
    expect(findings.slice(0, 20)).toEqual([])
    expect(requests).toBeGreaterThan(1000)
  }, 600_000)
})
