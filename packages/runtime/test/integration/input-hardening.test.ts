/**
 * Bad input is the caller's problem, never an outage, and secrets stay secret.
 *
 * - The TaskQueue service (what an HTTP API calls) against a real Postgres:
 *   values the columns cannot hold (priority and maxAttempts 2^32, a delay of
 *   1e20 hours, a runAt in year 275760), text Postgres cannot store (NUL, a
 *   lone surrogate) in names, payloads, keys and filters, ids and cursors that
 *   are not task ids: each a typed, non-retryable 4xx error with its reason,
 *   never `TaskStoreUnavailable`, and nothing inserted. Retrying a failed task
 *   whose unique key another unfinished task now holds is a 409 naming it.
 * - The callback route over real HTTP: the same text in a path or a body is a
 *   4xx with a JSON reason, never a 5xx, and changes nothing.
 * - Real processes: `config check` of a TOML file with a malformed secret,
 *   a config reload rejected for it (its audit row), the start-up retries
 *   against a DATABASE_URL with `?password=`, and an OTLP endpoint with
 *   credentials never show the secret.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, it as vit } from "vitest"
import type { RuntimeError } from "../../src/RuntimeError.ts"
import { AuditLog } from "../../src/AuditLog.ts"
import { type EnqueueOptions, TaskQueue } from "../../src/TaskQueue.ts"
import * as T from "../fixtures/test-tasks.ts"
import * as Kit from "../support/kit.ts"
import { cliBin, pollHttp, spawnNode, trackProcesses } from "../support/process.ts"

const TestNode = Kit.node({
  modules: [T.TestTasks],
  env: { ASTERFORGE_TELEMETRY_LOG_LEVEL: "none" }
}).pipe(Layer.provideMerge(Kit.setUp(T.createTables)), Layer.provideMerge(Kit.database("input_hardening")))

const { untilTask: until } = Kit
const taskCount = Effect.map(Kit.queryDb<{ n: number }>("SELECT count(*)::int AS n FROM tasks"), (r) => r[0]!.n)

/**
 * `effect` fails (not dies) with the caller's error: the reason `tag`, a 4xx
 * status, not retryable, a message saying why.
 */
const refused = <A>(effect: Effect.Effect<A, RuntimeError>, tag: string, reason: RegExp) =>
  Effect.gen(function* () {
    const error = yield* Effect.flip(effect)
    expect(error.reason._tag, error.message).toBe(tag)
    expect(error.httpStatus).toBeGreaterThanOrEqual(400)
    expect(error.httpStatus).toBeLessThan(500)
    expect(error.isRetryable).toBe(false)
    expect(error.message).toMatch(reason)
    return error
  })

const NUL = "\u0000"
const loneSurrogate = "\uD800"
const notAnId = "99999999999999999999"

layer(TestNode, { excludeTestServices: true })("input through the TaskQueue service", (it) => {
  it.effect("enqueue options out of the columns' range are TaskOptionsInvalid (400) and insert nothing", () =>
    Effect.gen(function* () {
      const q = yield* TaskQueue
      const before = yield* taskCount
      const enqueue = (options: EnqueueOptions) => q.enqueue(T.Record, { key: "x" }, options)
      yield* refused(enqueue({ priority: 2 ** 32 }), "TaskOptionsInvalid", /priority must be an integer between -2147483648 and 2147483647/)
      yield* refused(enqueue({ priority: -(2 ** 32) }), "TaskOptionsInvalid", /priority/)
      yield* refused(enqueue({ priority: 0.5 }), "TaskOptionsInvalid", /priority must be an integer/)
      yield* refused(enqueue({ maxAttempts: 2 ** 32 }), "TaskOptionsInvalid", /maxAttempts must be an integer between 1 and/)
      yield* refused(enqueue({ delay: Duration.hours(1e20) }), "TaskOptionsInvalid", /delay must be at most 3650 days/)
      yield* refused(enqueue({ delay: Duration.infinity }), "TaskOptionsInvalid", /delay is not a valid duration/)
      const farFuture = new Date(8.64e15)
      expect(farFuture.getUTCFullYear()).toBe(275760)
      yield* refused(enqueue({ runAt: farFuture }), "TaskOptionsInvalid", /runAt must not be later than 9999-12-31/)
      yield* refused(enqueue({ deadline: farFuture }), "TaskOptionsInvalid", /deadline must not be later than 9999-12-31/)
      yield* refused(enqueue({ runAt: new Date(Number.NaN) }), "TaskOptionsInvalid", /runAt is not a valid date/)
      // Many at once: one statement, refused as a whole.
      yield* refused(q.enqueueMany(T.Record, [{ key: "a" }, { key: "b" }], { priority: 2 ** 32 }), "TaskOptionsInvalid", /priority/)
      expect(yield* taskCount).toBe(before)
    })
  )

  it.effect("NUL and lone surrogates in a name, payload, queue, unique key, metadata or filter are refused by name, never stored", () =>
    Effect.gen(function* () {
      const q = yield* TaskQueue
      const before = yield* taskCount
      for (const [bad, what] of [
        [NUL, /contains a NUL character/],
        [loneSurrogate, /contains a lone surrogate/]
      ] as const) {
        yield* refused(q.enqueue(T.Record, { key: `a${bad}b` }), "TaskPayloadInvalid", new RegExp(`payload\\.key ${what.source}`))
        yield* refused(q.enqueueByName("test.record", { key: bad }), "TaskPayloadInvalid", what)
        yield* refused(
          q.enqueueMany(T.Record, [{ key: "fine" }, { key: bad }]),
          "TaskPayloadInvalid",
          new RegExp(`item 1: payload\\.key ${what.source}`)
        )
        yield* refused(
          q.enqueue(T.Record, { key: "x" }, { uniqueKey: `k${bad}` }),
          "TaskOptionsInvalid",
          new RegExp(`uniqueKey ${what.source}`)
        )
        yield* refused(q.enqueue(T.Record, { key: "x" }, { metadata: { note: `m${bad}` } }), "TaskOptionsInvalid", what)
        yield* refused(q.enqueue(T.Record, { key: "x" }, { metadata: { [`k${bad}`]: 1 } }), "TaskOptionsInvalid", what)
        yield* refused(q.enqueue(T.Record, { key: "x" }, { queue: `default${bad}` }), "TaskOptionsInvalid", /queue must be/)
        // A task name no definition has: unknown (404), whatever it holds.
        yield* refused(q.enqueueByName(`test.record${bad}`, { key: "x" }), "TaskUnknown", /test\.record/)
        yield* refused(q.list({ queue: `q${bad}` }), "TaskOptionsInvalid", what)
        yield* refused(q.list({ name: `n${bad}` }), "TaskOptionsInvalid", what)
      }
      expect(yield* taskCount).toBe(before)
    })
  )

  it.effect("ids and cursors that are no task id: not found (404) or invalid (400), never a database error", () =>
    Effect.gen(function* () {
      const q = yield* TaskQueue
      for (const id of [notAnId, "9223372036854775808", "-1", "0", "1e3", "12abc", " 1", `1${NUL}`, ""]) {
        yield* refused(q.get(id), "TaskNotFound", /not found/)
        yield* refused(q.cancel(id), "TaskNotFound", /not found/)
        yield* refused(q.retry(id), "TaskNotFound", /not found/)
      }
      for (const cursor of ["abc", notAnId, "-5", "1.5", `7${NUL}`, loneSurrogate]) {
        yield* refused(q.list({}, { before: cursor }), "TaskOptionsInvalid", /cursor .* is not a task id/)
      }
      yield* refused(q.list({ state: ["sleeping" as never] }), "TaskOptionsInvalid", /unknown state "sleeping"/)
      yield* refused(q.list({}, { limit: Number.NaN }), "TaskOptionsInvalid", /limit must be an integer/)
      // The largest id there can be is a valid cursor and a valid (absent) id.
      expect((yield* q.list({}, { before: "9223372036854775807", limit: 1 })).tasks.length).toBeLessThanOrEqual(1)
      yield* refused(q.get("9223372036854775807"), "TaskNotFound", /not found/)
    })
  )

  it.effect("retrying a failed task whose unique key an unfinished task now holds: 409 naming the holder; nothing changes", () =>
    Effect.gen(function* () {
      const q = yield* TaskQueue
      const uniqueKey = "input-hardening:report"
      const failed = yield* q.enqueue(T.Refuse, {}, { uniqueKey })
      yield* until(failed.id, (t) => t.state === "failed", "to fail")
      // The key is free once its task finished: another task takes it and stays unfinished until its latch opens.
      const latch = "input-hardening-holder"
      const holder = yield* q.enqueue(T.Hold, { latch }, { uniqueKey })
      expect(holder.existing).toBe(false)

      const [before] = yield* Kit.queryDb<{ row: string }>("SELECT row_to_json(t)::text AS row FROM tasks t WHERE id = $1", [failed.id])
      const conflict = yield* refused(q.retry(failed.id, "user:alice"), "TaskStateConflict", /cannot retry task/)
      expect(conflict.httpStatus).toBe(409)
      expect(conflict.message).toContain(`its unique key "${uniqueKey}" is held by unfinished task ${holder.id}`)
      const [after] = yield* Kit.queryDb<{ row: string }>("SELECT row_to_json(t)::text AS row FROM tasks t WHERE id = $1", [failed.id])
      expect(after!.row).toBe(before!.row)
      // Whatever this node recorded is written out first: the refused retry recorded nothing.
      yield* Effect.flatMap(AuditLog, (audit) => audit.flush)
      const audit = yield* Kit.queryDb<{ code: string }>("SELECT code FROM audit_events WHERE subject = $1 ORDER BY id", [
        `task:${failed.id}`
      ])
      expect(audit.map((a) => a.code)).toEqual(["task.failed"])

      // Once the holder finished, the key is free and the retry goes through.
      yield* Kit.queryDb(T.openLatch, [latch])
      yield* until(holder.id, (t) => t.state === "succeeded", "to succeed")
      const retried = yield* q.retry(failed.id, "user:alice")
      expect(retried.attempt).toBe(0)
      yield* until(failed.id, (t) => t.state === "failed" && t.attempt === 1 && t.errors.length === 2, "to fail again")
    })
  )

  describe("over HTTP: the callback route", () => {
    const post = (path: string, body: string) =>
      Effect.flatMap(Kit.NodeAddress, ({ baseUrl }) =>
        Effect.promise(async () => {
          const res = await fetch(`${baseUrl}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body })
          const text = await res.text()
          return { status: res.status, contentType: res.headers.get("content-type"), text }
        })
      )
    /** The node's JSON refusal, `{ error: { tag, message } }` and nothing else, with this status and tag, its message matching `reason`. */
    const expectJsonProblem = (
      answer: { status: number; contentType: string | null; text: string },
      status: number,
      tag: string,
      reason: RegExp
    ) => {
      expect(answer.status, answer.text).toBe(status)
      expect(answer.contentType).toMatch(/^application\/json/)
      expect(JSON.parse(answer.text)).toEqual({ error: { tag, message: expect.stringMatching(reason) } })
    }

    it.effect("NUL, a lone surrogate or junk in the token path is a 404 with a JSON reason, never a 5xx", () =>
      Effect.gen(function* () {
        const body = JSON.stringify({ result: { ok: true } })
        for (const token of ["%00", "abc%00def", "%ED%A0%80", "%F0%9F%98%80", "%25", notAnId, "x".repeat(2000)]) {
          const answer = yield* post(`/callbacks/${token}`, body)
          expect(answer.status, token.slice(0, 20)).toBe(404)
          // An unknown token; or, for a path the router cannot decode or a token over its length limit, no route at all.
          expect(answer.contentType).toMatch(/^application\/json/)
          expect([
            { error: { tag: "CallbackNotFound", message: "unknown or already used callback token" } },
            { error: { tag: "RouteNotFound", message: "no route matches this method and path" } }
          ]).toContainEqual(JSON.parse(answer.text))
        }
      })
    )

    it.effect(
      "NUL or a lone surrogate in a callback's error is a 400 with the reason; the task still waits and the token still works",
      () =>
        Effect.gen(function* () {
          const { id } = yield* Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Await, {}))
          yield* until(id, (t) => t.state === "waiting_callback", "to wait for its callback")
          const [run] = yield* Kit.queryDb<{ note: string }>("SELECT note FROM test_task_runs WHERE task_id = $1", [id])
          const token = run!.note
          const [before] = yield* Kit.queryDb<{ row: string }>("SELECT row_to_json(t)::text AS row FROM tasks t WHERE id = $1", [id])
          // JSON escapes, as a client would send them: the parsed strings hold the characters.
          for (const body of [
            '{"error": {"message": "upstream said \\u0000"}}',
            '{"error": {"message": "upstream said \\ud800"}}',
            '{"error": {"message": "declined", "code": "code\\u0000"}}',
            '{"error": {"message": "declined", "retryable": false, "code": "\\udfff"}}'
          ]) {
            expectJsonProblem(yield* post(`/callbacks/${token}`, body), 400, "InputInvalid", /NUL character|lone surrogate/)
            const [after] = yield* Kit.queryDb<{ row: string }>("SELECT row_to_json(t)::text AS row FROM tasks t WHERE id = $1", [id])
            expect(after!.row, body).toBe(before!.row)
          }
          const ok = yield* post(`/callbacks/${token}`, JSON.stringify({ result: { ok: true } }))
          expect(ok.status).toBe(200)
          expect(JSON.parse(ok.text)).toEqual({ id, state: "succeeded" })
        })
    )
  })
})

// ---------------------------------------------------------------------------
// Secrets, through real processes

const track = trackProcesses()
const tmp = Fs.mkdtempSync(Path.join(Os.tmpdir(), "asterforge-input-"))
const dbs: Array<Kit.FreshDatabase> = []
afterAll(async () => {
  Fs.rmSync(tmp, { recursive: true, force: true })
  for (const db of dbs) await db.drop()
})

const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => track(spawnNode(cliBin, args, env))

describe("secrets are never shown", () => {
  const secret = "AdminTok_abc"
  const malformed = [
    ["unquoted", `[server]\nport = 3000\n\n[security]\nadmin_token = ${secret}\n`],
    ["with an unterminated quote", `[security]\nadmin_token = "${secret}\n`],
    ["in a malformed inline table", `[security]\nadmin_token = { ${secret} }\n`]
  ] as const

  vit("`config check` of a TOML file with a malformed admin_token: exit 1, names the key, never the value", async () => {
    for (const [what, text] of malformed) {
      const file = Path.join(tmp, `malformed-${what.replaceAll(" ", "-")}.toml`)
      Fs.writeFileSync(file, text)
      const check = cli(["config", "check", "--config", file])
      expect((await check.exited).code, what).toBe(1)
      expect(check.output, what).toContain("malformed TOML")
      expect(check.output, what).not.toContain(secret)
      expect(check.output, what).not.toContain("AdminTok")
    }
    // The first one names the key, so the operator knows where to look.
    const named = cli(["config", "check", "--config", Path.join(tmp, "malformed-unquoted.toml")])
    expect((await named.exited).code).toBe(1)
    expect(named.output).toContain("key security.admin_token; the value is not shown")
  })

  vit(
    "a config reload rejected for that file is audited (config.reload_rejected) and logged without the secret; the node keeps running",
    async () => {
      const db = await Kit.freshDatabase("input_reload")
      dbs.push(db)
      const file = Path.join(tmp, "reload.toml")
      Fs.writeFileSync(file, '[telemetry]\nlog_level = "info"\n')
      const node = cli(["start", "--config", file, "--port", "0"], { DATABASE_URL: db.url })
      const baseUrl = await node.baseUrl()
      await pollHttp(`${baseUrl}/health/ready`, (s) => s === 200)

      // The reloader notices the file's new mtime (it polls it).
      Fs.writeFileSync(file, `[telemetry]\nlog_level = "debug"\n\n[security]\nadmin_token = ${secret}\n`)
      const [row] = await Kit.eventually(async () => {
        const rows = await Kit.query<{ details: string; actor: string }>(
          db.url,
          "SELECT details::text AS details, actor FROM audit_events WHERE code = 'config.reload_rejected'"
        )
        return rows.length > 0 ? rows : undefined
      }, "the rejected reload to be audited")
      expect(row!.details).toContain("malformed TOML")
      expect(row!.details).toContain("security.admin_token")
      const everything = await Kit.query<{ n: number }>(db.url, "SELECT count(*)::int AS n FROM audit_events a WHERE a::text LIKE $1", [
        `%${secret}%`
      ])
      expect(everything).toEqual([{ n: 0 }])

      await node.waitFor(/config reload rejected/)
      expect(node.output).not.toContain(secret)
      // Kept its configuration (the rejected file asked for debug logs) and kept serving.
      expect((await fetch(`${baseUrl}/health`)).status).toBe(200)
      expect(node.logs.filter((l) => l.level === "debug")).toEqual([])
      node.kill("SIGTERM")
      expect((await node.exited).code).toBe(0)
      expect(node.output).not.toContain(secret)
    }
  )

  vit("start-up retries against a DATABASE_URL with a password in its query and its user-info: no attempt line shows either", async () => {
    const port = await Kit.freePort()
    const url = `postgres://asterforge:pw-userinfo-secret@127.0.0.1:${port}/app?password=hunter2secret&sslpassword=ssl-hunter2&application_name=shown`
    const node = cli(["start", "--port", "0"], {
      DATABASE_URL: url,
      ASTERFORGE_DATABASE_CONNECT_ATTEMPTS: "3",
      ASTERFORGE_DATABASE_CONNECT_BACKOFF: "10ms"
    })
    const exited = await node.exited
    expect(exited.code, node.output).not.toBe(0)
    const attempts = node.logs.filter((l) => /database connection attempt \d\/3/.test(String(l.message)))
    expect(attempts.map((l) => String(l.message).match(/attempt (\d)\/3/)![1])).toEqual(["1", "2"])
    // What the lines do show: where it tried, with the credentials masked.
    expect(String(attempts[0]!.message)).toContain(
      `postgres://asterforge:***@127.0.0.1:${port}/app?password=***&sslpassword=***&application_name=shown`
    )
    expect(node.output).toMatch(/cannot connect to .* after 3 attempts/)
    for (const secret of ["hunter2secret", "ssl-hunter2", "pw-userinfo-secret"]) expect(node.output).not.toContain(secret)
  })

  vit("an OTLP endpoint with credentials is shown masked by `config check`, whichever variable sets it", async () => {
    const endpoint = "https://collector-user:pw-secret@collector.example/otlp?api_key=key-secret&region=eu"
    for (const variable of ["ASTERFORGE_TELEMETRY_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]) {
      const check = cli(["config", "check"], { [variable]: endpoint })
      expect((await check.exited).code, check.output).toBe(0)
      const line = check.stdout.find((l) => l.startsWith("telemetry.otlp_endpoint"))
      expect(line).toMatch(/= https:\/\/collector-user:\*\*\*@collector\.example\/otlp\?api_key=\*\*\*&region=eu {2}# env$/)
      expect(check.output).not.toContain("pw-secret")
      expect(check.output).not.toContain("key-secret")
    }
  })

  vit("an invalid OTLP endpoint with credentials is refused with the value masked", async () => {
    const check = cli(["config", "check"], { ASTERFORGE_TELEMETRY_OTLP_ENDPOINT: "ftp://collector-user:pw-secret@collector.example/otlp" })
    expect((await check.exited).code, check.output).toBe(1)
    expect(check.output).toMatch(/telemetry\.otlp_endpoint.*got "ftp:\/\/collector-user:\*\*\*@collector\.example\/otlp"/)
    expect(check.output).not.toContain("pw-secret")
  })
})
