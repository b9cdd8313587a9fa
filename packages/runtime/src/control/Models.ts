/**
 * The control plane's data, as Schemas: what the admin API takes and answers
 * (and so what its OpenAPI document describes), and what `asterforge ... --json`
 * prints. One declaration serves the HTTP API, its document and the CLI.
 *
 * Inputs are strict where the database would otherwise refuse them: ids within
 * bigint, names and codes by pattern, free text without control characters or
 * broken UTF-16, JSON without NUL characters or non-finite numbers, dates
 * within what PostgreSQL stores. A bad input is a 400 with the reason, never a
 * database error.
 *
 * @since 0.3.0
 */
import * as Schema from "effect/Schema"
import * as TaskState from "../TaskState.ts"

// ---------------------------------------------------------------------------
// Inputs

const maxBigint = 9223372036854775807n

/** A task id: a positive bigint in decimal. */
export const TaskId = Schema.String.check(
  Schema.isPattern(/^[1-9][0-9]{0,18}$/u),
  Schema.makeFilter((s: string) => BigInt(s) <= maxBigint || "Expected a task id within the bigint range")
).annotate({ description: "a task id (decimal)" })

/** A queue name, as `Task.define` and `worker.queues` accept it. */
export const QueueName = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_.-]{1,64}$/u)).annotate({
  description: "a queue name: 1-64 characters of [A-Za-z0-9_.-]"
})

/** A task name, as `Task.define` accepts it (dotted lower-case words). */
export const TaskName = Schema.String.check(Schema.isMaxLength(200), Schema.isPattern(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/u)).annotate({
  description: "a task name: dotted lower-case words"
})

/** An audit code (dotted lower-case words). */
export const AuditCode = Schema.String.check(Schema.isMaxLength(200), Schema.isPattern(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/u)).annotate({
  description: "an audit code: dotted lower-case words"
})

/**
 * Free text of at most `max` characters: no control characters and no broken
 * surrogate pairs, so it is stored and compared as given.
 */
export const Text = (max: number) =>
  Schema.String.check(
    Schema.isMinLength(1),
    Schema.isMaxLength(max),
    Schema.makeFilter((s: string) => !/\p{Cc}/u.test(s) || "Expected text without control characters"),
    Schema.makeFilter((s: string) => s.isWellFormed() || "Expected well-formed text (no lone surrogates)")
  )

/** Why a JSON value cannot be stored as `jsonb` (NUL characters, broken text, non-finite numbers, deep nesting), or undefined. */
export const jsonProblem = (value: unknown, depth = 0): string | undefined => {
  if (depth > 32) return "JSON nested deeper than 32 levels"
  if (typeof value === "string")
    return value.includes("\u0000") || !value.isWellFormed() ? "JSON text with a NUL or a lone surrogate" : undefined
  if (typeof value === "number") return Number.isFinite(value) ? undefined : "a JSON number out of range"
  if (value === null || typeof value === "boolean") return undefined
  if (Array.isArray(value)) {
    for (const v of value) {
      const p = jsonProblem(v, depth + 1)
      if (p !== undefined) return p
    }
    return undefined
  }
  if (typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const p = jsonProblem(k, depth + 1) ?? jsonProblem(v, depth + 1)
      if (p !== undefined) return p
    }
    return undefined
  }
  return "not a JSON value"
}

const storableJson = Schema.makeFilter((u: unknown) => {
  const p = jsonProblem(u)
  return p === undefined || `Expected JSON that PostgreSQL stores: ${p}`
})

/** Any JSON value that `jsonb` stores. */
export const Json = Schema.Unknown.check(storableJson).annotate({ description: "any JSON value" })

/** A JSON object that `jsonb` stores. */
export const JsonObject = Schema.Record(Schema.String, Schema.Unknown).check(storableJson).annotate({ description: "a JSON object" })

const dateFrom = (s: string): Date | undefined => {
  const d = new Date(s)
  const year = d.getUTCFullYear()
  return Number.isNaN(d.getTime()) || year < 1 || year > 9999 ? undefined : d
}

/** An ISO 8601 date-time (`2026-11-29T12:00:00Z`) between the years 1 and 9999. */
export const DateTimeText = Schema.String.check(
  Schema.isMaxLength(64),
  Schema.isPattern(/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/u),
  Schema.makeFilter((s: string) => dateFrom(s) !== undefined || "Expected a date between the years 1 and 9999")
).annotate({ description: "an ISO 8601 date-time, e.g. 2026-11-29T12:00:00Z" })

/** The Date of a `DateTimeText` (already validated). */
export const toDate = (s: string): Date => dateFrom(s)!

/** A page size. */
export const Limit = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))

/** A throughput window in minutes. */
export const Minutes = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 60 }))

/** An opaque pagination cursor, as a page's `next` gave it. */
export const Cursor = Schema.String.check(Schema.isMaxLength(200), Schema.isPattern(/^[A-Za-z0-9_-]{1,200}$/u)).annotate({
  description: "the `next` of the previous page"
})

/** A task state by name. */
export const TaskStateName = Schema.Literals(TaskState.all)

/** The roles, lowest first. */
export const roles = ["viewer", "operator", "admin"] as const

/** viewer (read) < operator (retry, cancel, pause, resume, enqueue) < admin (delete, bulk, tokens). */
export const Role = Schema.Literals(roles)
export type Role = typeof Role.Type

/** The filter of task lists and bulk actions, as a JSON body (bulk) or query parameters (list). */
export const TaskFilter = Schema.Struct({
  state: Schema.optionalKey(Schema.Array(TaskStateName).check(Schema.isMaxLength(8))),
  queue: Schema.optionalKey(QueueName),
  name: Schema.optionalKey(TaskName),
  createdAfter: Schema.optionalKey(DateTimeText),
  createdBefore: Schema.optionalKey(DateTimeText),
  finishedAfter: Schema.optionalKey(DateTimeText),
  finishedBefore: Schema.optionalKey(DateTimeText),
  payload: Schema.optionalKey(JsonObject),
  errorCode: Schema.optionalKey(Text(200))
})
export type TaskFilter = typeof TaskFilter.Type

/** Enqueue by name: the payload in its encoded (JSON) form, checked by the task's Schema. */
export const EnqueueRequest = Schema.Struct({
  name: TaskName,
  payload: Json,
  queue: Schema.optionalKey(QueueName),
  priority: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: -1_000_000, maximum: 1_000_000 }))),
  runAt: Schema.optionalKey(DateTimeText),
  delaySeconds: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 315_360_000 }))),
  maxAttempts: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1_000_000 }))),
  uniqueKey: Schema.optionalKey(Text(500)),
  metadata: Schema.optionalKey(JsonObject)
})
export type EnqueueRequest = typeof EnqueueRequest.Type

/** What a bulk action does to the tasks it matches. */
export const bulkActions = ["retry", "cancel", "delete"] as const

/** A bulk action: `dryRun` (the default) counts and samples; the real run is capped by `control.bulk_cap` (and `limit`). */
export const BulkRequest = Schema.Struct({
  filter: TaskFilter,
  action: Schema.Literals(bulkActions),
  dryRun: Schema.optionalKey(Schema.Boolean),
  limit: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1_000_000 })))
})
export type BulkRequest = typeof BulkRequest.Type

/** An API token's name (its actor is `token:<name>`). */
export const TokenName = Schema.String.check(Schema.isPattern(/^[a-z0-9][a-z0-9_.-]{0,63}$/u)).annotate({
  description: "a token name: 1-64 characters of [a-z0-9_.-]"
})

/** A duration such as `30d`, `12h`, `90m`: how long a new token is valid. */
export const ExpiresIn = Schema.String.check(Schema.isPattern(/^[1-9][0-9]{0,5}(m|h|d)$/u)).annotate({
  description: "minutes, hours or days, e.g. 90m, 12h, 30d"
})

/** A new API token: its name, role and optional validity. */
export const CreateTokenRequest = Schema.Struct({ name: TokenName, role: Role, expiresIn: Schema.optionalKey(ExpiresIn) })
export type CreateTokenRequest = typeof CreateTokenRequest.Type

/** Sign-in with a token (the admin token or an API token). */
export const SessionRequest = Schema.Struct({ token: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(512)) })

// ---------------------------------------------------------------------------
// Outputs (dates are ISO 8601 text)

const Instant = Schema.String.annotate({ description: "ISO 8601 date-time" })
const NullableInstant = Schema.NullOr(Instant)

/** One attempt's failure, with the presentation text of its code when the task's definition has one. */
export const TaskError = Schema.Struct({
  tag: Schema.String,
  message: Schema.String,
  code: Schema.NullOr(Schema.String),
  codeText: Schema.NullOr(Schema.String),
  attempt: Schema.NullOr(Schema.Int),
  at: Schema.NullOr(Schema.String),
  /** Where a defect happened: in a task's detail, for admins only; never in lists. */
  stack: Schema.optionalKey(Schema.String)
})
export type TaskError = typeof TaskError.Type

const summaryFields = {
  id: Schema.String,
  name: Schema.String,
  queue: Schema.String,
  state: TaskStateName,
  priority: Schema.Int,
  runAt: Instant,
  attempt: Schema.Int,
  maxAttempts: Schema.Int,
  lastError: Schema.NullOr(TaskError),
  leaseOwner: Schema.NullOr(Schema.String),
  createdAt: Instant,
  attemptedAt: NullableInstant,
  finishedAt: NullableInstant
}

/** A task in a list: no payload or result. */
export const TaskSummary = Schema.Struct(summaryFields)
export type TaskSummary = typeof TaskSummary.Type

/** One page of tasks; `next` is the cursor of the following page (null on the last). */
export const TaskPage = Schema.Struct({ items: Schema.Array(TaskSummary), next: Schema.NullOr(Schema.String) })
export type TaskPage = typeof TaskPage.Type

/** An audit event with its code's presentation title. */
export const AuditEntry = Schema.Struct({
  id: Schema.String,
  code: Schema.String,
  title: Schema.NullOr(Schema.String),
  actor: Schema.String,
  subject: Schema.NullOr(Schema.String),
  details: Schema.Record(Schema.String, Schema.Unknown),
  at: Instant,
  nodeId: Schema.NullOr(Schema.String)
})
export type AuditEntry = typeof AuditEntry.Type

/** One page of audit events; `next` is the cursor of the following page (null on the last). */
export const AuditPage = Schema.Struct({ items: Schema.Array(AuditEntry), next: Schema.NullOr(Schema.String) })
export type AuditPage = typeof AuditPage.Type

/** A task with everything: payload, result, every attempt's error, lease and its audit trail (newest first). */
export const TaskDetail = Schema.Struct({
  ...summaryFields,
  payload: Schema.Unknown,
  payloadVersion: Schema.Int,
  result: Schema.Unknown,
  errors: Schema.Array(TaskError),
  uniqueKey: Schema.NullOr(Schema.String),
  deadline: NullableInstant,
  metadata: Schema.Record(Schema.String, Schema.Unknown),
  leaseEpoch: Schema.Int,
  cancelRequested: Schema.Boolean,
  callbackExpiresAt: NullableInstant,
  audit: Schema.Array(AuditEntry)
})
export type TaskDetail = typeof TaskDetail.Type

/** An enqueued task; `existing` when a task holding its unique key was returned instead. */
export const Enqueued = Schema.Struct({ id: Schema.String, existing: Schema.Boolean })
export type Enqueued = typeof Enqueued.Type

/** A task's state after an action. */
export const TaskChanged = Schema.Struct({ id: Schema.String, state: TaskStateName })
export type TaskChanged = typeof TaskChanged.Type

/** What a bulk action did (or, dry run, would do), with a sample of its tasks (dry run). */
export const BulkResult = Schema.Struct({
  action: Schema.Literals(bulkActions),
  dryRun: Schema.Boolean,
  /** Tasks acted on (real run), or that would be (dry run, counted up to the cap + 1). */
  count: Schema.Int,
  /** More tasks match than the cap allows in one run. */
  capped: Schema.Boolean,
  cap: Schema.Int,
  sample: Schema.Array(TaskSummary)
})
export type BulkResult = typeof BulkResult.Type

/** Tasks finished in one minute, by outcome. */
export const Throughput = Schema.Struct({ minute: Instant, succeeded: Schema.Int, failed: Schema.Int, cancelled: Schema.Int })

/** A queue as the queues view shows it. */
export const QueueView = Schema.Struct({
  name: Schema.String,
  paused: Schema.Boolean,
  changedBy: Schema.NullOr(Schema.String),
  changedAt: NullableInstant,
  /** Tasks by state, as of the last queue_stats pass (finished states: within its window). */
  depth: Schema.Record(Schema.String, Schema.Int),
  oldestAvailableAgeSeconds: Schema.NullOr(Schema.Int),
  statsRefreshedAt: NullableInstant,
  throughput: Schema.Array(Throughput)
})
export type QueueView = typeof QueueView.Type

/** Every known queue; `minutes` is the throughput window. */
export const QueueList = Schema.Struct({ items: Schema.Array(QueueView), minutes: Schema.Int })
export type QueueList = typeof QueueList.Type

/** A queue after pause or resume; `changed` is false when it already was so. */
export const QueueChanged = Schema.Struct({ name: Schema.String, paused: Schema.Boolean, changed: Schema.Boolean })
export type QueueChanged = typeof QueueChanged.Type

/** A node: its identity, role, liveness, the leases it holds and the lanes it leads. */
export const NodeView = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  mode: Schema.String,
  role: Schema.Struct({ fullApi: Schema.Boolean, dispatches: Schema.Boolean, runsLanes: Schema.Boolean }),
  host: Schema.String,
  pid: Schema.Int,
  version: Schema.String,
  status: Schema.String,
  startedAt: Instant,
  heartbeatAt: Instant,
  stoppedAt: NullableInstant,
  leases: Schema.Int,
  lanes: Schema.Array(Schema.String)
})
export type NodeView = typeof NodeView.Type

/** The nodes view. */
export const NodeList = Schema.Struct({ items: Schema.Array(NodeView) })

/** A lane as its last leader recorded it. */
export const LaneView = Schema.Struct({
  lane: Schema.String,
  leaderNodeId: Schema.NullOr(Schema.String),
  leaderNodeName: Schema.NullOr(Schema.String),
  leaderStatus: Schema.NullOr(Schema.String),
  epoch: Schema.Int,
  electedAt: NullableInstant,
  lastRunAt: NullableInstant,
  intervalMs: Schema.NullOr(Schema.Int),
  lastDurationMs: Schema.NullOr(Schema.Int),
  lastCounts: Schema.NullOr(Schema.Record(Schema.String, Schema.Int)),
  lastError: Schema.NullOr(Schema.String),
  lastErrorAt: NullableInstant
})
export type LaneView = typeof LaneView.Type

/** The lanes view. */
export const LaneList = Schema.Struct({ items: Schema.Array(LaneView) })

/** The presentation catalogue: audit codes, and each registered task's failure codes. */
export const Codes = Schema.Struct({
  audit: Schema.Array(
    Schema.Struct({ code: Schema.String, title: Schema.String, description: Schema.String, subject: Schema.NullOr(Schema.String) })
  ),
  tasks: Schema.Array(
    Schema.Struct({
      task: Schema.String,
      queue: Schema.String,
      codes: Schema.Array(Schema.Struct({ code: Schema.String, text: Schema.String }))
    })
  ),
  failures: Schema.Array(Schema.Struct({ tag: Schema.String, text: Schema.String }))
})
export type Codes = typeof Codes.Type

/** An API token as lists show it: never the token or its hash. */
export const TokenView = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  role: Role,
  prefix: Schema.String,
  createdBy: Schema.String,
  createdAt: Instant,
  expiresAt: NullableInstant,
  lastUsedAt: NullableInstant,
  revokedAt: NullableInstant
})
export type TokenView = typeof TokenView.Type

/** The API tokens view. */
export const TokenList = Schema.Struct({ items: Schema.Array(TokenView) })

/** A new token: `token` is shown this once and never stored. */
export const TokenCreated = Schema.Struct({ ...TokenView.fields, token: Schema.String })
export type TokenCreated = typeof TokenCreated.Type

/** The sign-in methods this node offers, for a login screen (no credentials needed). */
export const LoginMethods = Schema.Struct({
  token: Schema.Boolean,
  /** Set when `[security.oidc]` is configured: `label` names the provider (its issuer's host). */
  oidc: Schema.NullOr(Schema.Struct({ label: Schema.String, url: Schema.String }))
})
export type LoginMethods = typeof LoginMethods.Type

/** Running tasks whose lease expired over a minute ago and that no lease rescue has taken back. */
export const StuckLeases = Schema.Struct({
  count: Schema.Int,
  oldestExpiredAt: NullableInstant,
  /** How long past its expiry a lease counts as stuck. */
  afterSeconds: Schema.Int
})
export type StuckLeases = typeof StuckLeases.Type

/** What is unhealthy, for an overview: the serving node's readiness checks and stuck leases. */
export const SystemHealth = Schema.Struct({
  node: Schema.Struct({ id: Schema.String, name: Schema.String, mode: Schema.String }),
  ready: Schema.Boolean,
  checks: Schema.Array(
    Schema.Struct({ name: Schema.String, status: Schema.Literals(["pass", "fail"]), detail: Schema.NullOr(Schema.String) })
  ),
  stuckLeases: StuckLeases
})
export type SystemHealth = typeof SystemHealth.Type

/** A dashboard's data in one answer: health, queues, running nodes and lanes. */
export const Overview = Schema.Struct({
  health: SystemHealth,
  queues: QueueList,
  nodes: Schema.Array(NodeView),
  lanes: Schema.Array(LaneView)
})
export type Overview = typeof Overview.Type

/** Who the caller is. `csrfToken`: send it as `X-CSRF-Token` with every write made with the session cookie. */
export const SessionView = Schema.Struct({
  actor: Schema.String,
  role: Role,
  via: Schema.Literals(["admin_token", "api_token", "session"]),
  csrfToken: Schema.NullOr(Schema.String),
  expiresAt: NullableInstant
})
export type SessionView = typeof SessionView.Type
