/**
 * The node's HTTP server: serves the routes it is given on `server.host:port`
 * within bounds (request body size, request and header timeouts, keep-alive,
 * connections), counts every request by route template and status, and drains
 * in-flight requests for up to `shutdown.grace` when it closes.
 *
 * Metric labels and log lines name the matched route's template
 * (`/callbacks/:token`), never the raw path: a path can carry a secret (a
 * callback token) or personal data (an e-mail), and raw paths would let junk
 * traffic grow the series without bound. Unmatched paths share one label.
 */
import * as ByteSize from "effect/ByteSize"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as HttpIncomingMessage from "effect/http/HttpIncomingMessage"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import type * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NetAddress from "effect/net/NetAddress"
import { createServer } from "node:http"
import * as ConfigSchema from "../ConfigSchema.ts"
import * as ConfigSection from "../ConfigSection.ts"
import { messageOf, RuntimeError, ServerListenFailed } from "../RuntimeError.ts"
import * as Shutdown from "../Shutdown.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Problem from "./Problem.ts"

/**
 * `[server]`, the HTTP part: where the node listens, and its bounds.
 *
 * @category config
 */
export const Config = ConfigSection.make(
  "server",
  {
    host: ConfigSection.key(ConfigSchema.NonEmptyString, { default: "127.0.0.1", doc: "HTTP listen address" }),
    port: ConfigSection.key(ConfigSchema.Int(0, 65535), { default: 3000, doc: "HTTP listen port (0 = any free port)" }),
    bodyLimit: ConfigSection.key(ConfigSchema.Bytes(1024, 1024 ** 3), {
      default: "1 MiB",
      doc: "largest request body; a larger one is answered 413 without being read (a route may set a lower limit)"
    }),
    requestTimeout: ConfigSection.key(ConfigSchema.Duration({ minimum: "1 second", maximum: "1 hour" }), {
      default: "30 seconds",
      doc: "a request not received in full within this is answered 408 and its connection closed"
    }),
    headersTimeout: ConfigSection.key(ConfigSchema.Duration({ minimum: "1 second", maximum: "10 minutes" }), {
      default: "10 seconds",
      doc: "time to receive a request's headers"
    }),
    keepAliveTimeout: ConfigSection.key(ConfigSchema.Duration({ minimum: "100 millis", maximum: "10 minutes" }), {
      default: "5 seconds",
      doc: "idle keep-alive connections are closed after this"
    }),
    maxConnections: ConfigSection.key(ConfigSchema.Int(1, 100_000), { default: 1000, doc: "open connections at most; more are refused" })
  },
  {
    id: "server#http",
    check: (c) =>
      Duration.isGreaterThan(c.headersTimeout, c.requestTimeout)
        ? [{ key: "server.headers_timeout", message: "must not exceed server.request_timeout" }]
        : []
  }
)
export type Config = ConfigSection.TypeOf<typeof Config>

/** The matched route's template for the current request; set by `routeTemplate`, read by the request metrics. */
class MatchedRoute extends Context.Service<MatchedRoute, { template: string | undefined }>()("@asterforge/runtime/http/MatchedRoute") {}

/** Label of requests no route matched. */
export const unmatched = "unmatched"

const knownMethods = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])

const statusOf = (exit: Exit.Exit<{ readonly status: number }, unknown>): number => {
  if (Exit.isSuccess(exit)) return exit.value.status
  const text = String(exit.cause)
  return text.includes("RouteNotFound") ? 404 : 500
}

/** Whether a failed body read went past `MaxBodySize` (the platform reports a `MaxBytesError` cause). */
export const isBodyTooLarge = (error: unknown): boolean => /maxBytes exceeded/.test(messageOf(error))

const causeIsBodyTooLarge = (cause: Cause.Cause<unknown>): boolean =>
  cause.reasons.some((r) => (Cause.isFailReason(r) ? isBodyTooLarge(r.error) : Cause.isDieReason(r) ? isBodyTooLarge(r.defect) : false))

/** Whether no route matched (unknown path, a path the router cannot decode, a parameter over its length limit). */
const causeIsRouteNotFound = (cause: Cause.Cause<unknown>): boolean =>
  cause.reasons.some(
    (r) => Cause.isFailReason(r) && (r.error as { readonly reason?: { readonly _tag?: unknown } } | null)?.reason?._tag === "RouteNotFound"
  )

/** The 404 of every unmatched request: a `Problem` like every other refusal, and never the path (it may hold a secret). */
const notFound = () => Problem.make(404, "RouteNotFound", "no route matches this method and path")

/** The 413 for a body past the limit in force for this request (the server's, or a route's lower one). */
export const bodyTooLargeResponse: Effect.Effect<HttpServerResponse.HttpServerResponse> = Effect.map(
  HttpIncomingMessage.MaxBodySize,
  (limit) => tooLarge(limit === undefined ? undefined : Number(limit))
)

/**
 * The `Problem` every limit answers with, the connection closed. Exactly the
 * admin API's documented 413 (`{ error: { tag, message } }`, nothing else: an
 * oversized admin request meets this limit first), so the limit is in the message.
 */
const tooLarge = (limit: number | undefined) =>
  Problem.make(
    413,
    "PayloadTooLarge",
    limit === undefined
      ? "request body too large"
      : `request body too large: at most ${ByteSize.format(ByteSize.bytes(limit))} (${limit} bytes)`
  )

/**
 * Every request: the body limit (a declared `Content-Length` over it is
 * answered 413 before anything reads the body; a body that turns out longer
 * fails its read, also 413), a JSON 404 when no route matches, the matched
 * route's template for labels, request metrics and a debug log line per
 * request (the platform's INFO-per-request logger is off).
 */
const requests = (bodyLimit: number) =>
  HttpRouter.middleware(
    (httpEffect) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const started = performance.now()
        const matched = { template: undefined as string | undefined }
        const declared = Number(request.headers["content-length"] ?? Number.NaN)
        const run =
          declared > bodyLimit
            ? Effect.succeed(tooLarge(bodyLimit))
            : httpEffect.pipe(
                Effect.catchCause((cause) =>
                  causeIsBodyTooLarge(cause)
                    ? Effect.succeed(tooLarge(bodyLimit))
                    : causeIsRouteNotFound(cause)
                      ? Effect.succeed(notFound())
                      : Effect.failCause(cause)
                ),
                Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(bodyLimit))
              )
        return yield* run.pipe(
          Effect.provideService(MatchedRoute, matched),
          Effect.onExit((exit) => {
            const status = statusOf(exit)
            const seconds = (performance.now() - started) / 1000
            const route = matched.template ?? unmatched
            const method = knownMethods.has(request.method) ? request.method : "OTHER"
            return Effect.all(
              [
                Metric.update(Telemetry.labelled(Telemetry.metrics.httpRequests, { route, method, status: String(status) }), 1),
                Metric.update(Telemetry.labelled(Telemetry.metrics.httpDuration, { route }), seconds),
                Effect.logDebug(`${method} ${route} ${status} ${Math.round(seconds * 1000)}ms`).pipe(Telemetry.component("http"))
              ],
              { discard: true }
            )
          })
        )
      }),
    { global: true }
  )

/** Inside a matched route: records its template for the request metrics. */
const routeTemplate = HttpRouter.middleware((httpEffect) =>
  Effect.gen(function* () {
    const [route, matched] = yield* Effect.all([Effect.serviceOption(HttpRouter.RouteContext), Effect.serviceOption(MatchedRoute)])
    if (Option.isSome(route) && Option.isSome(matched)) matched.value.template = route.value.route.path
    return yield* httpEffect
  })
).layer

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
 * A Node HTTP server with the configured timeouts and connection limit (Node's
 * defaults are 300 s and unbounded). Node checks the request and headers
 * timeouts only every `connectionsCheckingInterval` (30 s by default), which
 * would let a stalled client hold its connection up to 30 s past a 1 s
 * timeout: check at a quarter of the headers timeout, at least once a second.
 */
const boundedServer = (config: Config) => {
  const headersTimeout = Duration.toMillis(config.headersTimeout)
  const server = createServer({
    requestTimeout: Duration.toMillis(config.requestTimeout),
    headersTimeout,
    keepAliveTimeout: Duration.toMillis(config.keepAliveTimeout),
    connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.floor(headersTimeout / 4)))
  })
  server.maxConnections = config.maxConnections
  return server
}

/**
 * Serves `routes` on the configured address. Fails with a readable reason when
 * the port cannot be bound.
 */
export const layer = <E, R>(routes: Layer.Layer<never, E, R>) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const config = yield* Config
      const { host, port } = config
      const shutdown = yield* Shutdown.Config
      const listening = Layer.effectDiscard(
        Effect.gen(function* () {
          const server = yield* HttpServer.HttpServer
          const address = server.address
          const where = address._tag === "UnixPathAddress" ? address.path : NetAddress.formatUrlUnsafe(address, "http")
          yield* Effect.logInfo(`http listening on ${where}`).pipe(Effect.annotateLogs({ component: "http", url: where }))
        })
      )
      const app = Layer.mergeAll(routes.pipe(Layer.provide(routeTemplate)), requests(config.bodyLimit))
      return Layer.mergeAll(HttpRouter.serve(app, { disableLogger: true, disableListenLog: true }), listening).pipe(
        Layer.provide(
          NodeHttpServer.layer(() => boundedServer(config), { host, port, gracefulShutdownTimeout: shutdown.grace }).pipe(
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
