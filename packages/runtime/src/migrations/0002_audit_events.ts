/** The audit trail: append-only, written in batches by AuditLog's writer fiber. */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE audit_events (
      id        bigserial   PRIMARY KEY,
      code      text        NOT NULL,
      actor     text        NOT NULL,
      subject   text,
      details   jsonb       NOT NULL DEFAULT '{}'::jsonb,
      at        timestamptz NOT NULL,
      node_id   uuid
    )`
  // Retention deletes and admin views both scan by time; lookups by code are per subject.
  yield* sql`CREATE INDEX audit_events_at ON audit_events (at)`
  yield* sql`CREATE INDEX audit_events_code_at ON audit_events (code, at)`
})
