/**
 * Shutdown: what happens first and last when a node is asked to stop.
 *
 * `layer` is built after everything else, so its finalizer is the first to run
 * on SIGTERM/SIGINT: readiness flips to 503 at once, and the node keeps serving
 * for `shutdown.drain_delay` so load balancers notice before the HTTP server
 * closes. The finalizers of the layers below then run in reverse dependency
 * order (HTTP drains, the node row is marked stopped, the audit buffer flushes
 * last, the pool closes).
 *
 * `armWatchdog` guards the whole sequence: `runMain` has no deadline of its
 * own, so a hanging finalizer would otherwise keep the process alive forever.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import { HealthRegistry } from "./Health.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * `[shutdown]`: how long a stopping node may take, read by every layer that drains.
 *
 * @category config
 */
export const Config = ConfigSection.make(
  "shutdown",
  {
    grace: ConfigSection.key(ConfigSchema.DurationOrZero(), {
      default: "10 seconds",
      doc: "how long running work may finish after a stop signal"
    }),
    timeout: ConfigSection.key(ConfigSchema.Duration({ minimum: "1 second" }), {
      default: "30 seconds",
      doc: "watchdog: exit non-zero if shutdown takes longer"
    }),
    drainDelay: ConfigSection.key(ConfigSchema.DurationOrZero(), {
      default: "0 millis",
      doc: "keep serving (readiness 503) this long before closing HTTP"
    }),
    onParentExit: ConfigSection.key(ConfigSchema.Boolean, {
      default: true,
      doc: "stop gracefully when the parent process exits (a wrapper such as pnpm that does not forward signals was killed)"
    })
  },
  {
    check: (c) =>
      Duration.isGreaterThan(c.grace, c.timeout)
        ? [{ key: "shutdown.grace", message: "must not exceed shutdown.timeout, or the watchdog fires before running work may finish" }]
        : []
  }
)
export type Config = ConfigSection.TypeOf<typeof Config>

export const layer: Layer.Layer<never, never, HealthRegistry | ConfigSection.Tag<"shutdown">> = Layer.effectDiscard(
  Effect.gen(function* () {
    const health = yield* HealthRegistry
    const config = yield* Config
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* health.startDraining
        const delay = config.drainDelay
        yield* Effect.logInfo(
          `shutting down: readiness now 503${Duration.isZero(delay) ? "" : `, closing HTTP in ${Duration.format(delay)}`}`
        )
        if (!Duration.isZero(delay)) yield* Effect.sleep(delay)
      }).pipe(Telemetry.component("runtime"))
    )
  })
)

/** Exit code used when the watchdog fires: distinct from config (1) and signal (0) exits. */
export const watchdogExitCode = 70

/** Exit code of a node that stopped itself because it can no longer serve (declared dead): restart it. */
export const restartExitCode = 75

let processEntry = false
let requestedExitCode: number | undefined

/** Called by the process entry (`Runtime.run`): a stop request may then signal this process. */
export const attachProcess = (): void => {
  processEntry = true
}

/** The exit code a clean, signal-driven stop ends with: 0, unless the node asked to be restarted. */
export const stopExitCode = (): number => requestedExitCode ?? 0

/**
 * Asks for this node to stop gracefully and exit with `code`, for its
 * supervisor to restart it: the same path as a SIGTERM (readiness 503, drain,
 * hand-back, flush). Where the runtime does not own the process (an embedding
 * host, a test), only the reason is logged: the host decides.
 */
export const requestStop = (code: number, reason: string): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (!processEntry) return Effect.logError(`${reason}; this node must be stopped (the host owns the process)`)
    requestedExitCode ??= code
    return Effect.logError(`${reason}; stopping, exit code ${code}`).pipe(
      Effect.andThen(Effect.sync(() => process.kill(process.pid, "SIGTERM")))
    )
  }).pipe(Telemetry.component("runtime"))

let armed = false

/**
 * Exits the process with `watchdogExitCode` if it is still alive `timeout`
 * after the first stop signal. The timer is unref'd: a shutdown that finishes
 * in time is never held up by it.
 */
export const armWatchdog = (timeout: Duration.Duration, signal: string): void => {
  if (armed) return
  armed = true
  const ms = Duration.toMillis(timeout)
  setTimeout(() => {
    process.stderr.write(
      JSON.stringify({
        timestamp: new Date().toISOString(),
        level: "fatal",
        component: "runtime",
        message: `shutdown did not finish within ${ms} ms of ${signal}; exiting with code ${watchdogExitCode}`
      }) + "\n"
    )
    process.exit(watchdogExitCode)
  }, ms).unref()
}

/** How often the ancestors are checked: a killed wrapper's node stops within about this much, plus its shutdown. */
const parentCheckMs = 500

/** A process by pid and start time (a pid alone may be reused by a new process). */
interface Ancestor {
  readonly pid: number
  readonly startedAt: string | undefined
}

/** `ppid` and start time from `/proc/<pid>/stat` (Linux); undefined where there is no /proc. */
const procStat = (pid: number): { readonly ppid: number; readonly startedAt: string } | undefined => {
  try {
    const text = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command (field 2) may hold spaces and parentheses: fields are counted after its last ")".
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
    return { ppid: Number(fields[1]), startedAt: fields[19]! }
  } catch {
    return undefined
  }
}

/** This process's ancestors up to (not including) init: where /proc is missing, the parent alone. */
const ancestors = (): ReadonlyArray<Ancestor> => {
  const out: Array<Ancestor> = []
  let pid = process.ppid
  while (pid > 1 && out.length < 32) {
    const stat = procStat(pid)
    out.push({ pid, startedAt: stat?.startedAt })
    if (stat === undefined) break
    pid = stat.ppid
  }
  return out
}

const gone = (a: Ancestor): boolean => {
  if (a.startedAt === undefined) return process.ppid !== a.pid // no /proc: the parent alone, by reparenting
  return procStat(a.pid)?.startedAt !== a.startedAt
}

/**
 * Stops this process gracefully when a process it was started under exits,
 * by sending itself the SIGTERM a supervisor would have sent: a wrapper that
 * does not forward signals (`pnpm start`, the `node` package's shell shim, or
 * a shim in front of pnpm) was killed, and a node holding leases and lane
 * locks must not outlive its supervisor. Every ancestor up to init is watched,
 * not only the parent, because a killed wrapper may leave a middle process
 * (pnpm) running. A node started by init (a container's entry, a daemon) has
 * nothing to watch. `enabled` is read when an ancestor goes
 * (`shutdown.on_parent_exit`).
 */
export const watchParent = (enabled: () => boolean): void => {
  const watched = ancestors()
  if (watched.length === 0) return
  const timer = setInterval(() => {
    const left = watched.find(gone)
    if (left === undefined) return
    clearInterval(timer)
    if (!enabled()) return
    process.stderr.write(
      JSON.stringify({
        timestamp: new Date().toISOString(),
        level: "warn",
        component: "runtime",
        message: `parent process ${left.pid} exited; shutting down gracefully (shutdown.on_parent_exit)`
      }) + "\n"
    )
    process.kill(process.pid, "SIGTERM")
  }, parentCheckMs)
  timer.unref()
}
