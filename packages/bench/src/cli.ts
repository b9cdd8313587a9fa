/** Command-line flags of `node src/main.ts`. */
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { adapters, isAdapterPath } from "./adapters/index.ts"
import type { Scenario } from "./protocol.ts"

export interface Options {
  readonly systems: ReadonlyArray<string>
  readonly scenarios: ReadonlyArray<Scenario>
  readonly runs: number
  readonly jobs: number
  readonly latencyJobs: number
  readonly rate: number
  readonly concurrency: number
  readonly idleMs: number
  readonly maxSeconds: number
  readonly waitQuiet: number
  readonly adminUrl: string
  /** Node/V8 flags of every worker process (fork's execArgv), the same for every system. */
  readonly nodeFlags: ReadonlyArray<string>
  /** CPU-profile the throughput workers; `dir` null = the default folder under results/profiles. */
  readonly profile: { readonly dir: string | null } | null
  /** throughput: finished rows put in each history-keeping system's table before the insert */
  readonly history: number
}

/**
 * The young-generation cap AsterForge runs with in production (`pnpm start` in the root
 * package.json): every system's workers get it, so each is measured as it would run.
 */
export const DEFAULT_NODE_FLAGS = "--max-semi-space-size=4"

export const DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/test"
const ALL_SCENARIOS: ReadonlyArray<Scenario> = ["throughput", "latency"]

export const usage = (): string => `Usage: node src/main.ts [flags]      (from the repo root: pnpm bench [flags])

Measures Postgres-backed task queues side by side: every selected system, every scenario,
--runs times each, each run in a fresh database. Progress goes to stderr, a markdown table
to stdout, raw results to packages/bench/results/<timestamp>.jsonl.

Flags:
  --systems <list>      comma-separated systems (default: ${Object.keys(adapters).join(",")});
                        a path to an adapter module also works
  --scenarios <list>    throughput,latency (default: both)
  --runs <n>            runs per scenario and system (default: 3); report median (min-max)
  --jobs <n>            throughput: jobs inserted then drained (default: 20000)
  --latency-jobs <n>    latency: single jobs sent (default: 500)
  --rate <n>            latency: jobs sent per second, open-loop (default: 50)
  --concurrency <n>     worker concurrency passed to the adapters (default: 10)
  --idle-ms <n>         latency: idle time between starting the workers and the first send (default: 2500)
  --max-seconds <n>     throughput: cap on the drain; a capped run reports what completed (default: 180)
  --wait-quiet <s>      before each measured phase wait up to <s> seconds until the machine is
                        under 10 % busy (default: 0 = do not wait)
  --admin-url <url>     Postgres URL allowed to CREATE DATABASE (default: $DATABASE_URL or
                        ${DEFAULT_ADMIN_URL})
  --node-flags "<flags>"
                        Node/V8 flags for every system's worker process alike (default:
                        "${DEFAULT_NODE_FLAGS}", as pnpm start); "" = V8 defaults.
                        NODE_OPTIONS from the environment still applies on top
  --profile [dir]       CPU-profile the throughput workers (--cpu-prof) into <dir>/<system>-run<k>
                        (default dir: results/profiles/<start time>) and print where their CPU
                        went; the profiler's overhead lowers the throughput numbers
  --history <n>         throughput: put <n> finished jobs in each system's table before the insert
                        (systems that keep history: asterforge, pg-boss) (default: 0)
  -h, --help            this text
`

export class UsageError extends Error {}

const FLAGS = [
  "systems",
  "scenarios",
  "runs",
  "jobs",
  "latency-jobs",
  "rate",
  "concurrency",
  "idle-ms",
  "max-seconds",
  "wait-quiet",
  "admin-url",
  "node-flags",
  "profile",
  "history"
] as const
type Flag = (typeof FLAGS)[number]

const isFlag = (s: string): s is Flag => (FLAGS as ReadonlyArray<string>).includes(s)

/** Returns null when --help was asked for. Throws UsageError on a bad flag or value. */
export const parseOptions = (argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Options | null => {
  const args = argv[0] === "--" ? argv.slice(1) : argv
  const raw = new Map<Flag, string>()
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === "-h" || a === "--help") return null
    if (!a.startsWith("--")) throw new UsageError(`unexpected argument "${a}" (flags look like --runs 3)`)
    const eq = a.indexOf("=")
    const key = eq > 0 ? a.slice(2, eq) : a.slice(2)
    if (!isFlag(key)) throw new UsageError(`unknown flag --${key}`)
    let value: string | undefined
    if (eq > 0) value = a.slice(eq + 1)
    else if (key === "profile") {
      // The folder is optional: `--profile --runs 1` profiles into the default folder.
      const next = args[i + 1]
      value = next === undefined || next.startsWith("--") ? "" : next
      if (value !== "") i++
    } else {
      value = args[i + 1]
      // Node flags start with "--" themselves, so --node-flags takes the next argument whatever it is.
      if (value === undefined || (value.startsWith("--") && key !== "node-flags")) throw new UsageError(`--${key} needs a value`)
      i++
    }
    if (raw.has(key)) throw new UsageError(`--${key} given twice`)
    raw.set(key, value)
  }

  const int = (key: Flag, dflt: number, min: number): number => {
    const s = raw.get(key)
    if (s === undefined) return dflt
    const n = Number(s)
    if (s.trim() === "" || !Number.isInteger(n) || n < min) {
      throw new UsageError(`--${key} must be a whole number >= ${min}, got "${s}"`)
    }
    return n
  }
  const list = (key: Flag): Array<string> | undefined => {
    const s = raw.get(key)
    if (s === undefined) return undefined
    const items = s
      .split(",")
      .map((x) => x.trim())
      .filter((x) => x !== "")
    if (items.length === 0) throw new UsageError(`--${key} must not be empty`)
    if (new Set(items).size !== items.length) throw new UsageError(`--${key} lists an item twice: "${s}"`)
    return items
  }

  const systems = list("systems") ?? Object.keys(adapters)
  for (const s of systems) {
    if (adapters[s] === undefined && !isAdapterPath(s)) {
      throw new UsageError(
        `unknown system "${s}" in --systems (known: ${Object.keys(adapters).join(", ")}; or a path to an adapter module)`
      )
    }
  }
  const scenarioNames = list("scenarios") ?? ALL_SCENARIOS
  const scenarios: Array<Scenario> = []
  for (const s of scenarioNames) {
    if (s !== "throughput" && s !== "latency") {
      throw new UsageError(`unknown scenario "${s}" in --scenarios (known: ${ALL_SCENARIOS.join(", ")})`)
    }
    scenarios.push(s)
  }

  const rateRaw = raw.get("rate")
  let rate = 50
  if (rateRaw !== undefined) {
    rate = Number(rateRaw)
    if (rateRaw.trim() === "" || !Number.isFinite(rate) || rate <= 0 || rate > 10_000) {
      throw new UsageError(`--rate must be a number of jobs per second in (0, 10000], got "${rateRaw}"`)
    }
  }

  const adminUrl = raw.get("admin-url") ?? env.DATABASE_URL ?? DEFAULT_ADMIN_URL
  let parsed: URL
  try {
    parsed = new URL(adminUrl)
  } catch {
    throw new UsageError(`--admin-url is not a URL: "${adminUrl}"`)
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new UsageError(`--admin-url must be a postgres:// URL, got "${parsed.protocol}//..."`)
  }

  const nodeFlags = splitNodeFlags(raw.get("node-flags") ?? DEFAULT_NODE_FLAGS)
  const profileRaw = raw.get("profile")
  const profile = profileRaw === undefined ? null : { dir: profileRaw.trim() === "" ? null : profileRaw }
  if (profile !== null && !scenarios.includes("throughput")) {
    throw new UsageError("--profile profiles the throughput scenario's workers; add throughput to --scenarios")
  }

  return {
    systems,
    scenarios,
    runs: int("runs", 3, 1),
    jobs: int("jobs", 20_000, 1),
    latencyJobs: int("latency-jobs", 500, 1),
    rate,
    concurrency: int("concurrency", 10, 1),
    idleMs: int("idle-ms", 2500, 0),
    maxSeconds: int("max-seconds", 180, 1),
    waitQuiet: int("wait-quiet", 0, 0),
    adminUrl,
    nodeFlags,
    profile,
    history: int("history", 0, 0)
  }
}

/** Whitespace-separated flags (no quoting: Node/V8 flags have no spaces); each must look like a flag. */
export const splitNodeFlags = (s: string): Array<string> => {
  const flags = s.split(/\s+/).filter((f) => f !== "")
  for (const f of flags) {
    if (!f.startsWith("-")) throw new UsageError(`--node-flags takes Node/V8 flags such as "${DEFAULT_NODE_FLAGS}", got "${f}"`)
  }
  return flags
}

/**
 * Starts `node <flags> -e 0` once, so that a flag Node or V8 rejects is a usage error before any
 * database is created, not a worker process that exits with code 9 in every run. It runs in a
 * scratch folder because flags like --cpu-prof write files into the working directory.
 */
export const checkNodeFlags = (flags: ReadonlyArray<string>, execPath: string = process.execPath): void => {
  if (flags.length === 0) return
  const scratch = mkdtempSync(join(tmpdir(), "bench-node-flags-"))
  try {
    const r = spawnSync(execPath, [...flags, "-e", "0"], { cwd: scratch, encoding: "utf8", timeout: 30_000 })
    if (r.error !== undefined) throw new UsageError(`--node-flags: could not start ${execPath}: ${r.error.message}`)
    if (r.status !== 0) {
      // First line only, without the binary's path: "node: bad option: --foo", "Error: illegal value for flag ...".
      const why =
        r.stderr
          .trim()
          .split("\n")[0]
          ?.replace(/^\S*\/node: /, "") || `exit code ${r.status ?? r.signal}`
      throw new UsageError(`--node-flags "${flags.join(" ")}": node rejects them (${why})`)
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}
