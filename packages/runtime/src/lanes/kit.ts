/**
 * The kit the built-in lanes are made with (application lanes may use it too):
 *
 * - a lane's options are a ConfigSection named `maintenance.<lane>` (`section`),
 *   declared with the keys most lanes share (`interval`, `batches`), so TOML
 *   `[maintenance.promotion] batch_size = 500` and
 *   `ASTERFORGE_MAINTENANCE_PROMOTION_BATCH_SIZE` reach the lane;
 * - `lane` makes a lane module's `make(options?)`: it decodes the options
 *   (every bad or unknown one listed, at definition time) and builds the
 *   `Lane` around one pass;
 * - `batched` makes the `make` of a lane that is one fenced, bounded
 *   statement run in batches (`inBatches`) and counted under one key.
 *
 * A simple lane module is then its declaration and its statement:
 *
 * ```ts
 * export const name = "promotion"
 * export const Config = Kit.section(name, { interval: Kit.interval("200 millis"), ...Kit.batches({ maxBatchesPerPass: 10 }) }, "...")
 * export const defaults = ConfigSection.defaults(Config)
 * export const make = Kit.batched({ name, config: Config, count: "promoted", statement: (sql, fence, o) => ... })
 * ```
 *
 * Lanes with extra work (audit, metrics, logs) use `lane`, `inBatches` and
 * `auditTasksFailed`.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import * as AuditEvents from "../AuditEvents.ts"
import { AuditLog } from "../AuditLog.ts"
import * as ConfigSchema from "../ConfigSchema.ts"
import * as ConfigSection from "../ConfigSection.ts"
import * as Lane from "../Lane.ts"

// ---------------------------------------------------------------------------
// Options as configuration

/**
 * The section of a lane's options: `maintenance.<lane>`.
 *
 * @category constructors
 */
export const section = <const L extends string, F extends Fields>(
  lane: L,
  fields: F,
  doc: string
): ConfigSection.Section<`maintenance.${L}`, F> => ConfigSection.make(`maintenance.${lane}`, fields, { doc })

/** The keys every lane made here has. */
export type Fields = ConfigSection.Fields & { readonly interval: ConfigSection.Key<Duration.Duration> }

/** The keys of a lane that works in bounded batches. */
export type BatchFields = Fields & {
  readonly batchSize: ConfigSection.Key<number>
  readonly maxBatchesPerPass: ConfigSection.Key<number>
}

/** `interval`: the time between passes (jittered by 10 %). */
export const interval = (value: string): ConfigSection.Key<Duration.Duration> =>
  ConfigSection.key(ConfigSchema.Duration(), { default: value, doc: "time between passes (each varied by up to 10 %)" })

/** A duration key with a default (a retention, a window). */
export const duration = (value: string, doc: string): ConfigSection.Key<Duration.Duration> =>
  ConfigSection.key(ConfigSchema.Duration(), { default: value, doc })

/**
 * `batch_size` and `max_batches_per_pass`: a pass acts on at most their
 * product; a larger backlog is worked off over several passes.
 */
export const batches = (defaults: { readonly batchSize?: number; readonly maxBatchesPerPass: number }) => ({
  batchSize: ConfigSection.key(ConfigSchema.Int(1, 100_000), {
    default: defaults.batchSize ?? 1000,
    doc: "rows per statement (each its own short transaction)"
  }),
  maxBatchesPerPass: ConfigSection.key(ConfigSchema.Int(1, 10_000), {
    default: defaults.maxBatchesPerPass,
    doc: "statements per pass at most; the rest waits for the next pass"
  })
})

// ---------------------------------------------------------------------------
// Passes

/** The decoded batch options `inBatches` reads. */
export interface Batches {
  readonly batchSize: number
  readonly maxBatchesPerPass: number
}

/**
 * Runs `statement` (one bounded batch, returning how many rows it acted on)
 * until a batch comes back short or `maxBatchesPerPass` ran, and returns the
 * total. Each statement is its own short transaction: a pass never holds many
 * locks, and a large backlog is worked off over several passes instead of one
 * long one. A stale epoch makes the first statement change nothing, which
 * ends the loop.
 */
export const inBatches = <E, R>(options: Batches, statement: Effect.Effect<number, E, R>): Effect.Effect<number, E, R> =>
  Effect.gen(function* () {
    let total = 0
    for (let i = 0; i < options.maxBatchesPerPass; i++) {
      const n = yield* statement
      total += n
      if (n < options.batchSize) break
    }
    return total
  })

/** A task a lane failed, as its statement returns it. */
export interface FailedTask {
  readonly id: string
  readonly name: string
  readonly attempt: number
  /** The message of the `errors` entry the statement appended. */
  readonly message: string
}

/**
 * Audits `task.failed` for each task a lane failed, with the lane as actor and
 * `tag` as the failure's class (`LeaseExpired`, `DeadlineExceeded`, ...).
 */
export const auditTasksFailed = (
  lane: string,
  tasks: ReadonlyArray<FailedTask>,
  options: { readonly tag: string; readonly exhausted: boolean }
): Effect.Effect<void, never, AuditLog> =>
  Effect.flatMap(AuditLog, (audit) =>
    Effect.forEach(
      tasks,
      (t) =>
        audit.record(
          AuditEvents.taskFailed({
            actor: AuditEvents.actors.lane(lane),
            subject: t.id,
            details: { name: t.name, attempt: t.attempt, tag: options.tag, message: t.message, code: null, exhausted: options.exhausted }
          })
        ),
      { discard: true }
    )
  )

/** The count a `SELECT count(*)::int AS <key>` statement returns (0 when it returns no row). */
export const count =
  <K extends string>(key: K) =>
  (rows: ReadonlyArray<{ readonly [_ in K]: number }>): number =>
    rows[0]?.[key] ?? 0

// ---------------------------------------------------------------------------
// Constructors

/** The decoded value of a section. */
export type Decoded<F extends ConfigSection.Fields> = ConfigSection.ValueOf<F>

/** What `make(options)` of a lane module takes: any key of its section, as a source would write it. */
export type Input<F extends ConfigSection.Fields> = { readonly [K in keyof F]?: unknown }

/** A lane's declaration: its name and its section (and whether it writes). */
export interface Declaration<F extends Fields> {
  readonly name: string
  readonly config: ConfigSection.Section<any, F>
  /** Default true; false for a lane that only reads. */
  readonly writes?: boolean
}

/**
 * A lane module's `make`: the lane with `options` over the section's
 * defaults. Every bad or unknown option is thrown at once, with its name.
 */
export type Make<F extends Fields, E, R> = (options?: Input<F>) => Lane.Lane<E, R | SqlClient.SqlClient>

/**
 * A lane module's `make`, from its declaration and its pass. `pass` is called
 * once per lane with the decoded options (what passes share is computed
 * there) and returns the pass, which gets the leader's context and the
 * SqlClient.
 *
 * @category constructors
 */
export const lane =
  <F extends Fields, E, R>(
    spec: Declaration<F> & {
      readonly pass: (options: Decoded<F>) => (ctx: Lane.Context, sql: SqlClient.SqlClient) => Effect.Effect<Lane.Counts, E, R>
    }
  ): Make<F, E, R> =>
  (given) => {
    const options = ConfigSection.decodeOrThrow(spec.config, given)
    const pass = spec.pass(options)
    return Lane.make({
      name: spec.name,
      interval: (options as Decoded<Fields>).interval,
      ...(spec.writes === undefined ? {} : { writes: spec.writes }),
      runOnce: (ctx) => Effect.flatMap(SqlClient.SqlClient, (sql) => pass(ctx, sql))
    })
  }

/**
 * A lane module's `make` for a lane that is one fenced statement run in
 * bounded batches: `statement` acts on at most `options.batchSize` rows under
 * `fence` and returns how many it acted on; a pass returns the total as
 * `{ [count]: n }`.
 *
 * @category constructors
 */
export const batched = <F extends BatchFields, E, R>(
  spec: Declaration<F> & {
    readonly count: string
    readonly statement: (sql: SqlClient.SqlClient, fence: Statement.Fragment, options: Decoded<F>) => Effect.Effect<number, E, R>
  }
): Make<F, E, R> =>
  lane({
    ...spec,
    pass: (options) => (ctx, sql) =>
      inBatches(options as Decoded<BatchFields>, spec.statement(sql, ctx.fence, options)).pipe(
        Effect.map((n): Lane.Counts => ({ [spec.count]: n }))
      )
  })
