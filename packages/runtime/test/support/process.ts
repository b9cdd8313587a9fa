/**
 * Real child processes for tests: the CLI and fixture apps, run on the same
 * Node as the tests, with their output captured line by line.
 */
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import * as Url from "node:url"
import { afterEach } from "vitest"

export const repoRoot = Path.resolve(Path.dirname(Url.fileURLToPath(import.meta.url)), "../../../..")
export const cliBin = Path.join(repoRoot, "packages/cli/src/bin.ts")
export const fixture = (name: string) => Path.join(repoRoot, "packages/runtime/test/fixtures", name)

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export class Spawned {
  readonly stdout: Array<string> = []
  readonly stderr: Array<string> = []
  readonly exited: Promise<Exited>
  private readonly waiters: Array<() => void> = []

  readonly child: ChildProcess.ChildProcess

  constructor(child: ChildProcess.ChildProcess) {
    this.child = child
    const collect = (stream: NodeJS.ReadableStream | null, into: Array<string>) => {
      let buffer = ""
      stream?.setEncoding("utf8")
      stream?.on("data", (chunk: string) => {
        buffer += chunk
        const parts = buffer.split("\n")
        buffer = parts.pop() ?? ""
        into.push(...parts)
        for (const w of this.waiters.splice(0)) w()
      })
      stream?.on("end", () => {
        if (buffer) into.push(buffer)
        buffer = ""
        for (const w of this.waiters.splice(0)) w()
      })
    }
    collect(child.stdout, this.stdout)
    collect(child.stderr, this.stderr)
    this.exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        // Let the stream 'end' handlers flush the last partial lines first.
        setImmediate(() => resolve({ code, signal }))
      })
    )
  }

  get output(): string {
    return [...this.stdout, ...this.stderr].join("\n")
  }

  /** JSON log lines (stderr), parsed; other lines are skipped. */
  get logs(): Array<Record<string, unknown>> {
    return this.stderr.flatMap((l) => {
      try {
        const v = JSON.parse(l)
        return typeof v === "object" && v !== null ? [v as Record<string, unknown>] : []
      } catch {
        return []
      }
    })
  }

  /** Resolves with the first line (stdout or stderr) matching, or rejects on exit/timeout with the output so far. */
  waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      let done = false
      const timer = setTimeout(() => finish(new Error(`timed out waiting for ${pattern}\n--- output ---\n${this.output}`)), timeoutMs)
      const finish = (e?: Error, m?: RegExpMatchArray) => {
        if (done) return
        done = true
        clearTimeout(timer)
        if (e) reject(e)
        else resolve(m!)
      }
      const check = () => {
        for (const line of [...this.stderr, ...this.stdout]) {
          const m = line.match(pattern)
          if (m) return finish(undefined, m)
        }
        if (this.child.exitCode !== null || this.child.signalCode !== null) {
          return finish(
            new Error(`process exited (${this.child.exitCode ?? this.child.signalCode}) before ${pattern}\n--- output ---\n${this.output}`)
          )
        }
        this.waiters.push(check)
      }
      void this.exited.then(() => check())
      check()
    })
  }

  /** The node's base URL, from its "http listening on" log line. */
  async baseUrl(timeoutMs = 60_000): Promise<string> {
    const m = await this.waitFor(/http listening on (http:\/\/[0-9.:]+)/, timeoutMs)
    return m[1]!
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal)
  }

  /** Kills the process if still running; for afterEach cleanup. */
  async stop(): Promise<Exited> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL")
    return this.exited
  }
}

export const spawnNode = (script: string, args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}): Spawned =>
  new Spawned(
    ChildProcess.spawn(process.execPath, [script, ...args], {
      cwd: repoRoot,
      env: { ...cleanEnv(), ASTERFORGE_TELEMETRY_LOG_FORMAT: "json", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
  )

/**
 * A command in a process group of its own, as a supervisor runs a service, so
 * a test can signal the top process only and then find every process it left.
 */
export const spawnGroup = (command: string, args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}): Spawned =>
  new Spawned(
    ChildProcess.spawn(command, args, {
      cwd: repoRoot,
      env: { ...cleanEnv(), ASTERFORGE_TELEMETRY_LOG_FORMAT: "json", ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true
    })
  )

/** The processes of group `pgid` that are still alive (zombies count as gone). */
export const groupMembers = (pgid: number): ReadonlyArray<{ readonly pid: number; readonly command: string }> =>
  ChildProcess.execFileSync("ps", ["-eo", "pid=,pgid=,stat=,args="], { encoding: "utf8" })
    .split("\n")
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line))
    .flatMap((m) => (m !== null && Number(m[2]) === pgid && !m[3]!.startsWith("Z") ? [{ pid: Number(m[1]), command: m[4]! }] : []))

/** Kills every process of a group; for cleanup after a test that may have left some. */
export const killGroup = (pgid: number): void => {
  try {
    process.kill(-pgid, "SIGKILL")
  } catch {
    // already gone
  }
}

/** The parent's environment minus anything that would configure the child behind the test's back. */
const cleanEnv = (): Record<string, string | undefined> => {
  const env: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("ASTERFORGE_") || k === "DATABASE_URL" || k === "NODE_ENV" || k === "LOG_LEVEL" || k === "SKIP_MIGRATIONS") continue
    env[k] = v
  }
  return env
}

export const spawnCli = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}): Spawned => spawnNode(cliBin, args, env)

/** Polls `url` until `predicate(status, body)` holds. Bounded; used for readiness, never for timing assertions. */
export const pollHttp = async (url: string, predicate: (status: number, body: string) => boolean, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  let last = ""
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url)
      const body = await res.text()
      if (predicate(res.status, body)) return { status: res.status, body }
      last = `${res.status} ${body}`
    } catch (e) {
      last = String(e)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`condition on ${url} not met within ${timeoutMs} ms; last: ${last}`)
}

/**
 * Processes a test file started, stopped after each test: `const track = trackProcesses()`,
 * then `track(spawnCli(...))`. Registers its own `afterEach`.
 */
export const trackProcesses = (): (<P extends Spawned>(p: P) => P) => {
  const running: Array<Spawned> = []
  afterEach(async () => {
    await Promise.all(running.splice(0).map((p) => p.stop()))
  })
  return (p) => {
    running.push(p)
    return p
  }
}
