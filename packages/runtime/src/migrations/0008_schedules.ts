/**
 * Schedules: one row per scheduled source (`CronSource`), holding the fire it
 * last enqueued. Each fire is claimed and enqueued in one statement that
 * compares-and-swaps `last_fire_at`, so a fire is enqueued once across nodes
 * and restarts (see internal/sql/schedules.ts).
 */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // `created_at` anchors interval schedules (fires at created_at + k * interval) and is the
  // earliest moment a fire can be due; `resumed_at` skips the fires of a pause.
  yield* sql`
    CREATE TABLE schedules (
      name          text        PRIMARY KEY,
      spec          text        NOT NULL,
      created_at    timestamptz NOT NULL DEFAULT now(),
      last_fire_at  timestamptz,
      next_fire_at  timestamptz,
      fired_count   bigint      NOT NULL DEFAULT 0,
      paused        boolean     NOT NULL DEFAULT false,
      resumed_at    timestamptz,
      updated_at    timestamptz NOT NULL DEFAULT now()
    )`
})
