/** The raw results: one JSON line per run (plus one `meta` line first). */
import { appendFileSync, mkdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type { Scenario } from "./protocol.ts"

/** Headline numbers of a run, keyed by metric name (see METRICS in report.ts). */
export type Metrics = Record<string, number | null>

export interface RunRecord {
  readonly kind: "run"
  readonly startedAt: string
  readonly system: string
  readonly version: string
  readonly scenario: Scenario
  /** 1-based */
  readonly run: number
  readonly status: "ok" | "failed" | "skipped"
  /** failed: the error; skipped: why the system is not measured */
  readonly reason?: string
  readonly database?: string
  readonly settings: Record<string, unknown>
  readonly metrics: Metrics
  /** everything else that was read during the run */
  readonly details: Record<string, unknown>
}

export interface MetaRecord {
  readonly kind: "meta"
  readonly startedAt: string
  readonly argv: ReadonlyArray<string>
  readonly options: Record<string, unknown>
  readonly node: string
  /** inherited by every worker process, on top of options.nodeFlags */
  readonly NODE_OPTIONS: string | null
  readonly host: Record<string, unknown>
  readonly postgres: Record<string, unknown>
}

export const RESULTS_DIR = fileURLToPath(new URL("../results/", import.meta.url))

/** The start time as a file name: 2026-01-02T03-04-05-678Z (results file, default profile folder). */
export const resultsStamp = (startedAt: Date): string => startedAt.toISOString().replace(/[:.]/g, "-")

export const openResultsFile = (startedAt: Date) => {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const path = `${RESULTS_DIR}${resultsStamp(startedAt)}.jsonl`
  return {
    path,
    append: (record: RunRecord | MetaRecord) => appendFileSync(path, `${JSON.stringify(record)}\n`)
  }
}
