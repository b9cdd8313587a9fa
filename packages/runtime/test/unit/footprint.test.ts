/**
 * What importing the package loads: a worker holds every module it imports in
 * memory for its whole life, so the package imports Effect by module path
 * (never a barrel, which evaluates all it re-exports) and loads the admin API
 * only on the roles that serve it. Checked in a fresh Node process with a
 * resolve hook that records every module, as a worker would import it.
 */
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { repoRoot } from "../support/process.ts"

const loadedBy = (entry: string): ReadonlyArray<string> => {
  const script = `
    import { registerHooks } from "node:module"
    const urls = []
    registerHooks({ resolve: (specifier, context, next) => { const r = next(specifier, context); urls.push(r.url); return r } })
    await import(${JSON.stringify(entry)})
    process.stdout.write(JSON.stringify(urls))
  `
  const out = ChildProcess.execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: Path.join(repoRoot, "packages/runtime")
  })
  return JSON.parse(out.toString("utf8"))
}

describe("the package's import footprint", () => {
  const urls = loadedBy(Path.join(repoRoot, "packages/runtime/src/index.ts"))
  const effectModules = urls.flatMap((u) => {
    const m = /\/node_modules\/effect\/dist\/(.+)\.js$/.exec(u)
    return m?.[1] === undefined ? [] : [m[1]]
  })

  it("loads Effect module by module (the hook saw them), never through a barrel", () => {
    expect(effectModules).toContain("Effect")
    expect(effectModules).toContain("sql/SqlClient")
    const barrels = effectModules.filter((m) => m === "index" || m.endsWith("/index"))
    expect(barrels).toEqual([])
  })

  it("does not load the admin API (HttpApi, OpenAPI, its handlers) until a role serves it", () => {
    expect(effectModules.filter((m) => m.startsWith("http-api/"))).toEqual([])
    expect(urls.filter((u) => u.includes("/src/http/admin/"))).toEqual([])
    // ... and the role that serves it finds it: the lazily imported module is there.
    expect(
      loadedBy(Path.join(repoRoot, "packages/runtime/src/http/admin/Routes.ts")).some((u) => u.includes("/http-api/HttpApiBuilder.js"))
    ).toBe(true)
  })
})
