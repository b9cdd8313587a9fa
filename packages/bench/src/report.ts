/** The markdown summary printed to stdout at the end of a bench run. */
import { anchorSystems } from "./adapters/index.ts"
import type { Options } from "./cli.ts"
import type { Scenario } from "./protocol.ts"
import type { RunRecord } from "./records.ts"
import { fmt, summarize, type Summary } from "./stats.ts"

export const SUBJECT = "asterforge"

export interface MetricDef {
  readonly scenario: Scenario
  /** label of the scenario column */
  readonly group: string
  readonly key: string
  readonly label: string
  readonly better: "higher" | "lower"
}

export const METRICS: ReadonlyArray<MetricDef> = [
  {
    scenario: "throughput",
    group: "1. throughput",
    key: "insertedPerSec",
    label: "inserted jobs/s (batch API, 1000 per call)",
    better: "higher"
  },
  {
    scenario: "throughput",
    group: "1. throughput",
    key: "completedPerSec",
    label: "completed jobs/s (committed; worker start-up included)",
    better: "higher"
  },
  {
    scenario: "throughput",
    group: "1. throughput",
    key: "completedPerSecExclStartup",
    label: "completed jobs/s from the first handler call",
    better: "higher"
  },
  { scenario: "throughput", group: "1. throughput", key: "workerCpuSec", label: "worker process CPU s for the drain", better: "lower" },
  {
    scenario: "throughput",
    group: "1. throughput",
    key: "workerStartupCpuMs",
    label: "of which start-up (`startWorkers()`), CPU ms",
    better: "lower"
  },
  {
    scenario: "throughput",
    group: "1. throughput",
    key: "workerCpuPerJobUs",
    label: "worker CPU per job after start-up, µs",
    better: "lower"
  },
  {
    scenario: "throughput",
    group: "1. throughput",
    key: "postgresCpuPerJobUs",
    label: "Postgres server CPU per job (all its processes on this host, start to last commit), µs",
    better: "lower"
  },
  { scenario: "latency", group: "2. latency", key: "p50Ms", label: "enqueue→start p50, ms", better: "lower" },
  { scenario: "latency", group: "2. latency", key: "p95Ms", label: "enqueue→start p95, ms", better: "lower" },
  { scenario: "latency", group: "2. latency", key: "p99Ms", label: "enqueue→start p99, ms", better: "lower" },
  { scenario: "latency", group: "2. latency", key: "maxMs", label: "enqueue→start max, ms", better: "lower" },
  { scenario: "latency", group: "2. latency", key: "sendP50Ms", label: "send() call p50, ms (producer side)", better: "lower" },
  {
    scenario: "throughput",
    group: "3. worker memory",
    key: "workerPeakRssMiB",
    label: "worker process peak RSS during 1, MiB (VmHWM)",
    better: "lower"
  },
  {
    scenario: "throughput",
    group: "3. worker memory",
    key: "workerReadyRssMiB",
    label: "worker RSS once started, before the first job, MiB (code and start-up)",
    better: "lower"
  },
  {
    scenario: "throughput",
    group: "3. worker memory",
    key: "workerRssGrowthMiB",
    label: "worker RSS growth during the drain (peak − started), MiB",
    better: "lower"
  }
]

export interface SystemStatus {
  readonly name: string
  readonly version: string | null
  readonly skipped: string | null
  /** whether the adapter has fillHistory (null: adapter not loaded) */
  readonly keepsHistory: boolean | null
}

const cell = (s: Summary, runs: number): string => {
  const base = s.n === 1 || s.min === s.max ? fmt(s.median) : `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`
  return s.n < runs ? `${base} [${s.n}/${runs} runs]` : base
}

const metricSummary = (records: ReadonlyArray<RunRecord>, system: string, m: MetricDef): Summary | null =>
  summarize(
    records
      .filter((r) => r.kind === "run" && r.status === "ok" && r.system === system && r.scenario === m.scenario)
      .map((r) => r.metrics[m.key])
      .filter((v): v is number => typeof v === "number" && Number.isFinite(v))
  )

const ratioCell = (
  m: MetricDef,
  subject: Summary | null,
  anchors: ReadonlyArray<{ name: string; s: Summary }>,
  note: string | null
): string => {
  if (note !== null) return note
  if (subject === null) return "–"
  if (anchors.length === 0) return "– (no anchor measured)"
  const best = anchors.reduce((a, b) => ((m.better === "higher" ? b.s.median > a.s.median : b.s.median < a.s.median) ? b : a))
  if (best.s.median === 0) return `– (${best.name} = 0)`
  const ratio = subject.median / best.s.median
  const verdict = ratio === 1 ? "equal" : (m.better === "higher") === ratio > 1 ? "better" : "worse"
  return `${ratio >= 10 || ratio < 0.01 ? ratio.toPrecision(2) : ratio.toFixed(2)}× vs ${best.name} (${verdict})`
}

export interface ReportInput {
  readonly options: Options
  readonly systems: ReadonlyArray<SystemStatus>
  readonly records: ReadonlyArray<RunRecord>
  readonly startedAt: Date
  readonly postgres: string
  readonly resultsPath: string
}

export const renderReport = (input: ReportInput): string => {
  const { options, systems, records } = input
  const lines: Array<string> = []
  const names = systems.map((s) => s.name)
  const subjectSelected = names.includes(SUBJECT)
  const subjectStatus = systems.find((s) => s.name === SUBJECT)
  const anchors = names.filter((n) => anchorSystems.includes(n))

  lines.push(`## Queue benchmark, ${input.startedAt.toISOString()}`)
  lines.push("")
  lines.push(`- Postgres: ${input.postgres}; Node ${process.version}; ${systems.map((s) => `${s.name} ${s.version ?? "?"}`).join(", ")}`)
  if (options.scenarios.includes("throughput")) {
    lines.push(
      `- 1. throughput: ${options.jobs.toLocaleString("en-US")} no-op jobs inserted (batch API, 1000 per call), ANALYZE + CHECKPOINT, then drained by a forked worker process (concurrency ${options.concurrency})`
    )
  }
  if (options.scenarios.includes("latency")) {
    lines.push(
      `- 2. latency: ${options.latencyJobs} single jobs sent open-loop at ${options.rate}/s to idle workers (after ${options.idleMs} ms idle)`
    )
  }
  if (options.scenarios.includes("throughput") && options.history > 0) {
    const withHistory = systems.filter((s) => s.keepsHistory === true).map((s) => s.name)
    lines.push(
      `- history: before the insert, ${options.history.toLocaleString("en-US")} finished jobs in the table of ${withHistory.join(", ") || "no selected system"}, then VACUUM (ANALYZE)`
    )
  }
  const nodeOptions = process.env.NODE_OPTIONS ? `; plus NODE_OPTIONS="${process.env.NODE_OPTIONS}" from the environment` : ""
  lines.push(
    `- worker Node flags: ${options.nodeFlags.length === 0 ? "none (V8 defaults)" : `\`${options.nodeFlags.join(" ")}\``}, the same for every system${nodeOptions}`
  )
  if (options.profile !== null) {
    lines.push("- throughput workers ran under the V8 CPU profiler (`--profile`): its overhead lowers their numbers")
  }
  lines.push(`- ${options.runs} run(s) per system and scenario, each in a fresh database; cells are median (min–max)`)
  lines.push("")

  const header = ["scenario", "metric", "better", ...names, `${SUBJECT} ÷ best anchor`]
  lines.push(`| ${header.join(" | ")} |`)
  lines.push(`| ${header.map(() => "---").join(" | ")} |`)
  const ratioNote = !subjectSelected ? `– (${SUBJECT} not selected)` : subjectStatus?.skipped ? `– (${SUBJECT} skipped)` : null
  for (const m of METRICS) {
    if (!options.scenarios.includes(m.scenario)) continue
    const summaries = new Map(names.map((n) => [n, metricSummary(records, n, m)] as const))
    const cells = systems.map((s) => {
      if (s.skipped !== null) return "skipped"
      const sum = summaries.get(s.name) ?? null
      if (sum !== null) return cell(sum, options.runs)
      const failed = records.some((r) => r.system === s.name && r.scenario === m.scenario && r.status === "failed")
      return failed ? "failed" : "–"
    })
    const anchorSums = anchors.flatMap((n) => {
      const s = summaries.get(n)
      return s ? [{ name: n, s }] : []
    })
    const ratio = ratioCell(m, summaries.get(SUBJECT) ?? null, anchorSums, ratioNote)
    lines.push(`| ${m.group} | ${m.label} | ${m.better} is better | ${cells.join(" | ")} | ${ratio} |`)
  }
  lines.push("")
  lines.push(
    `Ratio = ${SUBJECT} median ÷ the best anchor median (${anchorSystems.join(" / ")}) for that metric; ` +
      `"better" means ${SUBJECT} beats the best anchor (ratio > 1 where higher is better, < 1 where lower is better).`
  )

  const notes: Array<string> = []
  for (const s of systems) if (s.skipped !== null) notes.push(`${s.name}: skipped: ${s.skipped}`)
  if (options.scenarios.includes("throughput") && options.history > 0) {
    for (const s of systems) {
      if (s.keepsHistory === true) {
        notes.push(`${s.name}: throughput measured beside ${options.history.toLocaleString("en-US")} finished jobs of history (--history)`)
      } else if (s.keepsHistory === false) {
        notes.push(
          s.name === "graphile-worker"
            ? "graphile-worker: no history (it deletes a job's row when the job completes), so --history does not apply to it"
            : `${s.name}: no history filled (its adapter has no fillHistory())`
        )
      }
    }
  }
  for (const r of records) {
    if (r.status === "failed") notes.push(`${r.system} ${r.scenario} run ${r.run}: FAILED: ${r.reason ?? "?"}`)
    if (r.status !== "ok") continue
    if (r.details.timedOut === true) {
      notes.push(
        r.scenario === "throughput"
          ? `${r.system} throughput run ${r.run}: capped at --max-seconds ${options.maxSeconds}; ${String(r.details.pending)} jobs still pending (rate counts committed completions only)`
          : `${r.system} latency run ${r.run}: only ${String(r.details.received)}/${options.latencyJobs} jobs reached a handler in time (percentiles over those)`
      )
    }
    if (typeof r.details.duplicates === "number" && r.details.duplicates > 0) {
      notes.push(`${r.system} ${r.scenario} run ${r.run}: ${r.details.duplicates} duplicate handler calls`)
    }
  }
  if (notes.length > 0) {
    lines.push("")
    lines.push("Notes:")
    for (const n of notes) lines.push(`- ${n}`)
  }
  lines.push("")
  lines.push(`Raw results (one JSON line per run): \`${input.resultsPath}\``)
  return lines.join("\n")
}
