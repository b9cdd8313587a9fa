/** Percentile by nearest rank: the smallest value with at least p % of the values <= it. */
export const percentile = (values: ReadonlyArray<number>, p: number): number | null => {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(rank, sorted.length) - 1]!
}

/** Median (mean of the two middle values for an even count). */
export const median = (values: ReadonlyArray<number>): number | null => {
  if (values.length === 0) return null
  const s = [...values].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits

export interface Summary {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

export const summarize = (values: ReadonlyArray<number>): Summary | null => {
  const m = median(values)
  if (m === null) return null
  return { median: m, min: Math.min(...values), max: Math.max(...values), n: values.length }
}

/** Three significant digits, thousands separators for big numbers: 20,454 / 103 / 4.29 / 0.512. */
export const fmt = (x: number): string => {
  const a = Math.abs(x)
  if (a >= 1000) return Math.round(x).toLocaleString("en-US")
  if (a >= 100) return x.toFixed(0)
  if (a >= 10) return x.toFixed(1)
  if (a >= 1) return x.toFixed(2)
  if (a === 0) return "0"
  return x.toPrecision(3)
}
