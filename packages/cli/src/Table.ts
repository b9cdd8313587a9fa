/**
 * Human output of the admin commands: aligned text tables and short values.
 * (`--json` prints the API's JSON instead.)
 *
 * @since 0.3.0
 */

/** A cell: text, a number, or nothing (`-`). */
export type Cell = string | number | boolean | null | undefined

const maxWidth = 60

const text = (cell: Cell): string => {
  if (cell === null || cell === undefined || cell === "") return "-"
  const s = String(cell).replace(/\s+/g, " ")
  return s.length > maxWidth ? `${s.slice(0, maxWidth - 1)}…` : s
}

/**
 * Rows under their headers, each column as wide as its widest cell (cells of
 * more than 60 characters are cut with an ellipsis); `(none)` when empty.
 */
export const render = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<Cell>>): string => {
  if (rows.length === 0) return "(none)"
  const cells = rows.map((r) => headers.map((_, i) => text(r[i])))
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)))
  const line = (values: ReadonlyArray<string>) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd()
  return [line(headers), ...cells.map(line)].join("\n")
}

/** `key: value` lines, keys aligned. */
export const fields = (entries: ReadonlyArray<readonly [string, Cell]>): string => {
  const width = Math.max(...entries.map(([k]) => k.length))
  return entries.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${v === null || v === undefined || v === "" ? "-" : String(v)}`).join("\n")
}

/** An ISO date-time as `2026-11-29 12:00:05` (UTC), or `-`. */
export const when = (iso: string | null | undefined): string => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "-")

/** How long ago an ISO date-time was, roughly: `5s`, `3m`, `2h`, `4d`. */
export const ago = (iso: string | null | undefined, now = Date.now()): string => {
  if (!iso) return "-"
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000))
  if (s < 120) return `${s}s ago`
  if (s < 7200) return `${Math.round(s / 60)}m ago`
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`
  return `${Math.round(s / 86_400)}d ago`
}

/** Milliseconds as `200ms`, `5s`, `10m`, `2h` (the largest whole unit), or `-`. */
export const duration = (ms: number | null | undefined): string => {
  if (ms === null || ms === undefined) return "-"
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000]
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms}ms`
}
