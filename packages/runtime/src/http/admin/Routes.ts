/**
 * The admin API as routes of the node's HTTP server (full-API nodes: primary
 * and follower): the `HttpApi` handlers under `/admin/api`, the generated
 * OpenAPI document at `/admin/api/openapi.json`, the docs page at
 * `/admin/api/docs` (Swagger UI, its assets inlined: no CDN), and a JSON 404
 * for any other path under `/admin/api`.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as HttpApiSwagger from "effect/http-api/HttpApiSwagger"
import * as ControlPlane from "../../ControlPlane.ts"
import * as Problem from "../Problem.ts"
import { AdminApi } from "./Api.ts"
import * as Handlers from "./Handlers.ts"
import * as Middleware from "./Middleware.ts"
import * as SessionHandlers from "./SessionHandlers.ts"

const isRouteNotFound = (e: unknown): boolean =>
  typeof e === "object" && e !== null && (e as { reason?: { _tag?: string } }).reason?._tag === "RouteNotFound"

/**
 * Any path under `/admin/api` that no endpoint serves (a typo, a path
 * parameter the router cannot decode or longer than it accepts) is a JSON 404
 * like every other refusal of the API, not the server's empty one.
 */
const notFound = HttpRouter.middleware(
  (httpEffect) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      if (!request.url.startsWith("/admin/api")) return yield* httpEffect
      return yield* httpEffect.pipe(Effect.catchIf(isRouteNotFound, () => Effect.succeed(Problem.adminEndpointNotFound())))
    }),
  { global: true }
)

/**
 * The admin API's routes; they need the node's database, audit log, task
 * queue and registry, and the `[control]`, `[security]` and
 * `[security.oidc]` sections.
 *
 * @category layers
 */
export const layer = Layer.mergeAll(
  HttpApiBuilder.layer(AdminApi, { openapiPath: "/admin/api/openapi.json" }).pipe(
    Layer.provide([
      Handlers.layerTasks,
      Handlers.layerQueues,
      Handlers.layerSystem,
      Handlers.layerTokens,
      SessionHandlers.layerSession,
      SessionHandlers.layerLogin
    ]),
    Layer.provide([Middleware.layerAuthentication, Middleware.layerRequestErrors])
  ),
  HttpApiSwagger.layer(AdminApi, { path: "/admin/api/docs" }),
  notFound
).pipe(Layer.provide(Middleware.layerAdminAuth), Layer.provide(ControlPlane.layer))
