/**
 * The admin commands as an operator runs them: `asterforge tasks|queues|
 * nodes|lanes|audit|tokens` on the database directly, with no node running;
 * human tables by default, the API's JSON with `--json`, the same filters as
 * the API, every action audited as `cli:<user>`, and bad input refused with
 * exit 1 and the reason.
 */
import * as Crypto from "node:crypto"
import * as Os from "node:os"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freshDatabase, query, type FreshDatabase } from "../../../runtime/test/support/kit.ts"
import { spawnCli } from "../../../runtime/test/support/process.ts"

let db: FreshDatabase
const ids: Record<string, string> = {}
const me = `cli:${Os.userInfo().username}`

/** Runs `asterforge ...args` to its end against the test database. */
const cli = async (...args: ReadonlyArray<string>) => {
  const p = spawnCli(args, { DATABASE_URL: db.url })
  const { code } = await p.exited
  return { code, stdout: p.stdout.join("\n").trim(), stderr: p.stderr.join("\n").trim() }
}

const json = async (...args: ReadonlyArray<string>) => {
  const r = await cli(...args, "--json")
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout)
}

beforeAll(async () => {
  db = await freshDatabase("admin_cli")
  expect((await cli("migrate")).code).toBe(0)
  const insert = async (label: string, state: string, queue: string, errors = "[]") => {
    const [row] = await query<{ id: string }>(
      db.url,
      `INSERT INTO tasks (name, queue, state, max_attempts, attempt, payload, errors, finished_at)
       VALUES ('app.work', $1, $2, 3, $4, $3::jsonb, $5::jsonb, CASE WHEN $2 IN ('succeeded', 'failed', 'cancelled') THEN now() END)
       RETURNING id::text AS id`,
      [queue, state, JSON.stringify({ label }), state === "available" ? 0 : 1, errors]
    )
    ids[label] = row!.id
  }
  await insert("old-done", "succeeded", "mail")
  await insert(
    "broken",
    "failed",
    "mail",
    JSON.stringify([{ tag: "Terminal", message: "no such mailbox", code: "mail.bounced", attempt: 1, at: new Date().toISOString() }])
  )
  await insert("waiting-1", "available", "reports")
  await insert("waiting-2", "available", "reports")
  await insert("waiting-3", "available", "reports")
  await query(db.url, `INSERT INTO nodes (id, name, mode, host, pid, version) VALUES ($1, 'web-1', 'follower', 'host-a', 42, '0.2.0')`, [
    Crypto.randomUUID()
  ])
}, 120_000)

afterAll(async () => {
  await db.drop()
})

describe("asterforge tasks", () => {
  it("list: a table by default, the API's JSON with --json, the same filters, keyset pages", async () => {
    const table = await cli("tasks", "list")
    expect(table.code, table.stderr).toBe(0)
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+STATE\s+QUEUE\s+NAME\s+ATTEMPT\s+CREATED\s+LAST ERROR$/)
    expect(table.stdout).toContain("Terminal mail.bounced: no such mailbox")
    const failed = await json("tasks", "list", "--state", "failed,cancelled", "--queue", "mail")
    expect(failed.items.map((t: { id: string }) => t.id)).toEqual([ids.broken])
    const byPayload = await json("tasks", "list", "--payload", '{"label":"waiting-2"}', "--created-after", "2020-01-01T00:00:00Z")
    expect(byPayload.items.map((t: { id: string }) => t.id)).toEqual([ids["waiting-2"]])

    const first = await cli("tasks", "list", "--queue", "reports", "--limit", "2")
    const cursor = /next page: --cursor (\S+)/.exec(first.stdout)?.[1]
    expect(cursor).toBeDefined()
    const rest = await json("tasks", "list", "--queue", "reports", "--limit", "2", "--cursor", cursor!)
    expect(rest.items.map((t: { id: string }) => t.id)).toEqual([ids["waiting-1"]])
    expect(rest.next).toBeNull()
  })

  it("get: the task with its errors and audit trail", async () => {
    const shown = await cli("tasks", "get", ids.broken!)
    expect(shown.code).toBe(0)
    expect(shown.stdout).toMatch(/^id:\s+\d+/)
    expect(shown.stdout).toMatch(/payload:\s+\{"label":"broken"\}/)
    expect(shown.stdout).toMatch(/1\s+\S+ \S+\s+Terminal\s+mail\.bounced\s+no such mailbox/)
    expect((await json("tasks", "get", ids.broken!)).errors[0]).toMatchObject({ tag: "Terminal", code: "mail.bounced" })
  })

  it("retry and cancel act, refuse what the state forbids, and are audited as the OS user", async () => {
    const retried = await cli("tasks", "retry", ids.broken!)
    expect(retried.stdout).toBe(`task ${ids.broken}: available`)
    const again = await cli("tasks", "retry", ids.broken!)
    expect(again.code).toBe(1)
    expect(again.stderr).toContain(`cannot retry task ${ids.broken}: it is available`)
    expect((await json("tasks", "cancel", ids["waiting-3"]!)).state).toBe("cancelled")
    const audit = await query<{ code: string; actor: string; subject: string }>(
      db.url,
      "SELECT code, actor, subject FROM audit_events WHERE code IN ('task.retried', 'task.cancelled') ORDER BY id"
    )
    expect(audit).toEqual([
      { code: "task.retried", actor: me, subject: `task:${ids.broken}` },
      { code: "task.cancelled", actor: me, subject: `task:${ids["waiting-3"]}` }
    ])
  })

  it("bad input and unknown ids exit 1 with the reason and no stack trace", async () => {
    for (const [args, reason] of [
      [["tasks", "get", "424242"], "task 424242 not found"],
      [["tasks", "list", "--state", "bogus"], "state"],
      [["tasks", "list", "--payload", "[1"], "--payload"],
      [["queues", "pause", "bad queue!"], "<queue>"]
    ] as const) {
      const r = await cli(...args)
      expect(r.code, `${args.join(" ")}: ${r.stdout}`).toBe(1)
      expect(r.stderr).toContain(reason)
      expect(r.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m)
    }
  })
})

describe("asterforge queues, nodes, lanes, audit", () => {
  it("queues shows depth and pause state; pause and resume act and are audited", async () => {
    expect((await cli("queues", "pause", "reports")).stdout).toBe("queue reports paused")
    const table = await cli("queues")
    expect(table.stdout.split("\n")[0]).toMatch(/^QUEUE\s+PAUSED\s+AVAILABLE/)
    expect(table.stdout).toMatch(new RegExp(`reports\\s+yes \\(${me}\\)`))
    expect((await json("queues", "resume", "reports")).paused).toBe(false)
    expect((await cli("queues", "resume", "reports")).stdout).toBe("queue reports resumed (it was already running)")
    const rows = await query<{ code: string; actor: string }>(
      db.url,
      "SELECT code, actor FROM audit_events WHERE subject = 'queue:reports' ORDER BY id"
    )
    expect(rows.map((r) => r.code)).toEqual(["queue.paused", "queue.resumed", "queue.resumed"])
    expect(new Set(rows.map((r) => r.actor))).toEqual(new Set([me]))
  })

  it("nodes and lanes list what the tables hold; audit filters and pages", async () => {
    const nodes = await cli("nodes")
    expect(nodes.stdout).toMatch(/web-1\s+follower\s+running\s+host-a\s+42/)
    expect((await json("nodes")).items[0]).toMatchObject({ name: "web-1", role: { fullApi: true, dispatches: false } })
    expect((await cli("lanes")).stdout).toBe("(none)")
    const paused = await json("audit", "--code", "queue.paused")
    expect(paused.items.map((e: { actor: string; title: string }) => [e.actor, e.title])).toEqual([[me, "Queue paused"]])
    const page = await json("audit", "--actor", me, "--limit", "2")
    expect(page.items).toHaveLength(2)
    const next = await json("audit", "--actor", me, "--limit", "2", "--cursor", page.next)
    expect(next.items.length).toBeGreaterThan(0)
    expect(next.items.map((e: { id: string }) => e.id)).not.toContain(page.items[0].id)
  })
})

describe("asterforge tokens", () => {
  it("create prints the token once, alone on the last line; only its hash is stored; list never shows it; revoke ends it", async () => {
    const created = await cli("tokens", "create", "--name", "ci-bot", "--role", "operator", "--expires", "12h")
    expect(created.code, created.stderr).toBe(0)
    const lines = created.stdout.split("\n")
    const token = lines[lines.length - 1]!
    expect(token).toMatch(/^aft_[A-Za-z0-9_-]{43}$/)
    expect(lines.slice(0, -1).join("\n")).not.toContain(token)
    const [row] = await query<{ token_hash: string; created_by: string }>(
      db.url,
      "SELECT token_hash, created_by FROM api_tokens WHERE name = 'ci-bot'"
    )
    expect(row).toEqual({ token_hash: Crypto.createHash("sha256").update(token).digest("hex"), created_by: me })
    const list = await cli("tokens", "list")
    expect(list.stdout).toMatch(/ci-bot\s+operator\s+aft_/)
    expect(list.stdout).not.toContain(token)
    const taken = await cli("tokens", "create", "--name", "ci-bot", "--role", "viewer")
    expect(taken.code).toBe(1)
    expect(taken.stderr).toContain('a live token named "ci-bot" exists')
    expect((await cli("tokens", "revoke", "ci-bot")).stdout).toBe("revoked token ci-bot (role operator)")
    expect((await json("tokens", "list", "--revoked")).items[0]).toMatchObject({ name: "ci-bot", revokedAt: expect.any(String) })
    expect((await cli("tokens", "revoke", "ci-bot")).stderr).toContain('token "ci-bot" not found')
  })

  it("a database whose schema is behind the build is refused: run migrate first", async () => {
    const bare = await freshDatabase("admin_cli_bare")
    try {
      const p = spawnCli(["tasks", "list"], { DATABASE_URL: bare.url })
      expect((await p.exited).code).toBe(1)
      expect(p.stderr.join("\n")).toContain("run `asterforge migrate` first")
    } finally {
      await bare.drop()
    }
  })
})
