/**
 * Vitest global setup: builds the admin web UI (packages/ui) into the runtime
 * package's `ui/` directory before any test runs, so the nodes the tests
 * start serve the UI the sources describe, on a fresh clone too (the build
 * output is not committed). A build failure stops the run with its errors.
 */
import { build, outDir } from "../packages/ui/build.ts"

export default async function setup(): Promise<void> {
  const built = await build()
  const bytes = built.files.filter((f) => !f.path.endsWith(".map")).reduce((n, f) => n + f.bytes, 0)
  console.log(`[tests] admin UI built into ${outDir} in ${built.ms} ms (${(bytes / 1024).toFixed(0)} KiB without source maps)`)
}
