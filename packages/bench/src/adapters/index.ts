/**
 * Adapter registry: system name -> adapter module (path relative to this folder).
 *
 * The module must `export default` an `Adapter` (see ../Adapter.ts). Both the driver and the
 * forked worker process load adapters through `loadAdapter`, so a new system only needs a line
 * here. `--systems` also accepts a path to an adapter module (anything containing a `/` or ending
 * in .ts/.js/.mjs), resolved against the current directory.
 */
import { isAbsolute, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import type { Adapter } from "../Adapter.ts"

export const adapters: Readonly<Record<string, string>> = {
  asterforge: "./asterforge.ts",
  "graphile-worker": "./graphile-worker.ts",
  "pg-boss": "./pg-boss.ts"
}

/** The anchors: established systems the asterforge numbers are compared with. */
export const anchorSystems: ReadonlyArray<string> = ["graphile-worker", "pg-boss"]

export const isAdapterPath = (system: string): boolean => system.includes("/") || /\.(ts|js|mjs)$/.test(system)

export const adapterModuleUrl = (system: string): string => {
  const registered = adapters[system]
  if (registered !== undefined) return new URL(registered, import.meta.url).href
  if (isAdapterPath(system)) return pathToFileURL(isAbsolute(system) ? system : resolve(process.cwd(), system)).href
  throw new Error(`unknown system "${system}" (known: ${Object.keys(adapters).join(", ")}; or a path to an adapter module)`)
}

const methods = ["setup", "openProducer", "startWorkers", "countPending"] as const

export const loadAdapter = async (system: string): Promise<Adapter> => {
  const mod: { default?: unknown; adapter?: unknown } = await import(adapterModuleUrl(system))
  const candidate = (mod.default ?? mod.adapter) as Partial<Adapter> | undefined
  if (candidate === undefined || typeof candidate !== "object" || typeof candidate.name !== "string") {
    throw new Error(`adapter module for "${system}" must default-export an Adapter object with a name`)
  }
  for (const m of methods) {
    if (typeof candidate[m] !== "function") throw new Error(`adapter "${candidate.name}" has no ${m}() method`)
  }
  return candidate as Adapter
}
