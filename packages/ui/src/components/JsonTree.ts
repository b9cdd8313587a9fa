/**
 * A JSON value as a collapsible tree: objects and arrays are disclosure
 * widgets (`<details>`, keyboard-operable by default) open to `openDepth`,
 * scalars are coloured by type. Used for payloads, results, metadata and
 * audit details, so a screen never shows raw JSON text.
 */
import { html } from "htm/preact"

const scalar = (value: unknown) => {
  if (value === null) return html`<span class="json-null">null</span>`
  switch (typeof value) {
    case "string":
      return html`<span class="json-string">${JSON.stringify(value)}</span>`
    case "number":
      return html`<span class="json-number">${String(value)}</span>`
    case "boolean":
      return html`<span class="json-boolean">${String(value)}</span>`
    default:
      return html`<span class="json-null">${String(value)}</span>`
  }
}

const Node = ({ name, value, depth, openDepth }: { name: string | undefined; value: unknown; depth: number; openDepth: number }) => {
  const label = name === undefined ? null : html`<span class="json-key">${name}</span>: `
  if (value === null || typeof value !== "object") return html`<li>${label}${scalar(value)}</li>`
  const entries: Array<[string, unknown]> = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value)
  const summary = Array.isArray(value)
    ? `[${entries.length} item${entries.length === 1 ? "" : "s"}]`
    : `{${entries.length} key${entries.length === 1 ? "" : "s"}}`
  if (entries.length === 0) return html`<li>${label}<span class="muted">${Array.isArray(value) ? "[]" : "{}"}</span></li>`
  return html`<li>
    <details open=${depth < openDepth}>
      <summary>${label}<span class="muted">${summary}</span></summary>
      <ul class="json">
        ${entries.map(([k, v]) => html`<${Node} key=${k} name=${k} value=${v} depth=${depth + 1} openDepth=${openDepth} />`)}
      </ul>
    </details>
  </li>`
}

/** `value` as a tree; `label` names it for assistive technology. */
export const JsonTree = ({ value, label, openDepth = 2 }: { value: unknown; label: string; openDepth?: number }) =>
  html`<ul class="json json-root" aria-label=${label}>
    <${Node} name=${undefined} value=${value} depth=${0} openDepth=${openDepth} />
  </ul>`
