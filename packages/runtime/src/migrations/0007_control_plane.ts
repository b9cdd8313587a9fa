/**
 * The control plane: API tokens, browser sessions, OIDC login flows, queue
 * settings (pause), the lane status admin views show from any node, and the
 * indexes the admin lists need.
 */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // API tokens: only a SHA-256 of the token is stored (tokens are 256 random bits, so a slow
  // password hash adds nothing); `prefix` identifies a token in lists without revealing it.
  // A revoked token keeps its row for the audit trail; a name is unique among live tokens.
  yield* sql`
    CREATE TABLE api_tokens (
      id           uuid        PRIMARY KEY,
      name         text        NOT NULL,
      role         text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
      token_hash   text        NOT NULL UNIQUE,
      prefix       text        NOT NULL,
      created_by   text        NOT NULL,
      created_at   timestamptz NOT NULL DEFAULT now(),
      expires_at   timestamptz,
      last_used_at timestamptz,
      revoked_at   timestamptz
    )`
  yield* sql`CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL`
  // Browser sessions: the cookie holds a random secret, the row its SHA-256 (`id`). `expires_at`
  // is the earlier of the absolute expiry and the idle expiry (moved on use), so one index
  // serves both the look-up's check and the cleanup lane.
  yield* sql`
    CREATE TABLE control_sessions (
      id                  text        PRIMARY KEY,
      csrf_token          text        NOT NULL,
      actor               text        NOT NULL,
      role                text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
      source              text        NOT NULL,
      token_id            uuid,
      client              text,
      created_at          timestamptz NOT NULL DEFAULT now(),
      last_seen_at        timestamptz NOT NULL DEFAULT now(),
      absolute_expires_at timestamptz NOT NULL,
      expires_at          timestamptz NOT NULL
    )`
  yield* sql`CREATE INDEX control_sessions_expires_at ON control_sessions (expires_at)`
  yield* sql`CREATE INDEX control_sessions_token ON control_sessions (token_id) WHERE token_id IS NOT NULL`
  // OIDC login flows between the redirect to the provider and its callback: state, nonce and
  // the PKCE verifier; used once (deleted by the callback) or removed by login_flow_cleanup.
  yield* sql`
    CREATE TABLE control_login_flows (
      state         text        PRIMARY KEY,
      nonce         text        NOT NULL,
      code_verifier text        NOT NULL,
      redirect_to   text        NOT NULL,
      client        text,
      created_at    timestamptz NOT NULL DEFAULT now(),
      expires_at    timestamptz NOT NULL
    )`
  yield* sql`CREATE INDEX control_login_flows_expires_at ON control_login_flows (expires_at)`
  // One row per queue an operator paused (or once paused): the claim reads it by primary key.
  yield* sql`
    CREATE TABLE queue_settings (
      queue      text        PRIMARY KEY,
      paused     boolean     NOT NULL DEFAULT false,
      changed_by text        NOT NULL,
      changed_at timestamptz NOT NULL DEFAULT now()
    )`
  // What the leader's last pass did, so any node's admin view shows it.
  yield* sql`
    ALTER TABLE lane_leaders
      ADD COLUMN interval_ms      bigint,
      ADD COLUMN last_duration_ms double precision,
      ADD COLUMN last_counts      jsonb,
      ADD COLUMN last_error       text,
      ADD COLUMN last_error_at    timestamptz`
  // Admin views of failures: only failed and cancelled rows (each enters once, when it fails or is
  // cancelled), so "failed tasks, newest first" never walks the succeeded history. The predicate is
  // TaskState.retriable's list text.
  yield* sql`CREATE INDEX tasks_failed ON tasks (id) WHERE state IN ('failed', 'cancelled')`
  // Admin views: a task's audit trail, and the audit list by actor or subject (newest first).
  yield* sql`CREATE INDEX audit_events_subject_at ON audit_events (subject, at) WHERE subject IS NOT NULL`
  yield* sql`CREATE INDEX audit_events_actor_at ON audit_events (actor, at)`
})
