/**
 * Callback hardening against a real Postgres over real HTTP: tokens are held
 * only as their SHA-256 (no column anywhere holds one in clear, and a look-up
 * by hash completes the task); a callback is refused when it comes too late
 * (410, past `callback_expires_at` or the task's deadline, before any rescue
 * lane ran), when this node does not know the task (409), with both a result
 * and an error (400) or a body that is not JSON (415). Each refusal is the
 * node's JSON refusal, `{ error: { tag, message } }`, and leaves the task row exactly as it was: the same token
 * still completes the task afterwards.
 *
 * One primary (the test tasks; the callback and deadline rescue lanes off, so
 * only the route can be the one refusing a late callback) on one fresh
 * database; the 409 comes from a follower without the module, built in its
 * own test's scope.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Crypto from "node:crypto"
import { TaskQueue } from "../../src/TaskQueue.ts"
import * as T from "../fixtures/test-tasks.ts"
import * as Kit from "../support/kit.ts"

const TestNode = Kit.node({
  modules: [T.TestTasks],
  env: {
    ASTERFORGE_TELEMETRY_LOG_LEVEL: "none",
    ASTERFORGE_MAINTENANCE_DISABLED_LANES: "callback_rescue,deadline_rescue"
  }
}).pipe(Layer.provideMerge(Kit.setUp(T.createTables)), Layer.provideMerge(Kit.database("callback_hardening")))

const { taskInfo: get, untilTask: until } = Kit

/** A `test.callback` task parked for its callback, and the token its handler was given (recorded by the fixture). */
const parked = Effect.gen(function* () {
  const { id } = yield* Effect.flatMap(TaskQueue, (q) => q.enqueue(T.Await, {}))
  yield* until(id, (t) => t.state === "waiting_callback", "to wait for its callback")
  const [run] = yield* Kit.queryDb<{ note: string }>("SELECT note FROM test_task_runs WHERE task_id = $1 ORDER BY seq LIMIT 1", [id])
  return { id, token: run!.note }
})

/** The whole task row as JSON text: what "unchanged" is compared on. */
const rowOf = (id: string) =>
  Effect.map(Kit.queryDb<{ row: string }>("SELECT row_to_json(t)::text AS row FROM tasks t WHERE id = $1", [id]), (r) => r[0]!.row)

interface Answer {
  readonly status: number
  readonly contentType: string | null
  readonly json: { readonly error?: { readonly tag: string; readonly message: string } } & Record<string, unknown>
}

/** POSTs `body` to `/callbacks/<token>` of `baseUrl` (default: the shared node). */
const post = (token: string, body: string | object, options: { readonly contentType?: string; readonly baseUrl?: string } = {}) =>
  Effect.flatMap(Kit.NodeAddress, ({ baseUrl }) =>
    Effect.promise(async (): Promise<Answer> => {
      const res = await fetch(`${options.baseUrl ?? baseUrl}/callbacks/${token}`, {
        method: "POST",
        headers: { "content-type": options.contentType ?? "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body)
      })
      const text = await res.text()
      let json: Answer["json"]
      try {
        json = JSON.parse(text)
      } catch {
        throw new Error(`${res.status}: body is not JSON: ${text}`)
      }
      return { status: res.status, contentType: res.headers.get("content-type"), json }
    })
  )

/** A refusal: the status, a JSON body that is `{ error: { tag, message } }` and nothing else, its message matching `reason`, and the task row untouched. */
const expectRefused = (id: string, before: string, answer: Answer, status: number, tag: string, reason: RegExp) =>
  Effect.gen(function* () {
    expect(answer.status).toBe(status)
    expect(answer.contentType).toMatch(/^application\/json/)
    expect(answer.json).toEqual({ error: { tag, message: expect.stringMatching(reason) } })
    expect(yield* rowOf(id)).toBe(before)
  })

const sha256 = (text: string) => Crypto.createHash("sha256").update(text).digest("hex")

layer(TestNode, { excludeTestServices: true })("callback hardening", (it) => {
  describe("tokens at rest", () => {
    it.effect("no column of any runtime table holds the token; the stored hash finds the task and the callback completes it", () =>
      Effect.gen(function* () {
        const { id, token } = yield* parked
        expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)

        // No column named after the clear token is left.
        const columns = yield* Kit.queryDb<{ column_name: string }>(
          "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'tasks' AND column_name LIKE 'callback%'"
        )
        expect(columns.map((c) => c.column_name).sort()).toEqual(["callback_expires_at", "callback_token_hash"])
        const [stored] = yield* Kit.queryDb<{ callback_token_hash: string }>("SELECT callback_token_hash FROM tasks WHERE id = $1", [id])
        expect(stored!.callback_token_hash).toBe(sha256(token))

        // Every row of every table but the fixture's own run log (whose handler writes the token there on purpose), as text.
        const tables = yield* Kit.queryDb<{ table_name: string }>(
          "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'test_task_runs'"
        )
        expect(tables.map((t) => t.table_name)).toContain("tasks")
        for (const { table_name } of tables) {
          const [hits] = yield* Kit.queryDb<{ n: number }>(`SELECT count(*)::int AS n FROM "${table_name}" r WHERE r::text LIKE $1`, [
            `%${token}%`
          ])
          expect(hits!.n, `rows of ${table_name} holding the token`).toBe(0)
        }

        // A look-up by anything but the token itself (its hash, as someone reading the database would have it) finds nothing.
        expect((yield* post(sha256(token), { result: { ok: true } })).status).toBe(404)
        expect((yield* get(id)).state).toBe("waiting_callback")

        const ok = yield* post(token, { result: { ok: true } })
        expect(ok.status).toBe(200)
        expect(ok.json).toEqual({ id, state: "succeeded" })
        const [done] = yield* Kit.queryDb<{ state: string; callback_token_hash: string | null; result: unknown }>(
          "SELECT state, callback_token_hash, result FROM tasks WHERE id = $1",
          [id]
        )
        expect(done).toEqual({ state: "succeeded", callback_token_hash: null, result: { ok: true } })
      })
    )
  })

  describe("refused callbacks change nothing", () => {
    it.effect("410 once callback_expires_at has passed, before any rescue lane ran", () =>
      Effect.gen(function* () {
        const { id, token } = yield* parked
        const [expired] = yield* Kit.queryDb<{ at: Date }>(
          "UPDATE tasks SET callback_expires_at = now() - interval '1 minute' WHERE id = $1 RETURNING callback_expires_at AS at",
          [id]
        )
        const before = yield* rowOf(id)
        const late = yield* post(token, { result: { ok: true } })
        yield* expectRefused(id, before, late, 410, "CallbackExpired", /callback expired at .*no longer accepted/)
        expect(late.json.error?.message).toContain(expired!.at.toISOString())
        // An error body is just as late.
        yield* expectRefused(id, before, yield* post(token, { error: { message: "too late" } }), 410, "CallbackExpired", /expired/)

        // Back in time: the same token is accepted, so the refusal had left the task waiting.
        yield* Kit.queryDb("UPDATE tasks SET callback_expires_at = now() + interval '1 hour' WHERE id = $1", [id])
        expect((yield* post(token, { result: { ok: true } })).json).toEqual({ id, state: "succeeded" })
      })
    )

    it.effect("410 once the task's deadline has passed, whatever its callback timeout says", () =>
      Effect.gen(function* () {
        const { id, token } = yield* parked
        yield* Kit.queryDb("UPDATE tasks SET deadline = now() - interval '1 second' WHERE id = $1", [id])
        const [row] = yield* Kit.queryDb<{ callback_in_time: boolean }>(
          "SELECT callback_expires_at > now() AS callback_in_time FROM tasks WHERE id = $1",
          [id]
        )
        expect(row!.callback_in_time).toBe(true)
        const before = yield* rowOf(id)
        yield* expectRefused(id, before, yield* post(token, { result: { ok: true } }), 410, "CallbackExpired", /deadline .* has passed/)

        yield* Kit.queryDb("UPDATE tasks SET deadline = NULL WHERE id = $1", [id])
        expect((yield* post(token, { result: { ok: true } })).json).toEqual({ id, state: "succeeded" })
      })
    )

    it.effect("409 with the reason from a node that does not serve the task's module; the node that does accepts it", () =>
      Effect.gen(function* () {
        const { id, token } = yield* parked
        const before = yield* rowOf(id)
        const { baseUrl } = yield* Effect.scoped(
          Effect.gen(function* () {
            // A follower serves callbacks (full API) but has no modules: it cannot check the result.
            const context = yield* Layer.build(Kit.node({ mode: "follower", env: { ASTERFORGE_TELEMETRY_LOG_LEVEL: "none" } }))
            const follower = yield* Effect.provideContext(Kit.NodeAddress, context)
            const unknown = yield* post(token, { result: { ok: true } }, { baseUrl: follower.baseUrl })
            yield* expectRefused(id, before, unknown, 409, "TaskUnknown", /task "test\.callback" is not served by this node/)
            expect(unknown.json.error?.message).toContain("send the callback to a node that runs its module")
            yield* expectRefused(
              id,
              before,
              yield* post(token, { error: { message: "x" } }, { baseUrl: follower.baseUrl }),
              409,
              "TaskUnknown",
              /not served/
            )
            return follower
          })
        )
        expect(baseUrl).not.toBe((yield* Kit.NodeAddress).baseUrl)
        expect((yield* post(token, { result: { ok: true } })).json).toEqual({ id, state: "succeeded" })
      })
    )

    it.effect("400 for a body with both a result and an error", () =>
      Effect.gen(function* () {
        const { id, token } = yield* parked
        const before = yield* rowOf(id)
        const both = yield* post(token, { result: { ok: true }, error: { message: "and also failed" } })
        yield* expectRefused(id, before, both, 400, "BadRequest", /"result" or "error", not both/)
        expect((yield* post(token, { result: { ok: true } })).json).toEqual({ id, state: "succeeded" })
      })
    )

    it.effect("415 for a body that is not declared JSON, even when it parses as JSON", () =>
      Effect.gen(function* () {
        const { id, token } = yield* parked
        const before = yield* rowOf(id)
        const body = JSON.stringify({ result: { ok: true } })
        yield* expectRefused(
          id,
          before,
          yield* post(token, body, { contentType: "text/plain" }),
          415,
          "UnsupportedMediaType",
          /Content-Type must be application\/json/
        )
        yield* expectRefused(
          id,
          before,
          yield* post(token, body, { contentType: "application/x-www-form-urlencoded" }),
          415,
          "UnsupportedMediaType",
          /application\/json/
        )
        // A JSON media type with parameters is accepted.
        const ok = yield* post(token, body, { contentType: "application/json; charset=utf-8" })
        expect(ok.json).toEqual({ id, state: "succeeded" })
      })
    )
  })
})
