import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as Health from "../../src/Health.ts"
import * as NodeIdentity from "../../src/NodeIdentity.ts"

const registry = Health.layerRegistry.pipe(Layer.provide(NodeIdentity.layer({ mode: "worker", name: "unit" })))

const readinessWith = (contributors: ReadonlyArray<Health.Contributor>, drain = false) =>
  Effect.scoped(
    Effect.gen(function* () {
      const health = yield* Health.HealthRegistry
      for (const c of contributors) yield* health.register(c)
      if (drain) yield* health.startDraining
      return yield* health.readiness
    })
  ).pipe(Effect.provide(registry))

describe("HealthRegistry", () => {
  it.effect("is ready when every contributor passes, and reports mode and role", () =>
    Effect.gen(function* () {
      const r = yield* readinessWith([{ name: "a", check: Effect.succeed(Health.pass("fine", { depth: 3 })) }])
      expect(r.status).toBe("ready")
      expect(r.mode).toBe("worker")
      expect(r.role).toEqual({ fullApi: false, dispatches: true, runsLanes: false })
      expect(r.checks.find((c) => c.name === "a")).toMatchObject({ status: "pass", detail: "fine", data: { depth: 3 } })
    })
  )

  it.effect("a failing, a defecting and a hanging contributor each fail with a reason; the others still run", () =>
    Effect.gen(function* () {
      const readiness = yield* Effect.forkChild(
        readinessWith([
          { name: "ok", check: Effect.succeed(Health.pass()) },
          { name: "down", check: Effect.succeed(Health.fail("upstream unreachable")) },
          { name: "boom", check: Effect.die(new Error("kaput")) },
          { name: "slow", check: Effect.never, timeout: Duration.millis(50) }
        ])
      )
      yield* TestClock.adjust("50 millis")
      const r = yield* Fiber.join(readiness)
      expect(r.status).toBe("not_ready")
      const byName = Object.fromEntries(r.checks.map((c) => [c.name, c]))
      expect(byName.ok?.status).toBe("pass")
      expect(byName.down).toMatchObject({ status: "fail", detail: "upstream unreachable" })
      expect(byName.boom?.status).toBe("fail")
      expect(byName.boom?.detail).toContain("kaput")
      expect(byName.slow).toMatchObject({ status: "fail", detail: "timed out after 50ms" })
    })
  )

  it.effect("a check without a timeout of its own is cut off after the default 2 s, not before", () =>
    Effect.gen(function* () {
      const readiness = yield* Effect.forkChild(readinessWith([{ name: "stuck", check: Effect.never }]))
      yield* TestClock.adjust("1999 millis")
      expect(readiness.pollUnsafe()).toBeUndefined()
      yield* TestClock.adjust("1 millis")
      const r = yield* Fiber.join(readiness)
      expect(r.status).toBe("not_ready")
      expect(r.checks.find((c) => c.name === "stuck")).toMatchObject({ status: "fail", detail: "timed out after 2s" })
    })
  )

  it.effect("draining makes the node not ready, whatever the checks say", () =>
    Effect.gen(function* () {
      const r = yield* readinessWith([{ name: "ok", check: Effect.succeed(Health.pass()) }], true)
      expect(r.status).toBe("not_ready")
      expect(r.draining).toBe(true)
    })
  )

  it.effect("a registration ends with the scope that made it", () =>
    Effect.gen(function* () {
      const health = yield* Health.HealthRegistry
      yield* Effect.scoped(health.register({ name: "temporary", check: Effect.succeed(Health.fail("x")) }))
      const r = yield* health.readiness
      expect(r.checks.map((c) => c.name)).toEqual(["draining"])
      expect(r.status).toBe("ready")
    }).pipe(Effect.provide(registry))
  )
})
