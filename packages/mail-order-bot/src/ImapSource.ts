/**
 * ImapSource: a task source over an IMAP mailbox (imapflow), by polling or by
 * IMAP IDLE, and the mailbox operations a handler of its tasks needs.
 *
 * One task per unread, unflagged message, under the unique key
 * `<mailbox>:<UIDVALIDITY>:<UID>`: a message seen again by the next search
 * while its task is unfinished is not enqueued twice. The source only lists
 * messages (the mailbox is opened read-only, nothing is fetched); the handler
 * fetches the message, and marks it `\Seen` once its work is committed, or
 * flags (or moves) it when it cannot be handled, so the next search no
 * longer finds it.
 *
 * - `mode: "poll"`: search every `pollInterval`.
 * - `mode: "idle"`: the server wakes the source (IDLE, renewed every
 *   `maxIdleTime`); the mailbox is searched again at least that often too,
 *   which also notices a connection that died silently.
 *
 * The mailbox is searched on every (re)connection, so nothing delivered while
 * disconnected is missed. A lost connection is retried with backoff (0.5 s
 * doubling to 30 s) for as long as the source runs. Leader-placed: one node
 * reads the mailbox.
 *
 * Why here and not in the runtime: the runtime stays free of an IMAP client
 * and its dependencies (imapflow brings pino, iconv-lite and MIME libraries);
 * an application that reads mail depends on this package, one that does not
 * never loads it. The source is built on the runtime's public contract
 * (`TaskSource.make`) like any application source.
 *
 * @since 0.3.0
 */
import { Deferred, Duration, Effect, Queue, Redacted, Schema, type Scope } from "effect"
import { type Task, TaskSource } from "@asterforge/runtime"
import { ImapFlow } from "imapflow"

/**
 * How to reach the mailbox, and how to wait for mail.
 *
 * @category models
 */
export interface Settings {
  readonly host: string
  readonly port: number
  readonly tls: boolean
  readonly user: string
  readonly password: Redacted.Redacted<string>
  readonly mailbox: string
  readonly mode: "poll" | "idle"
  readonly pollInterval: Duration.Duration
  readonly maxIdleTime: Duration.Duration
  /** Connecting and logging in, and each command. */
  readonly timeout: Duration.Duration
}

/**
 * A message as the source publishes it: where it is, stable across sessions
 * while the mailbox's UIDVALIDITY holds.
 *
 * @category models
 */
export const MessageRef = Schema.Struct({
  mailbox: Schema.String,
  /** A 32-bit unsigned number, as text. */
  uidValidity: Schema.String,
  uid: Schema.Int
})
export type MessageRef = typeof MessageRef.Type

/**
 * The mailbox could not be reached or answered with an error: retryable (a
 * handler failing with it is tried again).
 *
 * @category errors
 */
export class ImapError extends Schema.TaggedError<ImapError>()("ImapError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

const imapError = (what: string) => (cause: unknown) =>
  new ImapError({ message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })

/** An IMAP call, bounded by the settings' timeout. */
const call = <A>(settings: Settings, what: string, f: () => Promise<A>): Effect.Effect<A, ImapError> =>
  Effect.tryPromise({ try: f, catch: imapError(what) }).pipe(
    Effect.timeoutOrElse({
      duration: settings.timeout,
      orElse: () => Effect.fail(new ImapError({ message: `${what}: no answer within ${Duration.format(settings.timeout)}` }))
    })
  )

/**
 * A logged-in connection for the life of the scope (logged out, or closed,
 * when it ends). `idle`: IDLE starts as soon as the connection is quiet.
 *
 * @category constructors
 */
export const connect = (settings: Settings, options: { readonly idle: boolean }): Effect.Effect<ImapFlow, ImapError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const client = new ImapFlow({
        host: settings.host,
        port: settings.port,
        secure: settings.tls,
        auth: { user: settings.user, pass: Redacted.value(settings.password) },
        logger: false,
        disableAutoIdle: !options.idle,
        autoIdleDelay: 100,
        maxIdleTime: Duration.toMillis(settings.maxIdleTime),
        // Quiet longer than this is a dead connection; IDLE is renewed (traffic) before it.
        socketTimeout: Math.max(300_000, Duration.toMillis(settings.maxIdleTime) + 60_000),
        connectionTimeout: Duration.toMillis(settings.timeout),
        greetingTimeout: Duration.toMillis(settings.timeout)
      })
      // An 'error' without a listener would end the process; the session notices 'close' instead.
      client.on("error", () => {})
      return call(settings, `cannot log in to ${settings.host}:${settings.port} as ${settings.user}`, () => client.connect()).pipe(
        Effect.as(client),
        Effect.onError(() => Effect.sync(() => client.close()))
      )
    }),
    (client) =>
      Effect.tryPromise(() => client.logout()).pipe(
        Effect.timeout(Duration.seconds(2)),
        Effect.ignore,
        Effect.ensuring(Effect.sync(() => client.close()))
      )
  )

/**
 * The unread, unflagged messages' UIDs. NOOP first: it syncs the session with
 * the flags other sessions (the handlers) changed, so a message marked read a
 * moment ago is not listed again.
 */
const unread = (settings: Settings, client: ImapFlow) =>
  call(settings, `cannot search ${settings.mailbox}`, async () => {
    await client.noop()
    return client.search({ seen: false, flagged: false }, { uid: true })
  }).pipe(
    Effect.flatMap((uids) =>
      Array.isArray(uids)
        ? Effect.succeed(uids)
        : Effect.fail(new ImapError({ message: `the server refused to search ${settings.mailbox}` }))
    )
  )

/** Fails when the connection closes (the server went away, or a socket timeout). */
const closedSignal = (client: ImapFlow) =>
  Effect.gen(function* () {
    const closed = yield* Deferred.make<never, ImapError>()
    const onClose = () => Deferred.doneUnsafe(closed, Effect.fail(new ImapError({ message: "the connection closed" })))
    yield* Effect.acquireRelease(
      Effect.sync(() => client.on("close", onClose)),
      () => Effect.sync(() => client.off("close", onClose))
    )
    return Deferred.await(closed)
  })

/** One session: open the mailbox, search it, then search again at every wake-up until the connection fails. */
const session = (settings: Settings, name: string, task: Task.Definition<MessageRef, any>, publisher: TaskSource.Publisher) =>
  Effect.gen(function* () {
    const idle = settings.mode === "idle"
    const client = yield* connect(settings, { idle })
    const closed = yield* closedSignal(client)
    const box = yield* call(settings, `cannot open ${settings.mailbox}`, () => client.mailboxOpen(settings.mailbox, { readOnly: true }))
    const uidValidity = String(box.uidValidity)
    const wake = yield* Queue.sliding<void>(1)
    client.on("exists", () => Queue.offerUnsafe(wake, undefined))
    yield* Effect.logInfo(`mailbox ${settings.mailbox} open (${settings.mode}; uidvalidity ${uidValidity}, ${box.exists} message(s))`)
    const wait = idle
      ? Queue.take(wake).pipe(Effect.timeoutOption(settings.maxIdleTime), Effect.asVoid)
      : Effect.sleep(settings.pollInterval)
    const scan = Effect.gen(function* () {
      const uids = yield* unread(settings, client)
      if (uids.length > 0) {
        yield* publisher.publish(
          task,
          uids.map((uid) => ({
            payload: { mailbox: settings.mailbox, uidValidity, uid },
            key: `${settings.mailbox}:${uidValidity}:${uid}`
          }))
        )
      }
      yield* publisher.event
      yield* publisher.report({
        mode: settings.mode,
        mailbox: settings.mailbox,
        connected: true,
        uid_validity: uidValidity,
        unread: uids.length
      })
    }).pipe(Effect.withSpan("ImapSource.scan", { root: true, attributes: { "asterforge.source": name, "imap.mailbox": settings.mailbox } }))
    while (true) {
      yield* Effect.raceFirst(scan, closed)
      yield* Effect.raceFirst(wait, closed)
    }
  })

/** Reconnect delay after `failures` failed sessions in a row: 0.5 s doubling, at most 30 s. */
export const reconnectDelay = (failures: number): Duration.Duration =>
  Duration.millis(Math.min(30_000, 500 * 2 ** Math.max(0, Math.min(failures - 1, 10))))

/** A session that ran this long before failing starts the backoff over. */
const healthySession = 30_000

/** @category models */
export interface Options<R> {
  readonly name: string
  /** The task each message becomes; its payload is the message's `MessageRef`. */
  readonly task: Task.Definition<MessageRef, any>
  /** Where the mailbox is and how to wait (read when the source starts, e.g. from a config section). */
  readonly settings: Effect.Effect<Settings, never, R>
}

/**
 * A leader-placed source over an IMAP mailbox.
 *
 * @category constructors
 */
export const make = <R>(options: Options<R>): TaskSource.TaskSource<R> =>
  TaskSource.make<R>({
    name: options.name,
    kind: "imap",
    placement: "leader",
    run: (publisher) =>
      Effect.gen(function* () {
        const settings = yield* options.settings
        let failures = 0
        while (true) {
          const started = Date.now()
          const ended = yield* Effect.scoped(session(settings, options.name, options.task, publisher)).pipe(Effect.flip)
          failures = Date.now() - started > healthySession ? 1 : failures + 1
          const delay = reconnectDelay(failures)
          yield* Effect.logWarning(`mailbox session ended (${ended.message}); reconnecting in ${Duration.format(delay)}`)
          yield* publisher.report({ mode: settings.mode, mailbox: settings.mailbox, connected: false, last_error: ended.message, failures })
          yield* Effect.sleep(delay)
        }
      })
  })

// ---------------------------------------------------------------------------
// What a handler does with the message

/**
 * Runs `f` on a read-write connection to the message's mailbox (a connection
 * of its own, logged out afterwards). Fails with `uidValidityChanged` when the
 * mailbox was recreated since the message was listed: its UID then names
 * another message, or none.
 *
 * @category handlers
 */
export const withMailbox = <A, E, R>(
  settings: Settings,
  ref: MessageRef,
  f: (client: ImapFlow) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | ImapError | UidValidityChanged, R> =>
  Effect.scoped(
    Effect.gen(function* () {
      const client = yield* connect(settings, { idle: false })
      const box = yield* call(settings, `cannot open ${ref.mailbox}`, () => client.mailboxOpen(ref.mailbox))
      if (String(box.uidValidity) !== ref.uidValidity)
        return yield* new UidValidityChanged({ mailbox: ref.mailbox, listed: ref.uidValidity, now: String(box.uidValidity) })
      return yield* f(client)
    })
  )

/**
 * The mailbox was recreated since the message was listed (its UIDVALIDITY
 * changed): the task can never find its message.
 *
 * @category errors
 */
export class UidValidityChanged extends Schema.TaggedError<UidValidityChanged>()("UidValidityChanged", {
  mailbox: Schema.String,
  listed: Schema.String,
  now: Schema.String
}) {}

/** The message's envelope, structure and flags; undefined when it is gone (deleted or moved by someone). */
export const fetchMessage = (settings: Settings, client: ImapFlow, uid: number) =>
  call(settings, `cannot fetch message ${uid}`, () =>
    client.fetchOne(String(uid), { envelope: true, bodyStructure: true, flags: true }, { uid: true })
  ).pipe(Effect.map((m) => (m === false ? undefined : m)))

type Structure = NonNullable<Awaited<ReturnType<ImapFlow["fetchOne"]>> & object>["bodyStructure"]

/** The body part holding the message's plain text (`1` for a single-part message), if any. */
export const textPart = (structure: Structure): string | undefined => {
  if (structure === undefined) return undefined
  if (structure.type === "text/plain" && structure.disposition !== "attachment") return structure.part ?? "1"
  for (const child of structure.childNodes ?? []) {
    const part = textPart(child)
    if (part !== undefined) return part
  }
  return undefined
}

/** A body part as text (transfer encoding removed, charset converted to UTF-8); never sets `\Seen`. */
export const download = (settings: Settings, client: ImapFlow, uid: number, part: string) =>
  call(settings, `cannot download message ${uid}`, async () => {
    const { content } = await client.download(String(uid), part, { uid: true, maxBytes: 1024 * 1024 })
    if (content === undefined) return ""
    const chunks: Array<Buffer> = []
    for await (const chunk of content) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
    return Buffer.concat(chunks).toString("utf8")
  })

/** Adds `flags` to the message (`\Seen`, `\Flagged`). */
export const addFlags = (settings: Settings, client: ImapFlow, uid: number, flags: ReadonlyArray<string>) =>
  call(settings, `cannot flag message ${uid}`, () => client.messageFlagsAdd(String(uid), [...flags], { uid: true })).pipe(
    Effect.flatMap((ok) =>
      ok ? Effect.void : Effect.fail(new ImapError({ message: `the server refused to set ${flags.join(" ")} on ${uid}` }))
    )
  )

/** Moves the message to `folder`, creating the folder when it does not exist. */
export const moveTo = (settings: Settings, client: ImapFlow, uid: number, folder: string) =>
  Effect.gen(function* () {
    const exists = (yield* call(settings, "cannot list folders", () => client.list())).some((m) => m.path === folder)
    if (!exists) yield* call(settings, `cannot create ${folder}`, () => client.mailboxCreate(folder))
    const moved = yield* call(settings, `cannot move message ${uid} to ${folder}`, () =>
      client.messageMove(String(uid), folder, { uid: true })
    )
    if (moved === false) return yield* new ImapError({ message: `the server refused to move message ${uid} to ${folder}` })
  })
