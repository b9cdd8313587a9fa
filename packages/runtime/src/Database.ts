/**
 * Database: the node's Postgres pool, how it is reached, and its schema.
 *
 * - `layerUrl` picks the server: `database.url`, or the embedded one.
 * - `layerClient` connects with exponential backoff (one log line per failed
 *   attempt) and exits with the reason once the attempt budget is spent.
 * - `migrate` applies the runtime's migrations under a cluster-wide advisory
 *   lock, so two nodes starting together never both migrate: the second waits,
 *   then finds nothing pending.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Migrator from "effect/sql/Migrator"
import * as SqlClient from "effect/sql/SqlClient"
import { PgClient, PgConnection } from "@effect/sql-pg"
import * as EmbeddedPostgres from "./EmbeddedPostgres.ts"
import * as Migrations from "./migrations/index.ts"
import { maskUrl } from "./internal/redact.ts"
import * as MigrationSql from "./internal/sql/migrations.ts"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import * as NodeIdentity from "./NodeIdentity.ts"
import * as RuntimeError from "./RuntimeError.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * `[database]`: which server, how many connections, how hard to try.
 *
 * @category config
 */
export const Config = ConfigSection.make("database", {
  url: ConfigSection.optionalKey(ConfigSchema.Secret, {
    doc: "postgres:// URL; unset = embedded PostgreSQL under data_dir",
    secret: true,
    aliases: [{ name: "DATABASE_URL", map: (s) => s }]
  }),
  poolMax: ConfigSection.key(ConfigSchema.Int(1, 1000), { default: 10, doc: "maximum pooled connections" }),
  migrate: ConfigSection.key(ConfigSchema.Boolean, {
    default: true,
    doc: "run migrations at start-up",
    aliases: [{ name: "SKIP_MIGRATIONS", shown: "SKIP_MIGRATIONS=1", map: (s) => (s.trim() === "1" ? false : undefined) }]
  }),
  connectAttempts: ConfigSection.key(ConfigSchema.Int(1, 1000), { default: 10, doc: "connection attempts before giving up" }),
  connectBackoff: ConfigSection.key(ConfigSchema.Duration({ minimum: "1 millis", maximum: "1 minute" }), {
    default: "200 millis",
    doc: "first retry delay, doubled per attempt (capped at 5 s)"
  }),
  connectTimeout: ConfigSection.key(ConfigSchema.Duration({ minimum: "100 millis", maximum: "10 minutes" }), {
    default: "5 seconds",
    doc: "timeout of one connection attempt"
  })
})
export type Config = ConfigSection.TypeOf<typeof Config>

type Requires = ConfigSection.Tag<"database"> | ConfigSection.Tag<"server#node">

export interface DatabaseUrlShape {
  readonly url: Redacted.Redacted<string>
  /** True when the node started (or joined) the embedded server. */
  readonly embedded: boolean
}
export class DatabaseUrl extends Context.Service<DatabaseUrl, DatabaseUrlShape>()("@asterforge/runtime/Database/DatabaseUrl") {}

/** The URL with its password masked, for logs and error messages. */
export const displayUrl = (url: Redacted.Redacted<string>): string => maskUrl(Redacted.value(url))

/** `database.url` when set, otherwise the embedded server under `server.data_dir`. */
export const layerUrl: Layer.Layer<DatabaseUrl, RuntimeError.RuntimeError, Requires> = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* Config
    const server = yield* NodeIdentity.Config
    if (Option.isSome(config.url)) {
      return Layer.succeed(DatabaseUrl, { url: config.url.value, embedded: false })
    }
    return Layer.effect(
      DatabaseUrl,
      Effect.map(EmbeddedPostgres.EmbeddedPostgres, (pg) => ({ url: pg.url, embedded: true }))
    ).pipe(Layer.provide(EmbeddedPostgres.layer({ dataDir: server.dataDir })))
  })
)

const reasonOf = RuntimeError.messageOf

/** `asterforge:<node name>`: per node, so operators (and the embedded server's last-one-out check) tell pools apart. */
export const poolApplicationName = (nodeName: string): string => `${EmbeddedPostgres.applicationName}:${nodeName}`.slice(0, 63)

/**
 * Runs `probe` (a `SELECT 1` through the new pool) until the server answers,
 * retried with doubling delay (capped at 5 s), one log line per failed
 * attempt. The pool opens connections on demand, so a failed attempt leaves
 * nothing behind, and the connection that answers is the pool's first: no
 * separate probe connection to open and close at every start (about 15 ms of
 * CPU and 35 ms of start-up).
 */
export const awaitReachable = <E>(options: {
  readonly url: Redacted.Redacted<string>
  readonly attempts: number
  readonly backoff: Duration.Duration
  readonly probe: Effect.Effect<unknown, E>
}) =>
  Effect.gen(function* () {
    const target = displayUrl(options.url)
    let delay = Duration.toMillis(options.backoff)
    for (let attempt = 1; ; attempt++) {
      yield* Metric.update(Telemetry.metrics.dbConnectAttempts, 1)
      const result = yield* Effect.result(options.probe)
      if (result._tag === "Success") {
        if (attempt > 1) yield* Effect.logInfo(`connected to ${target} on attempt ${attempt}`)
        return
      }
      const reason = reasonOf(result.failure)
      if (attempt >= options.attempts) {
        return yield* RuntimeError.fail(
          new RuntimeError.DatabaseUnavailable({
            message: `cannot connect to ${target} after ${attempt} attempt${attempt === 1 ? "" : "s"}: ${reason}`,
            cause: result.failure
          })
        )
      }
      yield* Effect.logWarning(
        `database connection attempt ${attempt}/${options.attempts} to ${target} failed: ${reason}; retrying in ${delay} ms`
      )
      yield* Effect.sleep(Duration.millis(delay))
      delay = Math.min(delay * 2, 5_000)
    }
  }).pipe(Effect.withSpan(Telemetry.spans.connect), Telemetry.component("db"))

/** The pooled client (`PgClient` and `SqlClient`), available once the server answers. */
export const layerClient: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, RuntimeError.RuntimeError, Requires | DatabaseUrl> =
  PgClient.layerFrom(
    Effect.gen(function* () {
      const config = yield* Config
      const server = yield* NodeIdentity.Config
      const { url } = yield* DatabaseUrl
      const client = yield* PgClient.make({
        url,
        maxConnections: config.poolMax,
        connectTimeout: config.connectTimeout,
        applicationName: poolApplicationName(server.nodeName)
      }).pipe(
        Effect.mapError((e) =>
          RuntimeError.make(new RuntimeError.DatabaseUnavailable({ message: `cannot open the pool: ${reasonOf(e)}`, cause: e }))
        )
      )
      yield* awaitReachable({ url, attempts: config.connectAttempts, backoff: config.connectBackoff, probe: client`SELECT 1` })
      return client
    })
  )

/**
 * One owner's migrations: the runtime's own, or an application module's.
 * Each set has its own bookkeeping table, so a module numbers its migrations
 * from 0001 without meeting the runtime's or another module's.
 */
export interface MigrationSet {
  /** `asterforge` for the runtime, else the module's name. */
  readonly owner: string
  readonly table: string
  readonly loader: Migrator.Loader
  /** The highest id this build knows; readiness requires the database to hold it. */
  readonly latestId: number
}

/** What one migration run applied, in order. */
export interface Applied {
  readonly owner: string
  readonly id: number
  readonly name: string
}

const migrationKey = /^(\d{1,9})_([a-z0-9_]+)$/

/** `0001_create_orders`: what a migration's key must look like (checked before anything starts). */
export const isMigrationKey = (key: string): boolean => migrationKey.test(key)

/** `orders` -> `asterforge_migrations_orders`: a module's bookkeeping table. */
export const moduleMigrationsTable = (module: string): string =>
  `asterforge_migrations_${module.toLowerCase().replace(/[^a-z0-9_]/g, "_")}`.slice(0, 63)

/** A module's migrations (keys `0001_name`, applied in id order), as a set. */
export const migrationSet = (
  owner: string,
  migrations: Readonly<Record<string, Effect.Effect<unknown, unknown, SqlClient.SqlClient>>>,
  table: string = moduleMigrationsTable(owner)
): MigrationSet => ({
  owner,
  table,
  loader: Migrator.fromRecord(migrations as Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>>),
  latestId: Math.max(0, ...Object.keys(migrations).map((k) => Number(migrationKey.exec(k)?.[1] ?? 0)))
})

/** The runtime's own migrations (src/migrations). */
export const runtimeMigrations: MigrationSet = migrationSet("asterforge", Migrations.all, Migrations.table)

/**
 * The migration sets of this node, applied in order: the runtime's first,
 * then each module's. `Runtime` provides the modules' sets; alone, it is the
 * runtime's.
 */
export const MigrationSets = Context.Reference<ReadonlyArray<MigrationSet>>("@asterforge/runtime/Database/MigrationSets", {
  defaultValue: () => [runtimeMigrations]
})

/** The runtime's set, then the set of each module that has migrations. */
export const migrationSetsFor = (
  modules: ReadonlyArray<{
    readonly name: string
    readonly migrations?: Readonly<Record<string, Effect.Effect<unknown, unknown, SqlClient.SqlClient>>> | undefined
  }>
): ReadonlyArray<MigrationSet> => [
  runtimeMigrations,
  ...modules.flatMap((m) =>
    m.migrations !== undefined && Object.keys(m.migrations).length > 0 ? [migrationSet(m.name, m.migrations)] : []
  )
]

/** Provides the migration sets of these modules (after the runtime's). */
export const layerMigrationSets = (modules: Parameters<typeof migrationSetsFor>[0]): Layer.Layer<never> =>
  Layer.succeed(MigrationSets, migrationSetsFor(modules)) as Layer.Layer<never>

/**
 * Applies pending migrations of every set. A session advisory lock on a
 * dedicated connection serialises concurrent migrators across processes (two
 * nodes starting together: the second waits, then finds nothing to do); it is
 * released when that connection closes, even if this process dies mid-way. A
 * set that fails stops the run: the error names its owner and the migration.
 *
 * Most starts find the schema current: one read of each set's latest applied
 * id (through the pool) says so, and then no lock connection is opened. A
 * migration another node is applying is not visible until it commits, so a
 * start that reads "pending" takes the lock and waits for it.
 */
export const migrate: Effect.Effect<ReadonlyArray<Applied>, RuntimeError.RuntimeError, SqlClient.SqlClient | DatabaseUrl> = Effect.gen(
  function* () {
    const { url } = yield* DatabaseUrl
    const sets = yield* MigrationSets
    if ((yield* pendingSets).length === 0) return []
    return yield* Effect.scoped(
      Effect.gen(function* () {
        const lock = yield* PgConnection.make({ url, applicationName: "asterforge-migrate" })
        yield* lock.query(MigrationSql.lock, [MigrationSql.lockKey])
        const applied: Array<Applied> = []
        for (const set of sets) {
          const done = yield* Migrator.make({})({ loader: set.loader, table: set.table }).pipe(
            Effect.mapError((e) =>
              RuntimeError.make(
                new RuntimeError.MigrationFailed({
                  message: `${set.owner === runtimeMigrations.owner ? "runtime" : `module ${set.owner}`} migration failed: ${reasonOf(e)}`,
                  cause: e
                })
              )
            )
          )
          applied.push(...done.map(([id, name]) => ({ owner: set.owner, id, name })))
        }
        yield* lock.query(MigrationSql.unlock, [MigrationSql.lockKey])
        return applied
      })
    )
  }
).pipe(
  Effect.tap((applied) =>
    applied.length > 0
      ? Effect.logInfo(`applied ${applied.length} migration(s): ${applied.map(describeApplied).join(", ")}`).pipe(
          Effect.andThen(Metric.update(Telemetry.metrics.migrationsApplied, applied.length))
        )
      : Effect.logDebug("database schema is up to date")
  ),
  Effect.mapError((e) =>
    RuntimeError.isRuntimeError(e)
      ? e
      : RuntimeError.make(new RuntimeError.MigrationFailed({ message: `migration failed: ${reasonOf(e)}`, cause: e }))
  ),
  Effect.withSpan(Telemetry.spans.migrate),
  Telemetry.component("db")
)

/** `asterforge 0003_tasks`, `orders 0001_orders`. */
export const describeApplied = (a: Applied): string => `${a.owner} ${String(a.id).padStart(4, "0")}_${a.name}`

/** The sets whose latest migration the database does not hold yet. */
export const pendingSets: Effect.Effect<ReadonlyArray<MigrationSet>, unknown, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const pending: Array<MigrationSet> = []
  for (const set of yield* MigrationSets) {
    if ((yield* MigrationSql.latestApplied(sql, set.table)) < set.latestId) pending.push(set)
  }
  return pending
})

/** Whether the database holds every migration this build knows (the runtime's and the modules'). */
export const migrationsApplied: Effect.Effect<boolean, unknown, SqlClient.SqlClient> = Effect.map(pendingSets, (p) => p.length === 0)

/** Runs migrations at start-up unless `database.migrate = false` (`SKIP_MIGRATIONS=1`). */
export const layerMigrateOnStart: Layer.Layer<
  never,
  RuntimeError.RuntimeError,
  ConfigSection.Tag<"database"> | SqlClient.SqlClient | DatabaseUrl
> = Layer.effectDiscard(
  Effect.gen(function* () {
    const config = yield* Config
    if (config.migrate) return yield* migrate
    yield* Effect.logInfo("migrations skipped (database.migrate = false)").pipe(Telemetry.component("db"))
    // Starting against an older schema would fail later, in some query, with a less useful error.
    const pending = yield* pendingSets.pipe(
      Effect.mapError((e) =>
        RuntimeError.make(new RuntimeError.MigrationFailed({ message: `cannot read the migration state: ${reasonOf(e)}`, cause: e }))
      )
    )
    if (pending.length > 0) {
      return yield* RuntimeError.fail(
        new RuntimeError.MigrationFailed({
          message: `the database schema is behind this build and migrations are disabled; run \`asterforge migrate\` first (for an application, its own \`migrate\` command; pending: ${pending.map((s) => s.owner).join(", ")}), or unset SKIP_MIGRATIONS / set database.migrate = true`
        })
      )
    }
  })
)

/** Server choice, pool and start-up migrations, in that order. */
export const layer: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient | DatabaseUrl, RuntimeError.RuntimeError, Requires> =
  layerMigrateOnStart.pipe(Layer.provideMerge(layerClient), Layer.provideMerge(layerUrl))

/**
 * Pool usage, as the server sees it: this node's pooled connections by state,
 * sampled every 5 s (the pool client exposes no counters of its own).
 */
export const layerPoolMetrics: Layer.Layer<never, never, SqlClient.SqlClient | Requires> = Layer.effectDiscard(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const config = yield* Config
    const name = poolApplicationName((yield* NodeIdentity.Config).nodeName)
    yield* Metric.update(Telemetry.metrics.dbPoolMax, config.poolMax)
    const states = ["active", "idle", "idle in transaction"] as const
    const sample = sql<{ state: string | null; n: number }>`
      SELECT state, count(*)::int AS n FROM pg_stat_activity WHERE application_name = ${name} AND pid <> pg_backend_pid() GROUP BY state`.pipe(
      Effect.flatMap((rows) =>
        Effect.forEach(
          states,
          (state) =>
            Metric.update(Telemetry.labelled(Telemetry.metrics.dbPoolConnections, { state }), rows.find((r) => r.state === state)?.n ?? 0),
          { discard: true }
        )
      ),
      Effect.ignore
    )
    yield* Effect.forkScoped(sample.pipe(Effect.repeat(Schedule.spaced("5 seconds"))))
  })
)
