/**
 * Task: typed task definitions, their handlers, and the failure classes a
 * handler may end with.
 *
 * A definition names the task and fixes its payload and result Schemas, queue,
 * priority, retry policy and timeout. Payloads live in the database for a long
 * time, so a definition can evolve: bump `version` and list the previous shapes
 * with an `upgrade`; a row written under an old version still decodes.
 *
 * Handlers end with a typed failure that says what should happen next:
 * `Retryable` (try again, optionally after a given delay), `Terminal` (fail
 * now), `Snooze` (run again later without using an attempt) or `AwaitCallback`
 * (park until an external system calls back). A defect counts as retryable,
 * with its details recorded; a payload that no longer decodes is terminal.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"

// ---------------------------------------------------------------------------
// Failure classes

/** Try again: after `delay` when given, else after the definition's backoff. */
export class Retryable extends Schema.TaggedError<Retryable>()("Retryable", {
  message: Schema.String,
  code: Schema.optional(Schema.String),
  delay: Schema.optional(Schema.Duration)
}) {
  readonly retryable = true
}

/** Fail now, whatever attempts remain. */
export class Terminal extends Schema.TaggedError<Terminal>()("Terminal", {
  message: Schema.String,
  code: Schema.optional(Schema.String)
}) {
  readonly retryable = false
}

/** Run again after `duration`; the attempt is not consumed. */
export class Snooze extends Schema.TaggedError<Snooze>()("Snooze", {
  duration: Schema.Duration,
  message: Schema.optional(Schema.String)
}) {
  readonly retryable = true
}

/**
 * Park the task as `waiting_callback` until `POST /callbacks/:token` (the token
 * is `context.callbackToken`, to hand to the external system) or `timeout`.
 */
export class AwaitCallback extends Schema.TaggedError<AwaitCallback>()("AwaitCallback", {
  timeout: Schema.Duration
}) {
  readonly retryable = true
}

export type Failure = Retryable | Terminal | Snooze | AwaitCallback

/** `Effect.fail` shorthands that take duration strings: `yield* Task.snooze("30 seconds")`. */
export const retry = (message: string, options: { readonly code?: string; readonly delay?: Duration.Input } = {}) =>
  Effect.fail(
    new Retryable({
      message,
      ...(options.code === undefined ? {} : { code: options.code }),
      ...(options.delay === undefined ? {} : { delay: Duration.fromInputUnsafe(options.delay) })
    })
  )
export const terminal = (message: string, code?: string) => Effect.fail(new Terminal({ message, ...(code === undefined ? {} : { code }) }))
export const snooze = (duration: Duration.Input) => Effect.fail(new Snooze({ duration: Duration.fromInputUnsafe(duration) }))
export const awaitCallback = (timeout: Duration.Input) => Effect.fail(new AwaitCallback({ timeout: Duration.fromInputUnsafe(timeout) }))

// ---------------------------------------------------------------------------
// Retry policy

export interface RetryPolicy {
  readonly maxAttempts: number
  /** Delay before attempt `attempt + 1`, given the attempt that just failed (1-based). */
  readonly backoff: (attempt: number) => Duration.Duration
}

/** base * 2^(attempt-1), capped, with +-jitter so retries of a burst spread out. */
export const exponentialBackoff = (
  options: { readonly base?: Duration.Input; readonly max?: Duration.Input; readonly jitter?: number } = {}
) => {
  const base = Duration.toMillis(Duration.fromInputUnsafe(options.base ?? "1 second"))
  const max = Duration.toMillis(Duration.fromInputUnsafe(options.max ?? "1 hour"))
  const jitter = options.jitter ?? 0.1
  return (attempt: number): Duration.Duration => {
    const raw = Math.min(max, base * 2 ** Math.max(0, attempt - 1))
    const spread = raw * jitter * (Math.random() * 2 - 1)
    return Duration.millis(Math.max(0, Math.round(raw + spread)))
  }
}

export const defaultRetry: RetryPolicy = { maxAttempts: 25, backoff: exponentialBackoff() }

// ---------------------------------------------------------------------------
// Definitions

export interface PreviousVersion<P> {
  readonly version: number
  readonly payload: Schema.Top & { readonly DecodingServices: never }
  /** Turns a payload decoded with the old Schema into the current payload type. */
  readonly upgrade: (old: any) => P
}

export interface Definition<P = any, R = any> {
  readonly name: string
  readonly payload: Schema.Codec<P, any>
  readonly result: Schema.Codec<R, any>
  readonly queue: string
  readonly priority: number
  readonly retry: RetryPolicy
  readonly timeout: Duration.Duration
  /** Presentation codes this task's failures may carry, with their meaning (for admin views). */
  readonly codes: Readonly<Record<string, string>>
  readonly version: number
  readonly previous: ReadonlyArray<PreviousVersion<P>>
}

export type PayloadOf<D> = D extends Definition<infer P, any> ? P : never
export type ResultOf<D> = D extends Definition<any, infer R> ? R : never

const namePattern = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/

export const define = <P, R = void>(options: {
  readonly name: string
  readonly payload: Schema.Codec<P, any>
  readonly result?: Schema.Codec<R, any>
  readonly queue?: string
  readonly priority?: number
  readonly retry?: Partial<RetryPolicy>
  readonly timeout?: Duration.Input
  readonly codes?: Readonly<Record<string, string>>
  readonly version?: number
  readonly previous?: ReadonlyArray<PreviousVersion<P>>
}): Definition<P, R> => {
  if (!namePattern.test(options.name)) {
    throw new Error(`task name ${JSON.stringify(options.name)} must be dotted lower-case words, e.g. "mail.send"`)
  }
  const maxAttempts = options.retry?.maxAttempts ?? defaultRetry.maxAttempts
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new Error(`task ${options.name}: retry.maxAttempts must be an integer >= 1`)
  return {
    name: options.name,
    payload: options.payload,
    result: options.result ?? (Schema.Void as unknown as Schema.Codec<R, any>),
    queue: options.queue ?? "default",
    priority: options.priority ?? 0,
    retry: { maxAttempts, backoff: options.retry?.backoff ?? defaultRetry.backoff },
    timeout: Duration.fromInputUnsafe(options.timeout ?? "5 minutes"),
    codes: options.codes ?? {},
    version: options.version ?? 1,
    previous: options.previous ?? []
  }
}

// ---------------------------------------------------------------------------
// Payload encoding and decoding

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/** "path: message" lines, for error details an admin can read. */
export const describeIssue = (issue: SchemaIssue.Issue): string =>
  formatter(issue)
    .issues.map((i) => `${i.path?.length ? i.path.join(".") + ": " : ""}${i.message}`)
    .join("; ")

type Parse = (input: unknown) => Result.Result<unknown, Schema.SchemaError>

/** `Schema.Unknown` and `Schema.Any` take every value as it is: no parser to run (~370 bytes per call). */
const asIs: Parse = (input) => Result.succeed(input)
const takesAnything = (schema: Schema.Top): boolean =>
  (schema.ast._tag === "Unknown" || schema.ast._tag === "Any") && schema.ast.checks === undefined && schema.ast.encoding === undefined

/** `make(schema)`, made once per schema: making decoders and encoders per call showed in the dispatcher's profile. */
const perSchema = (make: (schema: any) => Parse) => {
  const made = new WeakMap<object, Parse>()
  return (schema: Schema.Top): Parse => {
    let parse = made.get(schema)
    if (parse === undefined) {
      parse = takesAnything(schema) ? asIs : make(schema)
      made.set(schema, parse)
    }
    return parse
  }
}
/** A parse's result with the error as text an admin reads; a success is passed on as it is (no copy). */
const withIssueText = (result: Result.Result<unknown, Schema.SchemaError>): Result.Result<any, string> =>
  Result.isFailure(result) ? Result.fail(describeIssue(result.failure.issue)) : (result as Result.Result<unknown, never>)
const decoderOf = perSchema((schema) => Schema.decodeUnknownResult(schema) as Parse)
const encoderOf = perSchema((schema) => Schema.encodeUnknownResult(schema) as Parse)

/** Encodes a payload for storage; the error lists what is wrong. */
export const encodePayload = <P>(def: Definition<P, any>, payload: P): Result.Result<unknown, string> =>
  withIssueText(encoderOf(def.payload)(payload))

/** Decodes a stored payload, upgrading rows written under a previous version. */
export const decodePayload = <P>(def: Definition<P, any>, stored: unknown, version: number): Result.Result<P, string> => {
  if (version === def.version) {
    return withIssueText(decoderOf(def.payload)(stored))
  }
  const previous = def.previous.find((p) => p.version === version)
  if (previous === undefined) return Result.fail(`payload version ${version} is unknown to this build (current ${def.version})`)
  const old = decoderOf(previous.payload)(stored)
  if (Result.isFailure(old)) return Result.fail(`payload version ${version}: ${describeIssue(old.failure.issue)}`)
  try {
    return Result.succeed(previous.upgrade(old.success))
  } catch (e) {
    return Result.fail(`upgrade from version ${version} failed: ${e instanceof Error ? e.message : String(e)}`)
  }
}

export const encodeResult = <R>(def: Definition<any, R>, result: R): Result.Result<unknown, string> =>
  withIssueText(encoderOf(def.result)(result))

export const decodeResult = <R>(def: Definition<any, R>, raw: unknown): Result.Result<R, string> =>
  withIssueText(decoderOf(def.result)(raw))

// ---------------------------------------------------------------------------
// Handlers

export interface Context {
  readonly id: string
  readonly name: string
  readonly queue: string
  /** 1-based attempt number of this run. */
  readonly attempt: number
  readonly maxAttempts: number
  /** Hand this to an external system before failing with `AwaitCallback`. */
  readonly callbackToken: string
  readonly metadata: Readonly<Record<string, unknown>>
}

/**
 * A task this node holds a lease on, as the claim returns it. `leaseEpoch` is
 * the fencing token every later write of this run must name.
 */
export interface Claimed {
  readonly id: string
  readonly name: string
  readonly queue: string
  /** As stored: decode with `decodePayload(definition, payload, payloadVersion)`. */
  readonly payload: unknown
  readonly payloadVersion: number
  /** 1-based attempt number of this run (the claim counted it). */
  readonly attempt: number
  readonly maxAttempts: number
  readonly leaseEpoch: number
  readonly metadata: Record<string, unknown>
  readonly deadline: Date | null
  /** The deadline had passed when the claim ran (by the database clock). */
  readonly deadlinePassed: boolean
  /** The enqueuer's W3C trace context, continued by the run. */
  readonly traceparent: string | null
  /** Milliseconds from enqueue to this claim, by the database clock. */
  readonly queuedMs: number
}

/**
 * A definition bound to the code that runs it. `Req` is the services `run`
 * needs; `ApplicationModule.make` checks once that the runtime provides them.
 * Without arguments, any handler (what the registry holds, already checked).
 */
export interface Handler<P = any, R = any, Req = any> {
  readonly definition: Definition<P, R>
  readonly run: (payload: P, context: Context) => Effect.Effect<R, unknown, Req>
}

/**
 * Binds a handler to its definition; register it through an ApplicationModule's
 * `tasks`. The handler may fail with anything: `Retryable`, `Terminal`,
 * `Snooze` and `AwaitCallback` say what happens next; any other error (an
 * `SqlError`, an app's own) counts as retryable, its tag and message recorded
 * in the task's `errors`.
 */
export const handler = <P, R, E = never, Req = never>(
  definition: Definition<P, R>,
  run: (payload: P, context: Context) => Effect.Effect<R, E, Req>
): Handler<P, R, Req> => ({ definition, run })

/** Whether an error is one of the failure classes above (anything else counts as retryable). */
export const isFailure = (u: unknown): u is Failure =>
  u instanceof Retryable || u instanceof Terminal || u instanceof Snooze || u instanceof AwaitCallback

// ---------------------------------------------------------------------------
// Stored failure details

/**
 * One entry of a task's `errors` list. Structured, so admin screens never parse
 * strings: the tag says which class of failure, `code` is the presentation code.
 */
export interface ErrorDetail {
  readonly tag: string
  readonly message: string
  readonly code: string | null
  readonly attempt: number
  readonly at: string
  /** For administrators only: where it happened. */
  readonly stack?: string
}
