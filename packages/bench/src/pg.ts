/**
 * Small Postgres helpers shared by the harness and the adapters.
 *
 * `countPending` is polled every few milliseconds at the end of the throughput scenario, so
 * adapters should not open a connection per call: `queryInt(url, sql)` runs on a one-connection
 * pool per URL that is kept until `closeSharedPools()` (the harness calls it before it drops the
 * run's database).
 */
import pg from "pg"

const pools = new Map<string, pg.Pool>()

export const sharedPool = (url: string): pg.Pool => {
  let pool = pools.get(url)
  if (pool === undefined) {
    pool = new pg.Pool({ connectionString: url, max: 1, allowExitOnIdle: true })
    // An idle connection terminated by DROP DATABASE ... WITH (FORCE) must not crash the process.
    pool.on("error", () => {})
    pools.set(url, pool)
  }
  return pool
}

/** Run a query returning one row with one integer-ish column; returns that number. */
export const queryInt = async (url: string, sql: string, params: ReadonlyArray<unknown> = []): Promise<number> => {
  const { rows } = await sharedPool(url).query(sql, [...params])
  const row: Record<string, unknown> | undefined = rows[0]
  const value = row === undefined ? undefined : Object.values(row)[0]
  const n = Number(value)
  if (!Number.isFinite(n)) throw new Error(`expected a number from: ${sql}`)
  return n
}

export const closeSharedPools = async (): Promise<void> => {
  const all = [...pools.values()]
  pools.clear()
  await Promise.all(all.map((p) => p.end().catch(() => {})))
}

/** Run statements on a short-lived single connection. */
export const withClient = async <A>(url: string, f: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: url })
  client.on("error", () => {})
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end().catch(() => {})
  }
}

/** The URL of database `name` on the same server (and with the same credentials) as `adminUrl`. */
export const databaseUrl = (adminUrl: string, name: string): string => {
  const u = new URL(adminUrl)
  u.pathname = `/${encodeURIComponent(name)}`
  return u.toString()
}

export const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`

export interface FreshDatabase {
  readonly name: string
  readonly url: string
  drop(): Promise<void>
}

/** CREATE DATABASE on the admin server; `drop()` removes it WITH (FORCE). */
export const createFreshDatabase = async (adminUrl: string, label: string): Promise<FreshDatabase> => {
  const slug = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, 30)
  const rand = Math.random().toString(36).slice(2, 6)
  const name = `bench_${slug}_${Date.now().toString(36)}_${rand}`
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${quoteIdent(name)}`))
  return {
    name,
    url: databaseUrl(adminUrl, name),
    drop: () => withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`)).then(() => {})
  }
}

/** Checkpoint so that dirty buffers from earlier phases are not flushed inside a measured phase. */
export const checkpoint = (url: string): Promise<void> => withClient(url, (c) => c.query("CHECKPOINT")).then(() => {})

/** Table statistics for every table of the database (a fresh queue table has none). */
export const analyze = (url: string): Promise<void> => withClient(url, (c) => c.query("ANALYZE")).then(() => {})

/**
 * After a bulk history fill: statistics, plus the visibility map and hint bits a long-lived table
 * would have from autovacuum, so that neither the first reads of the measured phase nor an
 * insert-triggered autovacuum pay for the fill inside the measurement.
 */
export const vacuumAnalyze = (url: string): Promise<void> => withClient(url, (c) => c.query("VACUUM (ANALYZE)")).then(() => {})

/**
 * How far back `fillHistory` spreads finished jobs: recent enough for every system's default
 * retention (asterforge prunes succeeded tasks after 24 h, pg-boss deletes completed jobs after 7 days).
 */
export const HISTORY_SPAN = "12 hours"

export interface ServerInfo {
  readonly version: string
  readonly settings: Record<string, string>
}

export const serverInfo = (url: string): Promise<ServerInfo> =>
  withClient(url, async (c) => {
    const version = (await c.query("select version() as v")).rows[0].v as string
    const names = ["synchronous_commit", "fsync", "shared_buffers", "max_connections", "max_wal_size", "wal_level"]
    const settings: Record<string, string> = {}
    for (const name of names) settings[name] = (await c.query("select current_setting($1) as v", [name])).rows[0].v
    return { version, settings }
  })
