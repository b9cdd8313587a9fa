import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** Version of an installed package, found by walking up from its resolved entry point. */
export const packageVersion = (name: string): string => {
  let dir = dirname(fileURLToPath(import.meta.resolve(name)))
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"))
      if (pkg.name === name && typeof pkg.version === "string") return pkg.version
    } catch {
      // no package.json here; keep walking up
    }
    const up = dirname(dir)
    if (up === dir) return "unknown"
    dir = up
  }
}
