/**
 * The mail-order bot against a real IMAP server (dovecot, started by the test
 * on loopback) and a real PostgreSQL, run as the real app binary
 * (src/main.ts). In both modes: 50 order mails and 5 malformed ones give
 * exactly 50 orders, the 50 marked read and the 5 left unread and flagged;
 * the bot is killed (-9) mid-run and restarted, and still no order is written
 * twice and no mail is read without its order. In IDLE mode a mail appended
 * while the bot waits is picked up without a poll, and the bot reconnects
 * when the server restarts. Bad `[mail]` configuration exits 1 listing every
 * problem, the password never shown.
 */
import { ImapFlow } from "imapflow"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, freshDatabase, query, type FreshDatabase } from "../../../runtime/test/support/kit.ts"
import { repoRoot, type Spawned, spawnNode, trackProcesses } from "../../../runtime/test/support/process.ts"
import * as Dovecot from "../support/dovecot.ts"

const bot = Path.join(repoRoot, "packages/mail-order-bot/src/main.ts")
const track = trackProcesses()
let imap: Dovecot.Dovecot
const dbs: Array<FreshDatabase> = []

beforeAll(async () => {
  imap = await Dovecot.start()
})
afterAll(async () => {
  await imap?.stop()
  for (const db of dbs) await db.drop()
})

// ---------------------------------------------------------------------------
// Mails

const orderMail = (tag: string, i: number) =>
  [
    `From: Customer ${i} <c${i}@example.com>`,
    "To: orders@example.com",
    `Subject: Order ${tag}-${i}`,
    `Message-ID: <order-${tag}-${i}@test.example>`,
    "Content-Type: text/plain; charset=utf-8",
    "",
    "Hello, please send:",
    "",
    `Customer: Customer ${i} <c${i}@example.com>`,
    `Address: ${i} Main Street, 12345 Springfield`,
    `2 x SKU-${i} Blue widget`,
    "1 x SKU-X",
    "",
    "-- ",
    `Customer ${i}`
  ].join("\r\n")

/** Five ways not to be an order: no customer, no lines, a zero quantity, a bad address, no Message-ID. */
const malformedMails = (tag: string) => {
  const base = (i: number, body: ReadonlyArray<string>, messageId = true) =>
    [
      "From: someone@example.com",
      `Subject: Not quite an order ${tag}-${i}`,
      ...(messageId ? [`Message-ID: <bad-${tag}-${i}@test.example>`] : []),
      "",
      ...body
    ].join("\r\n")
  return [
    base(1, ["Address: 1 Road", "1 x SKU-1"]),
    base(2, ["Customer: Al <al@example.com>", "Address: 2 Road", "thanks!"]),
    base(3, ["Customer: Bo <bo@example.com>", "Address: 3 Road", "0 x SKU-3"]),
    base(4, ["Customer: Cy <not-an-address>", "Address: 4 Road", "1 x SKU-4"]),
    base(5, ["Customer: Di <di@example.com>", "Address: 5 Road", "1 x SKU-5"], false)
  ]
}

const withImap = async <A>(f: (client: ImapFlow) => Promise<A>): Promise<A> => {
  const client = new ImapFlow({
    host: imap.host,
    port: imap.port,
    secure: false,
    auth: { user: imap.user, pass: imap.password },
    logger: false
  })
  client.on("error", () => {})
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.logout().catch(() => client.close())
  }
}

/** Appends `mails` (a real IMAP APPEND each); their UIDs. */
const append = (mailbox: string, mails: ReadonlyArray<string>) =>
  withImap(async (client) => {
    if (!(await client.list()).some((m) => m.path === mailbox)) await client.mailboxCreate(mailbox)
    const uids: Array<number> = []
    for (const mail of mails) {
      const appended = await client.append(mailbox, mail)
      if (appended !== false && appended.uid !== undefined) uids.push(appended.uid)
    }
    return uids
  })

interface Mail {
  readonly uid: number
  readonly messageId: string | undefined
  readonly subject: string
  readonly seen: boolean
  readonly flagged: boolean
}
/** Every message of `mailbox` with its flags, read without changing them. */
const mailbox = (name: string) =>
  withImap(async (client) => {
    await client.mailboxOpen(name, { readOnly: true })
    const all = await client.fetchAll("1:*", { uid: true, flags: true, envelope: true })
    return all.map(
      (m): Mail => ({
        uid: m.uid,
        messageId: m.envelope?.messageId,
        subject: m.envelope?.subject ?? "",
        seen: m.flags?.has("\\Seen") ?? false,
        flagged: m.flags?.has("\\Flagged") ?? false
      })
    )
  })

// ---------------------------------------------------------------------------
// The bot

const startBot = (db: FreshDatabase, env: Record<string, string>) =>
  track(
    spawnNode(bot, ["start", "--port", "0"], {
      DATABASE_URL: db.url,
      ASTERFORGE_MAIL_HOST: imap.host,
      ASTERFORGE_MAIL_PORT: String(imap.port),
      ASTERFORGE_MAIL_USER: imap.user,
      ASTERFORGE_MAIL_PASSWORD: imap.password,
      ASTERFORGE_MAIL_TLS: "false",
      ASTERFORGE_WORKER_QUEUES: "mail=2",
      // A killed node's tasks come back quickly: short leases, a frequent rescue.
      ASTERFORGE_WORKER_LEASE_DURATION: "3s",
      ASTERFORGE_WORKER_HEARTBEAT_INTERVAL: "1s",
      ASTERFORGE_MAINTENANCE_LEASE_RESCUE_INTERVAL: "500ms",
      ...env
    })
  )

const orderIds = (db: FreshDatabase) =>
  query<{ message_id: string }>(db.url, "SELECT message_id FROM mail_orders").then((r) => r.map((o) => o.message_id))

/** The invariant: a mail is marked read only once its order is committed. */
const expectNoMailReadWithoutOrder = async (db: FreshDatabase, box: string) => {
  const orders = new Set(await orderIds(db))
  const read = (await mailbox(box)).filter((m) => m.seen)
  expect(read.filter((m) => m.messageId === undefined || !orders.has(m.messageId))).toEqual([])
}

const mailboxOpened = (p: Spawned) => p.logs.filter((l) => /^mailbox \S+ open/.test(String(l.message)))

/**
 * 55 mails waiting; the bot starts, is killed -9 mid-run, starts again: exactly 50 orders.
 * Returns the second bot, still running.
 */
const killedMidRun = async (db: FreshDatabase, box: string, tag: string, env: Record<string, string>) => {
  const good = Array.from({ length: 50 }, (_, i) => orderMail(tag, i + 1))
  const bad = malformedMails(tag)
  // The malformed ones between the good ones.
  await append(box, [
    ...good.slice(0, 10),
    bad[0]!,
    ...good.slice(10, 20),
    bad[1]!,
    bad[2]!,
    ...good.slice(20, 40),
    bad[3]!,
    ...good.slice(40),
    bad[4]!
  ])
  const first = startBot(db, { ASTERFORGE_MAIL_MAILBOX: box, ...env })
  const atKill = await eventually(async () => {
    const n = (await orderIds(db)).length
    return n >= 5 ? n : undefined
  }, "the first orders")
  first.kill("SIGKILL")
  await first.exited
  const ordersAtKill = (await orderIds(db)).length
  console.log(`[measure] ${tag}: bot killed -9 with ${ordersAtKill} of 50 orders written (saw ${atKill} a moment before)`)
  expect(ordersAtKill).toBeLessThan(50)
  await expectNoMailReadWithoutOrder(db, box)

  const second = startBot(db, { ASTERFORGE_MAIL_MAILBOX: box, ...env })
  const restartedAt = Date.now()
  // Wait on the database first (cheap), then look at the mailbox once it should be done.
  const failedTasks = () =>
    query<{ code: string }>(db.url, "SELECT errors->-1->>'code' AS code FROM tasks WHERE name = 'mail.order_received' AND state = 'failed'")
  await eventually(
    async () => ((await orderIds(db)).length >= 50 && (await failedTasks()).length >= 5 ? true : undefined),
    "50 orders and 5 refused mails",
    60_000
  )
  const final = await eventually(async () => {
    const mails = await mailbox(box)
    return mails.filter((m) => m.seen).length === 50 && mails.filter((m) => m.flagged).length === 5 ? mails : undefined
  }, "50 mails read and 5 flagged")
  console.log(`[measure] ${tag}: the restarted bot finished the mailbox in ${Date.now() - restartedAt} ms`)
  const orders = await orderIds(db)
  expect(orders).toHaveLength(50)
  expect(new Set(orders).size).toBe(50)
  expect(orders.sort()).toEqual(Array.from({ length: 50 }, (_, i) => `<order-${tag}-${i + 1}@test.example>`).sort())
  expect(await query(db.url, "SELECT count(*)::int AS n FROM mail_order_lines")).toEqual([{ n: 100 }])
  const [line] = await query(
    db.url,
    "SELECT o.customer_name, o.customer_email, o.address, l.quantity, l.sku, l.description FROM mail_orders o JOIN mail_order_lines l ON l.order_id = o.id WHERE o.message_id = $1 AND l.line_no = 1",
    [`<order-${tag}-7@test.example>`]
  )
  expect(line).toEqual({
    customer_name: "Customer 7",
    customer_email: "c7@example.com",
    address: "7 Main Street, 12345 Springfield",
    quantity: 2,
    sku: "SKU-7",
    description: "Blue widget"
  })
  // The 50 orders are read, the 5 others unread and flagged.
  expect(final.filter((m) => m.seen).every((m) => m.messageId?.startsWith(`<order-${tag}-`))).toBe(true)
  const refused = final.filter((m) => !m.seen)
  expect(refused.map((m) => m.subject).sort()).toEqual([1, 2, 3, 4, 5].map((i) => `Not quite an order ${tag}-${i}`))
  expect(refused.every((m) => m.flagged)).toBe(true)
  await expectNoMailReadWithoutOrder(db, box)
  const failed = await failedTasks()
  expect(failed).toHaveLength(5)
  expect(failed.every((r) => r.code === "mail.order_unparseable")).toBe(true)
  return second
}

describe("mail-order bot", () => {
  it("poll mode: 50 orders and 5 refusals, exactly once across a kill -9 mid-run", { timeout: 180_000 }, async () => {
    const db = await freshDatabase("mailbot_poll")
    dbs.push(db)
    const second = await killedMidRun(db, "Poll", "poll", { ASTERFORGE_MAIL_MODE: "poll", ASTERFORGE_MAIL_POLL_INTERVAL: "200ms" })
    second.kill("SIGTERM")
    expect((await second.exited).code).toBe(0)
  })

  it("IDLE mode: the same, then a new mail is picked up without a poll, and the bot reconnects after the server restarts", {
    timeout: 180_000
  }, async () => {
    const db = await freshDatabase("mailbot_idle")
    dbs.push(db)
    // No poll would come for ten minutes: only IDLE can wake the bot.
    const idle = { ASTERFORGE_MAIL_MODE: "idle", ASTERFORGE_MAIL_MAX_IDLE_TIME: "10 minutes", ASTERFORGE_MAIL_POLL_INTERVAL: "1h" }
    const second = await killedMidRun(db, "Idle", "idle", idle)

    const appendedAt = Date.now()
    const [lateUid] = await append("Idle", [orderMail("idle-late", 1)])
    await eventually(
      async () => ((await orderIds(db)).includes("<order-idle-late-1@test.example>") ? true : undefined),
      "the late mail's order"
    )
    const orderedAt = Date.now()
    const [task] = await query<{ created_at: Date }>(
      db.url,
      "SELECT created_at FROM tasks WHERE name = 'mail.order_received' AND (payload->>'uid')::int = $1 ORDER BY id LIMIT 1",
      [lateUid]
    )
    console.log(
      `[measure] IDLE pickup: task enqueued ${task!.created_at.getTime() - appendedAt} ms, order written ${orderedAt - appendedAt} ms after APPEND`
    )

    const opened = mailboxOpened(second).length
    const { upAt } = await imap.restart({ downMs: 1000 })
    const reopened = await eventually(async () => mailboxOpened(second)[opened], "the bot to open the mailbox again", 60_000)
    console.log(
      `[measure] IMAP reconnect: mailbox open again ${Date.parse(String(reopened.timestamp)) - upAt} ms after dovecot answered again (down 1 s)`
    )
    const afterRestart = Date.now()
    await append("Idle", [orderMail("idle-late", 2)])
    await eventually(
      async () => ((await orderIds(db)).includes("<order-idle-late-2@test.example>") ? true : undefined),
      "the mail after the restart"
    )
    console.log(`[measure] IDLE pickup after the reconnect: ${Date.now() - afterRestart} ms after APPEND`)
    expect(await orderIds(db)).toHaveLength(52)
    await expectNoMailReadWithoutOrder(db, "Idle")
    second.kill("SIGTERM")
    expect((await second.exited).code).toBe(0)
  })

  it("invalid [mail] configuration exits 1 listing every problem, and never shows the password", async () => {
    const db = await freshDatabase("mailbot_config")
    dbs.push(db)
    const password = "do-not-print-this-password"
    const p = track(
      spawnNode(bot, ["start", "--port", "0"], {
        DATABASE_URL: db.url,
        ASTERFORGE_MAIL_PASSWORD: password,
        ASTERFORGE_MAIL_PORT: "99999",
        ASTERFORGE_MAIL_MODE: "push",
        ASTERFORGE_MAIL_POLL_INTERVAL: "0"
      })
    )
    expect((await p.exited).code).toBe(1)
    const out = p.output
    for (const key of ["mail.host", "mail.user", "ASTERFORGE_MAIL_PORT", "ASTERFORGE_MAIL_MODE", "ASTERFORGE_MAIL_POLL_INTERVAL"])
      expect(out).toContain(key)
    expect(out).toMatch(/invalid configuration \(5 problems\)/)
    expect(out).toContain("required: the IMAP server's host name")
    expect(out).not.toContain(password)
    expect(out).not.toContain("http listening")
  })
})
