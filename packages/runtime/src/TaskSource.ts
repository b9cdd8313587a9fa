/**
 * TaskSource: the contract of everything that turns outside events into tasks.
 *
 * The flow of the runtime is: sources produce tasks -> queues -> workers ->
 * handlers. A source is a named producer that a module registers in its
 * `sources`; the runtime (`SourceRunner`) runs it on the nodes its placement
 * names, for the life of the node, and stops it first on shutdown (before the
 * dispatcher drains), so nothing is published into a node that is going away.
 *
 * - `placement: "every-node"`: runs on every node (a webhook route is served by
 *   every node with the full API).
 * - `placement: "leader"`: runs on one node at a time among the nodes that run
 *   lanes (primary, maintenance), elected by `Leadership` like a lane under the
 *   key `source:<name>`; what it publishes is fenced on that epoch, so a node
 *   that lost the lead publishes nothing.
 *
 * A source publishes through its `Publisher`: `publish(definition, items)`
 * enqueues one task per item in one statement, each under the unique key
 * `<source>:<item key>`, so a source that reads the same event again (a mail
 * still unread, a webhook retried, a fire claimed twice) gets the task that
 * already holds the key instead of a second one. The publish span is where the
 * task's trace starts (source -> queue -> worker -> handler, one trace). A
 * batch is committed whole or not at all.
 *
 * Built-in sources: `CronSource` (cron expressions with a time zone, or
 * intervals), `WebhookSource` (`POST /hooks/<name>`, HMAC-signed) and
 * `PollingSource` (call an effect every interval, enqueue what it returns).
 * The mail-order bot adds IMAP polling and IDLE on the same contract.
 *
 * @since 0.3.0
 */
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as HttpRouter from "effect/http/HttpRouter"
import type * as Statement from "effect/sql/Statement"
import type { RuntimeError } from "./RuntimeError.ts"
import type * as Task from "./Task.ts"
import type * as TaskQueue from "./TaskQueue.ts"

/**
 * Where a source runs: on every node, or on one node at a time (elected among
 * the nodes that run lanes).
 *
 * @category models
 */
export type Placement = "every-node" | "leader"

/**
 * One event to publish: the task's payload and the event's identity within
 * the source (a mail's UIDVALIDITY and UID, a webhook's idempotency key).
 *
 * @category models
 */
export interface Publication<P> {
  readonly payload: P
  /** Unique within the source; the task's unique key is `<source>:<key>`. */
  readonly key: string
  /** Enqueue options besides the unique key (delay, priority, queue, metadata...). */
  readonly options?: Omit<TaskQueue.EnqueueOptions, "uniqueKey"> | undefined
}

/**
 * What a running source is given: how it publishes, and how it reports.
 *
 * @category models
 */
export interface Publisher {
  readonly source: string
  /** This node's id (recorded with what it publishes, as `metadata.node`). */
  readonly node: string
  /** The leadership epoch a leader-placed source runs under; undefined for every-node sources. */
  readonly epoch: number | undefined
  /**
   * SQL that is true only while this node still leads the source (`true` for
   * every-node sources): for a source that writes with its own statement, in
   * that statement's WHERE clause (see `CronSource`).
   */
  readonly fence: Statement.Fragment
  /** The task's unique key for an event key: `<source>:<key>`. */
  readonly uniqueKey: (key: string) => string
  /**
   * Enqueues one task per item in one statement (in one transaction with the
   * fence, for a leader-placed source; `SourceFenced` and nothing written when
   * the lead is gone). Counts, metrics and the last event are recorded.
   */
  readonly publish: <P>(
    definition: Task.Definition<P, any>,
    items: ReadonlyArray<Publication<P>>
  ) => Effect.Effect<ReadonlyArray<TaskQueue.Enqueued>, RuntimeError>
  /** For a source that inserted tasks with its own statement: counts them like `publish` does. */
  readonly published: (enqueued: ReadonlyArray<TaskQueue.Enqueued>) => Effect.Effect<void>
  /** Records that the source did something (a poll, a scan, a request), for status and metrics. */
  readonly event: Effect.Effect<void>
  /** Replaces the source's own facts shown in `/health/ready` (a schedule's next fire). */
  readonly report: (details: Readonly<Record<string, unknown>>) => Effect.Effect<void>
}

/**
 * A source. `R` is what it needs besides its publisher; `ApplicationModule.make`
 * checks once that the runtime (and the module's configuration) provides it.
 *
 * @category models
 */
export interface TaskSource<R = never> {
  /** Lower-case words (`reports.nightly`, `github-push`); the metrics' `source` label, the leadership key `source:<name>`. */
  readonly name: string
  /** What kind of source it is (`cron`, `webhook`, `polling`, `imap`), for status views. */
  readonly kind: string
  readonly placement: Placement
  /**
   * The producer: runs while the source is placed on this node, until it is
   * interrupted. A failure (or defect) is logged, counted and the run is
   * started again after a backoff; a run that returns is finished.
   */
  readonly run?: ((publisher: Publisher) => Effect.Effect<void, unknown, R>) | undefined
  /** HTTP routes of the source, served by nodes with the full API (a webhook's `POST /hooks/<name>`). */
  readonly routes?: ((publisher: Publisher) => Layer.Layer<never, never, HttpRouter.HttpRouter | R>) | undefined
}

/** Any source, whatever it requires. */
export type Any = TaskSource<any>

const namePattern = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$/

/** Whether `name` may name a source. */
export const isValidName = (name: string): boolean => namePattern.test(name) && name.length <= 100

/**
 * Declares a source, checked at definition time: a bad one is a programming
 * error, thrown with its name and every problem.
 *
 * @category constructors
 */
export const make = <R = never>(source: TaskSource<R>): TaskSource<R> => {
  const problems: Array<string> = []
  if (!isValidName(source.name)) problems.push("name must be lower-case words (letters, digits, _ or -) separated by dots, at most 100")
  if (source.placement !== "every-node" && source.placement !== "leader") problems.push('placement must be "every-node" or "leader"')
  if (source.run === undefined && source.routes === undefined) problems.push("a source needs a run, routes, or both")
  if (problems.length > 0) throw new Error(`invalid source ${JSON.stringify(source.name)}: ${problems.join("; ")}`)
  return source
}

/** The leadership key of a leader-placed source (lane names cannot contain `:`, so the two never meet). */
export const leadershipKey = (name: string): string => `source:${name}`
