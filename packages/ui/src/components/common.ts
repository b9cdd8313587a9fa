/**
 * Small pieces every view uses: the error banner (an API refusal, shown as
 * the API said it), a task state badge, the "updated" line of live views, a
 * loading line, a relative time with its absolute time as title, and links
 * into the task list for a filter.
 */
import { html } from "htm/preact"
import { describeError } from "../api.ts"
import { dateTime, relative, stateLabel } from "../format.ts"

/** A failure, as an alert that screen readers announce. */
export const ErrorBanner = ({ error, what }: { error: unknown; what?: string }) =>
  error === undefined || error === null
    ? null
    : html`<div class="banner error" role="alert" data-testid="error">
        <strong>${what ?? "The request failed"}:</strong> ${describeError(error)}
      </div>`

/** A short success message. */
export const Notice = ({ text }: { text: string | undefined }) =>
  text === undefined ? null : html`<div class="banner ok" role="status" data-testid="notice">${text}</div>`

/** A task state as a coloured badge (the word is the content: colour is never the only cue). */
export const StateBadge = ({ state }: { state: string }) =>
  html`<span class=${`badge state-${state}`} data-state=${state}>${stateLabel(state)}</span>`

/** "Loading…" until the first answer. */
export const Loading = () => html`<p class="muted" aria-live="polite">Loading…</p>`

/** When a live view's data last arrived; polite live region. */
export const Updated = ({ at }: { at: Date | undefined }) =>
  html`<p class="updated muted" aria-live="off">${at === undefined ? "…" : `Updated ${at.toLocaleTimeString()} · refreshes every few seconds`}</p>`

/** A relative time with the absolute one on hover and for assistive technology. */
export const When = ({ iso }: { iso: string | null | undefined }) =>
  iso === null || iso === undefined
    ? html`<span class="muted">—</span>`
    : html`<time datetime=${iso} title=${dateTime(iso)}>${relative(iso)}</time>`

/** The task list URL for a filter. */
export const tasksHref = (filter: Record<string, string | ReadonlyArray<string> | undefined>): string => {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(filter)) {
    if (v === undefined) continue
    if (typeof v === "string") params.set(k, v)
    else for (const x of v) params.append(k, x)
  }
  const q = params.toString()
  return `/tasks${q === "" ? "" : `?${q}`}`
}
