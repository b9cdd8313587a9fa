/**
 * The health endpoints every node serves, whatever its mode:
 * `GET /health` (liveness), `GET /health/ready` (readiness, 503 when any check
 * fails) and `GET /health/metrics` (Prometheus text).
 */
import { Effect, type Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { HealthRegistry } from "../Health.ts"
import { NodeIdentity } from "../NodeIdentity.ts"

export const layer: Layer.Layer<never, never, HttpRouter.HttpRouter | HealthRegistry | NodeIdentity> = HttpRouter.use(
  Effect.fn(function* (router) {
    const health = yield* HealthRegistry
    const node = yield* NodeIdentity

    // Liveness: the process and its event loop answer. Deliberately no I/O, so a
    // slow database makes the node not-ready rather than getting it restarted.
    yield* router.add(
      "GET",
      "/health",
      Effect.sync(() =>
        HttpServerResponse.jsonUnsafe({
          status: "ok",
          node: { id: node.id, name: node.name, mode: node.mode, version: node.version },
          uptime_seconds: Math.round(process.uptime())
        })
      )
    )

    yield* router.add(
      "GET",
      "/health/ready",
      Effect.map(health.readiness, (report) => HttpServerResponse.jsonUnsafe(report, { status: report.status === "ready" ? 200 : 503 }))
    )

    yield* router.add(
      "GET",
      "/health/metrics",
      Effect.map(PrometheusMetrics.format(), (body) =>
        HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
      )
    )
  })
)
