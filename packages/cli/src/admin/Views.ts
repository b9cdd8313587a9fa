/**
 * `asterforge queues [pause|resume]`, `asterforge nodes`, `asterforge lanes`,
 * `asterforge audit`: the admin API's status views and queue actions at the
 * command line.
 *
 * @since 0.3.0
 */
import { Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { ControlPlane, type NodeCli } from "@asterforge/runtime"
import * as Table from "../Table.ts"
import { actor, connectionFlags, decodeFlag, json, optionalFlag, output, withControl } from "./Connection.ts"

const M = ControlPlane.Models

const depth = (q: ControlPlane.Models.QueueView, state: string) => q.depth[state] ?? 0

const queuesText = (list: ControlPlane.Models.QueueList) =>
  Table.render(
    ["QUEUE", "PAUSED", "AVAILABLE", "SCHEDULED", "RETRYABLE", "RUNNING", "WAITING", "OLDEST AVAILABLE", `DONE/FAILED (${list.minutes}m)`],
    list.items.map((q) => [
      q.name,
      q.paused ? `yes (${q.changedBy})` : "no",
      depth(q, "available"),
      depth(q, "scheduled"),
      depth(q, "retryable"),
      depth(q, "running"),
      depth(q, "waiting_callback"),
      q.oldestAvailableAgeSeconds === null ? null : `${q.oldestAvailableAgeSeconds}s`,
      `${q.throughput.reduce((n, t) => n + t.succeeded, 0)}/${q.throughput.reduce((n, t) => n + t.failed, 0)}`
    ])
  )

const nodesText = (nodes: ReadonlyArray<ControlPlane.Models.NodeView>) =>
  Table.render(
    ["NAME", "MODE", "STATUS", "HOST", "PID", "VERSION", "STARTED", "HEARTBEAT", "LEASES", "LANES"],
    nodes.map((n) => [
      n.name,
      n.mode,
      n.status,
      n.host,
      n.pid,
      n.version,
      Table.when(n.startedAt),
      Table.ago(n.heartbeatAt),
      n.leases,
      n.lanes.length === 0 ? null : n.lanes.join(",")
    ])
  )

const lanesText = (lanes: ReadonlyArray<ControlPlane.Models.LaneView>) =>
  Table.render(
    ["LANE", "LEADER", "EPOCH", "LAST RUN", "INTERVAL", "LAST COUNTS", "LAST ERROR"],
    lanes.map((l) => [
      l.lane,
      l.leaderNodeName === null ? null : `${l.leaderNodeName} (${l.leaderStatus})`,
      l.epoch,
      Table.ago(l.lastRunAt),
      Table.duration(l.intervalMs),
      l.lastCounts === null
        ? null
        : Object.entries(l.lastCounts)
            .map(([k, v]) => `${k}=${v}`)
            .join(" "),
      l.lastError === null ? null : `${Table.when(l.lastErrorAt)} ${l.lastError}`
    ])
  )

const auditText = (page: ControlPlane.Models.AuditPage) =>
  [
    Table.render(
      ["AT", "CODE", "ACTOR", "SUBJECT", "DETAILS"],
      page.items.map((a) => [Table.when(a.at), a.code, a.actor, a.subject, JSON.stringify(a.details)])
    ),
    ...(page.next === null ? [] : [`next page: --cursor ${page.next}`])
  ].join("\n")

const text = (name: string, description: string) => Flag.String(name).pipe(Flag.withDescription(description), Flag.optional)

/** `asterforge queues`, `nodes`, `lanes`, `audit`. */
export const commands = (context: NodeCli.CommandContext) => {
  const run = withControl(context)
  const connection = connectionFlags(context)
  const minutes = Flag.Int("minutes").pipe(Flag.withDescription("throughput window in minutes (1-60, default 15)"), Flag.optional)

  const pauseOrResume = (paused: boolean) =>
    Command.make(paused ? "pause" : "resume", { ...connection, queue: Argument.String("queue"), json }, (flags) =>
      run(flags, (control) =>
        Effect.gen(function* () {
          const queue = yield* decodeFlag("<queue>", M.QueueName, flags.queue)
          const changed = yield* control.setPaused(queue, paused, actor())
          yield* output(
            flags.json,
            changed,
            (c) =>
              `queue ${c.name} ${c.paused ? "paused" : "resumed"}${c.changed ? "" : ` (it was already ${c.paused ? "paused" : "running"})`}`
          )
        })
      )
    ).pipe(
      Command.withDescription(
        paused
          ? "pause a queue: no node claims its tasks until it is resumed; enqueue still works (audited)"
          : "resume a paused queue (audited)"
      )
    )

  const queues = Command.make("queues", { ...connection, minutes, json }, (flags) =>
    run(flags, (control) =>
      Effect.gen(function* () {
        const m = yield* optionalFlag("minutes", M.Minutes, flags.minutes)
        const list = yield* control.queues({ minutes: m ?? 15 })
        yield* output(flags.json, list, queuesText)
      })
    )
  ).pipe(
    Command.withDescription("queues: depth by state, throughput, oldest available task, pause state"),
    Command.withSubcommands([pauseOrResume(true), pauseOrResume(false)])
  )

  const nodes = Command.make(
    "nodes",
    { ...connection, all: Flag.Boolean("all").pipe(Flag.withDescription("stopped and dead nodes too"), Flag.withDefault(false)), json },
    (flags) =>
      run(flags, (control) =>
        Effect.flatMap(control.nodes({ includeStopped: flags.all }), (n) => output(flags.json, { items: n }, (v) => nodesText(v.items)))
      )
  ).pipe(Command.withDescription("nodes: mode, status, heartbeat, leases held, lanes led"))

  const lanes = Command.make("lanes", { ...connection, json }, (flags) =>
    run(flags, (control) => Effect.flatMap(control.lanes, (l) => output(flags.json, { items: l }, (v) => lanesText(v.items))))
  ).pipe(Command.withDescription("maintenance lanes: leader, epoch, last run, counts, last error, interval"))

  const audit = Command.make(
    "audit",
    {
      ...connection,
      code: text("code", "audit code, e.g. task.retried"),
      actor: text("actor", "who, e.g. token:ops or cli:alice"),
      subject: text("subject", "what, e.g. task:42 or queue:mail"),
      from: text("from", "ISO date-time: at or after"),
      to: text("to", "ISO date-time: before"),
      limit: Flag.Int("limit").pipe(Flag.withDescription("page size (default 50)"), Flag.optional),
      cursor: text("cursor", "the next page's cursor"),
      json
    },
    (flags) =>
      run(flags, (control) =>
        Effect.gen(function* () {
          const filter = {
            code: yield* optionalFlag("code", M.AuditCode, flags.code),
            actor: yield* optionalFlag("actor", M.Text(500), flags.actor),
            subject: yield* optionalFlag("subject", M.Text(500), flags.subject),
            from: yield* optionalFlag("from", M.DateTimeText, flags.from),
            to: yield* optionalFlag("to", M.DateTimeText, flags.to)
          }
          const page = yield* control.audit(filter, {
            limit: yield* optionalFlag("limit", M.Limit, flags.limit),
            cursor: yield* optionalFlag("cursor", M.Cursor, flags.cursor)
          })
          yield* output(flags.json, page, auditText)
        })
      )
  ).pipe(Command.withDescription("the audit trail, newest first"))

  return [queues, nodes, lanes, audit] as const
}
