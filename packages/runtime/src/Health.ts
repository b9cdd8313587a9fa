/**
 * Health: liveness and readiness of this node, from contributors.
 *
 * The `HealthRegistry` holds named checks; runtime layers and downstream
 * modules register theirs (the registration ends with the registering scope).
 * Readiness runs every check concurrently, each under a timeout, and fails as
 * soon as the node is draining, so load balancers stop routing to a node that
 * is shutting down before its HTTP server closes.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import * as Database from "./Database.ts"
import { NodeIdentity } from "./NodeIdentity.ts"
import type * as NodeMode from "./NodeMode.ts"
import * as Telemetry from "./Telemetry.ts"

export interface CheckResult {
  readonly status: "pass" | "fail"
  readonly detail?: string | undefined
  /** Extra structured facts shown in the JSON (e.g. per-queue worker status). */
  readonly data?: Record<string, unknown> | undefined
}

/** A readiness check. `R`: the services it uses (a module's checks may use the runtime's; `Runtime` provides them). */
export interface Contributor<R = never> {
  readonly name: string
  /** A failure or defect of the effect counts as `fail`, with its message as detail. */
  readonly check: Effect.Effect<CheckResult, unknown, R>
  /** Default 2 s: a hanging dependency must not hang the probe. */
  readonly timeout?: Duration.Duration | undefined
}

export interface CheckReport extends CheckResult {
  readonly name: string
  readonly duration_ms: number
}

export interface ReadinessReport {
  readonly status: "ready" | "not_ready"
  readonly mode: NodeMode.Name
  readonly role: NodeMode.Role
  readonly node: { readonly id: string; readonly name: string; readonly version: string; readonly started_at: string }
  readonly draining: boolean
  readonly checks: ReadonlyArray<CheckReport>
}

export interface HealthRegistryShape {
  /** Adds a readiness check for the life of the current scope. */
  readonly register: (contributor: Contributor) => Effect.Effect<void, never, Scope.Scope>
  readonly readiness: Effect.Effect<ReadinessReport>
  /** Flips readiness to failing for good: called once, at the start of shutdown. */
  readonly startDraining: Effect.Effect<void>
  readonly isDraining: Effect.Effect<boolean>
}

export class HealthRegistry extends Context.Service<HealthRegistry, HealthRegistryShape>()("@asterforge/runtime/HealthRegistry") {}

export const pass = (detail?: string, data?: Record<string, unknown>): CheckResult => ({ status: "pass", detail, data })
export const fail = (detail: string, data?: Record<string, unknown>): CheckResult => ({ status: "fail", detail, data })

const runCheck = (c: Contributor): Effect.Effect<CheckReport> => {
  const started = Date.now()
  return c.check.pipe(
    Effect.timeoutOrElse({
      duration: c.timeout ?? Duration.seconds(2),
      orElse: () => Effect.succeed(fail(`timed out after ${Duration.format(c.timeout ?? Duration.seconds(2))}`))
    }),
    Effect.catchCause((cause) => Effect.succeed(fail(messageOf(cause)))),
    Effect.map((r): CheckReport => ({ name: c.name, ...r, duration_ms: Date.now() - started }))
  )
}

const messageOf = (cause: unknown): string => {
  const text = String(cause)
  return text.length > 300 ? `${text.slice(0, 300)}...` : text
}

/** The registry itself, with no checks. */
export const layerRegistry: Layer.Layer<HealthRegistry, never, NodeIdentity> = Layer.effect(
  HealthRegistry,
  Effect.gen(function* () {
    const node = yield* NodeIdentity
    const contributors = new Map<symbol, Contributor>()
    let draining = false

    const readiness = Effect.gen(function* () {
      const checks = yield* Effect.forEach([...contributors.values()], runCheck, { concurrency: "unbounded" })
      const all: Array<CheckReport> = [
        { name: "draining", ...(draining ? fail("node is shutting down") : pass()), duration_ms: 0 },
        ...checks
      ]
      const ok = all.every((c) => c.status === "pass")
      yield* Metric.update(Telemetry.metrics.ready, ok ? 1 : 0)
      return {
        status: ok ? "ready" : "not_ready",
        mode: node.mode,
        role: node.role,
        node: { id: node.id, name: node.name, version: node.version, started_at: node.startedAt.toISOString() },
        draining,
        checks: all
      } satisfies ReadinessReport
    }).pipe(Effect.withSpan(Telemetry.spans.readiness))

    return HealthRegistry.of({
      register: (contributor) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            const key = Symbol(contributor.name)
            contributors.set(key, contributor)
            return key
          }),
          (key) => Effect.sync(() => contributors.delete(key))
        ).pipe(Effect.asVoid),
      readiness,
      startDraining: Effect.sync(() => {
        draining = true
      }),
      isDraining: Effect.sync(() => draining)
    })
  })
)

/** Built-in readiness checks: the database answers, and its schema is current. */
export const layerDatabaseChecks: Layer.Layer<never, never, HealthRegistry | SqlClient.SqlClient> = Layer.effectDiscard(
  Effect.gen(function* () {
    const health = yield* HealthRegistry
    const sql = yield* SqlClient.SqlClient
    yield* health.register({
      name: "database",
      check: sql`SELECT 1`.pipe(Effect.as(pass()))
    })
    const sets = yield* Database.MigrationSets
    yield* health.register({
      name: "migrations",
      check: Effect.map(
        Database.pendingSets.pipe(Effect.provideService(SqlClient.SqlClient, sql), Effect.provideService(Database.MigrationSets, sets)),
        (pending) =>
          pending.length === 0
            ? pass()
            : fail(`the database schema is behind this build (${pending.map((s) => s.owner).join(", ")}); run the migrate command`)
      )
    })
  })
)
