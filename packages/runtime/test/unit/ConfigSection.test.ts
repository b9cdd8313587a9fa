/** Configuration sections: value Schemas, decoding with every problem listed, and the checks that run before a node starts. */
import { assert, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Option, Redacted, Result, Schema } from "effect"
import * as ConfigSchema from "../../src/ConfigSchema.ts"
import * as ConfigSection from "../../src/ConfigSection.ts"
import * as Dispatcher from "../../src/Dispatcher.ts"
import * as Runtime from "../../src/Runtime.ts"
import * as RuntimeConfig from "../../src/RuntimeConfig.ts"
import * as Task from "../../src/Task.ts"
import * as ApplicationModule from "../../src/ApplicationModule.ts"

const decode = <A>(schema: ConfigSchema.Value<A>, input: unknown): Result.Result<A, string> =>
  Result.mapError(Schema.decodeUnknownResult(schema)(input), ConfigSchema.messageOf)

describe("ConfigSchema values accept what TOML holds and what env/flags hold", () => {
  const ms = (input: unknown) => Result.map(decode(ConfigSchema.Duration(), input), Duration.toMillis)
  it.each([
    ["10s", 10_000],
    ["250ms", 250],
    ["2 minutes", 120_000],
    ["1h", 3_600_000],
    ["7 days", 604_800_000],
    [1500, 1500],
    ["1500", 1500]
  ] as const)("duration %j -> %d ms", (input, expected) => {
    expect(ms(input)).toEqual(Result.succeed(expected))
  })

  it.each([
    [0, "more than 0"],
    ["0s", "more than 0"],
    ["99999999999 hours", "at most 3650d"],
    ["soon", 'such as "500ms"'],
    [-5, "more than 0"],
    [true, "such as"]
  ] as const)("duration %j is refused (%s)", (input, message) => {
    const r = ms(input)
    assert(Result.isFailure(r))
    expect(r.failure).toContain(message)
  })

  it("a bounded duration names its bounds; DurationOrZero allows 0", () => {
    const r = decode(ConfigSchema.Duration({ minimum: "100 millis", maximum: "1 hour" }), "10ms")
    assert(Result.isFailure(r))
    expect(r.failure).toBe("Expected a duration between 100ms and 1h")
    expect(Result.map(decode(ConfigSchema.DurationOrZero(), 0), Duration.toMillis)).toEqual(Result.succeed(0))
  })

  it.each([
    [ConfigSchema.Int(1, 64), "8", Result.succeed(8)],
    [ConfigSchema.Int(1, 64), 64, Result.succeed(64)],
    [ConfigSchema.Int(1, 64), 65, Result.fail("Expected a value between 1 and 64")],
    [ConfigSchema.Int(1, 64), "1.5", Result.fail("Expected an integer between 1 and 64")],
    [ConfigSchema.Int(1, 64), "eight", Result.fail("Expected an integer between 1 and 64")],
    [ConfigSchema.Boolean, "yes", Result.succeed(true)],
    [ConfigSchema.Boolean, "0", Result.succeed(false)],
    [ConfigSchema.Boolean, false, Result.succeed(false)],
    [ConfigSchema.Boolean, "maybe", Result.fail("Expected a boolean (true/false, 1/0, yes/no, on/off)")],
    [ConfigSchema.Literals(["a", "b"]), "b", Result.succeed("b")],
    [ConfigSchema.Literals(["a", "b"]), "c", Result.fail('Expected "a" | "b"')],
    [ConfigSchema.HttpUrl, "http://127.0.0.1:4318", Result.succeed("http://127.0.0.1:4318")],
    [ConfigSchema.HttpUrl, "collector:4318", Result.fail("Expected an http(s) URL such as http://127.0.0.1:4318")],
    [ConfigSchema.List(ConfigSchema.NonEmptyString), "a, b,", Result.succeed(["a", "b"])],
    [ConfigSchema.List(ConfigSchema.NonEmptyString), [], Result.succeed([])]
  ] as const)("%#: %j", (schema, input, expected) => {
    expect(decode(schema as ConfigSchema.Value<unknown>, input)).toEqual(expected)
  })

  it("named values from text or a table, each checked", () => {
    const named = ConfigSchema.NamedValues(ConfigSchema.Int(1, 64), { pattern: /^[a-z]+$/, describe: "lower-case letters" })
    expect(Result.map(decode(named, "default=8,mail=2"), (m) => [...m])).toEqual(
      Result.succeed([
        ["default", 8],
        ["mail", 2]
      ])
    )
    expect(Result.map(decode(named, { mail: 3 }), (m) => [...m])).toEqual(Result.succeed([["mail", 3]]))
    expect(decode(named, "mail=99")).toEqual(Result.fail("mail: Expected a value between 1 and 64"))
    expect(decode(named, "Mail=1")).toEqual(Result.fail('invalid name "Mail": lower-case letters'))
    expect(decode(named, "mail")).toEqual(Result.fail('expected name=value, got "mail"'))
  })

  it("a secret decodes to Redacted and its failure shows no value", () => {
    const r = decode(ConfigSchema.Secret, "hunter2")
    assert(Result.isSuccess(r))
    expect(String(r.success)).toBe("<redacted>")
    expect(Redacted.value(r.success)).toBe("hunter2")
  })
})

describe("ConfigSection", () => {
  const Example = ConfigSection.make(
    "maintenance.example",
    {
      interval: ConfigSection.key(ConfigSchema.Duration(), { default: "1 second", doc: "how often" }),
      batchSize: ConfigSection.key(ConfigSchema.Int(1, 100), { default: 10, doc: "rows per statement" }),
      token: ConfigSection.optionalKey(ConfigSchema.Secret, { doc: "a secret", secret: true })
    },
    { check: (c) => (c.batchSize === 13 ? [{ key: "maintenance.example.batch_size", message: "unlucky" }] : []) }
  )

  it("names keys and variables from the fields", () => {
    expect(ConfigSection.keyName(Example, "batchSize")).toBe("maintenance.example.batch_size")
    expect(ConfigSection.envName("maintenance.example.batch_size")).toBe("ASTERFORGE_MAINTENANCE_EXAMPLE_BATCH_SIZE")
  })

  it("defaults decode through the same Schemas; optional keys are Option", () => {
    const d = ConfigSection.defaults(Example)
    expect(Duration.toMillis(d.interval)).toBe(1000)
    expect(d.batchSize).toBe(10)
    expect(Option.isNone(d.token)).toBe(true)
  })

  it("decode lists every bad key with the name the user wrote, never a secret's value", () => {
    const r = ConfigSection.decode(Example, {
      batchSize: { value: "0", label: "ASTERFORGE_MAINTENANCE_EXAMPLE_BATCH_SIZE" },
      interval: { value: "never", label: "maintenance.example.interval" },
      token: { value: 42, label: "maintenance.example.token" }
    })
    assert(Result.isFailure(r))
    expect(r.failure).toEqual([
      { key: "maintenance.example.interval", message: expect.stringContaining('got "never"') },
      {
        key: "ASTERFORGE_MAINTENANCE_EXAMPLE_BATCH_SIZE (maintenance.example.batch_size)",
        message: "Expected a value between 1 and 100, got 0"
      },
      { key: "maintenance.example.token", message: "Expected a non-empty string" }
    ])
  })

  it("the section's own rule runs on the decoded value", () => {
    expect(ConfigSection.decode(Example, { batchSize: { value: 13, label: "x" } })).toEqual(
      Result.fail([{ key: "maintenance.example.batch_size", message: "unlucky" }])
    )
  })

  it("decodeOrThrow names unknown and bad options in code", () => {
    expect(() => ConfigSection.decodeOrThrow(Example, { batchSize: 500, nope: 1 } as never)).toThrow(
      /unknown option nope .*batchSize \(maintenance\.example\.batch_size\): Expected a value between 1 and 100, got 500/
    )
    expect(ConfigSection.decodeOrThrow(Example, { interval: Duration.seconds(3) }).interval).toEqual(Duration.millis(3000))
  })

  it.effect("a section is the Context key of its value", () =>
    Effect.gen(function* () {
      const value = yield* Example
      expect(value.batchSize).toBe(10)
    }).pipe(Effect.provideService(Example, ConfigSection.defaults(Example)))
  )
})

describe("checks that need the modules run before anything connects", () => {
  const config = (env: Record<string, string>) =>
    Result.getOrThrow(
      RuntimeConfig.resolve({
        file: "/nonexistent/asterforge.toml",
        fileRequired: false,
        // A database nobody listens on: reaching it would fail differently.
        env: { DATABASE_URL: "postgres://nobody@127.0.0.1:1/none", ASTERFORGE_TELEMETRY_LOG_LEVEL: "none", ...env }
      })
    )
  const tasks = (queues: ReadonlyArray<string>) =>
    ApplicationModule.make({
      name: "many-queues",
      tasks: queues.map((queue) => Task.handler(Task.define({ name: `q.${queue}`, payload: Schema.Struct({}), queue }), () => Effect.void))
    })

  it.effect("too much concurrency over the registered queues fails with ConfigInvalid, not a connection error", () =>
    Effect.gen(function* () {
      const exit = yield* Layer.build(
        Runtime.layer({ config: config({ ASTERFORGE_WORKER_CONCURRENCY: "20" }), modules: [tasks(["a", "b", "c", "d"])] })
      ).pipe(Effect.exit)
      assert(Exit.isFailure(exit))
      expect(Runtime.describeFailure(exit.cause)).toContain(
        "worker.concurrency: concurrency over all queues is 80 (a=20, b=20, c=20, d=20); at most 64 per process"
      )
    })
  )

  it("queuePlan: one pool per registered or listed queue, overrides win", () => {
    const plan = Dispatcher.queuePlan(
      {
        concurrency: 4,
        queues: new Map([
          ["mail", 2],
          ["reports", 1]
        ])
      },
      ["default", "mail"]
    )
    expect(plan).toEqual({
      pools: [
        { queue: "default", concurrency: 4 },
        { queue: "mail", concurrency: 2 },
        { queue: "reports", concurrency: 1 }
      ],
      problems: []
    })
  })
})
