/**
 * How values read on screen: counts with separators, instants as local time
 * with their age, durations in the largest sensible unit, task states in
 * words. The task states come from the runtime's own vocabulary (TaskState).
 */
import * as TaskState from "../../runtime/src/TaskState.ts"

const numbers = new Intl.NumberFormat("en-US")

/** 1284 -> "1,284". */
export const count = (n: number): string => numbers.format(n)

/** "12 s", "4 min", "3 h", "2 d". */
export const duration = (seconds: number): string => {
  const s = Math.max(0, Math.round(seconds))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.round(s / 60)} min`
  if (s < 86400) return `${Math.round(s / 3600)} h`
  return `${Math.round(s / 86400)} d`
}

/** Milliseconds as "850 ms" or "1.2 s". */
export const millis = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`)

/** Seconds since `iso` (0 when in the future). */
export const ageSeconds = (iso: string, now: number = Date.now()): number => Math.max(0, (now - new Date(iso).getTime()) / 1000)

/** "4 min ago" / "in 3 h". */
export const relative = (iso: string | null | undefined, now: number = Date.now()): string => {
  if (iso === null || iso === undefined) return "—"
  const delta = (new Date(iso).getTime() - now) / 1000
  return delta > 1 ? `in ${duration(delta)}` : `${duration(-delta)} ago`
}

const dateTimes = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" })

/** A local date and time. */
export const dateTime = (iso: string | null | undefined): string =>
  iso === null || iso === undefined ? "—" : dateTimes.format(new Date(iso))

/** The task states, in the order the views list them. */
export const states = TaskState.all

/** "waiting_callback" -> "waiting callback". */
export const stateLabel = (state: string): string => state.replace(/_/g, " ")

/** Unfinished states: a cancel applies to these. */
export const unfinished: ReadonlySet<string> = new Set(TaskState.unfinished)
/** Finished states: a delete applies to these. */
export const finished: ReadonlySet<string> = new Set(TaskState.finished)
/** A retry applies to these. */
export const retriable: ReadonlySet<string> = new Set(TaskState.retriable)

/** A date-time input's value (local time) as ISO 8601, or undefined when empty. */
export const fromLocalInput = (value: string): string | undefined => (value === "" ? undefined : new Date(value).toISOString())

/** ISO 8601 as a date-time input's value (local time). */
export const toLocalInput = (iso: string | undefined): string => {
  if (iso === undefined || iso === "") return ""
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return ""
  const pad = (n: number) => String(n).padStart(2, "0")
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`
}
