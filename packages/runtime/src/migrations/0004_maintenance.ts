/**
 * Maintenance: lane leadership epochs, queue statistics, task artifacts.
 */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // One row per lane. A node that wins a lane's advisory lock bumps `epoch`; every maintenance
  // write of that lane requires its epoch to still be current (the fence).
  yield* sql`
    CREATE TABLE lane_leaders (
      lane        text        PRIMARY KEY,
      epoch       bigint      NOT NULL DEFAULT 0,
      node_id     uuid,
      elected_at  timestamptz,
      last_run_at timestamptz
    )`
  // Counts per queue and state, refreshed by the queue-stats lane, so admin views and metrics
  // never count a large tasks table on request.
  yield* sql`
    CREATE TABLE queue_stats (
      queue       text        NOT NULL,
      state       text        NOT NULL,
      count       bigint      NOT NULL,
      oldest_at   timestamptz,
      refreshed_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (queue, state)
    )`
  // Larger outputs a handler stores beside its task; removed with the task by the artifact lane.
  yield* sql`
    CREATE TABLE task_artifacts (
      id          bigserial   PRIMARY KEY,
      task_id     bigint      NOT NULL,
      name        text        NOT NULL,
      content     bytea       NOT NULL,
      created_at  timestamptz NOT NULL DEFAULT now(),
      UNIQUE (task_id, name)
    )`
  // Pruning finds finished tasks by age without a general state index on the hot path:
  // this partial index only receives rows when they finish.
  yield* sql`CREATE INDEX tasks_finished_at ON tasks (finished_at) WHERE state IN ('succeeded', 'failed', 'cancelled')`
  // Promotion finds due scheduled/retryable work across queues.
  yield* sql`CREATE INDEX tasks_due ON tasks (run_at) WHERE state IN ('scheduled', 'retryable')`
  // Callback rescue finds parked tasks past their timeout; deadline rescue unfinished tasks past their deadline.
  yield* sql`CREATE INDEX tasks_callback_expiry ON tasks (callback_expires_at) WHERE state = 'waiting_callback'`
  yield* sql`CREATE INDEX tasks_deadline ON tasks (deadline) WHERE deadline IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled')`
})
