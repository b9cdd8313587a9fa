/**
 * Drops `task_artifacts` (0004): nothing ever wrote to it, and the lane that
 * cleaned it is gone with it. A feature that stores task outputs brings its
 * own table in its own migration.
 */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DROP TABLE task_artifacts`
})
