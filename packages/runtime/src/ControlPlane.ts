/**
 * ControlPlane: what operators read and do, for the admin HTTP API and the
 * `asterforge` admin commands alike.
 *
 * Tasks (a filtered list with keyset pages, a task with its errors and audit
 * trail, retry, cancel, delete, enqueue by name, bulk actions), queues (depth,
 * throughput, pause and resume), nodes, lanes, the audit trail, the
 * presentation catalogue of codes, and API tokens. Every query is bounded (a
 * page size, `control.statement_timeout` per request) and index-backed, so the
 * control plane never hurts the database the queue runs on; every action is
 * audited with the caller as actor.
 *
 * The service needs only the database, the audit log, the task queue and the
 * registry: the CLI builds it without a node running.
 *
 * @since 0.3.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
import { AuditLog } from "./AuditLog.ts"
import * as Health from "./Health.ts"
import * as QueueSettingsSql from "./internal/sql/queueSettings.ts"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import type { Deps } from "./control/Context.ts"
import type * as Models from "./control/Models.ts"
import * as Tasks from "./control/Tasks.ts"
import * as Tokens from "./control/Tokens.ts"
import * as Views from "./control/Views.ts"
import type { RuntimeError } from "./RuntimeError.ts"
import { TaskQueue } from "./TaskQueue.ts"
import { TaskRegistry } from "./TaskRegistry.ts"

export * as Models from "./control/Models.ts"

const span = ConfigSchema.Duration({ minimum: "1 minute", maximum: "30 days" })

/**
 * `[control]`: the admin API and commands: query bounds, bulk actions,
 * browser sessions, failed-login limits.
 *
 * @category config
 */
export const Config = ConfigSection.make(
  "control",
  {
    statementTimeout: ConfigSection.key(ConfigSchema.Duration({ minimum: "100 millis", maximum: "10 minutes" }), {
      default: "5 seconds",
      doc: "statement timeout of every admin API / CLI query (a query that runs longer answers 422 QueryTimeout)"
    }),
    pageSize: ConfigSection.key(ConfigSchema.Int(1, 1000), { default: 500, doc: "largest page a list returns" }),
    bulkCap: ConfigSection.key(ConfigSchema.Int(1, 1_000_000), { default: 10_000, doc: "most tasks one bulk action acts on" }),
    bulkBatchSize: ConfigSection.key(ConfigSchema.Int(1, 10_000), {
      default: 500,
      doc: "tasks per statement of a bulk action (each its own short transaction)"
    }),
    sessionTtl: ConfigSection.key(span, { default: "12 hours", doc: "a browser session ends this long after sign-in" }),
    sessionIdleTimeout: ConfigSection.key(span, { default: "1 hour", doc: "a browser session unused this long ends" }),
    secureCookies: ConfigSection.key(ConfigSchema.Literals(["auto", "always", "never"]), {
      default: "auto",
      doc: "Secure flag of the session cookie: auto = when the request came over TLS or with X-Forwarded-Proto: https"
    }),
    loginMaxFailures: ConfigSection.key(ConfigSchema.Int(1, 100_000), {
      default: 10,
      doc: "failed logins a client (IP address) may make within login_window before it gets 429 (per node)"
    }),
    loginWindow: ConfigSection.key(span, { default: "5 minutes", doc: "the window failed logins are counted in" }),
    maxBodyBytes: ConfigSection.key(ConfigSchema.Int(1024, 64 * 1024 * 1024), {
      default: 1024 * 1024,
      doc: "largest request body the admin API reads (413 beyond)"
    })
  },
  {
    check: (c) =>
      Duration.isGreaterThan(c.sessionIdleTimeout, c.sessionTtl)
        ? [{ key: "control.session_idle_timeout", message: "must not be longer than control.session_ttl" }]
        : []
  }
)
export type Config = ConfigSection.TypeOf<typeof Config>

/** A page request: `limit` (at most `control.page_size`) and the previous page's `next`. */
export interface PageRequest {
  readonly limit?: number | undefined
  readonly cursor?: string | undefined
}

/** A task filter as callers build it (query parameters, CLI flags): absent and undefined fields do not narrow. */
export type TaskFilterInput = { readonly [K in keyof Models.TaskFilter]?: Models.TaskFilter[K] | undefined }

/** Audit list filters; dates are ISO text (`Models.DateTimeText`). */
export interface AuditFilter {
  readonly code?: string | undefined
  readonly actor?: string | undefined
  readonly subject?: string | undefined
  readonly from?: string | undefined
  readonly to?: string | undefined
}

/**
 * Every operation fails with a `RuntimeError` whose reason gives the HTTP
 * status: `TaskNotFound` 404, `TaskStateConflict` 409, `TaskPayloadInvalid`
 * 422, `InputInvalid` 400, `QueryTimeout` 422, `TaskStoreUnavailable` 503, ...
 * `actor` is who acts, as the audit trail shows it (`token:ops`).
 *
 * @category models
 */
export interface ControlPlaneShape {
  readonly listTasks: (filter: TaskFilterInput, page: PageRequest) => Effect.Effect<Models.TaskPage, RuntimeError>
  readonly getTask: (id: string) => Effect.Effect<Models.TaskDetail, RuntimeError>
  readonly retryTask: (id: string, actor: string) => Effect.Effect<Models.TaskChanged, RuntimeError>
  readonly cancelTask: (id: string, actor: string) => Effect.Effect<Models.TaskChanged, RuntimeError>
  /** Finished tasks only (409 otherwise). */
  readonly deleteTask: (id: string, actor: string) => Effect.Effect<Models.TaskChanged, RuntimeError>
  /** The payload is checked by the task's Schema; a name this node does not know is `TaskPayloadInvalid` (422). */
  readonly enqueue: (request: Models.EnqueueRequest, actor: string) => Effect.Effect<Models.Enqueued, RuntimeError>
  readonly bulk: (request: Models.BulkRequest, actor: string) => Effect.Effect<Models.BulkResult, RuntimeError>
  /** Every known queue with its depth, throughput over the last `minutes` and pause state. */
  readonly queues: (options: { readonly minutes: number }) => Effect.Effect<Models.QueueList, RuntimeError>
  /** Pauses (no node claims its tasks; enqueue still works) or resumes a queue. */
  readonly setPaused: (queue: string, paused: boolean, actor: string) => Effect.Effect<Models.QueueChanged, RuntimeError>
  readonly nodes: (options: { readonly includeStopped: boolean }) => Effect.Effect<ReadonlyArray<Models.NodeView>, RuntimeError>
  readonly lanes: Effect.Effect<ReadonlyArray<Models.LaneView>, RuntimeError>
  readonly audit: (filter: AuditFilter, page: PageRequest) => Effect.Effect<Models.AuditPage, RuntimeError>
  readonly codes: Effect.Effect<Models.Codes>
  /** Running tasks whose lease expired long ago and was not rescued. */
  readonly stuckLeases: Effect.Effect<Models.StuckLeases, RuntimeError>
  /** A new API token; the result carries the token itself, the only time it is shown. */
  readonly createToken: (request: Models.CreateTokenRequest, actor: string) => Effect.Effect<Models.TokenCreated, RuntimeError>
  readonly listTokens: (options: { readonly includeRevoked: boolean }) => Effect.Effect<ReadonlyArray<Models.TokenView>, RuntimeError>
  /** Revokes the live token of that name; its browser sessions end. */
  readonly revokeToken: (name: string, actor: string) => Effect.Effect<Models.TokenView, RuntimeError>
}

/**
 * The control plane's operations.
 *
 * @category services
 */
export class ControlPlane extends Context.Service<ControlPlane, ControlPlaneShape>()("@asterforge/runtime/ControlPlane") {}

/** The operations over these services (the HTTP layer's authentication uses the token part too). */
export const make = (deps: Deps): ControlPlaneShape => {
  const tasks = Tasks.make(deps)
  const views = Views.make(deps)
  const tokens = Tokens.make(deps)
  return {
    listTasks: tasks.list,
    getTask: tasks.get,
    retryTask: tasks.retry,
    cancelTask: tasks.cancel,
    deleteTask: tasks.remove,
    enqueue: tasks.enqueue,
    bulk: tasks.bulk,
    queues: views.queues,
    setPaused: views.setPaused,
    nodes: views.nodes,
    lanes: views.lanes,
    audit: views.audit,
    codes: views.codes,
    stuckLeases: views.stuckLeases,
    createToken: tokens.create,
    listTokens: tokens.list,
    revokeToken: tokens.revoke
  }
}

/** The services the control plane runs on, from the context. */
export const deps: Effect.Effect<Deps, never, SqlClient.SqlClient | AuditLog | TaskQueue | TaskRegistry | ConfigSection.Tag<"control">> =
  Effect.gen(function* () {
    const config = yield* Config
    return {
      sql: yield* SqlClient.SqlClient,
      audit: yield* AuditLog,
      queue: yield* TaskQueue,
      registry: yield* TaskRegistry,
      options: {
        statementTimeout: config.statementTimeout,
        bulkCap: config.bulkCap,
        bulkBatchSize: config.bulkBatchSize,
        pageSize: config.pageSize
      }
    }
  })

/**
 * The control plane on the node's (or the CLI's) database.
 *
 * @category layers
 */
export const layer: Layer.Layer<
  ControlPlane,
  never,
  SqlClient.SqlClient | AuditLog | TaskQueue | TaskRegistry | ConfigSection.Tag<"control">
> = Layer.effect(ControlPlane, Effect.map(deps, make))

/**
 * A readiness check (`queues`) that shows the paused queues: it passes (a
 * paused queue is an operator's choice, not a fault) and lists them, so a
 * node's `/health/ready` says why its dispatcher claims nothing there.
 *
 * @category layers
 */
export const layerReadiness: Layer.Layer<never, never, SqlClient.SqlClient | Health.HealthRegistry> = Layer.effectDiscard(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const registry = yield* Health.HealthRegistry
    yield* registry.register({
      name: "queues",
      check: Effect.map(QueueSettingsSql.paused(sql), (rows) =>
        Health.pass(rows.length === 0 ? "no queue is paused" : `paused: ${rows.map((r) => r.queue).join(", ")}`, {
          paused: rows.map((r) => ({ queue: r.queue, by: r.changed_by, since: r.changed_at.toISOString() }))
        })
      )
    })
  })
)
