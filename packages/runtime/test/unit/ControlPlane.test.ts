/**
 * The control plane's pure rules, table-driven: what inputs the admin API
 * accepts (ids, dates, text, JSON PostgreSQL stores), the role order, opaque
 * cursors, token validity, and where a sign-in may return to.
 */
import { Result, Schema } from "effect"
import { describe, expect, it } from "vitest"
import * as Auth from "../../src/control/Auth.ts"
import * as Context from "../../src/control/Context.ts"
import * as Models from "../../src/control/Models.ts"
import * as Oidc from "../../src/control/Oidc.ts"
import * as Tokens from "../../src/control/Tokens.ts"

const accepts = (schema: Schema.Top & { readonly DecodingServices: never }, value: unknown) =>
  Result.isSuccess(Schema.decodeUnknownResult(schema)(value))

describe("inputs", () => {
  it.each([
    ["1", true],
    ["9223372036854775807", true],
    ["9223372036854775808", false],
    ["0", false],
    ["01", false],
    ["-1", false],
    ["1e3", false],
    ["", false]
  ])("task id %j: %s", (id, ok) => expect(accepts(Models.TaskId, id)).toBe(ok))

  it.each([
    ["2026-11-29T12:00:00Z", true],
    ["2026-11-29", true],
    ["2026-11-29T12:00:00.123456+02:00", true],
    ["0000-01-01T00:00:00Z", false],
    ["+275760-09-13T00:00:00Z", false],
    ["2026-13-40T00:00:00Z", false],
    ["yesterday", false]
  ])("date-time %j: %s", (text, ok) => expect(accepts(Models.DateTimeText, text)).toBe(ok))

  it.each([
    ["token:ops", true],
    ["ünïcödé 🙂", true],
    ["", false],
    ["nul\u0000", false],
    ["tab\there", false],
    ["lone \ud800", false],
    ["x".repeat(501), false]
  ])("text %j: %s", (text, ok) => expect(accepts(Models.Text(500), text)).toBe(ok))

  it.each([
    [{ a: 1, b: ["x", null, true] }, undefined],
    [{ a: "nul\u0000" }, "JSON text with a NUL or a lone surrogate"],
    [{ "\ud800": 1 }, "JSON text with a NUL or a lone surrogate"],
    [{ a: Number.POSITIVE_INFINITY }, "a JSON number out of range"],
    [JSON.parse(`${"[".repeat(40)}${"]".repeat(40)}`), "JSON nested deeper than 32 levels"]
  ])("JSON %#: %s", (value, problem) => expect(Models.jsonProblem(value)).toBe(problem))

  it("queue and task names follow what Task.define and worker.queues accept", () => {
    expect(accepts(Models.QueueName, "mail.outbound-2")).toBe(true)
    expect(accepts(Models.QueueName, "x".repeat(65))).toBe(false)
    expect(accepts(Models.TaskName, "mail.send_welcome")).toBe(true)
    expect(accepts(Models.TaskName, "Mail.Send")).toBe(false)
  })
})

describe("roles", () => {
  it.each([
    ["viewer", "viewer", true],
    ["viewer", "operator", false],
    ["operator", "viewer", true],
    ["operator", "admin", false],
    ["admin", "operator", true],
    ["admin", "admin", true]
  ] as const)("%s may do what needs %s: %s", (have, need, ok) => expect(Auth.allows(have, need)).toBe(ok))
})

describe("cursors, token validity, sign-in redirects", () => {
  it("a cursor is opaque text that decodes to its parts, and nothing else decodes", () => {
    const cursor = Context.encodeCursor(["2026-11-29T12:00:00.000Z", "42"])
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/)
    expect(Context.decodeCursor(cursor, 2)).toEqual(["2026-11-29T12:00:00.000Z", "42"])
    expect(Context.decodeCursor(cursor, 1)).toBeUndefined()
    expect(Context.decodeCursor("bm90LWEtY3Vyc29y", 2)).toBeUndefined()
  })

  it.each([
    ["90m", 90 * 60_000],
    ["12h", 12 * 3_600_000],
    ["30d", 30 * 86_400_000]
  ])("a token valid for %s lasts %i ms", (text, ms) => expect(Tokens.expiresInMs(text)).toBe(ms))

  it("tokens are random and found by their SHA-256", () => {
    const [a, b] = [Tokens.generate(), Tokens.generate()]
    expect(a).not.toBe(b)
    expect(a).toMatch(/^aft_[A-Za-z0-9_-]{43}$/)
    expect(Tokens.hash(a)).toMatch(/^[0-9a-f]{64}$/)
  })

  it.each([
    ["/admin/tasks?state=failed", "/admin/tasks?state=failed"],
    [undefined, "/admin/"],
    ["https://evil.example/", "/admin/"],
    ["//evil.example/", "/admin/"],
    ["/\\evil", "/admin/"],
    ["javascript:alert(1)", "/admin/"]
  ])("a sign-in that began with redirect=%j returns to %s", (to, where) => expect(Oidc.safeRedirect(to)).toBe(where))
})
