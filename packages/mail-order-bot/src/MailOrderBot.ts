/**
 * MailOrderBot: the first AsterForge application. Order e-mails arrive in an
 * IMAP mailbox; each becomes a task (ImapSource, polling or IDLE: one config
 * key); parallel workers parse it (OrderMail), write the order (Orders) and
 * only then mark the mail `\Seen`. A mail that is not an order fails its task
 * for good (`mail.order_unparseable`), stays unread and is flagged, or moved
 * to `mail.failed_folder`, for a person to look at. A mailbox or database that
 * is away makes the task retry.
 *
 * Run it with `pnpm --filter mail-order-bot start` (src/main.ts: the node
 * command line); configuration is `[mail]` (MailConfig) beside the runtime's.
 * Concurrency is the `mail` queue's: `worker.queues = "mail=8"`.
 *
 * @since 0.3.0
 */
import { Effect, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { ApplicationModule, Task } from "@asterforge/runtime"
import * as ImapSource from "./ImapSource.ts"
import * as MailConfig from "./MailConfig.ts"
import * as OrderMail from "./OrderMail.ts"
import * as Orders from "./Orders.ts"

/** Presentation codes of the task's terminal failures. */
export const codes = {
  "mail.order_unparseable": "the mail is not an order in the documented format (or has no Message-ID); it was flagged or moved",
  "mail.uidvalidity_changed": "the mailbox was recreated after the mail was listed; the mail will be listed again under its new UID"
} as const

/**
 * One mail to turn into an order.
 *
 * @category tasks
 */
export const OrderMailReceived = Task.define({
  name: "mail.order_received",
  payload: ImapSource.MessageRef,
  result: Schema.Struct({ outcome: Schema.Literals(["created", "existing", "gone", "flagged"]), order: Schema.NullOr(Schema.String) }),
  queue: "mail",
  retry: { maxAttempts: 20 },
  timeout: "2 minutes",
  codes
})

/** Flags the mail (or moves it to the failed folder) and fails the task for good. */
const refuse = (
  settings: ImapSource.Settings,
  config: MailConfig.Config,
  client: Parameters<typeof ImapSource.addFlags>[1],
  uid: number,
  problems: ReadonlyArray<string>
) =>
  Effect.gen(function* () {
    if (config.failedFolder._tag === "Some") yield* ImapSource.moveTo(settings, client, uid, config.failedFolder.value)
    else yield* ImapSource.addFlags(settings, client, uid, ["\\Flagged"])
    return yield* Task.terminal(`not an order mail: ${problems.join("; ")}`, "mail.order_unparseable")
  })

/**
 * The handler: fetch, parse, write the order, then mark the mail read. Each
 * step that is not the mail's fault fails retryably.
 *
 * @category handlers
 */
export const handleOrderMail = Task.handler(OrderMailReceived, (ref) =>
  Effect.gen(function* () {
    const config = yield* MailConfig.Config
    const sql = yield* SqlClient.SqlClient
    const settings = MailConfig.settings(config)
    return yield* ImapSource.withMailbox(settings, ref, (client) =>
      Effect.gen(function* () {
        const message = yield* ImapSource.fetchMessage(settings, client, ref.uid)
        // Deleted or moved by someone since it was listed: nothing left to do.
        if (message === undefined) return { outcome: "gone" as const, order: null }
        // Flagged since it was listed: refused by an earlier run (a search raced its end), or set aside by a person.
        if (message.flags?.has("\\Flagged")) return { outcome: "flagged" as const, order: null }
        const part = ImapSource.textPart(message.bodyStructure)
        const text = part === undefined ? "" : yield* ImapSource.download(settings, client, ref.uid, part)
        const messageId = message.envelope?.messageId?.trim()
        const parsed = OrderMail.parse(text)
        const problems = [
          ...(part === undefined ? ["no text/plain part"] : []),
          ...(messageId ? [] : ["no Message-ID header"]),
          ...(parsed._tag === "Failure" ? parsed.failure : [])
        ]
        if (problems.length > 0 || parsed._tag === "Failure" || !messageId)
          return yield* refuse(settings, config, client, ref.uid, problems)
        const order = yield* Orders.insert(sql, parsed.success, { ...ref, messageId })
        // Only now, with the order committed: a crash before this line leaves the mail unread, and the retry finds the order.
        yield* ImapSource.addFlags(settings, client, ref.uid, ["\\Seen"])
        return { outcome: order.created ? ("created" as const) : ("existing" as const), order: order.id }
      })
    ).pipe(
      Effect.catchTag("UidValidityChanged", (e) =>
        Task.terminal(`mailbox ${e.mailbox} was recreated (UIDVALIDITY ${e.listed} -> ${e.now})`, "mail.uidvalidity_changed")
      )
    )
  })
)

/**
 * The mailbox as a source: `[mail] mode` picks polling or IDLE.
 *
 * @category sources
 */
export const inbox = ImapSource.make({
  name: "mail.inbox",
  task: OrderMailReceived,
  settings: Effect.map(MailConfig.Config, MailConfig.settings)
})

/**
 * The bot as a module: its config section, tables, handler and source.
 *
 * @category modules
 */
export const module = ApplicationModule.make({
  name: "mail_order_bot",
  config: [MailConfig.Config],
  migrations: Orders.migrations,
  tasks: [handleOrderMail],
  sources: [inbox]
})
