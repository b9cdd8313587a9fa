/**
 * The control plane's status views and queue actions: queues (depth,
 * throughput, pause state) with pause and resume, nodes, lanes, the audit
 * trail and the presentation catalogue of codes.
 */
import * as Effect from "effect/Effect"
import * as AuditEvents from "../AuditEvents.ts"
import * as AdminViewsSql from "../internal/sql/adminViews.ts"
import * as QueueSettingsSql from "../internal/sql/queueSettings.ts"
import * as NodeMode from "../NodeMode.ts"
import { bounded, decodeCursor, type Deps, encodeCursor, invalid, iso, isoOrNull, isId } from "./Context.ts"
import * as Models from "./Models.ts"

const titles = new Map(AuditEvents.catalogue.map((d) => [d.code, d.title]))

/** An audit row as the API shows it, with its code's title when the runtime knows the code. */
export const auditEntry = (row: AdminViewsSql.AuditRow): Models.AuditEntry => ({
  id: row.id,
  code: row.code,
  title: titles.get(row.code) ?? null,
  actor: row.actor,
  subject: row.subject,
  details: row.details,
  at: iso(row.at),
  nodeId: row.node_id
})

/** The failure tags the runtime records, with their meaning (task codes come from the definitions). */
const failureTags: ReadonlyArray<{ tag: string; text: string }> = [
  { tag: "Retryable", text: "the handler failed; retried while attempts remain" },
  { tag: "Terminal", text: "the handler failed for good" },
  { tag: "Timeout", text: "the handler ran longer than the task's timeout" },
  { tag: "Defect", text: "the handler threw or died (a bug); retried like Retryable, with the stack kept" },
  { tag: "PayloadInvalid", text: "the stored payload no longer decodes with the task's Schema" },
  { tag: "ResultInvalid", text: "the handler's result does not match the task's result Schema" },
  { tag: "LeaseExpired", text: "the worker stopped heartbeating (crashed or partitioned); the lease was rescued" },
  { tag: "NodeDead", text: "the node running it was declared dead; the lease was released" },
  { tag: "DeadlineExceeded", text: "the task's deadline passed before it finished" },
  { tag: "CallbackTimeout", text: "no callback arrived within the task's callback timeout" },
  { tag: "CallbackError", text: "the external system reported a failure through the callback" },
  { tag: "Cancelled", text: "cancelled by an operator while running" },
  { tag: "<other>", text: "any other error a handler failed with, by its _tag (SqlError, an app's own error): retried" }
]

/** A lease expired this long ago and still held is stuck (the lease rescue lane runs far more often). */
const stuckAfterSeconds = 60

const minutesBack = (count: number, now: Date): ReadonlyArray<string> => {
  const last = Math.floor(now.getTime() / 60_000) * 60_000
  return Array.from({ length: count }, (_, i) => new Date(last - (count - 1 - i) * 60_000).toISOString())
}

/** One queue as the queues view shows it, from its stats rows, its settings row and its finished counts. */
const queueView = (
  name: string,
  rows: {
    readonly stats: ReadonlyArray<AdminViewsSql.QueueStatRow>
    readonly setting: QueueSettingsSql.Row | undefined
    readonly finished: ReadonlyArray<{ readonly minute: Date; readonly state: string; readonly count: number }>
  },
  minutes: ReadonlyArray<string>
): Models.QueueView => {
  const available = rows.stats.find((s) => s.state === "available")
  const counts = new Map(rows.finished.map((f) => [`${iso(f.minute)}|${f.state}`, f.count]))
  return {
    name,
    paused: rows.setting?.paused ?? false,
    changedBy: rows.setting?.changed_by ?? null,
    changedAt: isoOrNull(rows.setting?.changed_at),
    depth: Object.fromEntries(rows.stats.map((s) => [s.state, Math.round(s.count)])),
    oldestAvailableAgeSeconds:
      available?.oldest_at === null || available?.oldest_at === undefined
        ? null
        : Math.max(0, Math.round((Date.now() - available.oldest_at.getTime()) / 1000)),
    statsRefreshedAt: rows.stats.length === 0 ? null : iso(new Date(Math.max(...rows.stats.map((s) => s.refreshed_at.getTime())))),
    throughput: minutes.map((minute) => ({
      minute,
      succeeded: counts.get(`${minute}|succeeded`) ?? 0,
      failed: counts.get(`${minute}|failed`) ?? 0,
      cancelled: counts.get(`${minute}|cancelled`) ?? 0
    }))
  }
}

/** Every known queue (registered, counted or configured), with depth, throughput over `minutes` and pause state. */
const queues = (deps: Deps) => (options: { readonly minutes: number }) =>
  Effect.gen(function* () {
    const [stats, settings, finished] = yield* bounded(
      deps,
      Effect.all([AdminViewsSql.queueStats(deps.sql), QueueSettingsSql.all(deps.sql), AdminViewsSql.throughput(deps.sql, options.minutes)])
    )
    const names = [...new Set([...deps.registry.queues, ...stats.map((s) => s.queue), ...settings.map((s) => s.queue)])].sort()
    const minutes = minutesBack(options.minutes, new Date())
    const items = names.map((name) =>
      queueView(
        name,
        {
          stats: stats.filter((s) => s.queue === name),
          setting: settings.find((s) => s.queue === name),
          finished: finished.filter((f) => f.queue === name)
        },
        minutes
      )
    )
    return { items, minutes: options.minutes } satisfies Models.QueueList
  })

/** The view operations over `deps`. */
export const make = (deps: Deps) => {
  const setPaused = (queue: string, paused: boolean, actor: string) =>
    Effect.gen(function* () {
      const [row] = yield* bounded(deps, QueueSettingsSql.setPaused(deps.sql, queue, paused, actor))
      const wasPaused = row?.previous ?? false
      const event = paused ? AuditEvents.queuePaused : AuditEvents.queueResumed
      yield* deps.audit.record(event({ actor, subject: queue, details: { wasPaused } }))
      return { name: queue, paused, changed: wasPaused !== paused } satisfies Models.QueueChanged
    })

  const nodes = (options: { readonly includeStopped: boolean }) =>
    Effect.map(bounded(deps, AdminViewsSql.nodes(deps.sql, { limit: 500, includeStopped: options.includeStopped })), (rows) =>
      rows.map(
        (n): Models.NodeView => ({
          id: n.id,
          name: n.name,
          mode: n.mode,
          role: NodeMode.roles[n.mode as NodeMode.Name] ?? { fullApi: false, dispatches: false, runsLanes: false },
          host: n.host,
          pid: n.pid,
          version: n.version,
          status: n.status,
          startedAt: iso(n.started_at),
          heartbeatAt: iso(n.heartbeat_at),
          stoppedAt: isoOrNull(n.stopped_at),
          leases: n.leases,
          lanes: n.lanes
        })
      )
    )

  const lanes = Effect.map(bounded(deps, AdminViewsSql.lanes(deps.sql)), (rows) =>
    rows.map(
      (l): Models.LaneView => ({
        lane: l.lane,
        leaderNodeId: l.node_id,
        leaderNodeName: l.node_name,
        leaderStatus: l.node_status,
        epoch: Number(l.epoch),
        electedAt: isoOrNull(l.elected_at),
        lastRunAt: isoOrNull(l.last_run_at),
        intervalMs: l.interval_ms === null ? null : Math.round(l.interval_ms),
        lastDurationMs: l.last_duration_ms === null ? null : Math.round(l.last_duration_ms),
        lastCounts: l.last_counts,
        lastError: l.last_error,
        lastErrorAt: isoOrNull(l.last_error_at)
      })
    )
  )

  const audit = (
    filter: {
      readonly code?: string | undefined
      readonly actor?: string | undefined
      readonly subject?: string | undefined
      readonly from?: string | undefined
      readonly to?: string | undefined
    },
    page: { readonly limit?: number | undefined; readonly cursor?: string | undefined }
  ) =>
    Effect.gen(function* () {
      const parts = page.cursor === undefined ? undefined : decodeCursor(page.cursor, 2)
      const before = parts === undefined ? undefined : { at: new Date(parts[0]!), id: parts[1]! }
      if (page.cursor !== undefined && (before === undefined || Number.isNaN(before.at.getTime()) || !isId(before.id))) {
        return yield* invalid("cursor is not one this API gave")
      }
      const limit = Math.min(page.limit ?? 50, deps.options.pageSize)
      const rows = yield* bounded(
        deps,
        AdminViewsSql.audit(
          deps.sql,
          {
            code: filter.code,
            actor: filter.actor,
            subject: filter.subject,
            from: filter.from === undefined ? undefined : Models.toDate(filter.from),
            to: filter.to === undefined ? undefined : Models.toDate(filter.to)
          },
          { limit, before }
        )
      )
      const last = rows[rows.length - 1]
      return {
        items: rows.map(auditEntry),
        next: rows.length === limit && last !== undefined ? encodeCursor([iso(last.at), last.id]) : null
      } satisfies Models.AuditPage
    })

  const codes: Effect.Effect<Models.Codes> = Effect.sync(() => ({
    audit: AuditEvents.catalogue.map((d) => ({ code: d.code, title: d.title, description: d.description, subject: d.subject ?? null })),
    tasks: deps.registry.names.flatMap((name) => {
      const definition = deps.registry.definition(name)
      return definition === undefined
        ? []
        : [{ task: name, queue: definition.queue, codes: Object.entries(definition.codes).map(([code, text]) => ({ code, text })) }]
    }),
    failures: failureTags
  }))

  const stuckLeases = Effect.map(bounded(deps, AdminViewsSql.stuckLeases(deps.sql, stuckAfterSeconds * 1000)), ([row]) => ({
    count: row?.count ?? 0,
    oldestExpiredAt: isoOrNull(row?.oldest),
    afterSeconds: stuckAfterSeconds
  }))

  return { queues: queues(deps), setPaused, nodes, lanes, audit, codes, stuckLeases }
}
