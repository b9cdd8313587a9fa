/**
 * The admin web UI at `/admin/`, served by full-API nodes (primary and
 * follower) beside the admin API it is a client of.
 *
 * This module owns only the serving: the UI's files are built by
 * `packages/ui` (`pnpm build`) into the runtime package's `ui/` directory,
 * which ships with the package. Nothing of the UI is imported here: the files
 * are read on the first request to `/admin/` (and kept in memory, with a
 * gzip copy of the text ones), so a node whose UI is never opened never reads
 * them, and the API-only use of the library loads no UI code at all.
 *
 * - `/admin` redirects to `/admin/`;
 * - `/admin/assets/*` are content-hashed files: cached for a year, immutable;
 * - `/admin/api/*` paths no endpoint of the admin API serves are the API's
 *   JSON 404, never the page (a client of the API must not get HTML);
 * - any other path under `/admin/` that names no file is the UI's page (its
 *   router shows the view for the path), never cached, so a deployment's new
 *   asset names are seen at once; a path with a file extension that names no
 *   file is a 404;
 * - every answer carries a strict Content-Security-Policy (scripts, styles
 *   and connections from this origin only; no inline code, no frames), and
 *   `nosniff`, `no-referrer` and `DENY` framing headers.
 *
 * When the directory is missing (a checkout where `pnpm build` never ran) the
 * UI's paths answer 503 saying so; the admin API is unaffected.
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as HttpRouter from "effect/http/HttpRouter"
import type * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as Url from "node:url"
import * as Zlib from "node:zlib"
import * as Problem from "./Problem.ts"

/** Where the built UI is: `ui/` beside `src/` (and `dist/`) in the runtime package. */
export const directory = Url.fileURLToPath(new URL("../../ui/", import.meta.url))

/** The UI's Content-Security-Policy: everything from this origin, nothing inline, no frames, no plugins. */
export const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'"
].join("; ")

const securityHeaders = {
  "content-security-policy": contentSecurityPolicy,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin"
} as const

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8"
}

/** One file of the UI, ready to send. */
interface Asset {
  readonly body: Uint8Array
  /** The gzip encoding of a text file worth compressing. */
  readonly gzip: Uint8Array | undefined
  readonly contentType: string
  readonly cacheControl: string
}

const immutable = "public, max-age=31536000, immutable"
const revalidate = "no-cache"

const compressible = (type: string) => /^(text\/|application\/json|image\/svg)/.test(type)

/** Reads every file under `root` into memory, keyed by its path relative to `root` (`assets/app-X.js`). */
const load = async (root: string): Promise<ReadonlyMap<string, Asset>> => {
  const files = new Map<string, Asset>()
  const entries = await Fs.readdir(root, { recursive: true, withFileTypes: true })
  for (const entry of entries) {
    if (!entry.isFile()) continue
    const full = Path.join(entry.parentPath, entry.name)
    const key = Path.relative(root, full).split(Path.sep).join("/")
    const body = new Uint8Array(await Fs.readFile(full))
    const contentType = contentTypes[Path.extname(entry.name)] ?? "application/octet-stream"
    files.set(key, {
      body,
      gzip: compressible(contentType) && body.byteLength > 1024 ? new Uint8Array(Zlib.gzipSync(body, { level: 9 })) : undefined,
      contentType,
      cacheControl: key.startsWith("assets/") ? immutable : revalidate
    })
  }
  return files
}

const send = (asset: Asset, request: HttpServerRequest.HttpServerRequest, status = 200) => {
  const gzip = asset.gzip !== undefined && /\bgzip\b/.test(request.headers["accept-encoding"] ?? "")
  return HttpServerResponse.uint8Array(gzip ? asset.gzip! : asset.body, {
    status,
    contentType: asset.contentType,
    headers: {
      ...securityHeaders,
      "cache-control": asset.cacheControl,
      ...(asset.gzip === undefined ? {} : { vary: "accept-encoding" }),
      ...(gzip ? { "content-encoding": "gzip" } : {})
    }
  })
}

const plain = (status: number, text: string) =>
  HttpServerResponse.text(text, { status, headers: { ...securityHeaders, "cache-control": revalidate } })

/**
 * The UI's routes under `/admin/` (the admin API's own `/admin/api/*` routes
 * are more specific and win). `root` is the built UI (default `directory`).
 *
 * @category layers
 */
export const layer = (root: string = directory): Layer.Layer<never, never, HttpRouter.HttpRouter> =>
  HttpRouter.use(
    Effect.fn(function* (router) {
      // Read once, on first use; a failed read (no build) is tried again on the next request.
      let files: Promise<ReadonlyMap<string, Asset>> | undefined
      const assets = Effect.tryPromise({
        try: () => {
          files ??= load(root).catch((e) => {
            files = undefined
            throw e
          })
          return files
        },
        catch: (e) => e
      })

      const serve = (request: HttpServerRequest.HttpServerRequest) =>
        Effect.gen(function* () {
          // The wildcard also catches what the API's own routes do not match: that is the API's 404.
          if (/^\/admin\/api(\/|$|\?)/.test(request.url)) return Problem.adminEndpointNotFound()
          const found = yield* Effect.result(assets)
          if (found._tag === "Failure") {
            return plain(503, `the admin UI is not built (${root} is missing): run pnpm build`)
          }
          const all = found.success
          const path = decodeURIComponent((request.url.split("?")[0] ?? "").replace(/^\/admin\/?/, ""))
          const asset = path === "" ? undefined : all.get(path)
          if (asset !== undefined) return send(asset, request)
          if (Path.extname(path) !== "") return plain(404, `no such file: /admin/${path}`)
          const page = all.get("index.html")
          return page === undefined ? plain(503, `the admin UI build has no index.html in ${root}: run pnpm build`) : send(page, request)
        }).pipe(Effect.catchDefect(() => Effect.succeed(plain(400, "bad path"))))

      // "/admin/*" also routes "/admin" (and the router ignores a trailing slash): only the bare form is redirected.
      yield* router.add("GET", "/admin/*", (request) =>
        (request.url.split("?")[0] ?? "") === "/admin"
          ? Effect.succeed(HttpServerResponse.redirect("/admin/", { status: 302 }))
          : serve(request)
      )
    })
  )
