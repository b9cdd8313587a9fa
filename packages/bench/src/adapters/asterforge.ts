/**
 * Adapter: AsterForge's own task queue (packages/runtime).
 *
 * Placeholder until the task queue lands: every method throws, and the harness reports the system
 * as skipped with this reason. See ../../README.md ("Writing an adapter") for what each method must
 * do and how the worker process loads this module.
 */
import { readFileSync } from "node:fs"
import type { Adapter } from "../Adapter.ts"

const notImplemented = (): never => {
  throw new Error("asterforge adapter not implemented yet")
}

const runtimeVersion = (): string => {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../../runtime/package.json", import.meta.url), "utf8"))
    return typeof pkg.version === "string" ? pkg.version : "unknown"
  } catch {
    return "unknown"
  }
}

const adapter: Adapter = {
  name: "asterforge",
  version: runtimeVersion(),
  setup: async () => notImplemented(),
  openProducer: async () => notImplemented(),
  startWorkers: async () => notImplemented(),
  countPending: async () => notImplemented()
}

export default adapter
