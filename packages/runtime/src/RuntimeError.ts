/**
 * RuntimeError: the one error the runtime's own services fail with.
 *
 * Shaped like Effect's `SqlError`: a single `RuntimeError` whose `reason` is a
 * union of tagged, namespaced classes. Each reason says whether repeating the
 * same operation may succeed (`isRetryable`) and which HTTP status an API
 * answers it with (`httpStatus`: 4xx for the caller's input, 503 for an outage
 * on our side, 500 for a bug), so callers, the CLI's exit path and the HTTP
 * layer never guess from a message string.
 *
 * Handle one reason with `Effect.catchReason("RuntimeError", "TaskNotFound", ...)`.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

const TypeId = "~@asterforge/runtime/RuntimeError" as const
const ReasonTypeId = "~@asterforge/runtime/RuntimeError/Reason" as const
const id = (name: string) => `@asterforge/runtime/RuntimeError/${name}`

const Cause = { cause: Schema.optional(Schema.Defect()) }

// ---------------------------------------------------------------------------
// Configuration and start-up

/** One configuration problem: the key as the user wrote it, and what is wrong. */
export const Problem = Schema.Struct({ key: Schema.String, message: Schema.String })
export type Problem = typeof Problem.Type

/** Renders problems the way `config check` and a failed start print them. */
export const renderProblems = (problems: ReadonlyArray<Problem>): string =>
  [
    `invalid configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):`,
    ...problems.map((p) => `  - ${p.key}: ${p.message}`)
  ].join("\n")

/**
 * The configuration does not validate; `problems` lists every one of them.
 *
 * @category errors
 */
export class ConfigInvalid extends Schema.TaggedError<ConfigInvalid>(id("ConfigInvalid"))("ConfigInvalid", {
  problems: Schema.Array(Problem)
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 422
  override get message(): string {
    return renderProblems(this.problems)
  }
}

/**
 * The application's modules do not fit together (a task or lane name used
 * twice, a bad migration key): a programming error, listed in full.
 *
 * @category errors
 */
export class ModuleInvalid extends Schema.TaggedError<ModuleInvalid>(id("ModuleInvalid"))("ModuleInvalid", {
  problems: Schema.Array(Problem)
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 500
  override get message(): string {
    return [
      `invalid application modules (${this.problems.length} problem${this.problems.length === 1 ? "" : "s"}):`,
      ...this.problems.map((p) => `  - ${p.key}: ${p.message}`)
    ].join("\n")
  }
}

/**
 * The database could not be reached within the connection budget.
 *
 * @category errors
 */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>(id("DatabaseUnavailable"))("DatabaseUnavailable", {
  message: Schema.String,
  ...Cause
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = true
  readonly httpStatus = 503
}

/**
 * A migration failed, or the schema is in a state this build cannot use.
 *
 * @category errors
 */
export class MigrationFailed extends Schema.TaggedError<MigrationFailed>(id("MigrationFailed"))("MigrationFailed", {
  message: Schema.String,
  ...Cause
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 500
}

/**
 * The embedded PostgreSQL could not be initialised or started.
 *
 * @category errors
 */
export class EmbeddedPostgresFailed extends Schema.TaggedError<EmbeddedPostgresFailed>(id("EmbeddedPostgresFailed"))(
  "EmbeddedPostgresFailed",
  {
    message: Schema.String,
    ...Cause
  }
) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 500
}

/**
 * The HTTP server could not bind its address (in use, not permitted).
 *
 * @category errors
 */
export class ServerListenFailed extends Schema.TaggedError<ServerListenFailed>(id("ServerListenFailed"))("ServerListenFailed", {
  message: Schema.String,
  ...Cause
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 500
}

// ---------------------------------------------------------------------------
// Tasks

/**
 * No task of this name is registered on this node.
 *
 * @category errors
 */
export class TaskUnknown extends Schema.TaggedError<TaskUnknown>(id("TaskUnknown"))("TaskUnknown", {
  name: Schema.String
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 404
  override get message() {
    return `no task named "${this.name}" is registered`
  }
}

/**
 * A payload does not match the task's payload Schema.
 *
 * @category errors
 */
export class TaskPayloadInvalid extends Schema.TaggedError<TaskPayloadInvalid>(id("TaskPayloadInvalid"))("TaskPayloadInvalid", {
  name: Schema.String,
  detail: Schema.String
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 422
  override get message() {
    return `invalid payload for task "${this.name}": ${this.detail}`
  }
}

/**
 * Enqueue options (priority, delay, attempts, queue, dates) are out of range.
 *
 * @category errors
 */
export class TaskOptionsInvalid extends Schema.TaggedError<TaskOptionsInvalid>(id("TaskOptionsInvalid"))("TaskOptionsInvalid", {
  message: Schema.String
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 400
}

/**
 * No task has this id.
 *
 * @category errors
 */
export class TaskNotFound extends Schema.TaggedError<TaskNotFound>(id("TaskNotFound"))("TaskNotFound", {
  id: Schema.String
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 404
  override get message() {
    return `task ${this.id} not found`
  }
}

/**
 * The task's state does not allow the operation (cancel a finished task, retry a running one).
 *
 * @category errors
 */
export class TaskStateConflict extends Schema.TaggedError<TaskStateConflict>(id("TaskStateConflict"))("TaskStateConflict", {
  id: Schema.String,
  state: Schema.String,
  operation: Schema.String,
  detail: Schema.optional(Schema.String)
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 409
  override get message() {
    return `cannot ${this.operation} task ${this.id}: it is ${this.state}${this.detail ? ` (${this.detail})` : ""}`
  }
}

/**
 * The task store (the database) failed; the same call may succeed later.
 *
 * @category errors
 */
export class TaskStoreUnavailable extends Schema.TaggedError<TaskStoreUnavailable>(id("TaskStoreUnavailable"))("TaskStoreUnavailable", {
  message: Schema.String,
  ...Cause
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = true
  readonly httpStatus = 503
}

// ---------------------------------------------------------------------------
// Sources

/**
 * A leader-placed source lost its leadership (another node leads it now);
 * nothing of what it was publishing was written.
 *
 * @category errors
 */
export class SourceFenced extends Schema.TaggedError<SourceFenced>(id("SourceFenced"))("SourceFenced", {
  source: Schema.String,
  epoch: Schema.Number
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = true
  readonly httpStatus = 503
  override get message() {
    return `source "${this.source}" is no longer led by this node (epoch ${this.epoch}); nothing was published`
  }
}

/**
 * No scheduled source of this name is known to this build.
 *
 * @category errors
 */
export class ScheduleNotFound extends Schema.TaggedError<ScheduleNotFound>(id("ScheduleNotFound"))("ScheduleNotFound", {
  name: Schema.String
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 404
  override get message() {
    return `no schedule named "${this.name}"`
  }
}

// ---------------------------------------------------------------------------
// Control plane

/**
 * No credentials, or credentials that are not valid (unknown, expired or
 * revoked token, ended session).
 *
 * @category errors
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>(id("Unauthorized"))("Unauthorized", {
  message: Schema.String
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 401
}

/**
 * Valid credentials whose role does not allow the operation (or a
 * cookie-authenticated write without its CSRF token).
 *
 * @category errors
 */
export class Forbidden extends Schema.TaggedError<Forbidden>(id("Forbidden"))("Forbidden", {
  message: Schema.String
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 403
}

/**
 * Too many failed logins from this client: it must wait `retryAfterSeconds`.
 *
 * @category errors
 */
export class RateLimited extends Schema.TaggedError<RateLimited>(id("RateLimited"))("RateLimited", {
  message: Schema.String,
  retryAfterSeconds: Schema.Int
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = true
  readonly httpStatus = 429
}

/**
 * A control-plane request's input is not acceptable (a filter, a cursor, a name).
 *
 * @category errors
 */
export class InputInvalid extends Schema.TaggedError<InputInvalid>(id("InputInvalid"))("InputInvalid", {
  message: Schema.String
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 400
}

/**
 * A named control-plane resource (an API token) does not exist.
 *
 * @category errors
 */
export class ResourceNotFound extends Schema.TaggedError<ResourceNotFound>(id("ResourceNotFound"))("ResourceNotFound", {
  kind: Schema.String,
  id: Schema.String
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 404
  override get message() {
    return `${this.kind} ${JSON.stringify(this.id)} not found`
  }
}

/**
 * A control-plane resource conflicts with an existing one (a live token of the same name).
 *
 * @category errors
 */
export class ResourceConflict extends Schema.TaggedError<ResourceConflict>(id("ResourceConflict"))("ResourceConflict", {
  message: Schema.String
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 409
}

/**
 * An admin query ran longer than `control.statement_timeout` and was
 * cancelled: the filter is too broad for the table, not an outage.
 *
 * @category errors
 */
export class QueryTimeout extends Schema.TaggedError<QueryTimeout>(id("QueryTimeout"))("QueryTimeout", {
  message: Schema.String
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 422
}

// ---------------------------------------------------------------------------
// Lanes and bugs

/**
 * One pass of a maintenance lane failed or timed out; the lane retries with backoff.
 *
 * @category errors
 */
export class LanePassFailed extends Schema.TaggedError<LanePassFailed>(id("LanePassFailed"))("LanePassFailed", {
  lane: Schema.String,
  message: Schema.String,
  ...Cause
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = true
  readonly httpStatus = 503
}

/**
 * A bug in the runtime: details in `cause`.
 *
 * @category errors
 */
export class Internal extends Schema.TaggedError<Internal>(id("Internal"))("Internal", {
  message: Schema.String,
  ...Cause
}) {
  readonly [ReasonTypeId] = ReasonTypeId
  readonly isRetryable = false
  readonly httpStatus = 500
}

// ---------------------------------------------------------------------------
// The wrapper

/** Every reason a `RuntimeError` can carry. */
export const Reason = Schema.Union([
  ConfigInvalid,
  ModuleInvalid,
  DatabaseUnavailable,
  MigrationFailed,
  EmbeddedPostgresFailed,
  ServerListenFailed,
  TaskUnknown,
  TaskPayloadInvalid,
  TaskOptionsInvalid,
  TaskNotFound,
  TaskStateConflict,
  TaskStoreUnavailable,
  SourceFenced,
  ScheduleNotFound,
  Unauthorized,
  Forbidden,
  RateLimited,
  InputInvalid,
  ResourceNotFound,
  ResourceConflict,
  QueryTimeout,
  LanePassFailed,
  Internal
])
export type Reason = typeof Reason.Type

/**
 * The runtime's error. `reason` says what happened; `isRetryable` whether the
 * same call may succeed later without any change of input.
 *
 * @category errors
 */
export class RuntimeError extends Schema.TaggedError<RuntimeError>("@asterforge/runtime/RuntimeError")("RuntimeError", {
  reason: Reason
}) {
  readonly [TypeId] = TypeId
  override readonly cause = this.reason
  override get message(): string {
    return this.reason.message
  }
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }
  /** The HTTP status an API answers this error with. */
  get httpStatus(): number {
    return this.reason.httpStatus
  }
}

/** Wraps a reason. */
export const make = (reason: Reason): RuntimeError => new RuntimeError({ reason })

/** Fails with `reason` wrapped in a `RuntimeError`. */
export const fail = (reason: Reason): Effect.Effect<never, RuntimeError> => Effect.fail(new RuntimeError({ reason }))

export const isRuntimeError = (u: unknown): u is RuntimeError => Predicate.hasProperty(u, TypeId)

export const isReason = (u: unknown): u is Reason => Predicate.hasProperty(u, ReasonTypeId)

/**
 * The message of an unknown failure with the messages of its causes, outermost
 * first (`Migration "3_x" failed: PgConnection: Query failed: relation "x" does
 * not exist`), each said once.
 */
export const messageOf = (e: unknown): string => {
  const parts: Array<string> = []
  let current: unknown = e
  for (let depth = 0; depth < 6 && current !== undefined && current !== null; depth++) {
    const text =
      current instanceof Error || (typeof current === "object" && typeof (current as { message?: unknown }).message === "string")
        ? String((current as { message: string }).message)
        : depth === 0
          ? String(current)
          : ""
    if (text !== "" && !parts.some((p) => p.includes(text))) parts.push(text)
    current = typeof current === "object" ? (current as { cause?: unknown }).cause : undefined
  }
  return parts.join(": ")
}
