/**
 * AuditEvents: the catalogue of every audit code the runtime emits.
 *
 * One entry per code: its meaning for people (`title`, `description`: the
 * presentation text admin screens show), what its subject names, and a Schema
 * for its details. Each entry is also the typed constructor every emitter
 * uses, so one code always carries the same details wherever it is recorded:
 *
 * ```ts
 * yield* audit.record(AuditEvents.taskFailed({ actor, subject: task.id, details: { ... } }))
 * ```
 *
 * Applications define their own codes the same way (`AuditEvents.define`).
 *
 * @since 0.2.0
 */
import * as Schema from "effect/Schema"
import type { AuditEvent } from "./AuditLog.ts"

/** What an event's subject is: rendered as `<kind>:<id>` (`task:42`, `node:<uuid>`). */
export type SubjectKind = "task" | "node" | "lane" | "queue" | "config" | "token" | "session" | "schedule"

export interface Definition<D extends Schema.Top> {
  /** Stable dotted code, stored in `audit_events.code`. */
  readonly code: string
  /** Short presentation text: "Task failed". */
  readonly title: string
  /** One sentence on what happened and what it means. */
  readonly description: string
  readonly subject: SubjectKind | undefined
  readonly details: D
}

/** A catalogue entry that is also the event's constructor. */
export interface EventType<D extends Schema.Top> extends Definition<D> {
  (input: {
    readonly actor: string
    readonly subject?: string | undefined
    readonly details: D["Type"]
    readonly at?: Date | undefined
  }): AuditEvent
}

const codePattern = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/

/**
 * Defines an audit code: its presentation text, subject kind and details
 * Schema; the result builds events of that code.
 *
 * @category constructors
 */
export const define = <D extends Schema.Top>(
  code: string,
  options: Omit<Definition<D>, "code" | "subject"> & { readonly subject?: SubjectKind }
): EventType<D> => {
  if (!codePattern.test(code)) throw new Error(`audit code ${JSON.stringify(code)} must be dotted lower-case words, e.g. "order.created"`)
  const make = (input: Parameters<EventType<D>>[0]): AuditEvent => ({
    code,
    actor: input.actor,
    ...(input.subject === undefined
      ? {}
      : { subject: options.subject === undefined ? input.subject : `${options.subject}:${input.subject}` }),
    details: input.details as AuditEvent["details"],
    ...(input.at === undefined ? {} : { at: input.at })
  })
  return Object.assign(make, {
    code,
    title: options.title,
    description: options.description,
    subject: options.subject,
    details: options.details
  })
}

/** Who did it: the vocabulary of `actor`. */
export const actors = {
  system: "system",
  callback: "callback",
  node: (id: string) => `node:${id}`,
  lane: (name: string) => `lane:${name}`,
  user: (name: string) => `user:${name}`,
  /** The configured `security.admin_token`. */
  adminToken: "admin_token",
  /** An API token, by its name. */
  token: (name: string) => `token:${name}`,
  /** A user who logged in through the OIDC provider, by e-mail (or subject). */
  oidc: (who: string) => `oidc:${who}`,
  /** A caller whose credentials were refused (failed logins). */
  anonymous: "anonymous",
  /** An operator at the `asterforge` command line, by OS user name. */
  cli: (user: string) => `cli:${user}`
} as const

// ---------------------------------------------------------------------------
// Nodes and configuration

export const nodeStarted = define("node.started", {
  title: "Node started",
  description: "A node process registered itself and began serving its role.",
  subject: "node",
  details: Schema.Struct({ name: Schema.String, mode: Schema.String, host: Schema.String, pid: Schema.Int, version: Schema.String })
})

export const nodeStopped = define("node.stopped", {
  title: "Node stopped",
  description: "A node shut down gracefully: its work was drained or handed back.",
  subject: "node",
  details: Schema.Struct({ mode: Schema.String })
})

export const nodeDeclaredDead = define("node.declared_dead", {
  title: "Node declared dead",
  description: "A node stopped heartbeating; the liveness lane marked it dead and released its tasks.",
  subject: "node",
  details: Schema.Struct({ name: Schema.String, mode: Schema.String, host: Schema.String, pid: Schema.Int, heartbeatAt: Schema.String })
})

export const nodeFoundDead = define("node.found_dead", {
  title: "Node stopped: declared dead while alive",
  description:
    "A node found its own row declared dead (it had been silent, e.g. paused or cut off) and stopped itself for its supervisor to restart it.",
  subject: "node",
  details: Schema.Struct({ mode: Schema.String, lastHeartbeatAt: Schema.String })
})

const Change = Schema.Struct({ key: Schema.String, from: Schema.String, to: Schema.String })

export const configReloaded = define("config.reloaded", {
  title: "Configuration reloaded",
  description: "A changed config file was applied without a restart (reloadable keys only).",
  details: Schema.Struct({ applied: Schema.Array(Change), ignored: Schema.Array(Schema.String) })
})

export const configReloadRejected = define("config.reload_rejected", {
  title: "Configuration reload rejected",
  description: "A changed config file did not validate; the node keeps its running configuration.",
  details: Schema.Struct({ problems: Schema.Array(Schema.Struct({ key: Schema.String, message: Schema.String })) })
})

// ---------------------------------------------------------------------------
// Tasks

/** Why a task failed: the `tag` of its last `errors` entry (`Terminal`, `LeaseExpired`, ...). */
export const taskFailed = define("task.failed", {
  title: "Task failed",
  description: "A task failed for good: a terminal failure, or its last attempt failed (exhausted).",
  subject: "task",
  details: Schema.Struct({
    name: Schema.String,
    attempt: Schema.Int,
    tag: Schema.String,
    message: Schema.String,
    code: Schema.NullOr(Schema.String),
    exhausted: Schema.Boolean
  })
})

export const taskRetried = define("task.retried", {
  title: "Task retried",
  description: "An operator sent a failed or cancelled task back to available with a fresh attempt budget.",
  subject: "task",
  details: Schema.Struct({ name: Schema.String, previous: Schema.String })
})

export const taskCancelled = define("task.cancelled", {
  title: "Task cancelled",
  description: "A task was cancelled on request; a running handler was interrupted first.",
  subject: "task",
  details: Schema.Struct({ name: Schema.String, previous: Schema.String, attempt: Schema.Int })
})

export const taskInterrupted = define("task.interrupted", {
  title: "Task handed back",
  description: "A running handler was interrupted (usually by a shutdown); the task went back to available without using an attempt.",
  subject: "task",
  details: Schema.Struct({ name: Schema.String, attempt: Schema.Int, reason: Schema.Literals(["shutdown", "interrupted"]) })
})

export const taskStaleResultRejected = define("task.stale_result_rejected", {
  title: "Stale result refused",
  description: "A worker reported a result under a lease that had moved on (rescued elsewhere); the result was not stored.",
  subject: "task",
  details: Schema.Struct({ name: Schema.String, epoch: Schema.Int, outcome: Schema.String })
})

export const taskCallbackReceived = define("task.callback_received", {
  title: "Callback received",
  description: "An external system completed or failed a task parked for a callback.",
  subject: "task",
  details: Schema.Struct({ name: Schema.String, state: Schema.String })
})

export const taskDeleted = define("task.deleted", {
  title: "Task deleted",
  description: "An operator deleted a finished task and its history before the pruning lane would have.",
  subject: "task",
  details: Schema.Struct({ name: Schema.String, state: Schema.String })
})

export const taskEnqueued = define("task.enqueued", {
  title: "Task enqueued by an operator",
  description: "An operator enqueued a task through the admin API (or found the task holding its unique key).",
  subject: "task",
  details: Schema.Struct({ name: Schema.String, existing: Schema.Boolean })
})

// ---------------------------------------------------------------------------
// Schedules (CronSource)

export const schedulePaused = define("schedule.paused", {
  title: "Schedule paused",
  description: "An operator paused a schedule: its fires are not enqueued until it is resumed.",
  subject: "schedule",
  details: Schema.Struct({ spec: Schema.String })
})

export const scheduleResumed = define("schedule.resumed", {
  title: "Schedule resumed",
  description: "An operator resumed a schedule; the fires that fell in the pause are skipped.",
  subject: "schedule",
  details: Schema.Struct({ spec: Schema.String })
})

export const scheduleTriggered = define("schedule.triggered", {
  title: "Schedule triggered",
  description: "An operator ran a schedule's task now, outside its cadence (which is unchanged).",
  subject: "schedule",
  details: Schema.Struct({ task: Schema.String, taskId: Schema.String })
})

// ---------------------------------------------------------------------------
// Control plane

/** The filter and outcome of a bulk action: audited once per action, not per task. */
const BulkDetails = Schema.Struct({ filter: Schema.JsonObject, count: Schema.Int, capped: Schema.Boolean })

export const tasksBulkRetried = define("tasks.bulk_retried", {
  title: "Tasks retried in bulk",
  description: "An operator sent every failed or cancelled task matching a filter back to available (up to the bulk cap).",
  details: BulkDetails
})

export const tasksBulkCancelled = define("tasks.bulk_cancelled", {
  title: "Tasks cancelled in bulk",
  description: "An operator cancelled every unfinished task matching a filter (up to the bulk cap); running ones were interrupted.",
  details: BulkDetails
})

export const tasksBulkDeleted = define("tasks.bulk_deleted", {
  title: "Tasks deleted in bulk",
  description: "An operator deleted every finished task matching a filter (up to the bulk cap).",
  details: BulkDetails
})

export const queuePaused = define("queue.paused", {
  title: "Queue paused",
  description: "An operator paused a queue: no node claims its tasks until it is resumed; enqueue still works.",
  subject: "queue",
  details: Schema.Struct({ wasPaused: Schema.Boolean })
})

export const queueResumed = define("queue.resumed", {
  title: "Queue resumed",
  description: "An operator resumed a paused queue: dispatchers claim its tasks again.",
  subject: "queue",
  details: Schema.Struct({ wasPaused: Schema.Boolean })
})

export const tokenCreated = define("token.created", {
  title: "API token created",
  description: "An administrator created an API token for the admin API (only its hash is stored).",
  subject: "token",
  details: Schema.Struct({ role: Schema.String, expiresAt: Schema.NullOr(Schema.String) })
})

export const tokenRevoked = define("token.revoked", {
  title: "API token revoked",
  description: "An administrator revoked an API token; the browser sessions opened with it ended too.",
  subject: "token",
  details: Schema.Struct({ role: Schema.String, sessions: Schema.Int })
})

export const sessionCreated = define("session.created", {
  title: "Signed in",
  description: "A browser session of the admin API began, opened with a token or through the OIDC provider.",
  subject: "session",
  details: Schema.Struct({ role: Schema.String, source: Schema.String, client: Schema.String })
})

export const sessionEnded = define("session.ended", {
  title: "Signed out",
  description: "A browser session of the admin API was ended by its user.",
  subject: "session",
  details: Schema.Struct({})
})

export const loginFailed = define("login.failed", {
  title: "Login failed",
  description: "A request to the admin API presented credentials that are not valid, or an OIDC login did not complete.",
  details: Schema.Struct({ reason: Schema.String, via: Schema.String, client: Schema.String })
})

/** Every code the runtime itself emits, for admin views and documentation. */
export const catalogue: ReadonlyArray<Definition<Schema.Top>> = [
  nodeStarted,
  nodeStopped,
  nodeDeclaredDead,
  nodeFoundDead,
  configReloaded,
  configReloadRejected,
  taskFailed,
  taskRetried,
  taskCancelled,
  taskInterrupted,
  taskStaleResultRejected,
  taskCallbackReceived,
  schedulePaused,
  scheduleResumed,
  scheduleTriggered,
  taskDeleted,
  taskEnqueued,
  tasksBulkRetried,
  tasksBulkCancelled,
  tasksBulkDeleted,
  queuePaused,
  queueResumed,
  tokenCreated,
  tokenRevoked,
  sessionCreated,
  sessionEnded,
  loginFailed
]
