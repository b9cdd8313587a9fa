/**
 * Each node row carries its own heartbeat period, so the liveness lane judges
 * a node by the beat it promised, not by the judge's own: nodes configured
 * with different `node.heartbeat_interval`s (a slow-beating follower beside a
 * quick primary) must not declare each other dead. Rows written before this
 * migration get the default period (5 s).
 */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE nodes ADD COLUMN heartbeat_interval_ms integer NOT NULL DEFAULT 5000 CHECK (heartbeat_interval_ms > 0)`
})
