/**
 * `pnpm explain:leases`: the lease protocol's claim and finish, exactly as
 * packages/runtime/src/internal/sql/leases.ts builds them, under
 * EXPLAIN (ANALYZE, BUFFERS) on one throwaway database per `--history` size
 * (default 0 and 1,000,000 finished tasks over the last 24 hours, 0.5 % of
 * them failed) holding 20,000 available tasks. Claims `--batch` tasks (256),
 * reads back their ids and epochs with a plain SELECT (EXPLAIN returns no
 * rows), then finishes them as `succeeded`: EXPLAIN ANALYZE really runs both
 * UPDATEs. `--batches` (10) batches per condition:
 *
 * - stale statistics: ANALYZE ran while every unfinished task was available
 *   and none running (the state right after the load), so the planner
 *   believes `state = 'running'` matches next to nothing;
 * - generic plans: both statements PREPAREd and EXECUTEd under
 *   `plan_cache_mode = force_generic_plan` (the plan a prepared statement may
 *   settle on: no parameter values to estimate with), statistics as above;
 * - fresh statistics: ANALYZE between each claim and its finish;
 * - crowded: statistics taken with no task running, then `--crowd` (20,000)
 *   tasks leased by other nodes (a fleet's work in flight), not re-analyzed.
 *
 * Automatic ANALYZE is off for `tasks` in the throwaway databases (automatic
 * VACUUM is not), so the statistics are the ones each condition says. Prints
 * a markdown table (medians per batch), whether the finish found its rows
 * through `tasks_pkey` under stale statistics, and, at the largest history,
 * the text plans of one claim and one finish under stale statistics.
 * Progress goes to stderr. The databases are dropped at the end, on failure
 * and on Ctrl-C.
 *
 * Uses the tests' server (TEST_DATABASE_URL, DATABASE_URL or 127.0.0.1:5432).
 */
import { Effect, type Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import type { Statement } from "effect/sql"
import { PgClient, PgConnection } from "@effect/sql-pg"
import { NodeRuntime } from "@effect/platform-node"
import * as Crypto from "node:crypto"
import * as Util from "node:util"
import * as LeaseSql from "../packages/runtime/src/internal/sql/leases.ts"
import { migrate } from "./schema-dump.ts"

const usage = "usage: node scripts/explain-leases.ts [--history 0,1000000] [--batch 256] [--batches 10] [--crowd 20000]"
/** Bad flags: the reason and the usage, exit 2, never a stack. */
const badUsage = (reason: string): never => {
  console.error(`explain-leases: ${reason}\n${usage}`)
  process.exit(2)
}
const flags = (() => {
  try {
    return Util.parseArgs({
      options: {
        history: { type: "string", default: "0,1000000" },
        batch: { type: "string", default: "256" },
        batches: { type: "string", default: "10" },
        crowd: { type: "string", default: "20000" }
      }
    }).values
  } catch (e) {
    return badUsage(e instanceof Error ? e.message : String(e))
  }
})()
const integer = (text: string) => Number(text.replaceAll("_", "").trim())
const histories = flags.history.split(",").map(integer)
const batchSize = integer(flags.batch)
const batches = integer(flags.batches)
const crowd = integer(flags.crowd)
if ([...histories, batchSize, batches, crowd].some((n) => !Number.isInteger(n) || n < 0) || batchSize < 1 || batches < 1) {
  badUsage("sizes are whole numbers; --batch and --batches at least 1")
}
const conditions = ["stale statistics", "generic plans", "fresh statistics", "crowded"] as const
type Condition = (typeof conditions)[number]
/** 20,000 available tasks, or more when the conditions' batches (and the text-plan batch) need them. */
const available = Math.max(20_000, (conditions.length * batches + 2) * batchSize)
const largest = Math.max(...histories)

const server = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const urlOf = (name: string) => {
  const u = new URL(server)
  u.pathname = `/${name}`
  return u.toString()
}

const progress = (line: string) => console.error(`[explain-leases] ${line}`)
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`
const count = (n: number) => n.toLocaleString("en-US")

const onServer = (text: string) =>
  Effect.scoped(Effect.flatMap(PgConnection.make({ url: Redacted.make(server) }), (c) => c.query(text, [], false)))

const owner = Crypto.randomUUID()
const claimOptions: LeaseSql.ClaimOptions = { queue: "default", names: ["bench.noop"], limit: batchSize, owner, leaseMs: 30_000 }

/** History (finished tasks over the last 24 hours), the claiming node, the available tasks; then VACUUM ANALYZE. */
const load = (sql: SqlClient.SqlClient, history: number) =>
  Effect.gen(function* () {
    // Statistics change only when a condition says so (automatic VACUUM still runs).
    yield* sql`ALTER TABLE tasks SET (autovacuum_analyze_scale_factor = 100, autovacuum_analyze_threshold = 2147483647)`
    if (history > 0) {
      const started = performance.now()
      progress(`history ${count(history)}: inserting the finished tasks...`)
      yield* sql`
        INSERT INTO tasks (name, queue, state, priority, run_at, attempt, max_attempts, payload, result, errors,
                           lease_epoch, created_at, attempted_at, finished_at)
        SELECT 'bench.noop', 'default', CASE WHEN failed THEN 'failed' ELSE 'succeeded' END, 0, t,
               CASE WHEN failed THEN 3 ELSE 1 END, 3, jsonb_build_object('n', i),
               CASE WHEN failed THEN NULL ELSE '{"ok":true}'::jsonb END,
               CASE WHEN failed
                    THEN jsonb_build_array(jsonb_build_object('tag', 'Terminal', 'message', 'boom', 'code', 'bench.failed', 'attempt', 3))
                    ELSE '[]'::jsonb END,
               CASE WHEN failed THEN 3 ELSE 1 END,
               t, t + interval '40 ms', t + interval '60 ms'
        FROM generate_series(1, ${history}::int) i,
             LATERAL (SELECT i % 200 = 0 AS failed,
                             now() - interval '24 hours' * (${history}::int - i + 1) / ${history}::int - interval '1 s' AS t) x`
      progress(`history ${count(history)}: inserted the finished tasks in ${seconds(started)}`)
    }
    yield* sql`
      INSERT INTO nodes (id, name, mode, host, pid, version, status, started_at, heartbeat_at, heartbeat_interval_ms)
      VALUES (${owner}, 'explain-leases', 'worker', 'localhost', ${process.pid}, 'explain', 'running', now(), now(), 5000)`
    yield* sql`
      INSERT INTO tasks (name, queue, state, priority, run_at, attempt, max_attempts, payload, created_at)
      SELECT 'bench.noop', 'default', 'available', 0, now() - interval '10 minutes' + i * interval '1 ms', 0, 3,
             jsonb_build_object('n', i), now() - interval '10 minutes'
      FROM generate_series(1, ${available}::int) i`
    const started = performance.now()
    progress(`history ${count(history)}: VACUUM ANALYZE (every unfinished task available, none running)...`)
    yield* sql`VACUUM ANALYZE tasks`
    yield* sql`VACUUM ANALYZE nodes`
    progress(`history ${count(history)}: VACUUM ANALYZE done in ${seconds(started)}`)
  })

/** Tasks leased by other nodes, after an ANALYZE that saw none running (they were claimed since). */
const addCrowd = (sql: SqlClient.SqlClient) =>
  Effect.gen(function* () {
    yield* sql`ANALYZE tasks`
    yield* sql`
      INSERT INTO tasks (name, queue, state, priority, run_at, attempt, max_attempts, payload, lease_owner, lease_expires_at,
                         lease_epoch, created_at, attempted_at)
      SELECT 'bench.noop', 'default', 'running', 0, now() - interval '1 minute', 1, 3, jsonb_build_object('n', i),
             ('00000000-0000-4000-8000-' || lpad(to_hex(i % 64), 12, '0'))::uuid, now() + interval '30 s', 1,
             now() - interval '1 minute', now() - interval '1 s'
      FROM generate_series(1, ${crowd}::int) i`
  })

type PlanNode = Record<string, unknown>

const children = (node: PlanNode): ReadonlyArray<PlanNode> => (node.Plans as ReadonlyArray<PlanNode> | undefined) ?? []

/** Every node of a plan, outermost first. */
const nodes = (node: PlanNode): ReadonlyArray<PlanNode> => [node, ...children(node).flatMap(nodes)]

/** Long `bigint[]` literals (the batch's ids) as `'{1000001,…(256 ids)…,1000256}'`. */
const abbreviate = (text: string) =>
  text.replace(/'\{(\d+),([\d,]{40,}),(\d+)\}'/g, (_, first: string, middle: string, last: string) => {
    return `'{${first},…(${middle.split(",").length + 2} ids)…,${last}}'`
  })

/** A scan node as `Index Scan using tasks_pkey on tasks`, with `(est 1 → 1 ×256)` (rows per loop) if `rows`. */
const describe = (node: PlanNode, rows: boolean): string => {
  const relation = node["Relation Name"] ? ` on ${node["Relation Name"]}` : ""
  const target = node["Index Name"] ? ` using ${node["Index Name"]}${relation}` : relation
  const loops = Number(node["Actual Loops"] ?? 1)
  const estimate = rows ? ` (est ${node["Plan Rows"]} → ${node["Actual Rows"]}${loops > 1 ? ` ×${loops}` : ""})` : ""
  return `${node["Node Type"]}${target}${estimate}`
}

/** The nodes that read a table or one of its indexes, outermost first. */
const scans = (plan: PlanNode): ReadonlyArray<PlanNode> =>
  nodes(plan).filter((n) => String(n["Node Type"]).includes("Scan") && n["Relation Name"] !== undefined)

interface Measured {
  readonly history: number
  readonly statement: string
  /** Rows the UPDATE wrote. */
  readonly rows: number
  readonly ms: number
  readonly planningMs: number
  /** Shared buffers hit or read (the largest count of any node: the top one holds its children's). */
  readonly buffers: number
  /** The scan nodes without estimates: the plan's shape. */
  readonly shape: string
  /** The scan nodes with estimated → actual rows. */
  readonly plan: string
  readonly tree: PlanNode
}

/** Rows the statement's UPDATE (its ModifyTable node) wrote. */
const updated = (tree: PlanNode) =>
  nodes(tree)
    .filter((n) => n["Node Type"] === "ModifyTable")
    .reduce((sum, n) => sum + Number(n["Actual Rows"] ?? 0) * Number(n["Actual Loops"] ?? 1), 0)

const jsonPlan = (sql: SqlClient.SqlClient, text: string, params: ReadonlyArray<unknown>, history: number, statement: string) =>
  Effect.gen(function* () {
    const [row] = yield* sql.unsafe<{ "QUERY PLAN": ReadonlyArray<PlanNode> }>(
      `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`,
      params as Array<unknown>
    )
    const result = row!["QUERY PLAN"][0]!
    const tree = result.Plan as PlanNode
    return {
      history,
      statement,
      rows: updated(tree),
      ms: Number(result["Execution Time"]),
      planningMs: Number(result["Planning Time"] ?? 0),
      buffers: Math.max(...nodes(tree).map((n) => Number(n["Shared Hit Blocks"] ?? 0) + Number(n["Shared Read Blocks"] ?? 0))),
      shape: [...new Set(scans(tree).map((n) => describe(n, false)))].join(" + "),
      plan: scans(tree)
        .map((n) => describe(n, true))
        .join(" + "),
      tree
    } satisfies Measured
  })

/** A value as an SQL literal, for `EXECUTE name(...)`. */
const literal = (value: unknown): string => (typeof value === "number" ? String(value) : `'${String(value).replaceAll("'", "''")}'`)

/**
 * EXPLAIN ANALYZE of one statement: `custom` sends it with its parameters (the
 * planner sees their values); `generic` PREPAREs it and EXECUTEs it under
 * `force_generic_plan`.
 */
const explain = (
  sql: SqlClient.SqlClient,
  history: number,
  statement: string,
  compiled: Statement.Statement<unknown>,
  mode: "custom" | "generic"
) => {
  const [text, params] = compiled.compile()
  if (mode === "custom") return jsonPlan(sql, text, params, history, statement)
  return Effect.gen(function* () {
    yield* sql.unsafe(`PREPARE explain_leases AS ${text}`)
    yield* sql.unsafe(`SET plan_cache_mode = force_generic_plan`)
    return yield* jsonPlan(sql, `EXECUTE explain_leases(${params.map(literal).join(", ")})`, [], history, statement).pipe(
      Effect.ensuring(Effect.ignore(Effect.andThen(sql.unsafe(`RESET plan_cache_mode`), sql.unsafe(`DEALLOCATE explain_leases`))))
    )
  })
}

/** The claimed batch as `finish` rows: what a worker sends once every task succeeded (`finishRow` of a plain success). */
const claimedRows = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<{ id: string; lease_epoch: number }>`
      SELECT id::text AS id, lease_epoch FROM tasks WHERE state = 'running' AND lease_owner = ${owner} ORDER BY tasks.id`,
    (rows) => rows.map((r): LeaseSql.Finish => ({ id: r.id, epoch: r.lease_epoch, state: "succeeded" }))
  )

/** How the first finish under stale statistics found its rows. */
interface StaleCheck {
  readonly history: number
  readonly believedRunning: number
  readonly running: number
  readonly scan: string
  readonly condition: string
  readonly throughPkey: boolean
}

interface TextPlans {
  readonly claim: string
  readonly finish: string
  readonly rows: number
}

/** One claim and one finish as FORMAT TEXT. */
const textPlans = (sql: SqlClient.SqlClient) =>
  Effect.gen(function* () {
    const text = (compiled: Statement.Statement<unknown>) => {
      const [query, params] = compiled.compile()
      return Effect.map(
        sql.unsafe<{ "QUERY PLAN": string }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) ${query}`, params as Array<unknown>),
        (rows) => abbreviate(rows.map((r) => r["QUERY PLAN"]).join("\n"))
      )
    }
    const claim = yield* text(LeaseSql.claimStatement(sql, claimOptions))
    const rows = yield* claimedRows(sql)
    const finish = yield* text(LeaseSql.finish(sql, owner, rows))
    return { claim, finish, rows: rows.length } satisfies TextPlans
  })

const measure = (sql: SqlClient.SqlClient, history: number) =>
  Effect.gen(function* () {
    const measured: Array<Measured> = []
    let stale: StaleCheck | undefined
    let text: TextPlans | undefined
    const label = (condition: Condition) => (condition === "crowded" ? `crowded: ${count(crowd)} running elsewhere` : condition)
    const batch = (condition: Condition) =>
      Effect.gen(function* () {
        const mode = condition === "generic plans" ? "generic" : "custom"
        const claim = yield* explain(sql, history, `claim (${label(condition)})`, LeaseSql.claimStatement(sql, claimOptions), mode)
        if (condition === "fresh statistics") yield* sql`ANALYZE tasks`
        const rows = yield* claimedRows(sql)
        if (rows.length !== claim.rows) return yield* Effect.die(`claimed ${claim.rows} but ${rows.length} are running`)
        const believed =
          stale === undefined
            ? yield* sql.unsafe<{ "QUERY PLAN": ReadonlyArray<PlanNode> }>(
                `EXPLAIN (FORMAT JSON) SELECT 1 FROM tasks WHERE state = 'running'`
              )
            : undefined
        const finish = yield* explain(sql, history, `finish (${label(condition)})`, LeaseSql.finish(sql, owner, rows), mode)
        if (finish.rows !== rows.length) return yield* Effect.die(`finished ${finish.rows} of ${rows.length}`)
        if (believed !== undefined) {
          const scan = scans(finish.tree).find((n) => n["Relation Name"] === "tasks")
          stale = {
            history,
            believedRunning: Number((believed[0]!["QUERY PLAN"][0]!.Plan as PlanNode)["Plan Rows"]),
            running: rows.length,
            scan: scan === undefined ? "(no scan of tasks)" : describe(scan, true),
            condition: abbreviate(
              [scan?.["Index Cond"] && `Index Cond: ${scan["Index Cond"]}`, scan?.Filter && `Filter: ${scan.Filter}`]
                .filter(Boolean)
                .join("; ")
            ),
            throughPkey: scan?.["Index Name"] === "tasks_pkey" && String(scan["Index Cond"] ?? "").includes("ANY")
          }
        }
        return [claim, finish] as const
      })
    for (const condition of conditions) {
      if (condition === "crowded") {
        if (crowd === 0) continue
        yield* addCrowd(sql)
      }
      const started = performance.now()
      for (let n = 1; n <= batches; n++) measured.push(...(yield* batch(condition)))
      progress(`history ${count(history)}: ${batches} batches of ${batchSize}, ${label(condition)}, in ${seconds(started)}`)
      // The text plans: one more batch under the load's statistics, at the largest history.
      if (condition === "stale statistics" && history === largest) text = yield* textPlans(sql)
    }
    return { measured, stale: stale!, text }
  })

const run = (history: number) =>
  Effect.acquireUseRelease(
    Effect.gen(function* () {
      const name = `af_explain_leases_${Crypto.randomBytes(4).toString("hex")}`
      yield* onServer(`CREATE DATABASE ${name}`)
      return name
    }),
    (name) =>
      Effect.gen(function* () {
        progress(`history ${count(history)}: database ${name}, migrating...`)
        yield* Effect.promise(() => migrate(urlOf(name)))
        return yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* load(sql, history)
          return yield* measure(sql, history)
        }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(urlOf(name)), maxConnections: 1 }) as Layer.Layer<SqlClient.SqlClient>))
      }),
    (name) =>
      onServer(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(
        Effect.tap(() => Effect.sync(() => progress(`dropped ${name}`))),
        Effect.orDie
      )
  )

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const program = Effect.gen(function* () {
  const results = []
  for (const history of histories) results.push(yield* run(history))
  const version = yield* onServer("SHOW server_version")
  console.log(
    `Lease statements (packages/runtime/src/internal/sql/leases.ts) under EXPLAIN (ANALYZE, BUFFERS), PostgreSQL ` +
      `${String((version.rows[0] as Record<string, unknown>).server_version)}: ${count(available)} available tasks, ` +
      `${batches} batches of ${batchSize} per condition, medians per batch. Plan: the scan nodes (estimated → actual rows, ` +
      `per loop) of the batch nearest the median; other plan shapes seen are listed after "or".\n`
  )
  console.log("| history | statement | median execution ms per batch | µs per row | planning ms | buffers | plan (scan nodes) |")
  console.log("|---:|---|---:|---:|---:|---:|---|")
  const groups = new Map<string, Array<Measured>>()
  for (const m of results.flatMap((r) => r.measured)) {
    const key = `${m.history}\u0000${m.statement}`
    groups.set(key, [...(groups.get(key) ?? []), m])
  }
  for (const group of groups.values()) {
    const ms = median(group.map((m) => m.ms))
    const typical = group.reduce((best, m) => (Math.abs(m.ms - ms) < Math.abs(best.ms - ms) ? m : best))
    const others = [...new Set(group.map((m) => m.shape))].filter((s) => s !== typical.shape)
    const counted = (shape: string) => `${group.filter((m) => m.shape === shape).length} of ${group.length}`
    const plan =
      others.length === 0 ? typical.plan : [`${typical.plan} (${counted(typical.shape)})`, ...others.map((s) => `${s} (${counted(s)})`)]
    console.log(
      `| ${count(typical.history)} | ${typical.statement} | ${ms.toFixed(2)} | ` +
        `${median(group.map((m) => (m.ms * 1000) / Math.max(1, m.rows))).toFixed(1)} | ${median(group.map((m) => m.planningMs)).toFixed(2)} | ` +
        `${median(group.map((m) => m.buffers))} | ${Array.isArray(plan) ? plan.join(" **or** ") : plan} |`
    )
  }
  console.log("\nThe finish under stale statistics (ANALYZE while no task was running; first batch, not re-analyzed):\n")
  for (const r of results) {
    const s = r.stale
    console.log(
      `- history ${count(s.history)}: the planner believes \`state = 'running'\` matches ${s.believedRunning} row(s), ${s.running} do; ` +
        `the finish reads tasks through ${s.scan}, ${s.condition}: ` +
        (s.throughPkey ? "through tasks_pkey (id = ANY), as leases.ts intends" : "**not through tasks_pkey (id = ANY Index Cond)**")
    )
  }
  const text = results.find((r) => r.text !== undefined)?.text
  if (text !== undefined) {
    console.log(
      `\nClaim at history ${count(largest)}, stale statistics (id lists abbreviated):\n\n\`\`\`\n${text.claim}\n\`\`\`\n\n` +
        `Finish of those ${text.rows} tasks:\n\n\`\`\`\n${text.finish}\n\`\`\``
    )
  }
})

NodeRuntime.runMain(program)
