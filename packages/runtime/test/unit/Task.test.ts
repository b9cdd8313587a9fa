/** Pure rules of task definitions: retry backoff, definition checks, payload versions. */
import { afterEach, describe, expect, it, vi } from "@effect/vitest"
import { Duration, Result, Schema } from "effect"
import * as Task from "../../src/Task.ts"

afterEach(() => {
  vi.restoreAllMocks()
})

describe("Task.exponentialBackoff", () => {
  const noJitter = Task.exponentialBackoff({ base: "100 millis", max: "1 second", jitter: 0 })

  it.each([
    { attempt: 0, ms: 100 }, // before the first failure: never less than the base
    { attempt: 1, ms: 100 },
    { attempt: 2, ms: 200 },
    { attempt: 3, ms: 400 },
    { attempt: 4, ms: 800 },
    { attempt: 5, ms: 1000 }, // capped at max
    { attempt: 100, ms: 1000 }
  ])("without jitter, after attempt $attempt: $ms ms", ({ attempt, ms }) => {
    expect(Duration.toMillis(noJitter(attempt))).toBe(ms)
  })

  // The jitter is raw * (1 + jitter * (2r - 1)) for r = Math.random() in [0, 1).
  it.each([
    { random: 0, ms: 360 },
    { random: 0.5, ms: 400 },
    { random: 0.999999, ms: 440 }
  ])("with 10% jitter and Math.random() = $random, attempt 3 waits $ms ms", ({ random, ms }) => {
    vi.spyOn(Math, "random").mockReturnValue(random)
    expect(Duration.toMillis(Task.exponentialBackoff({ base: "100 millis", jitter: 0.1 })(3))).toBe(ms)
  })

  it("the cap applies before the jitter: at most max * (1 + jitter)", () => {
    vi.spyOn(Math, "random").mockReturnValue(0.999999)
    expect(Duration.toMillis(Task.exponentialBackoff({ base: "1 second", max: "2 seconds", jitter: 0.5 })(10))).toBe(3000)
  })

  it("defaults: 1 s base, doubling, 10% jitter, capped at an hour", () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5)
    const backoff = Task.exponentialBackoff()
    expect([1, 2, 3, 13, 50].map((a) => Duration.toMillis(backoff(a)))).toEqual([1000, 2000, 4000, 3_600_000, 3_600_000])
    expect(Task.defaultRetry.maxAttempts).toBe(25)
  })
})

describe("Task.define", () => {
  it.each([
    { name: "Mail.Send", error: /task name "Mail.Send" must be dotted lower-case words/ },
    { name: "mail..send", error: /must be dotted lower-case words/ },
    { name: "1mail", error: /must be dotted lower-case words/ }
  ])("refuses the name $name", ({ name, error }) => {
    expect(() => Task.define({ name, payload: Schema.Struct({}) })).toThrow(error)
  })

  it.each([0, -1, 1.5])("refuses retry.maxAttempts = %s", (maxAttempts) => {
    expect(() => Task.define({ name: "mail.send", payload: Schema.Struct({}), retry: { maxAttempts } })).toThrow(
      /task mail.send: retry.maxAttempts must be an integer >= 1/
    )
  })

  it("fills the defaults", () => {
    const def = Task.define({ name: "mail.send", payload: Schema.Struct({}) })
    expect({
      queue: def.queue,
      priority: def.priority,
      maxAttempts: def.retry.maxAttempts,
      timeout: Duration.toMillis(def.timeout),
      version: def.version
    }).toEqual({ queue: "default", priority: 0, maxAttempts: 25, timeout: 300_000, version: 1 })
  })
})

describe("Task.decodePayload", () => {
  /** Version 3 of a payload that was { first, last } in version 1 and { name } in version 2. */
  const Greet = Task.define({
    name: "test.versioned",
    payload: Schema.Struct({ fullName: Schema.String }),
    version: 3,
    previous: [
      {
        version: 1,
        payload: Schema.Struct({ first: Schema.String, last: Schema.String }),
        upgrade: (old: { first: string; last: string }) => ({ fullName: `${old.first} ${old.last}` })
      },
      {
        version: 2,
        payload: Schema.Struct({ name: Schema.String }),
        upgrade: (old: { name: string }) => {
          if (old.name === "") throw new Error("empty name")
          return { fullName: old.name }
        }
      }
    ]
  })

  it.each([
    { stored: { fullName: "Ada Lovelace" }, version: 3, decoded: { fullName: "Ada Lovelace" } },
    { stored: { first: "Ada", last: "Lovelace" }, version: 1, decoded: { fullName: "Ada Lovelace" } },
    { stored: { name: "Grace Hopper" }, version: 2, decoded: { fullName: "Grace Hopper" } }
  ])("version $version decodes (and upgrades) to the current shape", ({ stored, version, decoded }) => {
    expect(Task.decodePayload(Greet, stored, version)).toEqual(Result.succeed(decoded))
  })

  it.each([
    { case: "a current row that does not match", stored: {}, version: 3, error: "fullName: Missing key" },
    {
      case: "an old row that does not match its own version",
      stored: { first: 1 },
      version: 1,
      error: "payload version 1: first: Expected string"
    },
    {
      case: "an old row checked against its own version, not the current one",
      stored: { fullName: "x" },
      version: 1,
      error: "payload version 1: first: Missing key"
    },
    {
      case: "a version this build does not know",
      stored: { fullName: "x" },
      version: 7,
      error: "payload version 7 is unknown to this build (current 3)"
    },
    { case: "an upgrade that throws", stored: { name: "" }, version: 2, error: "upgrade from version 2 failed: empty name" }
  ])("fails with the reason for $case", ({ stored, version, error }) => {
    expect(Task.decodePayload(Greet, stored, version)).toEqual(Result.fail(error))
  })
})
