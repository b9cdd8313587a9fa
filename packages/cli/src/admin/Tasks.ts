/**
 * `asterforge tasks list|get|retry|cancel`: the admin API's task views and
 * actions at the command line, with the same filters.
 *
 * @since 0.3.0
 */
import { Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { ControlPlane, type NodeCli, RuntimeError } from "@asterforge/runtime"
import * as Table from "../Table.ts"
import { actor, connectionFlags, decodeFlag, json, optionalFlag, output, withControl } from "./Connection.ts"

const M = ControlPlane.Models

const optionalText = (name: string, description: string) => Flag.String(name).pipe(Flag.withDescription(description), Flag.optional)

const filterFlags = {
  state: Flag.String("state").pipe(
    Flag.withDescription("state (repeatable, or comma-separated): available, running, failed, ..."),
    Flag.atLeast(0)
  ),
  queue: optionalText("queue", "queue name"),
  name: optionalText("name", "task name"),
  createdAfter: optionalText("created-after", "ISO date-time: created at or after"),
  createdBefore: optionalText("created-before", "ISO date-time: created before"),
  finishedAfter: optionalText("finished-after", "ISO date-time: finished at or after"),
  finishedBefore: optionalText("finished-before", "ISO date-time: finished before"),
  payload: optionalText("payload", 'JSON object the payload contains, e.g. {"customer":42}'),
  errorCode: optionalText("error-code", "a failure code any attempt carried")
}

type FilterFlags = { readonly [K in keyof typeof filterFlags]: K extends "state" ? ReadonlyArray<string> : Option.Option<string> }

const parseJson = (text: string) =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: () =>
      new RuntimeError.RuntimeError({ reason: new RuntimeError.InputInvalid({ message: '--payload: not JSON; e.g. {"customer":42}' }) })
  })

/** The flags as the API's task filter, each checked like the API checks it. */
export const filterOf = (flags: FilterFlags) =>
  Effect.gen(function* () {
    const states = flags.state.flatMap((s) =>
      s
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x !== "")
    )
    const payload = Option.isNone(flags.payload) ? undefined : yield* parseJson(flags.payload.value)
    return yield* decodeFlag("the filter flags", M.TaskFilter, {
      ...(states.length > 0 ? { state: states } : {}),
      ...(Option.isSome(flags.queue) ? { queue: flags.queue.value } : {}),
      ...(Option.isSome(flags.name) ? { name: flags.name.value } : {}),
      ...(Option.isSome(flags.createdAfter) ? { createdAfter: flags.createdAfter.value } : {}),
      ...(Option.isSome(flags.createdBefore) ? { createdBefore: flags.createdBefore.value } : {}),
      ...(Option.isSome(flags.finishedAfter) ? { finishedAfter: flags.finishedAfter.value } : {}),
      ...(Option.isSome(flags.finishedBefore) ? { finishedBefore: flags.finishedBefore.value } : {}),
      ...(payload === undefined ? {} : { payload }),
      ...(Option.isSome(flags.errorCode) ? { errorCode: flags.errorCode.value } : {})
    })
  })

const lastError = (t: ControlPlane.Models.TaskSummary) =>
  t.lastError === null ? null : `${t.lastError.tag}${t.lastError.code ? ` ${t.lastError.code}` : ""}: ${t.lastError.message}`

const pageText = (page: ControlPlane.Models.TaskPage) =>
  [
    Table.render(
      ["ID", "STATE", "QUEUE", "NAME", "ATTEMPT", "CREATED", "LAST ERROR"],
      page.items.map((t) => [t.id, t.state, t.queue, t.name, `${t.attempt}/${t.maxAttempts}`, Table.when(t.createdAt), lastError(t)])
    ),
    ...(page.next === null ? [] : [`next page: --cursor ${page.next}`])
  ].join("\n")

const detailText = (t: ControlPlane.Models.TaskDetail) =>
  [
    Table.fields([
      ["id", t.id],
      ["name", t.name],
      ["queue", t.queue],
      ["state", t.state],
      ["attempt", `${t.attempt}/${t.maxAttempts}`],
      ["priority", t.priority],
      ["run at", Table.when(t.runAt)],
      ["created", Table.when(t.createdAt)],
      ["attempted", Table.when(t.attemptedAt)],
      ["finished", Table.when(t.finishedAt)],
      ["lease", t.leaseOwner === null ? null : `${t.leaseOwner} (epoch ${t.leaseEpoch})`],
      ["unique key", t.uniqueKey],
      ["deadline", Table.when(t.deadline)],
      ["cancel requested", t.cancelRequested],
      ["payload", JSON.stringify(t.payload)],
      ["result", t.result === null ? null : JSON.stringify(t.result)]
    ]),
    "",
    "errors:",
    Table.render(
      ["ATTEMPT", "AT", "TAG", "CODE", "MESSAGE"],
      t.errors.map((e) => [
        e.attempt,
        Table.when(e.at),
        e.tag,
        e.code === null ? null : `${e.code}${e.codeText ? ` (${e.codeText})` : ""}`,
        e.message
      ])
    ),
    "",
    "audit trail:",
    Table.render(
      ["AT", "CODE", "ACTOR"],
      t.audit.map((a) => [Table.when(a.at), a.code, a.actor])
    )
  ].join("\n")

const id = Argument.String("id").pipe(Argument.withDescription("the task's id"))

/** `asterforge tasks ...`. */
export const command = (context: NodeCli.CommandContext) => {
  const run = withControl(context)
  const connection = connectionFlags(context)

  const list = Command.make(
    "list",
    {
      ...connection,
      ...filterFlags,
      limit: Flag.Int("limit").pipe(Flag.withDescription("page size (default 50)"), Flag.optional),
      cursor: optionalText("cursor", "the next page's cursor"),
      json
    },
    (flags) =>
      run(flags, (control) =>
        Effect.gen(function* () {
          const filter = yield* filterOf(flags)
          const limit = yield* optionalFlag("limit", M.Limit, flags.limit)
          const cursor = yield* optionalFlag("cursor", M.Cursor, flags.cursor)
          const page = yield* control.listTasks(filter, { limit, cursor })
          yield* output(flags.json, page, pageText)
        })
      )
  ).pipe(Command.withDescription("list tasks, newest first (the same filters as GET /admin/api/tasks)"))

  const get = Command.make("get", { ...connection, id, json }, (flags) =>
    run(flags, (control) =>
      Effect.flatMap(decodeFlag("<id>", M.TaskId, flags.id), (taskId) =>
        Effect.flatMap(control.getTask(taskId), (t) => output(flags.json, t, detailText))
      )
    )
  ).pipe(Command.withDescription("a task: payload, result, every attempt's error, lease and audit trail"))

  const act = (name: "retry" | "cancel", description: string) =>
    Command.make(name, { ...connection, id, json }, (flags) =>
      run(flags, (control) =>
        Effect.gen(function* () {
          const taskId = yield* decodeFlag("<id>", M.TaskId, flags.id)
          const changed = yield* name === "retry" ? control.retryTask(taskId, actor()) : control.cancelTask(taskId, actor())
          yield* output(flags.json, changed, (c) => `task ${c.id}: ${c.state}`)
        })
      )
    ).pipe(Command.withDescription(description))

  return Command.make("tasks").pipe(
    Command.withDescription("tasks: list, inspect, retry and cancel (straight on the database; no node needs to run)"),
    Command.withSubcommands([
      list,
      get,
      act("retry", "send a failed or cancelled task back to available with a fresh attempt budget (audited)"),
      act("cancel", "cancel a task; a running handler is interrupted on whichever node runs it (audited)")
    ])
  )
}
