/**
 * Side-by-side benchmark of Postgres-backed task queues.
 *
 *   node src/main.ts --help
 *
 * For every run, scenario and system (interleaved: run 1 of every scenario and system, then run 2,
 * ...) a fresh database is created on the admin server, the system is measured in it, and the
 * database is dropped. Progress: stderr. Summary table: stdout. Raw results: results/*.jsonl.
 */
import os from "node:os"
import { join, relative, resolve } from "node:path"
import { type Adapter, isNotImplemented } from "./Adapter.ts"
import { loadAdapter } from "./adapters/index.ts"
import { checkNodeFlags, type Options, parseOptions, UsageError, usage } from "./cli.ts"
import { serverInfo, type ServerInfo } from "./pg.ts"
import type { Scenario } from "./protocol.ts"
import { mergeSummaries, readProfiles, renderProfileReport, type SystemProfile, summarizeProfile } from "./profile.ts"
import { openResultsFile, RESULTS_DIR, type RunRecord, resultsStamp } from "./records.ts"
import { renderReport, SUBJECT, type SystemStatus } from "./report.ts"
import { commonSettings, liveDatabases, type RunContext, runLatency, runThroughput } from "./scenarios.ts"
import { fmt } from "./stats.ts"
import { WorkerError } from "./WorkerProcess.ts"

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)
/** A path relative to the working directory when it is inside it, else absolute. */
const displayPath = (path: string) => {
  const rel = relative(process.cwd(), path)
  return rel === "" ? "." : rel.startsWith("..") ? path : rel
}
const errorMessage = (e: unknown) => (e instanceof WorkerError ? e.workerMessage : e instanceof Error ? e.message : String(e))

let options: Options
try {
  const parsed = parseOptions(process.argv.slice(2), process.env)
  if (parsed === null) {
    process.stdout.write(usage())
    process.exit(0)
  }
  options = parsed
  checkNodeFlags(options.nodeFlags)
} catch (e) {
  if (e instanceof UsageError) {
    process.stderr.write(`error: ${e.message}\nRun with --help for the list of flags.\n`)
    process.exit(2)
  }
  throw e
}

// Ctrl-C: drop the databases of the interrupted run before exiting.
let interrupted = false
const onSignal = (signal: NodeJS.Signals) => {
  if (interrupted) process.exit(130)
  interrupted = true
  log(`${signal}: dropping ${liveDatabases.size} run database(s) and exiting`)
  void Promise.allSettled([...liveDatabases].map((db) => db.drop())).finally(() => process.exit(130))
}
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)

const startedAt = new Date()
// A relative --profile folder is taken from the working directory (packages/bench under `pnpm bench`).
const profileRoot =
  options.profile === null
    ? null
    : options.profile.dir === null
      ? join(RESULTS_DIR, "profiles", resultsStamp(startedAt))
      : resolve(process.cwd(), options.profile.dir)
let server: ServerInfo
try {
  server = await serverInfo(options.adminUrl)
} catch (e) {
  const u = new URL(options.adminUrl)
  u.password = u.password ? "***" : ""
  process.stderr.write(`error: cannot connect to the admin database ${u.toString()}: ${errorMessage(e)}\n`)
  process.exit(1)
}
const postgresLabel = `${server.version.split(" ").slice(0, 2).join(" ")} (${Object.entries(server.settings)
  .filter(([k]) => k === "synchronous_commit" || k === "shared_buffers" || k === "fsync")
  .map(([k, v]) => `${k}=${v}`)
  .join(", ")})`

const results = openResultsFile(startedAt)
results.append({
  kind: "meta",
  startedAt: startedAt.toISOString(),
  argv: process.argv.slice(2),
  options: { ...options, adminUrl: redact(options.adminUrl), profileRoot },
  NODE_OPTIONS: process.env.NODE_OPTIONS ?? null,
  node: process.version,
  host: {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? null,
    totalMemMiB: Math.round(os.totalmem() / 2 ** 20),
    loadavg: os.loadavg()
  },
  postgres: { version: server.version, settings: server.settings }
})

function redact(url: string): string {
  const u = new URL(url)
  if (u.password) u.password = "***"
  return u.toString()
}

interface SystemState {
  readonly name: string
  adapter: Adapter | null
  skipped: string | null
}

const states: Array<SystemState> = []
for (const name of options.systems) {
  try {
    states.push({ name, adapter: await loadAdapter(name), skipped: null })
  } catch (e) {
    states.push({ name, adapter: null, skipped: `could not load the adapter: ${errorMessage(e)}` })
  }
}

const total = options.runs * options.scenarios.length * states.length
log(
  `${total} runs: ${options.systems.join(", ")} x ${options.scenarios.join(", ")} x ${options.runs}; ` +
    `admin ${redact(options.adminUrl)}; raw results -> ${relative(process.cwd(), results.path)}`
)
log(
  `worker Node flags: ${options.nodeFlags.length === 0 ? "none (V8 defaults)" : options.nodeFlags.join(" ")}` +
    (process.env.NODE_OPTIONS ? `; NODE_OPTIONS="${process.env.NODE_OPTIONS}" (inherited)` : "") +
    (options.scenarios.includes("throughput") && options.history > 0
      ? `; history ${fmt(options.history)} finished jobs per run (${historySystems().join(", ") || "no selected system keeps history"})`
      : "") +
    (profileRoot === null ? "" : `; CPU profiles -> ${displayPath(profileRoot)}`)
)
for (const s of states) if (s.skipped !== null) log(`${s.name}: SKIPPED (${s.skipped})`)

function historySystems(): Array<string> {
  return states.filter((s) => s.adapter?.fillHistory !== undefined).map((s) => s.name)
}

const records: Array<RunRecord> = []
let done = 0

const describe = (r: RunRecord): string => {
  const m = r.metrics
  const v = (k: string, suffix = "") => (typeof m[k] === "number" ? `${fmt(m[k])}${suffix}` : "?")
  const machine = typeof m.machineBusyPct === "number" ? `; machine ${v("machineBusyPct", "%")} busy, steal ${v("stealPct", "%")}` : ""
  if (r.scenario === "throughput") {
    const capped = r.details.timedOut === true ? ` CAPPED (${String(r.details.pending)} pending)` : ""
    const history =
      typeof r.settings.historyRows === "number" && r.settings.historyRows > 0 ? `, beside ${fmt(r.settings.historyRows)} history rows` : ""
    return (
      `inserted ${v("insertedPerSec")}/s, completed ${v("completedPerSec")}/s${capped}${history} ` +
      `(start-up ${v("startupMs", " ms")}), worker peak RSS ${v("workerPeakRssMiB", " MiB")}, worker CPU ${v("workerCpuSec", " s")}${machine}`
    )
  }
  return (
    `p50 ${v("p50Ms")} / p95 ${v("p95Ms")} / p99 ${v("p99Ms")} / max ${v("maxMs")} ms ` +
    `(${String(m.received ?? "?")}/${options.latencyJobs} received), send p50 ${v("sendP50Ms", " ms")}${machine}`
  )
}

const runOne = (scenario: Scenario, ctx: RunContext) => (scenario === "throughput" ? runThroughput(ctx) : runLatency(ctx))

for (let run = 1; run <= options.runs; run++) {
  for (const scenario of options.scenarios) {
    for (const state of states) {
      if (interrupted) break
      done++
      const tag = `${done}/${total} ${scenario} ${state.name} run ${run}/${options.runs}`
      if (state.skipped !== null || state.adapter === null) continue
      const t = performance.now()
      const base = {
        kind: "run",
        startedAt: new Date().toISOString(),
        system: state.name,
        version: state.adapter.version,
        scenario,
        run,
        settings: commonSettings(options),
        metrics: {},
        details: {}
      } as const
      let record: RunRecord
      try {
        record = await runOne(scenario, {
          options,
          system: state.name,
          adapter: state.adapter,
          run,
          profileRoot,
          progress: (line) => log(`${tag}: ${line}`)
        })
      } catch (e) {
        if (interrupted) break
        const reason = errorMessage(e)
        if (isNotImplemented(reason)) {
          state.skipped = reason
          record = { ...base, status: "skipped", reason }
        } else {
          if (!(e instanceof WorkerError)) console.error(e)
          record = { ...base, status: "failed", reason }
        }
      }
      records.push(record)
      results.append(record)
      const secs = ((performance.now() - t) / 1000).toFixed(1)
      if (record.status === "ok") log(`${tag}: ${describe(record)} (${secs} s)`)
      else if (record.status === "skipped") log(`${tag}: SKIPPED ${state.name} (${record.reason})`)
      else log(`${tag}: FAILED (${record.reason}) (${secs} s)`)
    }
  }
}
if (interrupted) await new Promise(() => {}) // the signal handler exits once the databases are dropped

const systems: Array<SystemStatus> = states.map((s) => ({
  name: s.name,
  version: s.adapter?.version ?? null,
  skipped: s.skipped,
  keepsHistory: s.adapter === null ? null : s.adapter.fillHistory !== undefined
}))
process.stdout.write(
  `${renderReport({ options, systems, records, startedAt, postgres: postgresLabel, resultsPath: relative(process.cwd(), results.path) })}\n`
)
if (profileRoot !== null) process.stdout.write(`\n${profileReport(profileRoot)}\n`)

/** The CPU profiles of every ok throughput run, restricted to its drain window, summed per system. */
function profileReport(root: string): string {
  const profiles: Array<SystemProfile> = states
    .filter((s) => s.skipped === null)
    .map((s) => {
      const runs = records.filter((r) => r.system === s.name && r.scenario === "throughput" && r.status === "ok")
      const summaries = runs.flatMap((r) => {
        const dir = r.settings.profileDir
        const window = r.details.drainWindowUs as readonly [number, number] | undefined
        if (typeof dir !== "string") return []
        const found = readProfiles(dir)
        if (found.length === 0) log(`${s.name} run ${r.run}: no CPU profile in ${dir} (did the worker process exit normally?)`)
        return found.map((p) => summarizeProfile(p, s.name, window))
      })
      return {
        system: s.name,
        summary: summaries.length === 0 ? null : mergeSummaries(summaries),
        workerCpuSec: runs.flatMap((r) => (typeof r.metrics.workerCpuSec === "number" ? [r.metrics.workerCpuSec] : []))
      }
    })
  return renderProfileReport({ dir: displayPath(root), systems: profiles, topFor: SUBJECT, top: 15 })
}

const failed = records.filter((r) => r.status === "failed").length
if (failed > 0) log(`${failed} run(s) failed`)
process.exit(failed > 0 ? 1 : 0)
