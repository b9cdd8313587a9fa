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
import { Duration, Effect, Layer } from "effect"
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
