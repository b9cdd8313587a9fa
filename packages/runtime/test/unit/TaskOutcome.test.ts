/**
 * TaskOutcome: every rule of the task state machine, as a table. Each row is
 * what happened to an attempt and the outcome the writer gets.
 */
import { Cause, Duration, Exit, Result, Schema } from "effect"
import { SqlError } from "effect/sql"
import { describe, expect, it } from "vitest"
import * as Task from "../../src/Task.ts"
import * as TaskOutcome from "../../src/TaskOutcome.ts"

const definition = Task.define({
  name: "test.unit",
  payload: Schema.Struct({}),
  result: Schema.Struct({ ok: Schema.Boolean }),
  retry: { maxAttempts: 3, backoff: (attempt) => Duration.seconds(7 * attempt) }
})
const actor = "node:unit"
const deadline = new Date("2026-01-02T03:04:05.000Z")

const task = (attempt: number): Task.Claimed => ({
  id: "42",
  name: definition.name,
  queue: "default",
  payload: {},
  payloadVersion: 1,
  attempt,
  maxAttempts: 3,
  leaseEpoch: 5,
  metadata: {},
  deadline: null,
  deadlinePassed: false,
  traceparent: null,
  queuedMs: 0
})

const exited = (
  exit: Exit.Exit<unknown, unknown>,
  flags: { cancelRequested?: boolean; stopping?: boolean } = {}
): TaskOutcome.Happened => ({
  _tag: "Exited",
  exit,
  cancelRequested: flags.cancelRequested ?? false,
  stopping: flags.stopping ?? false,
  context: { callbackToken: "tok" }
})
const failed = (failure: unknown) => exited(Exit.fail(failure))

/** The fields every outcome has, so each row lists only what its rule sets. */
const none = {
  result: undefined,
  error: null,
  delayMs: null,
  attemptDelta: 0,
  callbackToken: null,
  callbackTimeoutMs: null,
  audit: undefined
}
const error = (tag: string, message: string | RegExp, attempt: number, code: string | null = null) => ({
  tag,
  message: typeof message === "string" ? message : expect.stringMatching(message),
  code,
  attempt,
  at: expect.any(String)
})
const taskFailed = (attempt: number, tag: string, message: string | RegExp, exhausted: boolean, code: string | null = null) => ({
  code: "task.failed",
  actor,
  subject: "task:42",
  details: {
    name: "test.unit",
    attempt,
    tag,
    message: typeof message === "string" ? message : expect.stringMatching(message),
    code,
    exhausted
  }
})
const taskCancelled = { code: "task.cancelled", actor, subject: "task:42", details: { name: "test.unit", previous: "running", attempt: 1 } }
const taskInterrupted = (reason: string) => ({
  code: "task.interrupted",
  actor,
  subject: "task:42",
  details: { name: "test.unit", attempt: 1, reason }
})

describe("TaskOutcome.ofRun", () => {
  const rows: ReadonlyArray<readonly [string, number, TaskOutcome.Happened, Record<string, unknown>]> = [
    [
      "success stores the encoded result",
      1,
      exited(Exit.succeed({ ok: true })),
      { ...none, state: "succeeded", result: { ok: true }, metric: "success" }
    ],
    [
      "a result that fails its schema is retried",
      1,
      exited(Exit.succeed({ ok: "yes" })),
      {
        ...none,
        state: "retryable",
        metric: "retry",
        delayMs: 7000,
        error: error("ResultInvalid", /^handler result does not match the result schema: /, 1)
      }
    ],
    [
      "a result that fails its schema on the last attempt fails, exhausted",
      3,
      exited(Exit.succeed({ ok: "yes" })),
      {
        ...none,
        state: "failed",
        metric: "retry",
        error: error("ResultInvalid", /result schema/, 3),
        audit: taskFailed(3, "ResultInvalid", /result schema/, true)
      }
    ],
    [
      "Retryable without a delay waits the definition's backoff",
      2,
      failed(new Task.Retryable({ message: "busy", code: "x.busy" })),
      {
        ...none,
        state: "retryable",
        metric: "retry",
        delayMs: 14_000,
        error: error("Retryable", "busy", 2, "x.busy")
      }
    ],
    [
      "Retryable with a delay waits that delay",
      1,
      failed(new Task.Retryable({ message: "later", delay: Duration.seconds(2) })),
      {
        ...none,
        state: "retryable",
        metric: "retry",
        delayMs: 2000,
        error: error("Retryable", "later", 1)
      }
    ],
    [
      "Retryable on the last attempt fails, exhausted",
      3,
      failed(new Task.Retryable({ message: "busy", delay: Duration.seconds(2) })),
      {
        ...none,
        state: "failed",
        metric: "retry",
        error: error("Retryable", "busy", 3),
        audit: taskFailed(3, "Retryable", "busy", true)
      }
    ],
    [
      "Terminal fails at once, attempts left or not",
      1,
      failed(new Task.Terminal({ message: "no such order", code: "order.missing" })),
      {
        ...none,
        state: "failed",
        metric: "terminal",
        error: error("Terminal", "no such order", 1, "order.missing"),
        audit: taskFailed(1, "Terminal", "no such order", false, "order.missing")
      }
    ],
    [
      "Snooze runs again later and gives the attempt back",
      1,
      failed(new Task.Snooze({ duration: Duration.seconds(30) })),
      {
        ...none,
        state: "scheduled",
        metric: "snooze",
        delayMs: 30_000,
        attemptDelta: -1
      }
    ],
    [
      "AwaitCallback parks the task with a token and a timeout",
      1,
      failed(new Task.AwaitCallback({ timeout: Duration.hours(1) })),
      {
        ...none,
        state: "waiting_callback",
        metric: "callback",
        callbackToken: "tok",
        callbackTimeoutMs: 3_600_000
      }
    ],
    [
      "a timeout is retried as a Timeout",
      1,
      failed(new Task.Retryable({ message: "timed out after 1s", code: TaskOutcome.timeoutCode })),
      {
        ...none,
        state: "retryable",
        metric: "timeout",
        delayMs: 7000,
        error: error("Timeout", "timed out after 1s", 1, "task.timeout")
      }
    ],
    [
      "a timeout on the last attempt fails, exhausted",
      3,
      failed(new Task.Retryable({ message: "timed out after 1s", code: TaskOutcome.timeoutCode })),
      {
        ...none,
        state: "failed",
        metric: "timeout",
        error: error("Timeout", "timed out after 1s", 3, "task.timeout"),
        audit: taskFailed(3, "Timeout", "timed out after 1s", true, "task.timeout")
      }
    ],
    [
      "any other error (an SqlError, an app's own) is retried, its tag and message kept",
      1,
      failed(
        new SqlError.SqlError({
          reason: new SqlError.ConnectionError({ cause: new Error("connection reset"), message: "connection reset" })
        })
      ),
      {
        ...none,
        state: "retryable",
        metric: "retry",
        delayMs: 7000,
        error: { ...error("SqlError", "connection reset", 1), stack: expect.any(String) }
      }
    ],
    [
      "a plain Error failure is retried under its name",
      1,
      failed(new TypeError("bad input")),
      {
        ...none,
        state: "retryable",
        metric: "retry",
        delayMs: 7000,
        error: { ...error("TypeError", "bad input", 1), stack: expect.stringContaining("TypeError: bad input") }
      }
    ],
    [
      "another error on the last attempt fails, exhausted",
      3,
      failed({ _tag: "MailboxFull", detail: "quota" }),
      {
        ...none,
        state: "failed",
        metric: "retry",
        error: error("MailboxFull", '{"_tag":"MailboxFull","detail":"quota"}', 3),
        audit: taskFailed(3, "MailboxFull", '{"_tag":"MailboxFull","detail":"quota"}', true)
      }
    ],
    [
      "a defect is retried, its stack kept",
      1,
      exited(Exit.die(new Error("kaput"))),
      {
        ...none,
        state: "retryable",
        metric: "retry",
        delayMs: 7000,
        error: { ...error("Defect", "kaput", 1), stack: expect.stringContaining("Error: kaput") }
      }
    ],
    [
      "a defect that is not an Error keeps the cause as its stack",
      1,
      exited(Exit.die("bad state")),
      {
        ...none,
        state: "retryable",
        metric: "retry",
        delayMs: 7000,
        error: { ...error("Defect", "bad state", 1), stack: expect.stringContaining("bad state") }
      }
    ],
    [
      "a defect on the last attempt fails, exhausted",
      3,
      exited(Exit.die(new Error("kaput"))),
      {
        ...none,
        state: "failed",
        metric: "retry",
        error: { ...error("Defect", "kaput", 3), stack: expect.any(String) },
        audit: taskFailed(3, "Defect", "kaput", true)
      }
    ],
    [
      "an interruption after a cancel request is a cancellation",
      1,
      exited(Exit.interrupt(), { cancelRequested: true }),
      {
        ...none,
        state: "cancelled",
        metric: "cancelled",
        error: error("Cancelled", "cancelled while running", 1),
        audit: taskCancelled
      }
    ],
    [
      "an interruption on shutdown hands the task back, attempt unused",
      1,
      exited(Exit.interrupt(), { stopping: true }),
      {
        ...none,
        state: "available",
        metric: "interrupted",
        delayMs: 0,
        attemptDelta: -1,
        audit: taskInterrupted("shutdown")
      }
    ],
    [
      "any other interruption hands the task back too",
      1,
      exited(Exit.interrupt()),
      {
        ...none,
        state: "available",
        metric: "interrupted",
        delayMs: 0,
        attemptDelta: -1,
        audit: taskInterrupted("interrupted")
      }
    ],
    [
      "a cancel before the run cancels it",
      1,
      TaskOutcome.cancelledBeforeRun,
      {
        ...none,
        state: "cancelled",
        metric: "cancelled",
        error: error("Cancelled", "cancelled while running", 1),
        audit: taskCancelled
      }
    ],
    [
      "a shutdown before the run hands it back, attempt unused, unaudited",
      1,
      TaskOutcome.releasedBeforeRun,
      {
        ...none,
        state: "available",
        metric: "interrupted",
        delayMs: 0,
        attemptDelta: -1
      }
    ],
    [
      "a deadline that passed before the run fails it",
      1,
      TaskOutcome.deadlinePassed(deadline),
      {
        ...none,
        state: "failed",
        metric: "terminal",
        error: error("DeadlineExceeded", "deadline 2026-01-02T03:04:05.000Z passed before the task could run", 1),
        audit: taskFailed(1, "DeadlineExceeded", "deadline 2026-01-02T03:04:05.000Z passed before the task could run", false)
      }
    ],
    [
      "a payload that no longer decodes fails it, never retried",
      1,
      TaskOutcome.payloadInvalid("id: Missing key"),
      {
        ...none,
        state: "failed",
        metric: "terminal",
        error: error("PayloadInvalid", "id: Missing key", 1),
        audit: taskFailed(1, "PayloadInvalid", "id: Missing key", false)
      }
    ]
  ]

  it.each(rows)("%s", (_name, attempt, happened, expected) => {
    expect(TaskOutcome.ofRun(definition, task(attempt), happened, actor)).toStrictEqual(expected)
  })

  it("makes the callback token only when the task parks", () => {
    let made = 0
    const run = (exit: Exit.Exit<unknown, Task.Failure>) =>
      TaskOutcome.ofRun(
        definition,
        task(1),
        {
          ...(exited(exit) as TaskOutcome.Exited),
          context: {
            get callbackToken() {
              return `tok${++made}`
            }
          }
        },
        actor
      )
    run(Exit.succeed({ ok: true }))
    run(Exit.fail(new Task.Retryable({ message: "busy" })))
    expect(made).toBe(0)
    expect(run(Exit.fail(new Task.AwaitCallback({ timeout: Duration.minutes(1) }))).callbackToken).toBe("tok1")
  })

  it("a typed failure wins over a defect in the same cause", () => {
    const exit = Exit.failCause(Cause.combine(Cause.fail(new Task.Terminal({ message: "no" })), Cause.die(new Error("also"))))
    expect(TaskOutcome.ofRun(definition, task(1), exited(exit), actor)).toMatchObject({ state: "failed", error: { tag: "Terminal" } })
  })
})

describe("TaskOutcome.ofCallback", () => {
  const callback = "callback"
  const rows: ReadonlyArray<readonly [string, Task.Definition | undefined, number, TaskOutcome.Callback, Record<string, unknown>]> = [
    [
      "a result that matches the schema succeeds",
      definition,
      1,
      { result: { ok: true } },
      {
        ...none,
        state: "succeeded",
        metric: "success",
        result: { ok: true }
      }
    ],
    [
      "a result for a task this node does not know is stored as sent",
      undefined,
      1,
      { result: { any: "thing" } },
      {
        ...none,
        state: "succeeded",
        metric: "success",
        result: { any: "thing" }
      }
    ],
    [
      "an error is retried while attempts remain",
      definition,
      1,
      { error: { message: "later" } },
      {
        ...none,
        state: "retryable",
        metric: "retry",
        delayMs: 7000,
        error: error("CallbackError", "later", 1)
      }
    ],
    [
      "an error for a task this node does not know is retried at once",
      undefined,
      1,
      { error: { message: "later" } },
      {
        ...none,
        state: "retryable",
        metric: "retry",
        delayMs: 0,
        error: error("CallbackError", "later", 1)
      }
    ],
    [
      "an error on the last attempt fails, exhausted",
      definition,
      3,
      { error: { message: "later", code: "x.later" } },
      {
        ...none,
        state: "failed",
        metric: "retry",
        error: error("CallbackError", "later", 3, "x.later"),
        audit: { ...taskFailed(3, "CallbackError", "later", true, "x.later"), actor: callback }
      }
    ],
    [
      "retryable: false fails at once",
      definition,
      1,
      { error: { message: "declined", retryable: false, code: "x.declined" } },
      {
        ...none,
        state: "failed",
        metric: "terminal",
        error: error("CallbackError", "declined", 1, "x.declined"),
        audit: { ...taskFailed(1, "CallbackError", "declined", false, "x.declined"), actor: callback }
      }
    ],
    [
      "retryable: false on the last attempt is audited as exhausted",
      definition,
      3,
      { error: { message: "declined", retryable: false } },
      {
        ...none,
        state: "failed",
        metric: "terminal",
        error: error("CallbackError", "declined", 3),
        audit: { ...taskFailed(3, "CallbackError", "declined", true), actor: callback }
      }
    ]
  ]

  it.each(rows)("%s", (_name, def, attempt, body, expected) => {
    const outcome = TaskOutcome.ofCallback(def, task(attempt), body, callback)
    expect(Result.isSuccess(outcome)).toBe(true)
    expect(Result.getOrThrow(outcome)).toStrictEqual(expected)
  })

  it("a result that fails the schema is refused with the reason; nothing to write", () => {
    const outcome = TaskOutcome.ofCallback(definition, task(1), { result: { ok: "yes" } }, callback)
    expect(Result.isFailure(outcome) && outcome.failure).toMatch(/ok/)
  })
})
