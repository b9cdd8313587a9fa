/**
 * The admin web UI's build: esbuild bundles `src/main.ts` (Preact, htm,
 * wouter, uPlot and the views) and the styles it imports into content-hashed
 * files under `packages/runtime/ui/assets/`, then writes `index.html` naming
 * them and copies the static files (`src/static/*`). The runtime package ships
 * that directory and serves it at `/admin/` (`src/http/AdminUi.ts`).
 *
 * Runs in `pnpm build` (this package's `build` script) and before the tests
 * (the root vitest global setup, `scripts/build-ui.ts`), so a fresh clone's
 * `pnpm test` serves what the sources say. Files of earlier builds that the
 * new one no longer names are removed after the new ones are written, so a
 * node reading the directory never finds it half empty.
 */
import * as esbuild from "esbuild"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Url from "node:url"

const here = Path.dirname(Url.fileURLToPath(import.meta.url))

/** Where the build goes: the runtime package's `ui/` directory. */
export const outDir = Path.resolve(here, "../runtime/ui")

/** What a build wrote. */
export interface Built {
  /** Paths relative to `outDir`, with their sizes in bytes. */
  readonly files: ReadonlyArray<{ readonly path: string; readonly bytes: number }>
  readonly ms: number
}

const page = (script: string, style: string) => `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="color-scheme" content="light" />
    <title>AsterForge admin</title>
    <link rel="icon" href="/admin/favicon.svg" type="image/svg+xml" />
    <link rel="stylesheet" href="/admin/${style}" />
    <script type="module" src="/admin/${script}"></script>
  </head>
  <body>
    <div id="app"></div>
    <noscript>The AsterForge admin UI needs JavaScript.</noscript>
  </body>
</html>
`

/** Builds the UI into `outDir`. */
export const build = async (): Promise<Built> => {
  const started = performance.now()
  Fs.mkdirSync(outDir, { recursive: true })
  const result = await esbuild.build({
    absWorkingDir: here,
    entryPoints: { app: "src/main.ts" },
    bundle: true,
    format: "esm",
    target: "es2022",
    platform: "browser",
    minify: true,
    sourcemap: "linked",
    legalComments: "linked",
    entryNames: "assets/[name]-[hash]",
    assetNames: "assets/[name]-[hash]",
    outdir: outDir,
    metafile: true,
    logLevel: "warning",
    define: { "process.env.NODE_ENV": '"production"' }
  })
  const outputs = Object.keys(result.metafile.outputs).map((p) => Path.relative(outDir, Path.resolve(here, p)))
  const script = outputs.find((p) => p.endsWith(".js"))
  const style = outputs.find((p) => p.endsWith(".css"))
  if (script === undefined || style === undefined) throw new Error(`the UI build made no script or no stylesheet: ${outputs.join(", ")}`)
  Fs.writeFileSync(Path.join(outDir, "index.html"), page(script, style))
  const staticDir = Path.join(here, "src/static")
  const statics = Fs.readdirSync(staticDir)
  for (const name of statics) Fs.copyFileSync(Path.join(staticDir, name), Path.join(outDir, name))

  const written = new Set([...outputs, "index.html", ...statics])
  for (const entry of Fs.readdirSync(outDir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const rel = Path.relative(outDir, Path.join(entry.parentPath, entry.name))
    if (!written.has(rel)) Fs.rmSync(Path.join(outDir, rel))
  }
  const files = [...written].sort().map((path) => ({ path, bytes: Fs.statSync(Path.join(outDir, path)).size }))
  return { files, ms: Math.round(performance.now() - started) }
}

if (import.meta.main) {
  const built = await build()
  for (const f of built.files) console.log(`${f.path.padEnd(40)} ${(f.bytes / 1024).toFixed(1).padStart(8)} KiB`)
  console.log(`admin UI built into ${outDir} in ${built.ms} ms`)
}
