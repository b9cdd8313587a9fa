/**
 * Durable tasks. One row per task for its whole life (history is retained until
 * the pruning lane removes finished rows).
 */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE tasks (
      id                  bigserial   PRIMARY KEY,
      name                text        NOT NULL,
      queue               text        NOT NULL,
      state               text        NOT NULL CHECK (state IN
                            ('scheduled', 'available', 'running', 'retryable', 'waiting_callback', 'succeeded', 'failed', 'cancelled')),
      priority            integer     NOT NULL DEFAULT 0,
      run_at              timestamptz NOT NULL DEFAULT now(),
      attempt             integer     NOT NULL DEFAULT 0,
      max_attempts        integer     NOT NULL CHECK (max_attempts >= 1),
      payload             jsonb       NOT NULL,
      payload_version     integer     NOT NULL DEFAULT 1,
      result              jsonb,
      errors              jsonb       NOT NULL DEFAULT '[]'::jsonb,
      unique_key          text,
      deadline            timestamptz,
      metadata            jsonb       NOT NULL DEFAULT '{}'::jsonb,
      traceparent         text,
      lease_owner         uuid,
      lease_expires_at    timestamptz,
      lease_epoch         integer     NOT NULL DEFAULT 0,
      callback_token      text,
      callback_expires_at timestamptz,
      cancel_requested_at timestamptz,
      created_at          timestamptz NOT NULL DEFAULT now(),
      attempted_at        timestamptz,
      finished_at         timestamptz
    )`
  // The claim: due work of one queue, by priority then time. Partial, so the
  // index only holds claimable rows and stays small however much history accumulates.
  yield* sql`CREATE INDEX tasks_claimable ON tasks (queue, priority, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable')`
  // uniqueKey: at most one unfinished task per key.
  yield* sql`CREATE UNIQUE INDEX tasks_unique_key ON tasks (unique_key)
    WHERE unique_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled')`
  // Lease rescue finds expired leases. (Heartbeats go by id, through the primary key.)
  yield* sql`CREATE INDEX tasks_running_expiry ON tasks (lease_expires_at) WHERE state = 'running'`
  yield* sql`CREATE UNIQUE INDEX tasks_callback_token ON tasks (callback_token) WHERE callback_token IS NOT NULL`
  // Every index on a column a state change touches costs each claim and completion an index
  // insert (state changes are never HOT updates), so there is deliberately no general (state, ...)
  // index: admin listing walks the primary key backwards.
})
