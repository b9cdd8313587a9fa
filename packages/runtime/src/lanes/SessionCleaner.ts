/**
 * SessionCleaner: a lane that owns the removal of expired rows of one table,
 * given its name and expiry column (`expires < now()`). Generic, so each
 * short-lived table gets its own lane and leader. A table that does not exist
 * (yet) makes the pass a no-op, not an error: the control-plane tables
 * (`admin_sessions`, `login_flows`) arrive with a later release, and the lanes
 * start working once they do.
 */
import { Duration, Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as MaintenanceSql from "../internal/sql/maintenance.ts"
import * as Lane from "../Lane.ts"
import * as Support from "./support.ts"

export const defaults: {
  readonly interval: Duration.Input
  /** Rows per statement. */
  readonly batchSize: number
  /** Statements per pass at most. */
  readonly maxBatchesPerPass: number
} = {
  interval: "5 minutes",
  batchSize: 1000,
  maxBatchesPerPass: 10
}

export interface Options extends Partial<typeof defaults> {
  /** The lane's name (dotted lower-case words). */
  readonly name: string
  readonly table: string
  /** A timestamptz column; rows whose value is past are deleted. */
  readonly expiresColumn: string
}

export const make = (options: Options): Lane.Lane => {
  const { name, table, expiresColumn, ...tunables } = options
  const target = Support.resolve(String(name), { table: "", expiresColumn: "" }, { table, expiresColumn }, {
    table: Support.identifier,
    expiresColumn: Support.identifier
  })
  const o = Support.resolve(String(name), defaults, tunables, {
    interval: Support.duration,
    batchSize: Support.integer(1, 100_000),
    maxBatchesPerPass: Support.integer(1, 10_000)
  })
  return Lane.make({
    name,
    interval: o.interval,
    runOnce: (ctx) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [exists] = yield* MaintenanceSql.tableExists(sql, target.table)
        if (exists?.present !== true) return { deleted: 0 }
        const deleted = yield* Support.inBatches(
          { batchSize: o.batchSize, maxBatches: o.maxBatchesPerPass },
          MaintenanceSql.deleteExpired(sql, ctx.fence, { table: target.table, column: target.expiresColumn, limit: o.batchSize }).pipe(
            Effect.map(([row]) => row?.deleted ?? 0)
          )
        )
        return { deleted }
      })
  })
}

/** The built-in instances: expired admin sessions and abandoned login flows. */
export const controlPlane: ReadonlyArray<Lane.Lane> = [
  make({ name: "session_cleanup", table: "admin_sessions", expiresColumn: "expires_at" }),
  make({ name: "login_flow_cleanup", table: "login_flows", expiresColumn: "expires_at" })
]
