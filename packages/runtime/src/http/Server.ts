/**
 * The node's HTTP server: serves the routes it is given on `server.host:port`,
 * counts every request by route and status, and drains in-flight requests for
 * up to `shutdown.grace` when it closes.
 */
import { Cause, Effect, Exit, Layer, Metric } from "effect"
import { HttpRouter, HttpServer, HttpServerRequest } from "effect/http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { NetAddress } from "effect/net"
import { createServer } from "node:http"
import * as ConfigSchema from "../ConfigSchema.ts"
import * as ConfigSection from "../ConfigSection.ts"
import { RuntimeError, ServerListenFailed } from "../RuntimeError.ts"
import * as Shutdown from "../Shutdown.ts"
import * as Telemetry from "../Telemetry.ts"

/**
 * `[server]`, the HTTP part: where the node listens.
 *
 * @category config
 */
export const Config = ConfigSection.make(
  "server",
  {
    host: ConfigSection.key(ConfigSchema.NonEmptyString, { default: "127.0.0.1", doc: "HTTP listen address" }),
    port: ConfigSection.key(ConfigSchema.Int(0, 65535), { default: 3000, doc: "HTTP listen port (0 = any free port)" })
  },
  { id: "server#http" }
)
export type Config = ConfigSection.TypeOf<typeof Config>

/** Paths with a fixed shape are their own label; anything unmatched shares one, to bound cardinality. */
const routeLabel = (path: string, status: number): string => (status === 404 ? "unmatched" : path)

const statusOf = (exit: Exit.Exit<{ readonly status: number }, unknown>): number => {
  if (Exit.isSuccess(exit)) return exit.value.status
  const text = String(exit.cause)
  return text.includes("RouteNotFound") ? 404 : 500
}

/** Request metrics and a debug log line per request (the platform's INFO-per-request logger is off). */
const requestMetrics = HttpRouter.middleware(
  (httpEffect) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const started = performance.now()
      const path = request.url.split("?")[0] ?? request.url
      return yield* httpEffect.pipe(
        Effect.onExit((exit) => {
          const status = statusOf(exit)
          const seconds = (performance.now() - started) / 1000
          const attributes = { route: routeLabel(path, status), method: request.method, status: String(status) }
          return Effect.all(
            [
              Metric.update(Metric.withAttributes(Telemetry.metrics.httpRequests, attributes), 1),
              Metric.update(Metric.withAttributes(Telemetry.metrics.httpDuration, { route: attributes.route }), seconds),
              Effect.logDebug(`${request.method} ${path} ${status} ${Math.round(seconds * 1000)}ms`).pipe(Telemetry.component("http"))
            ],
            { discard: true }
          )
        })
      )
    }),
  { global: true }
)

/** The OS reason (EADDRINUSE, EACCES...) buried in the platform's ServeError. */
const listenFailure = (error: unknown): string => {
  const inner = (error as { cause?: unknown })?.cause
  if (inner instanceof Error) {
    const code = (inner as NodeJS.ErrnoException).code
    return code === "EADDRINUSE" ? "address already in use (another node on this port? use --port)" : inner.message
  }
  return error instanceof Error ? error.message : String(error)
}

/**
 * Serves `routes` on the configured address. Fails with a readable reason when
 * the port cannot be bound.
 */
export const layer = <E, R>(routes: Layer.Layer<never, E, R>) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const { host, port } = yield* Config
      const shutdown = yield* Shutdown.Config
      const listening = Layer.effectDiscard(
        Effect.gen(function* () {
          const server = yield* HttpServer.HttpServer
          const address = server.address
          const where = address._tag === "UnixPathAddress" ? address.path : NetAddress.formatUrlUnsafe(address, "http")
          yield* Effect.logInfo(`http listening on ${where}`).pipe(Effect.annotateLogs({ component: "http", url: where }))
        })
      )
      const app = Layer.mergeAll(routes, requestMetrics)
      return Layer.mergeAll(HttpRouter.serve(app, { disableLogger: true, disableListenLog: true }), listening).pipe(
        Layer.provide(
          NodeHttpServer.layer(createServer, { host, port, gracefulShutdownTimeout: shutdown.grace }).pipe(
            Layer.catchCause((cause) =>
              Layer.fromBuild(() =>
                Effect.fail(
                  new RuntimeError({
                    reason: new ServerListenFailed({ message: `cannot listen on ${host}:${port}: ${listenFailure(Cause.squash(cause))}` })
                  })
                )
              )
            )
          )
        )
      )
    })
  )
