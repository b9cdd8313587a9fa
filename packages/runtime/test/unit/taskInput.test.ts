/**
 * taskInput: the rules a task's input meets before anything is written, as
 * tables. Enqueue options within what the columns hold (priority, maxAttempts,
 * delay, runAt/deadline, queue, unique key), text Postgres can store (no NUL,
 * no lone surrogate, at any depth, keys included), task ids and cursors that
 * are task ids. The last block runs the same rows through `TaskQueue` on a
 * store that must never be reached: each refusal is a `RuntimeError` with a
 * 4xx reason naming the field, and valid input gets through to the store.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { AuditLog } from "../../src/AuditLog.ts"
import * as TaskInput from "../../src/internal/taskInput.ts"
import type { RuntimeError } from "../../src/RuntimeError.ts"
import * as Task from "../../src/Task.ts"
import * as TaskQueue from "../../src/TaskQueue.ts"
import * as TaskRegistry from "../../src/TaskRegistry.ts"

/** `value` nested `depth` objects deep under `x`. */
const nested = (depth: number, value: unknown): unknown => {
  let v = value
  for (let i = 0; i < depth; i++) v = { x: v }
  return v
}

/** A date in `year` (any year a `Date` holds, 0 and negatives included). */
const inYear = (year: number): Date => {
  const d = new Date(Date.UTC(2000, 0, 1))
  d.setUTCFullYear(year)
  return d
}

// ---------------------------------------------------------------------------
// Enqueue options

/** Options that break a rule, and the message naming the field. */
const refusedOptions: ReadonlyArray<readonly [string, TaskInput.Options, RegExp]> = [
  // priority: an `integer` column.
  ["priority 2**32", { priority: 2 ** 32 }, /^priority must be an integer between -2147483648 and 2147483647$/],
  ["priority 2**31", { priority: 2 ** 31 }, /^priority must be an integer between/],
  ["priority -(2**31) - 1", { priority: -(2 ** 31) - 1 }, /^priority must be an integer between/],
  ["priority 1.5", { priority: 1.5 }, /^priority must be an integer between/],
  ["priority NaN", { priority: Number.NaN }, /^priority must be an integer between/],
  ["priority Infinity", { priority: Number.POSITIVE_INFINITY }, /^priority must be an integer between/],
  ["priority -Infinity", { priority: Number.NEGATIVE_INFINITY }, /^priority must be an integer between/],
  ["priority as text", { priority: "5" as never }, /^priority must be an integer between/],
  // maxAttempts
  ["maxAttempts 2**32", { maxAttempts: 2 ** 32 }, /^maxAttempts must be an integer between 1 and 1000000$/],
  ["maxAttempts 1000001", { maxAttempts: 1_000_001 }, /^maxAttempts must be an integer between 1 and 1000000$/],
  ["maxAttempts 0", { maxAttempts: 0 }, /^maxAttempts must be an integer between 1 and 1000000$/],
  ["maxAttempts -1", { maxAttempts: -1 }, /^maxAttempts must be an integer between 1 and 1000000$/],
  ["maxAttempts 2.5", { maxAttempts: 2.5 }, /^maxAttempts must be an integer between 1 and 1000000$/],
  ["maxAttempts NaN", { maxAttempts: Number.NaN }, /^maxAttempts must be an integer between 1 and 1000000$/],
  ["maxAttempts Infinity", { maxAttempts: Number.POSITIVE_INFINITY }, /^maxAttempts must be an integer between 1 and 1000000$/],
  // delay: at most ten years, never negative, never NaN (which Duration reads as zero: "run now").
  ["delay of 10^20 hours", { delay: Duration.hours(10 ** 20) }, /^delay must be at most 3650 days$/],
  ["delay of 10^20 hours, as text", { delay: "100000000000000000000 hours" }, /^delay must be at most 3650 days$/],
  ["delay of 10^20 hours, as an object", { delay: { hours: 10 ** 20 } }, /^delay must be at most 3650 days$/],
  ["delay of 10^30 nanoseconds (bigint)", { delay: 10n ** 30n }, /^delay must be at most 3650 days$/],
  ["delay of 3651 days", { delay: "3651 days" }, /^delay must be at most 3650 days$/],
  ["delay -1 ms", { delay: -1 }, /^delay is not a valid duration$/],
  ["delay -5 seconds, as text", { delay: "-5 seconds" }, /^delay is not a valid duration$/],
  ["delay of a negative Duration", { delay: Duration.millis(-5) }, /^delay is not a valid duration$/],
  ["delay of -1 hour, as an object", { delay: { hours: -1 } }, /^delay is not a valid duration$/],
  ["delay NaN", { delay: Number.NaN }, /^delay is not a valid duration$/],
  ["delay [NaN, 0] (hrtime)", { delay: [Number.NaN, 0] }, /^delay is not a valid duration$/],
  ["delay { seconds: NaN }", { delay: { seconds: Number.NaN } }, /^delay is not a valid duration$/],
  ["delay Infinity", { delay: Number.POSITIVE_INFINITY }, /^delay is not a valid duration$/],
  ["delay -Infinity", { delay: Number.NEGATIVE_INFINITY }, /^delay is not a valid duration$/],
  ["delay Duration.infinity", { delay: Duration.infinity }, /^delay is not a valid duration$/],
  ["delay 'soon'", { delay: "soon" as never }, /^delay is not a valid duration$/],
  // runAt and deadline: real dates, in years 1..9999.
  ["runAt in year 275760 (the last Date)", { runAt: new Date(8.64e15) }, /^runAt must not be later than 9999-12-31$/],
  ["runAt in year 10000", { runAt: inYear(10_000) }, /^runAt must not be later than 9999-12-31$/],
  ["runAt an invalid Date", { runAt: new Date("not a date") }, /^runAt is not a valid date$/],
  ["runAt new Date(NaN)", { runAt: new Date(Number.NaN) }, /^runAt is not a valid date$/],
  ["runAt a string", { runAt: "2030-01-01T00:00:00Z" as never }, /^runAt is not a valid date$/],
  ["runAt a number", { runAt: 1_900_000_000_000 as never }, /^runAt is not a valid date$/],
  ["runAt in year 0", { runAt: inYear(0) }, /^runAt must not be earlier than year 1$/],
  ["runAt in year -271821 (the first Date)", { runAt: new Date(-8.64e15) }, /^runAt must not be earlier than year 1$/],
  ["deadline in year 275760", { deadline: new Date(8.64e15) }, /^deadline must not be later than 9999-12-31$/],
  ["deadline an invalid Date", { deadline: new Date("nope") }, /^deadline is not a valid date$/],
  ["deadline in year 0", { deadline: inYear(0) }, /^deadline must not be earlier than year 1$/],
  // queue: a short name.
  ["queue empty", { queue: "" }, /^queue must be 1-64 characters of \[a-z0-9_\.-\]$/],
  ["queue with a NUL", { queue: "mail\u0000" }, /^queue must be 1-64 characters/],
  ["queue a lone surrogate", { queue: "\uD800" }, /^queue must be 1-64 characters/],
  ["queue 65 characters", { queue: "q".repeat(65) }, /^queue must be 1-64 characters/],
  ["queue with a space", { queue: "mail out" }, /^queue must be 1-64 characters/],
  ["queue with a newline", { queue: "mail\n" }, /^queue must be 1-64 characters/],
  // uniqueKey: storable text of bounded length.
  ["uniqueKey empty", { uniqueKey: "" }, /^uniqueKey must be 1-1024 characters$/],
  ["uniqueKey 1025 characters", { uniqueKey: "k".repeat(1025) }, /^uniqueKey must be 1-1024 characters$/],
  ["uniqueKey not a string", { uniqueKey: 42 as never }, /^uniqueKey must be 1-1024 characters$/],
  ["uniqueKey with a NUL", { uniqueKey: "order:\u0000:42" }, /^uniqueKey contains a NUL character$/],
  ["uniqueKey a lone high surrogate", { uniqueKey: "order:\uD800" }, /^uniqueKey contains a lone surrogate \(not valid Unicode\)$/],
  ["uniqueKey a lone low surrogate", { uniqueKey: "\uDC00order" }, /^uniqueKey contains a lone surrogate \(not valid Unicode\)$/],
  // metadata: storable text at any depth, keys included.
  ["metadata with a NUL in a nested array", { metadata: { a: { b: ["x", "y\u0000"] } } }, /^metadata\.a\.b\[1\] contains a NUL character$/],
  ["metadata with a lone surrogate", { metadata: { source: "\uDBFF" } }, /^metadata\.source contains a lone surrogate/],
  ["metadata with a NUL in a key", { metadata: { ["bad\u0000key"]: 1 } }, /^a key of metadata contains a NUL character$/],
  [
    "metadata with a lone surrogate in a nested key",
    { metadata: { a: { ["\uD800"]: 1 } } },
    /^a key of metadata\.a contains a lone surrogate/
  ],
  [
    "metadata with a NUL 200 levels down",
    { metadata: nested(200, "deep\u0000") as Record<string, unknown> },
    /^metadata(\.x){200} contains a NUL character$/
  ]
]

/** Options at the edges of every rule, all accepted. */
const acceptedOptions: ReadonlyArray<readonly [string, TaskInput.Options]> = [
  ["nothing", {}],
  ["priority -(2**31)", { priority: -(2 ** 31) }],
  ["priority 2**31 - 1", { priority: 2 ** 31 - 1 }],
  ["priority 0", { priority: 0 }],
  ["maxAttempts 1", { maxAttempts: 1 }],
  ["maxAttempts 1000000", { maxAttempts: 1_000_000 }],
  ["delay 0", { delay: 0 }],
  ["delay 5 seconds", { delay: Duration.seconds(5) }],
  ["delay '90 minutes'", { delay: "90 minutes" }],
  ["delay of exactly 3650 days", { delay: "3650 days" }],
  ["runAt now", { runAt: new Date() }],
  ["runAt in year 1", { runAt: new Date("0001-01-01T00:00:00.000Z") }],
  ["runAt the last moment of 9999", { runAt: new Date(TaskInput.latestDate) }],
  ["deadline next year", { deadline: new Date(Date.now() + 365 * 86_400_000) }],
  ["queue of 64 characters", { queue: "q".repeat(64) }],
  ["queue mail.outbound-2_eu", { queue: "mail.outbound-2_eu" }],
  ["uniqueKey of 1024 characters", { uniqueKey: "k".repeat(1024) }],
  ["uniqueKey with an emoji (a surrogate pair)", { uniqueKey: "order:😀:42" }],
  ["metadata with Unicode text and keys", { metadata: { é: ["ü", "😀", { 名前: "\uD83D\uDE00" }], n: 1, ok: true, none: null } }],
  ["metadata nested 200 levels", { metadata: nested(200, "fine") as Record<string, unknown> }]
]

describe("TaskInput.optionsProblem", () => {
  it.each(refusedOptions)("refuses %s", (_label, options, message) => {
    expect(TaskInput.optionsProblem(options)).toMatch(message)
  })

  it.each(acceptedOptions)("accepts %s", (_label, options) => {
    expect(TaskInput.optionsProblem(options)).toBeUndefined()
  })
})

// ---------------------------------------------------------------------------
// Storable text

describe("TaskInput.unstorableText", () => {
  const cyclic: Record<string, unknown> = { name: "ok" }
  cyclic["self"] = cyclic
  const cyclicBad: Record<string, unknown> = { name: "ok" }
  cyclicBad["self"] = cyclicBad
  cyclicBad["later"] = "x\u0000"

  const rows: ReadonlyArray<readonly [string, unknown, string | RegExp | undefined]> = [
    ["a plain string", "hello", undefined],
    ["numbers, booleans, null", [1, 2.5, true, null, undefined], undefined],
    ["an emoji (a well-formed surrogate pair)", { text: "😀", pair: "\uD83D\uDE00" }, undefined],
    ["a NUL at the top", "a\u0000b", "payload contains a NUL character"],
    ["a NUL in a nested object", { customer: { name: "Ann\u0000" } }, "payload.customer.name contains a NUL character"],
    [
      "a lone surrogate in an array item",
      { items: [{}, {}, { name: "\uD800" }] },
      "payload.items[2].name contains a lone surrogate (not valid Unicode)"
    ],
    ["a reversed surrogate pair", { text: "\uDE00\uD83D" }, "payload.text contains a lone surrogate (not valid Unicode)"],
    ["a NUL in a key", { ["k\u0000"]: 1 }, "a key of payload contains a NUL character"],
    ["a lone surrogate in a nested key", { a: [{ ["\uDFFF"]: 1 }] }, "a key of payload.a[0] contains a lone surrogate (not valid Unicode)"],
    [
      "the first problem in document order",
      { a: { b: "\uD800" }, c: "\u0000" },
      "payload.a.b contains a lone surrogate (not valid Unicode)"
    ],
    ["a bad key before a bad later value", { ["\u0000"]: "fine", z: "\u0000" }, "a key of payload contains a NUL character"],
    ["a NUL 10 000 levels down", nested(10_000, "\u0000"), /^payload(\.x){10000} contains a NUL character$/],
    ["a cycle, all text fine", cyclic, undefined],
    ["a cycle, bad text after it", cyclicBad, "payload.later contains a NUL character"]
  ]

  it.each(rows)("%s", (_label, value, expected) => {
    const problem = TaskInput.unstorableText(value, "payload")
    if (expected === undefined) expect(problem).toBeUndefined()
    else if (typeof expected === "string") expect(problem).toBe(expected)
    else expect(problem).toMatch(expected)
  })

  it("walks 100 000 levels without exhausting the stack", () => {
    expect(TaskInput.unstorableText(nested(100_000, "fine"), "payload")).toBeUndefined()
    expect(TaskInput.unstorableText(nested(100_000, "\u0000"), "payload")).toMatch(/ contains a NUL character$/)
  })
})

// ---------------------------------------------------------------------------
// Task ids and cursors

/** Text that is no task id: not digits, not canonical, zero, negative, or beyond a `bigint`. */
const notTaskIds: ReadonlyArray<readonly [string, string]> = [
  ["20 nines (overflows bigint)", "99999999999999999999"],
  ["2^63 (one past the largest bigint)", "9223372036854775808"],
  ["2^64", "18446744073709551616"],
  ["zero", "0"],
  ["negative", "-1"],
  ["leading zeros", "007"],
  ["a plus sign", "+1"],
  ["a decimal", "1.0"],
  ["an exponent", "1e3"],
  ["hex", "0x10"],
  ["spaces", " 1"],
  ["a trailing newline", "1\n"],
  ["letters", "abc"],
  ["garbage base64", "eyJpZCI6NDJ9"],
  ["base64 padding", "MTIz=="],
  ["full-width digits", "１２"],
  ["a NUL", "1\u0000"],
  ["empty", ""]
]

describe("TaskInput.taskId", () => {
  it.each([
    ["1", "1"],
    ["42", "42"],
    ["the largest bigint", "9223372036854775807"]
  ])("accepts %s", (_label, id) => {
    expect(TaskInput.taskId(id)).toBe(id)
  })

  it.each(notTaskIds)("refuses %s", (_label, id) => {
    expect(TaskInput.taskId(id)).toBeUndefined()
  })
})

// ---------------------------------------------------------------------------
// Through TaskQueue: typed errors, and nothing reaches the store

/** What a call that got past validation hits: the stub store below. */
class StoreReached extends Error {
  constructor() {
    super("the store was reached")
  }
}

/** A SqlClient that fails any use: validation must refuse before it, valid input reaches it. */
const unreachableStore = new Proxy(() => {}, {
  get: (_target, property) => {
    if (typeof property === "symbol" || property === "then") return undefined
    throw new StoreReached()
  },
  apply: () => {
    throw new StoreReached()
  }
})

const Order = Task.define({
  name: "orders.ship",
  payload: Schema.Struct({
    customer: Schema.Struct({ name: Schema.String }),
    lines: Schema.Array(Schema.Struct({ sku: Schema.String })),
    extra: Schema.Unknown
  })
})
const order = (overrides: Partial<typeof Order.payload.Type> = {}): typeof Order.payload.Type => ({
  customer: { name: "Ann" },
  lines: [{ sku: "A-1" }],
  extra: null,
  ...overrides
})

const queueLayer = TaskQueue.layer.pipe(
  Layer.provide(
    Layer.mergeAll(
      Layer.succeed(SqlClient.SqlClient, unreachableStore as never),
      Layer.succeed(AuditLog, { record: () => Effect.die(new StoreReached()), flush: Effect.void, depth: Effect.succeed(0) }),
      TaskRegistry.layer([Task.handler(Order, () => Effect.void)])
    )
  )
)

const withQueue = <A>(use: (queue: TaskQueue.TaskQueueShape) => Effect.Effect<A, RuntimeError>) =>
  Effect.gen(function* () {
    return yield* use(yield* TaskQueue.TaskQueue)
  }).pipe(Effect.provide(queueLayer))

/** Runs `use` against the queue; the RuntimeError it fails with. */
const refusal = <A>(use: (queue: TaskQueue.TaskQueueShape) => Effect.Effect<A, RuntimeError>) => Effect.flip(withQueue(use))

/** Runs `use` against the queue; true when it got past validation to the store. */
const reachesStore = <A>(use: (queue: TaskQueue.TaskQueueShape) => Effect.Effect<A, RuntimeError>) =>
  Effect.map(Effect.exit(withQueue(use)), (exit) => Exit.isFailure(exit) && Cause.squash(exit.cause) instanceof StoreReached)

/** A refusal: the reason, its 4xx status, not retryable, the message naming the field. */
const expectRefused = (error: RuntimeError, reason: string, status: number, message: RegExp | string) => {
  expect(error._tag).toBe("RuntimeError")
  expect(error.reason._tag).toBe(reason)
  expect(error.httpStatus).toBe(status)
  expect(error.httpStatus).toBeGreaterThanOrEqual(400)
  expect(error.httpStatus).toBeLessThan(500)
  expect(error.isRetryable).toBe(false)
  if (typeof message === "string") expect(error.message).toBe(message)
  else expect(error.message).toMatch(message)
}

describe("through TaskQueue", () => {
  it.effect.each(refusedOptions)("enqueue with %s is TaskOptionsInvalid (400)", ([_label, options, message]) =>
    Effect.gen(function* () {
      const error = yield* refusal((queue) => queue.enqueue(Order, order(), options))
      expectRefused(error, "TaskOptionsInvalid", 400, message)
    })
  )

  it.effect.each(acceptedOptions)("enqueue with %s reaches the store", ([_label, options]) =>
    Effect.gen(function* () {
      expect(yield* reachesStore((queue) => queue.enqueue(Order, order(), options))).toBe(true)
    })
  )

  it.effect("the same options through enqueueByName and enqueueMany are refused alike", () =>
    Effect.gen(function* () {
      const byName = yield* refusal((queue) => queue.enqueueByName("orders.ship", order(), { priority: 2 ** 32 }))
      expectRefused(byName, "TaskOptionsInvalid", 400, /^priority must be an integer/)
      const many = yield* refusal((queue) => queue.enqueueMany(Order, [order(), order()], { delay: Duration.hours(10 ** 20) }))
      expectRefused(many, "TaskOptionsInvalid", 400, /^delay must be at most 3650 days$/)
    })
  )

  const badPayloads: ReadonlyArray<readonly [string, typeof Order.payload.Type, RegExp]> = [
    ["a NUL in a nested string", order({ customer: { name: "Ann\u0000" } }), /: payload\.customer\.name contains a NUL character$/],
    [
      "a lone surrogate in an array item",
      order({ lines: [{ sku: "A-1" }, { sku: "\uD800" }] }),
      /: payload\.lines\[1\]\.sku contains a lone surrogate/
    ],
    ["a NUL in a key of free-form data", order({ extra: { ["k\u0000"]: 1 } }), /: a key of payload\.extra contains a NUL character$/],
    ["a NUL 200 levels down", order({ extra: nested(200, "\u0000") }), /: payload\.extra(\.x){200} contains a NUL character$/]
  ]

  it.effect.each(badPayloads)("enqueue of a payload with %s is TaskPayloadInvalid (422)", ([_label, payload, message]) =>
    Effect.gen(function* () {
      const error = yield* refusal((queue) => queue.enqueue(Order, payload))
      expectRefused(error, "TaskPayloadInvalid", 422, message)
      expect(error.message).toMatch(/^invalid payload for task "orders\.ship": /)
    })
  )

  it.effect("enqueueMany names the item whose payload is unstorable", () =>
    Effect.gen(function* () {
      const error = yield* refusal((queue) => queue.enqueueMany(Order, [order(), order({ customer: { name: "\u0000" } })]))
      expectRefused(error, "TaskPayloadInvalid", 422, /: item 1: payload\.customer\.name contains a NUL character$/)
    })
  )

  it.effect("enqueueByName with a NUL in the payload, or in the task name, is refused", () =>
    Effect.gen(function* () {
      const payload = yield* refusal((queue) => queue.enqueueByName("orders.ship", order({ customer: { name: "a\u0000" } })))
      expectRefused(payload, "TaskPayloadInvalid", 422, /payload\.customer\.name contains a NUL character$/)
      const kind = yield* refusal((queue) => queue.enqueueByName("orders.ship\u0000", order()))
      expectRefused(kind, "TaskUnknown", 404, 'no task named "orders.ship\u0000" is registered')
    })
  )

  it.effect("a valid payload reaches the store", () =>
    Effect.gen(function* () {
      expect(yield* reachesStore((queue) => queue.enqueue(Order, order({ customer: { name: "Zoë 😀" } })))).toBe(true)
      expect(yield* reachesStore((queue) => queue.enqueueByName("orders.ship", order()))).toBe(true)
    })
  )

  it.effect.each(notTaskIds)("get, cancel and retry of %s are TaskNotFound (404)", ([_label, id]) =>
    Effect.gen(function* () {
      for (const use of [
        (queue: TaskQueue.TaskQueueShape) => queue.get(id),
        (queue: TaskQueue.TaskQueueShape) => queue.cancel(id),
        (queue: TaskQueue.TaskQueueShape) => queue.retry(id)
      ]) {
        const error = yield* refusal(use)
        expectRefused(error, "TaskNotFound", 404, /^task .* not found$/s)
        expect(error.reason).toMatchObject({ id })
      }
    })
  )

  it.effect.each(notTaskIds)("list before the cursor %s is TaskOptionsInvalid (400)", ([_label, before]) =>
    Effect.gen(function* () {
      const error = yield* refusal((queue) => queue.list({}, { before }))
      expectRefused(error, "TaskOptionsInvalid", 400, /^cursor .* is not a task id$/)
    })
  )

  it.effect.each([
    ["a NUL in the queue filter", { queue: "mail\u0000" }, {}, /^filter\[0\] contains a NUL character$/],
    ["a lone surrogate in the name filter", { name: "orders\uD800" }, {}, /^filter\[1\] contains a lone surrogate/],
    ["an unknown state", { state: ["lost" as never] }, {}, /^unknown state "lost" \(one of /],
    ["a NaN limit", {}, { limit: Number.NaN }, /^limit must be an integer$/],
    ["an Infinity limit", {}, { limit: Number.POSITIVE_INFINITY }, /^limit must be an integer$/],
    ["a fractional limit", {}, { limit: 1.5 }, /^limit must be an integer$/]
  ] as const)("list with %s is TaskOptionsInvalid (400)", ([_label, filter, page, message]) =>
    Effect.gen(function* () {
      const error = yield* refusal((queue) => queue.list(filter, page))
      expectRefused(error, "TaskOptionsInvalid", 400, message)
    })
  )

  it.effect("valid ids, cursors and filters reach the store", () =>
    Effect.gen(function* () {
      expect(yield* reachesStore((queue) => queue.get("9223372036854775807"))).toBe(true)
      expect(yield* reachesStore((queue) => queue.list({ queue: "default", name: "orders.ship" }, { before: "42", limit: 2 ** 32 }))).toBe(
        true
      )
    })
  )
})
