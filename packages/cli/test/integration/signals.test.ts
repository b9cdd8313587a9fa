/**
 * Signals as supervisors send them: to the top process only (systemd's
 * default KillMode aside, Docker and Kubernetes signal PID 1 / the container's
 * main process). Whatever wraps the node (pnpm, the `node` package's shell
 * shim), the graceful shutdown must run: the node drains, its row is marked
 * stopped, and no process of the group is left holding leases or lane locks.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { eventually, type FreshDatabase, freshDatabase, query } from "../../../runtime/test/support/kit.ts"
import { groupMembers, killGroup, repoRoot, type Spawned, spawnGroup } from "../../../runtime/test/support/process.ts"

let db: FreshDatabase
const groups: Array<number> = []
beforeAll(async () => {
  db = await freshDatabase("signals")
})
afterEach(() => {
  for (const pgid of groups.splice(0)) killGroup(pgid)
})
afterAll(async () => {
  await db.drop()
})

const nodeRow = async (name: string) =>
  (await query<{ status: string }>(db.url, "SELECT status FROM nodes WHERE name = $1 ORDER BY started_at DESC LIMIT 1", [name]))[0]?.status

/** Starts `command`, waits until its node serves, SIGTERMs the top process only, and reports what happened. */
const signalTopProcess = async (label: string, command: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const top: Spawned = spawnGroup(command, args, {
    ...env,
    DATABASE_URL: db.url,
    ASTERFORGE_SERVER_NODE_NAME: label,
    ASTERFORGE_SHUTDOWN_TIMEOUT: "20s"
  })
  const pgid = top.child.pid!
  groups.push(pgid)
  await top.baseUrl()
  expect(await nodeRow(label)).toBe("running")
  const before = groupMembers(pgid)
  const signalledAt = Date.now()
  top.kill("SIGTERM")
  // Bounded by the shutdown watchdog (20 s here); waited on, not asserted as a speed.
  await eventually(
    async () => (groupMembers(pgid).length === 0 ? true : undefined),
    `every process of ${label}'s group to exit`,
    25_000
  ).catch((e) => {
    throw new Error(`${e}\nleft: ${JSON.stringify(groupMembers(pgid))}\n--- output ---\n${top.output.slice(-3000)}`)
  })
  console.log(`[measure] ${label}: SIGTERM to the top process only; the whole group gone ${Date.now() - signalledAt} ms later`)
  return { before, top, status: await nodeRow(label), logs: top.logs }
}

describe("SIGTERM to the top process only", () => {
  it("`pnpm start`: the start script execs the real node binary, so pnpm's signal reaches the node, which drains", async () => {
    // A supervisor's PATH: no node_modules/.bin (the test runner's own PATH has one, whose `node` shim would wrap pnpm).
    const path = (process.env.PATH ?? "")
      .split(":")
      .filter((dir) => !dir.includes("node_modules"))
      .join(":")
    const r = await signalTopProcess("via-pnpm", "pnpm", ["start", "--port", "0"], { PATH: path })
    expect(r.before[0]?.command).toMatch(/pnpm start/)
    // pnpm, and the node it runs (exec'd by the start script: the real binary, no shell in between).
    expect(r.before.some((p) => /packages\/cli\/src\/bin\.ts start/.test(p.command))).toBe(true)
    expect(r.status).toBe("stopped")
    expect(r.logs.some((l) => l.message === "node row marked stopped")).toBe(true)
  })

  it("the `node` package's shell shim (node_modules/.bin/node app): the shim dies without forwarding it, the node notices and shuts down gracefully", async () => {
    const r = await signalTopProcess("via-shim", `${repoRoot}/node_modules/.bin/node`, ["packages/cli/src/bin.ts", "start", "--port", "0"])
    expect(r.before.length).toBeGreaterThanOrEqual(2)
    expect(r.status).toBe("stopped")
    expect(r.logs.some((l) => /^parent process \d+ exited; shutting down gracefully/.test(String(l.message)))).toBe(true)
    expect(r.logs.some((l) => l.message === "node row marked stopped")).toBe(true)
  })

  it("the real node binary as the top process (the production recipe): exit 0 after a graceful drain", async () => {
    const r = await signalTopProcess("direct", `${repoRoot}/node_modules/node/bin/node`, [
      "packages/cli/src/bin.ts",
      "start",
      "--port",
      "0"
    ])
    expect(r.before).toHaveLength(1)
    expect(await r.top.exited).toEqual({ code: 0, signal: null })
    expect(r.status).toBe("stopped")
  })
})
