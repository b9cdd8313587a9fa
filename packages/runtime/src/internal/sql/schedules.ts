/**
 * SQL for `schedules`: one row per scheduled source, and the statement that
 * claims a fire and enqueues its task at once.
 *
 * The claim is a compare-and-swap on `last_fire_at` (Awa's design): the leader
 * read the row, computed the fire that is due, and asks to move `last_fire_at`
 * from the value it read to that fire. The UPDATE and the task's INSERT are one
 * statement, so a fire is either claimed with its task or not claimed at all;
 * a second claim of the same fire (a deposed leader, a node restarted with an
 * old view) finds `last_fire_at` moved on and inserts nothing. The leader's
 * epoch fence is in the same WHERE clause, like every lane write.
 */
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import type { NewTask } from "./tasks.ts"
import * as TaskState from "../../TaskState.ts"
import { states } from "./shared.ts"

/** A schedule's row; `fired_count` as text (bigint). */
export interface Row {
  readonly name: string
  readonly spec: string
  readonly created_at: Date
  readonly last_fire_at: Date | null
  readonly next_fire_at: Date | null
  readonly fired_count: string
  readonly paused: boolean
  readonly resumed_at: Date | null
}

const columns = "name, spec, created_at, last_fire_at, next_fire_at, fired_count::text AS fired_count, paused, resumed_at"

/** Registers a schedule on first sight (its `created_at` is then the earliest due fire); a changed spec is recorded. */
export const ensure = (sql: SqlClient.SqlClient, name: string, spec: string) =>
  sql`INSERT INTO schedules (name, spec) VALUES (${name}, ${spec})
    ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, updated_at = now() WHERE schedules.spec IS DISTINCT FROM EXCLUDED.spec`

/** One schedule's row (none before its first leader or admin action). */
export const get = (sql: SqlClient.SqlClient, name: string) => sql<Row>`SELECT ${sql.literal(columns)} FROM schedules WHERE name = ${name}`

/** Every schedule's row, by name. */
export const list = (sql: SqlClient.SqlClient) => sql<Row>`SELECT ${sql.literal(columns)} FROM schedules ORDER BY name`

/** What `fire` did: whether the fire was claimed, and the task it inserted (null: the key's holder already existed). */
export interface Fired {
  readonly claimed: number
  readonly task_id: string | null
}

/**
 * Claims the fire `fire` (the schedule's `last_fire_at` must still be `prev`,
 * the schedule not paused, the fence true) and enqueues `task` with it, due
 * now; NOTIFY wakes the queue's dispatchers at commit. One statement.
 */
export const fire = (
  sql: SqlClient.SqlClient,
  claim: {
    readonly name: string
    readonly prev: Date | null
    readonly fire: Date
    readonly next: Date
    readonly fence: Statement.Fragment
  },
  task: NewTask
) =>
  sql<Fired>`
    WITH claimed AS (
      UPDATE schedules
      SET last_fire_at = ${claim.fire.toISOString()}::timestamptz, next_fire_at = ${claim.next.toISOString()}::timestamptz,
          fired_count = fired_count + 1, updated_at = now()
      WHERE name = ${claim.name} AND last_fire_at IS NOT DISTINCT FROM ${claim.prev?.toISOString() ?? null}::timestamptz
        AND NOT paused AND ${claim.fence}
      RETURNING name
    ),
    inserted AS (
      INSERT INTO tasks (name, queue, state, priority, run_at, max_attempts, payload, payload_version, unique_key, metadata, traceparent)
      SELECT ${task.name}, ${task.queue}, 'available', ${task.priority}, now(), ${task.max_attempts}, ${JSON.stringify(task.payload)}::jsonb,
             ${task.payload_version}, ${task.unique_key}, ${JSON.stringify(task.metadata)}::jsonb, ${task.traceparent}
      FROM claimed
      ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state NOT IN ${states(sql, TaskState.finished)} DO NOTHING
      RETURNING id
    ),
    notified AS (SELECT count(pg_notify('asterforge_tasks', ${task.queue})) AS n FROM claimed)
    SELECT (SELECT count(*) FROM claimed)::int AS claimed, (SELECT id::text FROM inserted) AS task_id FROM notified`

/** The next fire as the leader computed it, for status views (fenced: only the leader writes it). */
export const setNext = (sql: SqlClient.SqlClient, name: string, next: Date, fence: Statement.Fragment) =>
  sql`UPDATE schedules SET next_fire_at = ${next.toISOString()}::timestamptz
    WHERE name = ${name} AND next_fire_at IS DISTINCT FROM ${next.toISOString()}::timestamptz AND ${fence}`

/**
 * Pauses or resumes (registering the schedule if no leader has yet). A resume
 * records `resumed_at`: the fires that fell in the pause are skipped, not
 * caught up.
 */
export const setPaused = (sql: SqlClient.SqlClient, name: string, spec: string, paused: boolean) =>
  sql<Row>`
    INSERT INTO schedules AS s (name, spec, paused) VALUES (${name}, ${spec}, ${paused})
    ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused, updated_at = now(),
      resumed_at = CASE WHEN s.paused AND NOT EXCLUDED.paused THEN now() ELSE s.resumed_at END
    RETURNING ${sql.literal(columns)}`
