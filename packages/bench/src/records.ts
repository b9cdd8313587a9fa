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
  readonly host: Record<string, unknown>
  readonly postgres: Record<string, unknown>
}

export const RESULTS_DIR = fileURLToPath(new URL("../results/", import.meta.url))

export const openResultsFile = (startedAt: Date) => {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const path = `${RESULTS_DIR}${startedAt.toISOString().replace(/[:.]/g, "-")}.jsonl`
  return {
    path,
    append: (record: RunRecord | MetaRecord) => appendFileSync(path, `${JSON.stringify(record)}\n`)
  }
}
