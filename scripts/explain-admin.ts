/**
 * `pnpm explain:admin`: the control plane's list queries, as the admin API
 * sends them, under EXPLAIN ANALYZE on a throwaway database holding 1 million
 * tasks (about 0.2 % failed or cancelled, 0.4 % waiting to run, the rest
 * succeeded over the last 28 hours) and 200,000 audit events. Prints each
 * query's plan (the index it walks) and its execution time: the numbers
 * behind the README's "Control plane" section.
 *
 * Uses the tests' server (TEST_DATABASE_URL, DATABASE_URL or 127.0.0.1:5432).
 */
import { Effect, type Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import type { Statement } from "effect/sql"
import { PgClient, PgConnection } from "@effect/sql-pg"
import * as Crypto from "node:crypto"
import * as AdminTasksSql from "../packages/runtime/src/internal/sql/adminTasks.ts"
import * as AdminViewsSql from "../packages/runtime/src/internal/sql/adminViews.ts"
import { migrate } from "./schema-dump.ts"

const server = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const name = `af_explain_${Crypto.randomBytes(4).toString("hex")}`
const url = (() => {
  const u = new URL(server)
  u.pathname = `/${name}`
  return u.toString()
})()

const onServer = (text: string) =>
  Effect.scoped(Effect.flatMap(PgConnection.make({ url: Redacted.make(server) }), (c) => c.query(text, [], false)))

const load = (sql: SqlClient.SqlClient) =>
  Effect.gen(function* () {
    yield* sql`
      INSERT INTO tasks (name, queue, state, priority, run_at, attempt, max_attempts, payload, errors, created_at, finished_at)
      SELECT 'app.task_' || (i % 20), 'q' || (i % 5),
        CASE WHEN i % 1000 = 0 THEN 'failed' WHEN i % 997 = 0 THEN 'cancelled' WHEN i > 998000 THEN 'available'
             WHEN i % 499 = 0 THEN 'retryable' ELSE 'succeeded' END,
        0, now() - (1000000 - i) * interval '100 ms', 1, 25,
        jsonb_build_object('customer', i % 5000, 'order', i),
        CASE WHEN i % 1000 = 0 THEN jsonb_build_array(jsonb_build_object('tag', 'Terminal', 'message', 'x', 'code', 'mail.bounced_' || (i % 7), 'attempt', 1))
             ELSE '[]'::jsonb END,
        now() - (1000000 - i) * interval '100 ms',
        CASE WHEN i > 998000 OR i % 499 = 0 THEN NULL ELSE now() - (1000000 - i) * interval '100 ms' + interval '1 s' END
      FROM generate_series(1, 1000000) i`
    yield* sql`UPDATE tasks SET finished_at = NULL WHERE state NOT IN ('succeeded', 'failed', 'cancelled') AND finished_at IS NOT NULL`
    yield* sql`
      INSERT INTO audit_events (code, actor, subject, details, at)
      SELECT CASE WHEN i % 10 = 0 THEN 'task.retried' ELSE 'task.failed' END,
             CASE WHEN i % 10 = 0 THEN 'token:ops' ELSE 'lane:lease_rescue' END,
             'task:' || (i * 5), '{}'::jsonb, now() - (200000 - i) * interval '500 ms'
      FROM generate_series(1, 200000) i`
    yield* sql`VACUUM ANALYZE tasks`
    yield* sql`VACUUM ANALYZE audit_events`
  })

interface Measured {
  readonly what: string
  readonly ms: number
  readonly plan: string
}

/** The plan's scan nodes, outermost first: `Index Scan Backward using tasks_pkey`. */
const scans = (node: Record<string, unknown>): ReadonlyArray<string> => [
  ...(String(node["Node Type"]).includes("Scan")
    ? [
        `${node["Node Type"]}${node["Index Name"] ? ` using ${node["Index Name"]}` : ""}${node["Relation Name"] && !node["Index Name"] ? ` on ${node["Relation Name"]}` : ""}`
      ]
    : []),
  ...((node.Plans as ReadonlyArray<Record<string, unknown>> | undefined) ?? []).flatMap(scans)
]

const explain = (sql: SqlClient.SqlClient, what: string, statement: Statement.Statement<unknown>) =>
  Effect.gen(function* () {
    const [text, params] = statement.compile()
    // Warm once (the admin API's statements are prepared and cached), then measure.
    yield* sql.unsafe(`EXPLAIN (ANALYZE) ${text}`, params as Array<unknown>)
    const [row] = yield* sql.unsafe<{ "QUERY PLAN": ReadonlyArray<Record<string, unknown>> }>(
      `EXPLAIN (ANALYZE, FORMAT JSON) ${text}`,
      params as Array<unknown>
    )
    const result = row!["QUERY PLAN"][0]!
    return {
      what,
      ms: Number(result["Execution Time"]),
      plan: [...new Set(scans(result.Plan as Record<string, unknown>))].join(" + ")
    } satisfies Measured
  })

const queries = (sql: SqlClient.SqlClient) => {
  const page = { limit: 50 }
  const hourAgo = new Date(Date.now() - 3_600_000)
  const dayAgo = new Date(Date.now() - 86_400_000)
  return [
    ["tasks: newest first, no filter", AdminTasksSql.list(sql, {}, page)],
    ["tasks: page 200 (cursor)", AdminTasksSql.list(sql, {}, { limit: 50, before: "990000" })],
    ["tasks: state=failed", AdminTasksSql.list(sql, { states: ["failed"] }, page)],
    ["tasks: state=failed,cancelled queue=q1 (no match)", AdminTasksSql.list(sql, { states: ["failed", "cancelled"], queue: "q1" }, page)],
    ["tasks: state=failed errorCode", AdminTasksSql.list(sql, { states: ["failed"], errorCode: "mail.bounced_3" }, page)],
    ["tasks: state=available queue=q2", AdminTasksSql.list(sql, { states: ["available"], queue: "q2" }, page)],
    ["tasks: state=retryable", AdminTasksSql.list(sql, { states: ["retryable"] }, page)],
    ["tasks: queue=q3 name=app.task_3", AdminTasksSql.list(sql, { queue: "q3", name: "app.task_3" }, page)],
    ["tasks: payload @> {customer: 42}", AdminTasksSql.list(sql, { payload: { customer: 42 } }, page)],
    ["tasks: payload @> (no match, whole table)", AdminTasksSql.list(sql, { payload: { customer: -1 } }, page)],
    ["tasks: payload @> {customer: 42}, state=failed", AdminTasksSql.list(sql, { payload: { customer: 42 }, states: ["failed"] }, page)],
    ["tasks: created in the last hour", AdminTasksSql.list(sql, { createdAfter: hourAgo }, page)],
    [
      "tasks: created a day ago (1 hour window)",
      AdminTasksSql.list(sql, { createdAfter: dayAgo, createdBefore: new Date(dayAgo.getTime() + 3_600_000) }, page)
    ],
    ["tasks: finished in the last hour, failed", AdminTasksSql.list(sql, { finishedAfter: hourAgo, states: ["failed"] }, page)],
    ["bulk preview: retry failed (count up to 10,001)", AdminTasksSql.bulkPreview(sql, "retry", { states: ["failed"] }, { upTo: 10_001 })],
    ["queues: throughput of the last 15 minutes", AdminViewsSql.throughput(sql, 15)],
    ["queues: queue_stats", AdminViewsSql.queueStats(sql)],
    ["nodes: with leases held", AdminViewsSql.nodes(sql, { limit: 500, includeStopped: true })],
    ["audit: newest first", AdminViewsSql.audit(sql, {}, page)],
    ["audit: code=task.retried", AdminViewsSql.audit(sql, { code: "task.retried" }, page)],
    ["audit: actor=token:ops", AdminViewsSql.audit(sql, { actor: "token:ops" }, page)],
    ["audit: a task's trail (subject)", AdminViewsSql.audit(sql, { subject: "task:500000" }, { limit: 100 })]
  ] as const
}

const program = Effect.gen(function* () {
  yield* onServer(`CREATE DATABASE ${name}`)
  try {
    yield* Effect.promise(() => migrate(url))
    const measured = yield* Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const started = performance.now()
      yield* load(sql)
      console.log(`[explain] loaded 1,000,000 tasks and 200,000 audit events in ${Math.round((performance.now() - started) / 1000)} s`)
      return yield* Effect.forEach(queries(sql), ([what, statement]) => explain(sql, what, statement as Statement.Statement<unknown>))
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }) as Layer.Layer<SqlClient.SqlClient>))
    console.log("| query | plan | execution |\n|---|---|---|")
    for (const m of measured) console.log(`| ${m.what} | ${m.plan} | ${m.ms.toFixed(2)} ms |`)
  } finally {
    yield* onServer(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
})

Effect.runPromise(program).catch((e) => {
  console.error(e)
  process.exit(1)
})
