/** Liveness rows: one per node process, kept fresh by its heartbeat. */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE nodes (
      id            uuid PRIMARY KEY,
      name          text        NOT NULL,
      mode          text        NOT NULL,
      host          text        NOT NULL,
      pid           integer     NOT NULL,
      version       text        NOT NULL,
      status        text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'stopped', 'dead')),
      started_at    timestamptz NOT NULL DEFAULT now(),
      heartbeat_at  timestamptz NOT NULL DEFAULT now(),
      stopped_at    timestamptz
    )`
  // Liveness scans look only at running nodes.
  yield* sql`CREATE INDEX nodes_running_heartbeat ON nodes (heartbeat_at) WHERE status = 'running'`
})
