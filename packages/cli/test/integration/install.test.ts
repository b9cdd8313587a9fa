/**
 * The packages as a user gets them: built, packed, installed from the
 * tarballs into a project OUTSIDE the repository, an app there type-checked
 * under a plain strict `nodenext` tsconfig (no `allowImportingTsExtensions`)
 * and compiled, then run with the plain Node 24 binary in every role it
 * needs: `migrate`, `start` (a primary) and `start --mode follower`. A task
 * enqueued through the follower runs on the primary; SIGTERM stops both
 * (exit 0, node rows stopped).
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, type FreshDatabase, freshDatabase, query } from "../../../runtime/test/support/kit.ts"
import { pollHttp, repoRoot, Spawned, trackProcesses } from "../../../runtime/test/support/process.ts"

const track = trackProcesses()
const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "asterforge-install-"))
const project = Path.join(work, "app")
let db: FreshDatabase

/** Runs a command to completion; its output is the error when it fails. */
const sh = (command: string, args: ReadonlyArray<string>, cwd: string): string => {
  const r = ChildProcess.spawnSync(command, args, { cwd, encoding: "utf8", env: { ...process.env, CI: "true" }, timeout: 240_000 })
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} (in ${cwd}) exited ${r.status}\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

const pack = (pkg: string): string => {
  const out = sh("pnpm", ["pack", "--pack-destination", work], Path.join(repoRoot, "packages", pkg))
  const tarball = out.trim().split("\n").at(-1)!.trim()
  expect(Fs.existsSync(tarball), tarball).toBe(true)
  return tarball
}

const version = (name: string): string =>
  JSON.parse(Fs.readFileSync(Path.join(repoRoot, "node_modules", name, "package.json"), "utf8")).version

beforeAll(async () => {
  db = await freshDatabase("install")
  sh("pnpm", ["build"], repoRoot)
  const runtime = pack("runtime")
  const cli = pack("cli")
  Fs.mkdirSync(project)
  for (const f of ["app.ts", "tsconfig.json"])
    Fs.copyFileSync(Path.join(repoRoot, "packages/cli/test/fixtures/installed-app", f), Path.join(project, f))
  Fs.writeFileSync(
    Path.join(project, "package.json"),
    JSON.stringify(
      {
        name: "installed-app",
        private: true,
        type: "module",
        dependencies: {
          "@asterforge/runtime": `file:${runtime}`,
          "@asterforge/cli": `file:${cli}`,
          effect: version("effect"),
          "@effect/platform-node": version("@effect/platform-node"),
          "@effect/sql-pg": version("@effect/sql-pg")
        },
        devDependencies: { "@types/node": version("@types/node") },
        // The CLI's dependency on the runtime is a version range: point it at the tarball, not the registry.
        pnpm: { overrides: { "@asterforge/runtime": `file:${runtime}` } }
      },
      null,
      2
    )
  )
  sh("pnpm", ["install", "--prefer-offline", "--no-frozen-lockfile"], project)
}, 300_000)

afterAll(async () => {
  await db?.drop()
  Fs.rmSync(work, { recursive: true, force: true })
})

/** The app's compiled entry, run by the plain Node 24 binary (no type stripping, no repo on the path). */
const runApp = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Spawned(
    ChildProcess.spawn(process.execPath, [Path.join(project, "dist/app.js"), ...args], {
      cwd: project,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ASTERFORGE_TELEMETRY_LOG_FORMAT: "json", DATABASE_URL: db.url, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
  )

describe("installed from the packed tarballs, outside the repository", () => {
  it("the tarballs hold the build and no sources or tests; ./internal/* is closed", () => {
    const installed = Path.join(project, "node_modules/@asterforge/runtime")
    const manifest = JSON.parse(Fs.readFileSync(Path.join(installed, "package.json"), "utf8"))
    expect(manifest.exports["."]).toEqual({ types: "./dist/index.d.ts", default: "./dist/index.js" })
    expect(manifest.exports["./internal/*"]).toBeNull()
    expect(manifest.private).toBeUndefined()
    expect(Object.keys(manifest.peerDependencies)).toEqual(expect.arrayContaining(["effect", "@effect/platform-node", "@effect/sql-pg"]))
    expect(Fs.existsSync(Path.join(installed, "dist/index.js"))).toBe(true)
    expect(Fs.existsSync(Path.join(installed, "dist/index.d.ts"))).toBe(true)
    // The admin UI's build ships in the package; its sources and the libraries it was built with do not.
    expect(Fs.existsSync(Path.join(installed, "ui/index.html"))).toBe(true)
    expect(Object.keys(manifest.dependencies ?? {})).not.toEqual(expect.arrayContaining(["preact"]))
    expect(Fs.existsSync(Path.join(installed, "src"))).toBe(false)
    expect(Fs.existsSync(Path.join(installed, "test"))).toBe(false)
    // One copy of effect in the app: the runtime uses the app's.
    const effects = sh("find", ["node_modules/.pnpm", "-maxdepth", "1", "-name", "effect@*"], project)
      .trim()
      .split("\n")
      .filter((l) => l !== "")
    expect(effects).toHaveLength(1)
  })

  it("a strict nodenext app type-checks against the published types and compiles", () => {
    sh(Path.join(repoRoot, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], project)
    expect(Fs.existsSync(Path.join(project, "dist/app.js"))).toBe(true)
  })

  it("the app binary migrates, runs a primary and a follower; a task enqueued on the follower runs on the primary; SIGTERM stops both", async () => {
    const migrate = track(runApp(["migrate"], {}))
    expect(await migrate.exited, migrate.output).toEqual({ code: 0, signal: null })
    expect(migrate.stdout).toContain("  greetings 0001_create_greetings")

    const primary = track(runApp(["start", "--port", "0"], { ASTERFORGE_SERVER_NODE_NAME: "installed-primary" }))
    const follower = track(runApp(["start", "--mode", "follower", "--port", "0"], { ASTERFORGE_SERVER_NODE_NAME: "installed-follower" }))
    const [, followerUrl] = await Promise.all([primary.baseUrl(), follower.baseUrl()])
    const ready = JSON.parse((await pollHttp(`${followerUrl}/health/ready`, (s) => s === 200)).body)
    expect(ready.mode).toBe("follower")
    // The follower serves the admin UI from the installed package.
    const page = await fetch(`${followerUrl}/admin/`)
    expect(page.status).toBe(200)
    const script = /src="(\/admin\/assets\/app-[A-Z0-9]+\.js)"/.exec(await page.text())?.[1]
    expect(script).toBeDefined()
    expect((await fetch(`${followerUrl}${script}`)).status).toBe(200)

    const accepted = await fetch(`${followerUrl}/greet/ada`, { method: "POST" })
    expect(accepted.status).toBe(202)
    const nodes = await query<{ id: string; name: string }>(db.url, "SELECT id::text, name FROM nodes WHERE status = 'running'")
    const primaryId = nodes.find((n) => n.name === "installed-primary")!.id
    const greeting = await eventually(
      async () => (await query<{ recipient: string; node_id: string }>(db.url, "SELECT recipient, node_id::text FROM greetings"))[0],
      "the greeting to be written"
    )
    expect(greeting).toEqual({ recipient: "ada", node_id: primaryId })

    primary.kill("SIGTERM")
    follower.kill("SIGTERM")
    expect(await primary.exited).toEqual({ code: 0, signal: null })
    expect(await follower.exited).toEqual({ code: 0, signal: null })
    const rows = await query<{ name: string; status: string }>(
      db.url,
      "SELECT name, status FROM nodes WHERE name LIKE 'installed-%' ORDER BY name"
    )
    expect(rows).toEqual([
      { name: "installed-follower", status: "stopped" },
      { name: "installed-primary", status: "stopped" }
    ])
  })
})
