/**
 * ConfigReloader: applies changes of reloadable keys without a restart.
 *
 * Watches the config file; on change it resolves every source again. A valid
 * result whose reloadable keys changed is published to subscribers (and the log
 * level applied at once); an invalid one is rejected with every problem logged,
 * and the node keeps running on the configuration it had. Both are audited.
 * Keys that need a restart are reported as ignored, never half-applied.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as AuditEvents from "./AuditEvents.ts"
import { AuditLog } from "./AuditLog.ts"
import * as RuntimeConfig from "./RuntimeConfig.ts"
import * as Telemetry from "./Telemetry.ts"

export interface Change {
  readonly key: RuntimeConfig.Key
  readonly from: string
  readonly to: string
}

export interface Reloaded {
  readonly config: RuntimeConfig.RuntimeConfigShape
  /** Reloadable keys whose value changed; these are applied. */
  readonly applied: ReadonlyArray<Change>
  /** Keys that changed but need a restart; these are not applied. */
  readonly ignored: ReadonlyArray<Change>
}

export interface ConfigReloaderShape {
  /** The configuration currently in force (the start-up one plus applied reloads). */
  readonly current: Effect.Effect<RuntimeConfig.RuntimeConfigShape>
  /** A subscription to applied reloads, for the life of the caller's scope. */
  readonly subscribe: Effect.Effect<PubSub.Subscription<Reloaded>, never, Scope.Scope>
  /** Re-reads the sources now (the watcher calls this; tests and admin tools may too). */
  readonly reload: Effect.Effect<Option.Option<Reloaded>>
}

export class ConfigReloader extends Context.Service<ConfigReloader, ConfigReloaderShape>()("@asterforge/runtime/ConfigReloader") {}

const diff = (before: RuntimeConfig.RuntimeConfigShape, after: RuntimeConfig.RuntimeConfigShape): Array<Change> => {
  const a = new Map(RuntimeConfig.describe(before).map((r) => [r.key, r.value]))
  return RuntimeConfig.describe(after)
    .filter((r) => a.get(r.key) !== r.value)
    .map((r) => ({ key: r.key, from: a.get(r.key) ?? "(unset)", to: r.value }))
}

export const layer: Layer.Layer<ConfigReloader, never, RuntimeConfig.RuntimeConfig | AuditLog | Telemetry.LogLevelControl> = Layer.effect(
  ConfigReloader,
  Effect.gen(function* () {
    const initial = yield* RuntimeConfig.RuntimeConfig
    const audit = yield* AuditLog
    const logLevel = yield* Telemetry.LogLevelControl
    const pubsub = yield* PubSub.unbounded<Reloaded>()
    let current = initial

    const reload = Effect.gen(function* () {
      const next = RuntimeConfig.resolve(current.sources, current.moduleSections)
      if (Result.isFailure(next)) {
        yield* Metric.update(Telemetry.labelled(Telemetry.metrics.configReloads, { result: "rejected" }), 1)
        yield* Effect.logWarning(`config reload rejected; keeping the running configuration\n${next.failure.message}`)
        yield* audit.record(
          AuditEvents.configReloadRejected({ actor: AuditEvents.actors.system, details: { problems: next.failure.problems } })
        )
        return Option.none()
      }
      const changes = diff(current, next.success)
      if (changes.length === 0) return Option.none()
      const applied = changes.filter((c) => RuntimeConfig.reloadableKeys.includes(c.key))
      const ignored = changes.filter((c) => !RuntimeConfig.reloadableKeys.includes(c.key))
      if (ignored.length > 0) {
        yield* Effect.logWarning(`config change needs a restart, not applied: ${ignored.map((c) => c.key).join(", ")}`)
      }
      if (applied.length === 0) return Option.none()
      // Only reloadable keys move; everything else stays as started.
      current = { ...current, telemetry: { ...current.telemetry, logLevel: next.success.telemetry.logLevel } }
      logLevel.set(current.telemetry.logLevel)
      const event: Reloaded = { config: current, applied, ignored }
      yield* PubSub.publish(pubsub, event)
      yield* Metric.update(Telemetry.labelled(Telemetry.metrics.configReloads, { result: "applied" }), 1)
      yield* Effect.logInfo(`config reloaded: ${applied.map((c) => `${c.key} ${c.from} -> ${c.to}`).join(", ")}`)
      yield* audit.record(
        AuditEvents.configReloaded({
          actor: AuditEvents.actors.system,
          details: { applied, ignored: ignored.map((c) => c.key) }
        })
      )
      return Option.some(event)
    }).pipe(Telemetry.component("runtime"))

    if (Option.isSome(initial.file)) {
      const path = initial.file.value
      // Polling the mtime survives editors that replace the file (fs.watch loses the inode).
      let last = Fs.statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? 0
      const poll = Effect.suspend(() => {
        const mtime = Fs.statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? 0
        if (mtime === last) return Effect.void
        last = mtime
        return Effect.asVoid(reload)
      })
      yield* Effect.forkScoped(poll.pipe(Effect.repeat(Schedule.spaced("1 second"))))
    }

    return ConfigReloader.of({
      current: Effect.sync(() => current),
      subscribe: PubSub.subscribe(pubsub),
      reload
    })
  })
)
