/**
 * What every part of the control plane works with, and the few rules they
 * share: the database with the per-request statement timeout, how a database
 * failure becomes a `RuntimeError`, dates as ISO text, and opaque cursors.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as SqlClient from "effect/sql/SqlClient"
import type { AuditLogShape } from "../AuditLog.ts"
import * as AdminViewsSql from "../internal/sql/adminViews.ts"
import { InputInvalid, messageOf, QueryTimeout, RuntimeError, TaskStoreUnavailable } from "../RuntimeError.ts"
import type { TaskQueueShape } from "../TaskQueue.ts"
import type { TaskRegistryShape } from "../TaskRegistry.ts"

/** The decoded `[control]` options the operations read. */
export interface Options {
  readonly statementTimeout: Duration.Duration
  readonly bulkCap: number
  readonly bulkBatchSize: number
  readonly pageSize: number
}

/** The services the operations run on. */
export interface Deps {
  readonly sql: SqlClient.SqlClient
  readonly audit: AuditLogShape
  readonly queue: TaskQueueShape
  readonly registry: TaskRegistryShape
  readonly options: Options
}

const isStatementTimeout = (e: unknown): boolean =>
  typeof e === "object" && e !== null && (e as { reason?: { _tag?: string } }).reason?._tag === "StatementTimeoutError"

/** A database failure: a statement timeout is the query's fault (422), anything else an outage (503). */
export const storeError =
  (options: Options) =>
  (e: unknown): RuntimeError =>
    new RuntimeError({
      reason: isStatementTimeout(e)
        ? new QueryTimeout({
            message: `the query ran longer than control.statement_timeout (${Duration.format(options.statementTimeout)}); narrow the filter`
          })
        : new TaskStoreUnavailable({ message: messageOf(e), cause: e })
    })

/** Runs `effect` under the statement timeout, with database failures as `RuntimeError`. */
export const bounded = <A, E, R>(deps: Deps, effect: Effect.Effect<A, E, R>): Effect.Effect<A, RuntimeError, R> =>
  AdminViewsSql.bounded(deps.sql, Duration.toMillis(deps.options.statementTimeout), effect).pipe(
    Effect.mapError((e) => (e instanceof RuntimeError ? e : storeError(deps.options)(e)))
  )

/** A 400 with `message`. */
export const invalid = (message: string) => Effect.fail(new RuntimeError({ reason: new InputInvalid({ message }) }))

/** A date as ISO 8601 text. */
export const iso = (d: Date): string => d.toISOString()
/** A date as ISO 8601 text, or null. */
export const isoOrNull = (d: Date | null | undefined): string | null => (d === null || d === undefined ? null : d.toISOString())

/** Encodes cursor parts as opaque base64url text. */
export const encodeCursor = (parts: ReadonlyArray<string>): string => Buffer.from(parts.join("|"), "utf8").toString("base64url")

/** The parts of a cursor made by `encodeCursor`, or undefined when it is not one. */
export const decodeCursor = (cursor: string, count: number): ReadonlyArray<string> | undefined => {
  const parts = Buffer.from(cursor, "base64url").toString("utf8").split("|")
  return parts.length === count ? parts : undefined
}

/** A bigint id in decimal, within range. */
export const isId = (s: string): boolean => /^[1-9][0-9]{0,18}$/.test(s) && BigInt(s) <= 9223372036854775807n
