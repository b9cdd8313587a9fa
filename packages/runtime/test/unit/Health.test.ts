import { Duration, Effect, Layer } from "effect"
import { describe, expect, it } from "vitest"
import * as Health from "../../src/Health.ts"
import * as NodeIdentity from "../../src/NodeIdentity.ts"

const registry = Health.layerRegistry.pipe(Layer.provide(NodeIdentity.layer({ mode: "worker", name: "unit" })))

const readinessWith = (contributors: ReadonlyArray<Health.Contributor>, drain = false) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const health = yield* Health.HealthRegistry
    for (const c of contributors) yield* health.register(c)
    if (drain) yield* health.startDraining
    return yield* health.readiness
  }).pipe(Effect.provide(registry))))

describe("HealthRegistry", () => {
  it("is ready when every contributor passes, and reports mode and role", async () => {
    const r = await readinessWith([{ name: "a", check: Effect.succeed(Health.pass("fine", { depth: 3 })) }])
    expect(r.status).toBe("ready")
    expect(r.mode).toBe("worker")
    expect(r.role).toEqual({ fullApi: false, dispatches: true, runsLanes: false })
    expect(r.checks.find((c) => c.name === "a")).toMatchObject({ status: "pass", detail: "fine", data: { depth: 3 } })
  })

  it("a failing, a defecting and a hanging contributor each fail with a reason; the others still run", async () => {
    const r = await readinessWith([
      { name: "ok", check: Effect.succeed(Health.pass()) },
      { name: "down", check: Effect.succeed(Health.fail("upstream unreachable")) },
      { name: "boom", check: Effect.die(new Error("kaput")) },
      { name: "slow", check: Effect.never, timeout: Duration.millis(50) }
    ])
    expect(r.status).toBe("not_ready")
    const byName = Object.fromEntries(r.checks.map((c) => [c.name, c]))
    expect(byName.ok?.status).toBe("pass")
    expect(byName.down).toMatchObject({ status: "fail", detail: "upstream unreachable" })
    expect(byName.boom?.status).toBe("fail")
    expect(byName.boom?.detail).toContain("kaput")
    expect(byName.slow).toMatchObject({ status: "fail", detail: "timed out after 50ms" })
  })

  it("draining makes the node not ready, whatever the checks say", async () => {
    const r = await readinessWith([{ name: "ok", check: Effect.succeed(Health.pass()) }], true)
    expect(r.status).toBe("not_ready")
    expect(r.draining).toBe(true)
  })

  it("a registration ends with the scope that made it", async () => {
    const r = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const health = yield* Health.HealthRegistry
      yield* Effect.scoped(health.register({ name: "temporary", check: Effect.succeed(Health.fail("x")) }))
      return yield* health.readiness
    }).pipe(Effect.provide(registry))))
    expect(r.checks.map((c) => c.name)).toEqual(["draining"])
    expect(r.status).toBe("ready")
  })
})
