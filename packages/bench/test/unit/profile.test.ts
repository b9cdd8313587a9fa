/**
 * The CPU-profile summary of `--profile`: which area a frame's url belongs to, how sample
 * durations become self time (inside the drain window only), and that idle stays out of totals.
 */
import { describe, expect, it } from "vitest"
import {
  areaOf,
  type CallFrame,
  type CpuProfile,
  mergeSummaries,
  packageOf,
  renderProfileReport,
  selfTimes,
  shortUrl,
  summarizeProfile,
  topFunctions
} from "../../src/profile.ts"

const pnpm = (pkg: string, file: string) => `file:///repo/node_modules/.pnpm/${pkg.replace("/", "+")}@1.0.0/node_modules/${pkg}/${file}`
const frame = (url: string, functionName = "f", lineNumber = 0): CallFrame => ({ functionName, url, lineNumber, columnNumber: 0 })

describe("packageOf", () => {
  it("takes the package of the last node_modules segment, scoped or not", () => {
    expect(packageOf(pnpm("effect", "dist/internal/effect.js"))).toBe("effect")
    expect(packageOf(pnpm("@effect/sql-pg", "dist/PgClient.js"))).toBe("@effect/sql-pg")
    expect(packageOf("file:///repo/packages/runtime/src/Dispatcher.ts")).toBeNull()
  })
})

describe("areaOf", () => {
  it("sorts frames into areas by url", () => {
    expect(areaOf("asterforge", frame(pnpm("effect", "dist/x.js")))).toBe("effect")
    expect(areaOf("asterforge", frame(pnpm("@effect/platform-node", "dist/x.js")))).toBe("effect")
    expect(areaOf("asterforge", frame(pnpm("@effect/sql-pg", "dist/x.js")))).toBe("driver")
    expect(areaOf("asterforge", frame(pnpm("pg-protocol", "dist/parser.js")))).toBe("driver")
    expect(areaOf("asterforge", frame(pnpm("postgres-array", "index.js")))).toBe("driver")
    expect(areaOf("asterforge", frame("file:///repo/packages/runtime/src/internal/dispatcher/executor.ts"))).toBe("own")
    expect(areaOf("asterforge", frame("file:///repo/packages/bench/src/worker.ts"))).toBe("harness")
    expect(areaOf("asterforge", frame(pnpm("@opentelemetry/api", "build/x.js")))).toBe("packages")
    expect(areaOf("asterforge", frame("node:internal/streams/readable"))).toBe("node")
  })

  it("gives each system its own package; pg-boss is not the driver", () => {
    expect(areaOf("pg-boss", frame(pnpm("pg-boss", "dist/manager.js")))).toBe("own")
    expect(areaOf("asterforge", frame(pnpm("pg-boss", "dist/manager.js")))).toBe("driver")
    expect(areaOf("graphile-worker", frame(pnpm("graphile-worker", "dist/main.js")))).toBe("own")
    expect(areaOf("graphile-worker", frame(pnpm("@graphile/logger", "dist/index.js")))).toBe("own")
    expect(areaOf("graphile-worker", frame("file:///repo/packages/runtime/src/Task.ts"))).toBe("packages")
  })

  it("knows V8's pseudo-frames", () => {
    expect(areaOf("x", frame("", "(garbage collector)"))).toBe("gc")
    expect(areaOf("x", frame("", "(program)"))).toBe("program")
    expect(areaOf("x", frame("", "(idle)"))).toBe("(idle)")
    expect(areaOf("x", frame("", "(root)"))).toBe("(root)")
    expect(areaOf("x", frame("", "writeBuffer"))).toBe("native")
  })
})

// Samples at t = 1000, 1010, 1030, 1060, 1100; the profile ends at 1150.
// Durations (to the next sample): 10, 20, 30, 40, 50.
const profile: CpuProfile = {
  startTime: 1000,
  endTime: 1150,
  nodes: [
    { id: 1, callFrame: frame("", "(root)"), children: [2, 3, 4, 5, 6] },
    { id: 2, callFrame: frame(pnpm("effect", "dist/internal/effect.js"), "runLoop", 452) },
    { id: 3, callFrame: frame("", "(idle)") },
    { id: 4, callFrame: frame("file:///repo/packages/runtime/src/Dispatcher.ts", "claim", 9) },
    { id: 5, callFrame: frame("", "(garbage collector)") },
    // the same function as node 2, reached by another call path
    { id: 6, callFrame: frame(pnpm("effect", "dist/internal/effect.js"), "runLoop", 452) }
  ],
  samples: [2, 3, 4, 5, 6],
  timeDeltas: [0, 10, 20, 30, 40]
}

describe("selfTimes", () => {
  it("gives each sample the time until the next one (the last until endTime)", () => {
    expect([...selfTimes(profile)]).toEqual([
      [2, 10],
      [3, 20],
      [4, 30],
      [5, 40],
      [6, 50]
    ])
  })

  it("counts only samples taken inside the window", () => {
    expect([...selfTimes(profile, [1010, 1060])]).toEqual([
      [3, 20],
      [4, 30],
      [5, 40]
    ])
  })
})

describe("summarizeProfile", () => {
  it("sums self time per area, keeps idle out of the total, merges a function's nodes", () => {
    const s = summarizeProfile(profile, "asterforge")
    expect(s.areas.effect).toBe(60)
    expect(s.areas.own).toBe(30)
    expect(s.areas.gc).toBe(40)
    expect(s.idleUs).toBe(20)
    expect(s.totalUs).toBe(130)
    const top = topFunctions(s, 15)
    expect(top.map((f) => [f.functionName, f.selfUs, f.line, f.area])).toEqual([
      ["runLoop", 60, 453, "effect"],
      ["claim", 30, 10, "own"]
    ])
  })

  it("merges runs", () => {
    const one = summarizeProfile(profile, "asterforge")
    const both = mergeSummaries([one, one])
    expect(both.profiles).toBe(2)
    expect(both.totalUs).toBe(260)
    expect(topFunctions(both, 1)[0]?.selfUs).toBe(120)
  })
})

describe("renderProfileReport", () => {
  it("prints shares and ms per run, and the subject's top functions", () => {
    const summary = mergeSummaries([summarizeProfile(profile, "asterforge"), summarizeProfile(profile, "asterforge")])
    const text = renderProfileReport({
      dir: "results/profiles/x",
      systems: [
        { system: "asterforge", summary, workerCpuSec: [0.2, 0.4] },
        { system: "pg-boss", summary: null, workerCpuSec: [] }
      ],
      topFor: "asterforge",
      top: 15
    })
    expect(text).toContain("| `effect`, `@effect/*` (except sql-pg) | 46.2 % (0.0600) | – |")
    expect(text).toContain(
      "| **sampled main-thread time, ms per run** (idle excluded; wall-clock samples, so waiting for a core counts too) | **0.130** | no profile |"
    )
    expect(text).toContain("| worker process CPU, ms per run (all threads, from the results) | 300 | – |")
    expect(text).toContain("| 1 | 0.0600 | 46.2 % | `runLoop` | `effect/dist/internal/effect.js:453` | effect |")
  })

  it("shortens urls to the path inside the package or the monorepo", () => {
    expect(shortUrl("file:///repo/packages/runtime/src/Task.ts")).toBe("packages/runtime/src/Task.ts")
    expect(shortUrl("node:net")).toBe("node:net")
  })
})
