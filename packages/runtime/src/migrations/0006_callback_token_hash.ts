/**
 * Callback tokens are stored as their SHA-256 (hex), never in clear: the
 * token is a bearer credential for completing a task, so a database dump,
 * a replica or a query log must not hand it out. Tokens already issued keep
 * working: their stored value is hashed in place, and the route hashes what
 * it is given before looking it up.
 */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE tasks RENAME COLUMN callback_token TO callback_token_hash`
  yield* sql`UPDATE tasks SET callback_token_hash = encode(sha256(convert_to(callback_token_hash, 'UTF8')), 'hex')
    WHERE callback_token_hash IS NOT NULL`
  yield* sql`ALTER INDEX tasks_callback_token RENAME TO tasks_callback_token_hash`
})
