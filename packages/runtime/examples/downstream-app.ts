// A downstream Effect app on AsterForge: its own route, health check and background work.
// Run: DATABASE_URL=postgres://... node packages/runtime/examples/downstream-app.ts start [--mode follower]
import { Effect, Layer, Schedule } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { ApplicationModule, AuditLog, Health, Runtime } from "@asterforge/runtime"

const Orders = ApplicationModule.make({
  name: "orders",
  routes: HttpRouter.use(
    Effect.fn(function* (router) {
      const audit = yield* AuditLog.AuditLog
      yield* router.add(
        "POST",
        "/orders",
        Effect.gen(function* () {
          const id = crypto.randomUUID()
          yield* audit.record({ code: "order.created", actor: "api", subject: `order:${id}` })
          return HttpServerResponse.jsonUnsafe({ id }, { status: 201 })
        })
      )
    })
  ),
  health: [{ name: "orders", check: Effect.succeed(Health.pass("accepting orders")) }],
  // Runs only on nodes that run maintenance work (primary, maintenance), never on followers or workers.
  background: [
    {
      name: "order-report",
      runsOn: "runsLanes",
      layer: Layer.effectDiscard(
        Effect.gen(function* () {
          const audit = yield* AuditLog.AuditLog
          const report = audit.record({ code: "order.report_generated", actor: "system" })
          yield* Effect.forkScoped(report.pipe(Effect.repeat(Schedule.spaced("1 hour"))))
        })
      )
    }
  ]
})

Runtime.main({ modules: [Orders] })
