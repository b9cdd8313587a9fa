/**
 * RuntimeError: the one error type the runtime's own services fail with.
 *
 * Each failure carries a `reason` from a closed union; every reason says
 * whether retrying the same operation can help, so callers (and the CLI's exit
 * path) never have to guess from a message string.
 */
import { Schema } from "effect"

export const Reason = Schema.Literals([
  "ConfigInvalid", // bad configuration: fix the input, never retry
  "DatabaseUnavailable", // could not connect within the retry budget
  "MigrationFailed", // a migration failed or the schema is in a bad state
  "EmbeddedPostgresFailed", // the embedded server could not be initialised or started
  "AuditWriteFailed", // an audit batch could not be written
  "Internal" // a bug: details in `cause`
])
export type Reason = typeof Reason.Type

const retryableReasons: ReadonlySet<Reason> = new Set<Reason>(["DatabaseUnavailable", "AuditWriteFailed"])

export class RuntimeError extends Schema.TaggedError<RuntimeError>()("RuntimeError", {
  reason: Reason,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  /** Whether repeating the failed operation may succeed without any change of input. */
  get retryable(): boolean {
    return retryableReasons.has(this.reason)
  }
}
