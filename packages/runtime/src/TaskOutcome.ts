/**
 * TaskOutcome: the task state machine, as pure rules.
 *
 * Given a task's definition, the attempt in question and what happened, it
 * says where the task goes next and hands its writer everything to store: the
 * state, the encoded result, the `errors` entry, the delay before the next run,
 * whether the attempt counts, a parked task's callback token and timeout, the
 * metric label and the audit event. No services and no SQL: the dispatcher
 * (`ofRun`, for handler runs) and the callback route (`ofCallback`, for
 * `POST /callbacks/:token`) apply the same rules and write what they return.
 *
 * The rules:
 * - success stores the encoded result; a result that does not match the result
 *   Schema is a retryable failure (`ResultInvalid`);
 * - `Retryable`, a timeout, any other error a handler fails with (an
 *   `SqlError`, an app's own; tag and message kept) and a defect (its stack
 *   kept for administrators) retry after the failure's own delay or the
 *   definition's backoff while attempts remain, and fail (`exhausted`) on the
 *   last one;
 * - `Terminal`, a deadline that passed before the run and a payload that no
 *   longer decodes fail at once (a retry could not do better);
 * - `Snooze` runs again after its duration and gives the attempt back;
 * - `AwaitCallback` parks the task with a callback token and a timeout;
 * - an interruption is a cancellation when one was requested; otherwise (a
 *   shutdown) the task goes straight back to `available`, attempt unused;
 * - a callback result must match the result Schema (if not, the caller is told
 *   why and nothing changes); a callback error retries like `Retryable`
 *   unless it says `retryable: false`.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import * as AuditEvents from "./AuditEvents.ts"
import type { AuditEvent } from "./AuditLog.ts"
import * as Task from "./Task.ts"
import type { TaskState } from "./TaskState.ts"

// ---------------------------------------------------------------------------
// Models

/**
 * Label of `asterforge_tasks_finished_total{outcome}`.
 *
 * @category models
 */
export type MetricOutcome = "success" | "retry" | "terminal" | "snooze" | "timeout" | "interrupted" | "cancelled" | "callback"

/**
 * Where a task goes after a run: any state but `running`.
 *
 * @category models
 */
export type NextState = Exclude<TaskState, "running">

/**
 * The next state of a task and everything its writer stores with it.
 *
 * @category models
 */
export interface Outcome<S extends NextState = NextState> {
  readonly state: S
  /** The encoded result to store; `undefined` leaves the stored result as it is. */
  readonly result: unknown
  /** Appended to the task's `errors`. */
  readonly error: Task.ErrorDetail | null
  /** `run_at = now() + delayMs`; null leaves `run_at` as it is. */
  readonly delayMs: number | null
  /** -1 gives back the attempt the claim took (snooze, release on shutdown). */
  readonly attemptDelta: 0 | -1
  /** Set when the task parks for a callback. */
  readonly callbackToken: string | null
  readonly callbackTimeoutMs: number | null
  readonly metric: MetricOutcome
  /** Recorded once the write is accepted (a refused write records nothing). */
  readonly audit: AuditEvent | undefined
}

/**
 * What the rules need to know of a task: a claimed one (`Task.Claimed`) or
 * one parked for a callback.
 *
 * @category models
 */
export type Attempt = Pick<Task.Claimed, "id" | "name" | "attempt" | "maxAttempts">

/**
 * A handler ran to its end (any end: success, failure, defect, interruption).
 *
 * @category models
 */
export interface Exited {
  readonly _tag: "Exited"
  readonly exit: Exit.Exit<unknown, unknown>
  /** A cancel was requested: an interruption is a cancellation. */
  readonly cancelRequested: boolean
  /** The node is shutting down: an interruption is audited with reason `shutdown`. */
  readonly stopping: boolean
  /** The run's context: its `callbackToken` is made on first read (most runs never park). */
  readonly context: Pick<Task.Context, "callbackToken">
}

/**
 * What happened to a claimed task.
 *
 * @category models
 */
export type Happened =
  | Exited
  /** A cancel arrived while the task waited, claimed, for a slot. */
  | { readonly _tag: "CancelledBeforeRun" }
  /** Shutdown began while the task waited, claimed, for a slot. */
  | { readonly _tag: "ReleasedBeforeRun" }
  | { readonly _tag: "DeadlinePassed"; readonly deadline: Date | null }
  /** The stored payload no longer decodes; `reason` says why. */
  | { readonly _tag: "PayloadInvalid"; readonly reason: string }

/**
 * The body of a callback, as `POST /callbacks/:token` accepts it.
 *
 * @category models
 */
export type Callback =
  | { readonly result: unknown }
  | { readonly error: { readonly message: string; readonly retryable?: boolean | undefined; readonly code?: string | undefined } }

/** @category constructors */
export const cancelledBeforeRun: Happened = { _tag: "CancelledBeforeRun" }
/** @category constructors */
export const releasedBeforeRun: Happened = { _tag: "ReleasedBeforeRun" }
/** @category constructors */
export const deadlinePassed = (deadline: Date | null): Happened => ({ _tag: "DeadlinePassed", deadline })
/** @category constructors */
export const payloadInvalid = (reason: string): Happened => ({ _tag: "PayloadInvalid", reason })

/**
 * The `code` of the `Retryable` failure a run that outlives its timeout ends
 * with; the rules record it as a `Timeout`.
 */
export const timeoutCode = "task.timeout"

// ---------------------------------------------------------------------------
// Rules

/**
 * The next state of a claimed task, from what happened to its run.
 *
 * @category constructors
 */
export const ofRun = (definition: Task.Definition, task: Attempt, happened: Happened, actor: string): Outcome => {
  switch (happened._tag) {
    case "Exited":
      return ofExit(definition, task, happened, actor)
    case "CancelledBeforeRun":
      return cancelled(task, actor)
    // It never ran, so nothing is audited.
    case "ReleasedBeforeRun":
      return next("available", "interrupted", null, 0, undefined, -1)
    case "DeadlinePassed":
      return failNow(
        task,
        detail("DeadlineExceeded", `deadline ${happened.deadline?.toISOString()} passed before the task could run`, null, task.attempt),
        actor
      )
    // It will never decode on a retry either: terminal, with the reason.
    case "PayloadInvalid":
      return failNow(task, detail("PayloadInvalid", happened.reason, null, task.attempt), actor)
  }
}

/**
 * The next state of a task parked for a callback, from the callback's body:
 * `Result.fail` with the reason when the result does not match the result
 * Schema (the caller may fix it and call again; nothing changes). Without a
 * definition (a node that does not know the task) the result is stored as sent
 * and a retry runs at once.
 *
 * @category constructors
 */
export const ofCallback = (
  definition: Task.Definition | undefined,
  task: Attempt,
  callback: Callback,
  actor: string
): Result.Result<Outcome<"succeeded" | "failed" | "retryable">, string> => {
  if ("result" in callback) {
    let stored = callback.result
    if (definition !== undefined) {
      const decoded = Task.decodeResult(definition, callback.result)
      if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
      stored = Result.getOrThrow(Task.encodeResult(definition, decoded.success))
    }
    return Result.succeed(succeeded(stored ?? null))
  }
  const e = callback.error
  const error = detail("CallbackError", e.message, e.code, task.attempt)
  if (e.retryable === false) {
    return Result.succeed(next("failed", "terminal", error, null, failedEvent(task, error, task.attempt >= task.maxAttempts, actor)))
  }
  return Result.succeed(retryOrFail(definition, task, error, undefined, "retry", actor))
}

const ofExit = (definition: Task.Definition, task: Attempt, happened: Exited, actor: string): Outcome => {
  const exit = happened.exit
  if (Exit.isSuccess(exit)) {
    const encoded = Task.encodeResult(definition, exit.value)
    if (encoded._tag === "Failure") {
      const error = detail("ResultInvalid", `handler result does not match the result schema: ${encoded.failure}`, null, task.attempt)
      return retryOrFail(definition, task, error, undefined, "retry", actor)
    }
    return succeeded(encoded.success ?? null)
  }
  const cause = exit.cause
  if (Cause.hasInterruptsOnly(cause)) {
    if (happened.cancelRequested) return cancelled(task, actor)
    // Shutdown (or any interruption we did not ask for): give the task back at once, attempt unused.
    const reason = happened.stopping ? "shutdown" : "interrupted"
    return next(
      "available",
      "interrupted",
      null,
      0,
      AuditEvents.taskInterrupted({ actor, subject: task.id, details: { name: task.name, attempt: task.attempt, reason } }),
      -1
    )
  }
  const failure = cause.reasons.find(Cause.isFailReason)
  if (failure !== undefined) {
    return Task.isFailure(failure.error)
      ? ofFailure(definition, task, failure.error, happened, actor)
      : retryOrFail(definition, task, otherError(failure.error, task.attempt), undefined, "retry", actor)
  }
  // A defect: retryable, with what an administrator needs to find it.
  const defect = cause.reasons.find(Cause.isDieReason)?.defect
  const message = defect instanceof Error ? defect.message : String(defect ?? Cause.pretty(cause))
  const stack = defect instanceof Error ? defect.stack : Cause.pretty(cause)
  return retryOrFail(definition, task, detail("Defect", message, null, task.attempt, stack), undefined, "retry", actor)
}

/**
 * An error that is not one of `Task`'s failure classes: retryable, recorded
 * with its tag (`SqlError`, an app's own `_tag`, or `Error`) and message.
 */
const otherError = (error: unknown, attempt: number): Task.ErrorDetail => {
  const tag =
    typeof error === "object" && error !== null && typeof (error as { _tag?: unknown })._tag === "string"
      ? (error as { _tag: string })._tag
      : error instanceof Error
        ? error.name
        : "Error"
  const message = error instanceof Error ? error.message : typeof error === "string" ? error : safeJson(error)
  return detail(tag, message, null, attempt, error instanceof Error ? error.stack : undefined)
}

const safeJson = (u: unknown): string => {
  try {
    return JSON.stringify(u) ?? String(u)
  } catch {
    return String(u)
  }
}

const ofFailure = (definition: Task.Definition, task: Attempt, failure: Task.Failure, happened: Exited, actor: string): Outcome => {
  switch (failure._tag) {
    case "Terminal":
      return failNow(task, detail("Terminal", failure.message, failure.code, task.attempt), actor)
    case "Retryable": {
      const timedOut = failure.code === timeoutCode
      const error = detail(timedOut ? "Timeout" : "Retryable", failure.message, failure.code, task.attempt)
      return retryOrFail(definition, task, error, failure.delay, timedOut ? "timeout" : "retry", actor)
    }
    case "Snooze":
      return next("scheduled", "snooze", null, Duration.toMillis(failure.duration), undefined, -1)
    case "AwaitCallback":
      return {
        state: "waiting_callback",
        result: undefined,
        error: null,
        delayMs: null,
        attemptDelta: 0,
        callbackToken: happened.context.callbackToken,
        callbackTimeoutMs: Duration.toMillis(failure.timeout),
        metric: "callback",
        audit: undefined
      }
  }
}

// ---------------------------------------------------------------------------
// Building blocks

const next = <S extends NextState>(
  state: S,
  metric: MetricOutcome,
  error: Task.ErrorDetail | null,
  delayMs: number | null,
  audit: AuditEvent | undefined,
  attemptDelta: 0 | -1 = 0
): Outcome<S> => ({ state, result: undefined, error, delayMs, attemptDelta, callbackToken: null, callbackTimeoutMs: null, metric, audit })

const succeeded = (result: unknown): Outcome<"succeeded"> => (result === null ? succeededEmpty : succeededWith(result))

const succeededWith = (result: unknown): Outcome<"succeeded"> => ({
  state: "succeeded",
  result,
  error: null,
  delayMs: null,
  attemptDelta: 0,
  callbackToken: null,
  callbackTimeoutMs: null,
  metric: "success",
  audit: undefined
})

/** The outcome of most runs (no result), made once: outcomes are read-only. */
const succeededEmpty = succeededWith(null)

const detail = (tag: string, message: string, code: string | null | undefined, attempt: number, stack?: string): Task.ErrorDetail => ({
  tag,
  message,
  code: code ?? null,
  attempt,
  at: new Date().toISOString(),
  ...(stack ? { stack } : {})
})

const failedEvent = (task: Attempt, error: Task.ErrorDetail, exhausted: boolean, actor: string): AuditEvent =>
  AuditEvents.taskFailed({
    actor,
    subject: task.id,
    details: { name: task.name, attempt: task.attempt, tag: error.tag, message: error.message, code: error.code, exhausted }
  })

/** Fails for good, whatever attempts remain. */
const failNow = (task: Attempt, error: Task.ErrorDetail, actor: string): Outcome<"failed"> =>
  next("failed", "terminal", error, null, failedEvent(task, error, false, actor))

/** Retries while attempts remain: after `delay` when given, else the definition's backoff (at once without a definition). */
const retryOrFail = (
  definition: Task.Definition | undefined,
  task: Attempt,
  error: Task.ErrorDetail,
  delay: Duration.Duration | undefined,
  metric: MetricOutcome,
  actor: string
): Outcome<"failed" | "retryable"> => {
  if (task.attempt >= task.maxAttempts) return next("failed", metric, error, null, failedEvent(task, error, true, actor))
  const wait = delay ?? definition?.retry.backoff(task.attempt)
  return next("retryable", metric, error, wait === undefined ? 0 : Duration.toMillis(wait), undefined)
}

const cancelled = (task: Attempt, actor: string): Outcome<"cancelled"> =>
  next(
    "cancelled",
    "cancelled",
    detail("Cancelled", "cancelled while running", null, task.attempt),
    null,
    AuditEvents.taskCancelled({ actor, subject: task.id, details: { name: task.name, previous: "running", attempt: task.attempt } })
  )
