/**
 * SQL for the control plane's read views of the small tables (nodes, lanes,
 * queue statistics) and of the audit trail, and `bounded`, the per-request
 * statement timeout every admin query runs under.
 *
 * Status views read what lanes keep up to date (`queue_stats`, `lane_leaders`)
 * and never count the tasks table on request; the only task scans here are
 * the running tasks per node (through `tasks_running_expiry`) and the
 * throughput of the last minutes (through `tasks_finished_at`), both bounded
 * by what they cover.
 */
import * as Effect from "effect/Effect"
import type * as SqlClient from "effect/sql/SqlClient"
import * as TaskState from "../../TaskState.ts"
import { interval, states } from "./shared.ts"
import type * as NodesSql from "./nodes.ts"

/**
 * Runs `effect` in a transaction whose statements time out after
 * `timeoutMs` (`SET LOCAL statement_timeout`), so an admin query can never run
 * long on the database the queue runs on. A timeout fails with SQLSTATE 57014.
 */
export const bounded = <A, E, R>(sql: SqlClient.SqlClient, timeoutMs: number, effect: Effect.Effect<A, E, R>) =>
  sql.withTransaction(Effect.andThen(sql`SELECT set_config('statement_timeout', ${String(Math.round(timeoutMs))}, true)`, effect))

/** A node as the nodes view shows it, with the leases (running tasks) it holds and the lanes it leads. */
export interface NodeRow extends Omit<NodesSql.Row, "heartbeat_interval_ms"> {
  readonly leases: number
  readonly lanes: ReadonlyArray<string>
}

/** Running nodes first, then the most recently seen; leases counted through `tasks_running_expiry`. */
export const nodes = (sql: SqlClient.SqlClient, options: { readonly limit: number; readonly includeStopped: boolean }) =>
  sql<NodeRow>`
    WITH leases AS (SELECT lease_owner, count(*) AS n FROM tasks WHERE state = 'running' GROUP BY lease_owner)
    SELECT n.id::text AS id, n.name, n.mode, n.host, n.pid, n.version, n.status, n.started_at, n.heartbeat_at, n.stopped_at,
           coalesce((SELECT l.n FROM leases l WHERE l.lease_owner = n.id), 0)::int AS leases,
           coalesce((SELECT array_agg(ll.lane ORDER BY ll.lane) FROM lane_leaders ll WHERE ll.node_id = n.id), '{}') AS lanes
    FROM nodes n
    WHERE ${options.includeStopped} OR n.status = 'running'
    ORDER BY n.status <> 'running', n.heartbeat_at DESC
    LIMIT ${options.limit}`

/** A lane as its last leader recorded it. */
export interface LaneRow {
  readonly lane: string
  readonly epoch: string
  readonly node_id: string | null
  readonly node_name: string | null
  readonly node_status: string | null
  readonly elected_at: Date | null
  readonly last_run_at: Date | null
  readonly interval_ms: number | null
  readonly last_duration_ms: number | null
  readonly last_counts: Record<string, number> | null
  readonly last_error: string | null
  readonly last_error_at: Date | null
}

/** Every lane that ever had a leader, with the leader's node. */
export const lanes = (sql: SqlClient.SqlClient) =>
  sql<LaneRow>`
    SELECT l.lane, l.epoch::text AS epoch, l.node_id::text AS node_id, n.name AS node_name, n.status AS node_status,
           l.elected_at, l.last_run_at, l.interval_ms::float8 AS interval_ms, l.last_duration_ms, l.last_counts,
           l.last_error, l.last_error_at
    FROM lane_leaders l LEFT JOIN nodes n ON n.id = l.node_id
    ORDER BY l.lane LIMIT 1000`

/** One (queue, state) group of `queue_stats`. */
export interface QueueStatRow {
  readonly queue: string
  readonly state: string
  readonly count: number
  readonly oldest_at: Date | null
  readonly refreshed_at: Date
}

/** Every (queue, state) group of `queue_stats`. */
export const queueStats = (sql: SqlClient.SqlClient) =>
  sql<QueueStatRow>`
    SELECT queue, state, count::float8 AS count, oldest_at, refreshed_at FROM queue_stats ORDER BY queue, state LIMIT 10000`

/** Tasks finished per queue, minute and outcome over the last `minutes`, through `tasks_finished_at`. */
export const throughput = (sql: SqlClient.SqlClient, minutes: number) =>
  sql<{ queue: string; minute: Date; state: string; count: number }>`
    SELECT queue, date_trunc('minute', finished_at) AS minute, state, count(*)::int AS count
    FROM tasks
    WHERE state IN ${states(sql, TaskState.finished)} AND finished_at >= date_trunc('minute', now()) - ${interval(sql, (minutes - 1) * 60_000)}
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`

/**
 * Running tasks whose lease expired more than `afterMs` ago: the lease rescue
 * lane should have taken them back, so they are a sign it is not running.
 * Through `tasks_running_expiry` (its predicate and key), so it reads only
 * the expired part of the running tasks.
 */
export const stuckLeases = (sql: SqlClient.SqlClient, afterMs: number) =>
  sql<{ count: number; oldest: Date | null }>`
    SELECT count(*)::int AS count, min(lease_expires_at) AS oldest FROM tasks
    WHERE state = 'running' AND lease_expires_at < now() - ${interval(sql, afterMs)}`

/** An audit row as the admin API shows it. */
export interface AuditRow {
  readonly id: string
  readonly code: string
  readonly actor: string
  readonly subject: string | null
  readonly details: Record<string, unknown>
  readonly at: Date
  readonly node_id: string | null
}

/** What the audit list filters by; every field narrows. */
export interface AuditFilter {
  readonly code?: string | undefined
  readonly actor?: string | undefined
  readonly subject?: string | undefined
  readonly from?: Date | undefined
  readonly to?: Date | undefined
}

/**
 * One page of audit events, newest first, keyset on (at, id): each filter has
 * its index (`audit_events_code_at`, `audit_events_actor_at`,
 * `audit_events_subject_at`, `audit_events_at`) in that order.
 */
export const audit = (
  sql: SqlClient.SqlClient,
  filter: AuditFilter,
  page: { readonly limit: number; readonly before?: { readonly at: Date; readonly id: string } | undefined }
) =>
  sql<AuditRow>`
    SELECT id::text AS id, code, actor, subject, details, at, node_id::text AS node_id FROM audit_events
    WHERE ${sql.and([
      ...(filter.code !== undefined ? [sql`code = ${filter.code}`] : []),
      ...(filter.actor !== undefined ? [sql`actor = ${filter.actor}`] : []),
      ...(filter.subject !== undefined ? [sql`subject = ${filter.subject}`] : []),
      ...(filter.from !== undefined ? [sql`at >= ${filter.from}`] : []),
      ...(filter.to !== undefined ? [sql`at < ${filter.to}`] : []),
      ...(page.before !== undefined ? [sql`(at, id) < (${page.before.at}, ${BigInt(page.before.id)})`] : []),
      sql`true`
    ])}
    ORDER BY audit_events.at DESC, audit_events.id DESC LIMIT ${page.limit}`
