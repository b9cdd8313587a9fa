/**
 * The health endpoints every node serves, whatever its mode:
 * `GET /health` (liveness), `GET /health/ready` (readiness, 503 when any check
 * fails) and `GET /health/metrics` (Prometheus text; behind a bearer token
 * when `security.metrics_token` is set). None of them shows a secret.
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as HttpRouter from "effect/http/HttpRouter"
import type * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Crypto from "node:crypto"
import * as ConfigSchema from "../ConfigSchema.ts"
import * as ConfigSection from "../ConfigSection.ts"
import { HealthRegistry } from "../Health.ts"
import { NodeIdentity } from "../NodeIdentity.ts"
import * as Problem from "./Problem.ts"

/**
 * `[security]`, the metrics part: the token Prometheus must send.
 *
 * @category config
 */
export const Config = ConfigSection.make(
  "security",
  {
    metricsToken: ConfigSection.optionalKey(ConfigSchema.Secret, {
      doc: "when set, /health/metrics needs Authorization: Bearer <this token> (Prometheus: authorization.credentials)",
      secret: true
    })
  },
  { id: "security#metrics" }
)
export type Config = ConfigSection.TypeOf<typeof Config>

const digest = (text: string) => Crypto.createHash("sha256").update(text, "utf8").digest()

/** Whether the request carries the metrics token (compared in constant time). */
const authorized = (expected: Buffer, request: HttpServerRequest.HttpServerRequest): boolean => {
  const header = request.headers.authorization ?? ""
  return /^bearer /i.test(header) && Crypto.timingSafeEqual(digest(header.slice(7).trim()), expected)
}

export const layer: Layer.Layer<
  never,
  never,
  HttpRouter.HttpRouter | HealthRegistry | NodeIdentity | ConfigSection.Tag<"security#metrics">
> = HttpRouter.use(
  Effect.fn(function* (router) {
    const health = yield* HealthRegistry
    const node = yield* NodeIdentity
    const { metricsToken } = yield* Config
    const expected = Option.map(metricsToken, (t) => digest(Redacted.value(t)))

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

    yield* router.add("GET", "/health/metrics", (request) =>
      Option.isSome(expected) && !authorized(expected.value, request)
        ? Effect.succeed(
            Problem.make(401, "Unauthorized", "send Authorization: Bearer <security.metrics_token>", {
              headers: { "www-authenticate": "Bearer" }
            })
          )
        : Effect.map(PrometheusMetrics.format(), (body) =>
            HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
          )
    )
  })
)
