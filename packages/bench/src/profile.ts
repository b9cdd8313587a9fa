/**
 * Where a worker process's CPU went, from the V8 CPU profiles `--profile` makes (`--cpu-prof`).
 *
 * Each sample's duration (the time to the next sample, as Chrome DevTools counts it) is the self
 * time of the profile node it hit; those self times are grouped into areas by the node's
 * `callFrame.url` (effect, the Postgres driver, the system's own package, ...). Only the main
 * thread is sampled, so GC helper threads, the libuv pool and the compiler threads are not in it
 * (the results' `workerCpuSec` counts every thread). `(idle)` is reported but kept out of the
 * totals: it is the event loop waiting. V8 samples on a wall clock, so a busy main thread that waits
 * for a core still counts: on a loaded machine the total can exceed the process's CPU time.
 *
 * The samples can be restricted to a window on the profile's clock (process.hrtime in µs, see
 * `drainWindowUs` in protocol.ts), so that module loading and the wait for "go" do not count.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fmt } from "./stats.ts"

export interface CallFrame {
  readonly functionName: string
  readonly url: string
  /** 0-based */
  readonly lineNumber: number
  readonly columnNumber: number
}

export interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly hitCount?: number
  readonly children?: ReadonlyArray<number>
}

/** The `.cpuprofile` JSON Node writes (Chrome DevTools' Profiler.Profile); times in µs. */
export interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples?: ReadonlyArray<number>
  readonly timeDeltas?: ReadonlyArray<number>
}

/** Areas in report order. `own` = the measured system's own package. */
export const AREAS = ["effect", "driver", "own", "harness", "node", "packages", "native", "gc", "program"] as const
export type Area = (typeof AREAS)[number]

export const AREA_LABELS: Readonly<Record<Area, string>> = {
  effect: "`effect`, `@effect/*` (except sql-pg)",
  driver: "Postgres driver: `@effect/sql-pg`, `pg`, `pg-*`, `postgres*`, `pgpass`",
  own: "the system's own package (`packages/runtime` / `graphile-worker` + `graphile-config` / `pg-boss`)",
  harness: "bench harness (`packages/bench`)",
  node: "Node internals (`node:` urls)",
  packages: "other packages",
  native: "V8 builtins and Node's C++ bindings (no url; `writeBuffer` = socket writes)",
  gc: "(garbage collector)",
  program: "(program): native code outside JS (V8, libuv, bindings)"
}

/** Short names for the top-functions table. */
export const AREA_SHORT: Readonly<Record<Area, string>> = {
  effect: "effect",
  driver: "driver",
  own: "own package",
  harness: "harness",
  node: "node",
  packages: "other packages",
  native: "native",
  gc: "gc",
  program: "program"
}

/** The package a url is in (`@scope/name` or `name`), from its last node_modules segment; null outside node_modules. */
export const packageOf = (url: string): string | null => {
  const i = url.lastIndexOf("/node_modules/")
  if (i < 0) return null
  const parts = url.slice(i + "/node_modules/".length).split("/")
  const first = parts[0] ?? ""
  return first.startsWith("@") ? `${first}/${parts[1] ?? ""}` : first
}

/** The monorepo folder a url is in (`packages/<name>/...`, resolved through the workspace symlinks), or null. */
const workspaceOf = (url: string): string | null => /\/packages\/([^/]+)\//.exec(url)?.[1] ?? null

const isOwn = (system: string, pkg: string | null, workspace: string | null): boolean => {
  switch (system) {
    case "asterforge":
      return pkg === null && workspace === "runtime"
    case "graphile-worker":
      // graphile-worker is split over graphile-config and @graphile/* (logger); they are its code.
      return pkg === "graphile-worker" || pkg === "graphile-config" || (pkg?.startsWith("@graphile/") ?? false)
    default:
      return pkg === system
  }
}

const isDriver = (pkg: string): boolean =>
  pkg === "@effect/sql-pg" || pkg === "pg" || pkg.startsWith("pg-") || pkg === "pgpass" || pkg === "postgres" || pkg.startsWith("postgres-")

/** V8's pseudo-frames: no url, a parenthesised name. */
export type Pseudo = "(idle)" | "(root)"

export const areaOf = (system: string, frame: CallFrame): Area | Pseudo => {
  const { url, functionName } = frame
  if (url === "") {
    if (functionName === "(idle)" || functionName === "(root)") return functionName
    if (functionName === "(garbage collector)") return "gc"
    if (functionName === "(program)") return "program"
    return "native"
  }
  if (url.startsWith("node:")) return "node"
  const pkg = packageOf(url)
  const workspace = workspaceOf(url)
  // Own package first: pg-boss would otherwise match the driver's `pg-*`.
  if (isOwn(system, pkg, workspace)) return "own"
  if (pkg !== null) {
    if (isDriver(pkg)) return "driver"
    if (pkg === "effect" || pkg.startsWith("@effect/")) return "effect"
    return "packages"
  }
  if (workspace === "bench") return "harness"
  return "packages"
}

/**
 * Self time (µs) per node id. Sample i lasts until sample i + 1 (the last one until `endTime`);
 * with `window`, only samples taken inside [start, end] count.
 */
export const selfTimes = (profile: CpuProfile, window?: readonly [number, number]): Map<number, number> => {
  const self = new Map<number, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  if (samples.length === 0) {
    // Old format without a sample list: spread the duration over hitCount.
    const hits = profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0)
    const perHit = hits === 0 ? 0 : (profile.endTime - profile.startTime) / hits
    for (const n of profile.nodes) if ((n.hitCount ?? 0) > 0) self.set(n.id, n.hitCount! * perHit)
    return self
  }
  const times: Array<number> = []
  let t = profile.startTime
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0
    times.push(t)
  }
  for (let i = 0; i < samples.length; i++) {
    const at = times[i]!
    if (window !== undefined && (at < window[0] || at > window[1])) continue
    // V8 occasionally records a sample out of order (negative delta): count it as zero, not negative.
    const duration = Math.max(0, (i + 1 < samples.length ? times[i + 1]! : profile.endTime) - at)
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + duration)
  }
  return self
}

export interface FunctionTime {
  readonly functionName: string
  readonly url: string
  /** 1-based, for display */
  readonly line: number
  readonly area: Area
  readonly selfUs: number
}

export interface ProfileSummary {
  /** profiles merged into this summary */
  readonly profiles: number
  /** self time per area, µs; (idle) is not an area */
  readonly areas: Readonly<Record<Area, number>>
  /** sum of the areas (everything but idle), µs */
  readonly totalUs: number
  readonly idleUs: number
  /** self time per function (name + location), JS functions only (no pseudo-frames, gc, program) */
  readonly functions: ReadonlyMap<string, FunctionTime>
}

const emptyAreas = (): Record<Area, number> => Object.fromEntries(AREAS.map((a) => [a, 0])) as Record<Area, number>

export const summarizeProfile = (profile: CpuProfile, system: string, window?: readonly [number, number]): ProfileSummary => {
  const byId = new Map(profile.nodes.map((n) => [n.id, n] as const))
  const areas = emptyAreas()
  const functions = new Map<string, FunctionTime>()
  let idleUs = 0
  for (const [id, us] of selfTimes(profile, window)) {
    const node = byId.get(id)
    if (node === undefined || us === 0) continue
    const area = areaOf(system, node.callFrame)
    if (area === "(idle)") {
      idleUs += us
      continue
    }
    if (area === "(root)") continue
    areas[area] += us
    if (area === "gc" || area === "program") continue
    const { functionName, url, lineNumber, columnNumber } = node.callFrame
    // One function can appear as many nodes (one per call path): sum them.
    const key = `${functionName}\u0000${url}\u0000${lineNumber}\u0000${columnNumber}`
    const prev = functions.get(key)
    functions.set(key, { functionName, url, line: lineNumber + 1, area, selfUs: (prev?.selfUs ?? 0) + us })
  }
  return { profiles: 1, areas, totalUs: AREAS.reduce((a, k) => a + areas[k], 0), idleUs, functions }
}

export const mergeSummaries = (summaries: ReadonlyArray<ProfileSummary>): ProfileSummary => {
  const areas = emptyAreas()
  const functions = new Map<string, FunctionTime>()
  let idleUs = 0
  let profiles = 0
  for (const s of summaries) {
    profiles += s.profiles
    idleUs += s.idleUs
    for (const a of AREAS) areas[a] += s.areas[a]
    for (const [key, f] of s.functions) {
      const prev = functions.get(key)
      functions.set(key, prev === undefined ? f : { ...prev, selfUs: prev.selfUs + f.selfUs })
    }
  }
  return { profiles, areas, totalUs: AREAS.reduce((a, k) => a + areas[k], 0), idleUs, functions }
}

export const topFunctions = (summary: ProfileSummary, n: number): Array<FunctionTime> =>
  [...summary.functions.values()].sort((a, b) => b.selfUs - a.selfUs).slice(0, n)

/** A url as a short location: the path inside its package (node_modules) or from `packages/` on. */
export const shortUrl = (url: string): string => {
  const path = url.startsWith("file://") ? decodeURIComponent(url.slice("file://".length)) : url
  const nm = path.lastIndexOf("/node_modules/")
  if (nm >= 0) return path.slice(nm + "/node_modules/".length)
  const ws = path.indexOf("/packages/")
  return ws >= 0 ? path.slice(ws + 1) : path
}

/** Every `.cpuprofile` file in `dir` (one per process that ran with --cpu-prof-dir=dir). */
export const readProfiles = (dir: string): Array<CpuProfile> => {
  let names: Array<string>
  try {
    names = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))
  } catch {
    return []
  }
  return names.sort().map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")) as CpuProfile)
}

export interface SystemProfile {
  readonly system: string
  /** null when no run of this system left a profile */
  readonly summary: ProfileSummary | null
  /** the results' worker process CPU seconds (all threads) of the profiled runs */
  readonly workerCpuSec: ReadonlyArray<number>
}

const ms = (us: number) => fmt(us / 1000)
const pct = (part: number, whole: number) => (whole === 0 ? "–" : `${((100 * part) / whole).toFixed(1)} %`)

/**
 * The markdown summary: one row per area, one column per system (share of the sampled CPU and
 * ms per run), then the top `top` functions by self time of `topFor`.
 */
export const renderProfileReport = (input: {
  readonly dir: string
  readonly systems: ReadonlyArray<SystemProfile>
  readonly topFor: string
  readonly top: number
}): string => {
  const { systems } = input
  const lines: Array<string> = []
  lines.push("## Where the worker's CPU went (throughput, `--profile`)")
  lines.push("")
  lines.push(
    `- CPU profiles (V8 \`--cpu-prof\`, main thread, 1 sample/ms) in \`${input.dir}\`, one folder per run: open a \`.cpuprofile\` in Chrome DevTools (Performance panel) or https://www.speedscope.app`
  )
  lines.push(
    "- Only samples of the drain count (from `startWorkers()` to the last committed completion, as `workerCpuSec`); each area is the self time of the frames whose url is in it. Cells: share of the sampled time (ms per run)"
  )
  lines.push("")
  const header = ["area", ...systems.map((s) => `${s.system} (${s.summary?.profiles ?? 0} run(s))`)]
  lines.push(`| ${header.join(" | ")} |`)
  lines.push(`| ${header.map(() => "---").join(" | ")} |`)
  const perRun = (s: ProfileSummary, us: number) => us / s.profiles
  for (const area of AREAS) {
    const cells = systems.map((s) =>
      s.summary === null ? "–" : `${pct(s.summary.areas[area], s.summary.totalUs)} (${ms(perRun(s.summary, s.summary.areas[area]))})`
    )
    lines.push(`| ${AREA_LABELS[area]} | ${cells.join(" | ")} |`)
  }
  lines.push(
    `| **sampled main-thread time, ms per run** (idle excluded; wall-clock samples, so waiting for a core counts too) | ${systems.map((s) => (s.summary === null ? "no profile" : `**${ms(perRun(s.summary, s.summary.totalUs))}**`)).join(" | ")} |`
  )
  lines.push(
    `| (idle), ms per run, not in the total | ${systems.map((s) => (s.summary === null ? "–" : ms(perRun(s.summary, s.summary.idleUs)))).join(" | ")} |`
  )
  lines.push(
    `| worker process CPU, ms per run (all threads, from the results) | ${systems
      .map((s) => (s.workerCpuSec.length === 0 ? "–" : ms((s.workerCpuSec.reduce((a, b) => a + b, 0) / s.workerCpuSec.length) * 1e6)))
      .join(" | ")} |`
  )

  const subject = systems.find((s) => s.system === input.topFor)?.summary
  if (subject !== null && subject !== undefined) {
    lines.push("")
    lines.push(`### Top ${input.top} functions by self time: ${input.topFor}`)
    lines.push("")
    lines.push("| # | self ms per run | share | function | location | area |")
    lines.push("| --- | --- | --- | --- | --- | --- |")
    topFunctions(subject, input.top).forEach((f, i) => {
      lines.push(
        `| ${i + 1} | ${ms(perRun(subject, f.selfUs))} | ${pct(f.selfUs, subject.totalUs)} | \`${f.functionName || "(anonymous)"}\` | ${f.url === "" ? "–" : `\`${shortUrl(f.url)}:${f.line}\``} | ${AREA_SHORT[f.area]} |`
      )
    })
  }
  return lines.join("\n")
}
