/** The README is part of the contract: its example, config table and metric table must match the code. */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import * as ConfigReference from "../../../../scripts/config-reference.ts"
import * as RuntimeConfig from "../../src/RuntimeConfig.ts"
import * as Telemetry from "../../src/Telemetry.ts"
import { repoRoot } from "../support/process.ts"

const readme = Fs.readFileSync(Path.join(repoRoot, "README.md"), "utf8")

describe("README", () => {
  it("shows the downstream example exactly as the file CI runs", () => {
    const example = Fs.readFileSync(Path.join(repoRoot, "packages/runtime/examples/downstream-app.ts"), "utf8")
    expect(readme).toContain("```ts\n" + example + "```")
  })

  it("shows the tasks example exactly as the file CI type-checks and runs", () => {
    const example = Fs.readFileSync(Path.join(repoRoot, "packages/runtime/examples/tasks-app.ts"), "utf8")
    expect(readme).toContain("```ts\n" + example + "```")
  })

  it("its configuration reference is the one the sections generate (pnpm docs:config)", () => {
    expect(ConfigReference.updated(readme)).toBe(readme)
  })

  it("documents every configuration key with its environment variable", () => {
    for (const key of RuntimeConfig.keys) {
      expect(readme, key).toContain(`| \`${key}\``)
      expect(readme, key).toContain(RuntimeConfig.envName(key))
    }
  })

  it("documents every metric in the catalogue", () => {
    for (const metric of Object.values(Telemetry.metrics)) {
      expect(readme, metric.id).toContain(`| \`${metric.id}\``)
    }
  })

  it("states the two set-up commands, and .ci/run calls the test one", () => {
    expect(readme).toContain("npm i -g pnpm@10 && pnpm install && pnpm start")
    const testCommand = "./scripts/install-test-tools.sh && npm i -g pnpm@10 && pnpm install && pnpm test"
    expect(readme).toContain(testCommand)
    expect(Fs.readFileSync(Path.join(repoRoot, ".ci/run"), "utf8")).toContain(testCommand)
  })
})
