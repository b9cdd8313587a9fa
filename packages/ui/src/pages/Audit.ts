/**
 * The audit log: filters (code, actor, subject, time range) kept in the URL,
 * newest first with keyset pages, each event with its code's presentation
 * text (from `/admin/api/codes`), and its details expandable as a tree. Task
 * subjects link to the task.
 */
import { html } from "htm/preact"
import { useEffect, useMemo, useState } from "preact/hooks"
import { Link, useLocation, useSearch } from "wouter-preact"
import { api, type Codes, presentationCodes } from "../api.ts"
import { ErrorBanner, Loading, Updated, When } from "../components/common.ts"
import { JsonTree } from "../components/JsonTree.ts"
import { fromLocalInput, toLocalInput } from "../format.ts"
import { usePoll } from "../poll.ts"

const fields = ["code", "actor", "subject", "from", "to"] as const
type Filter = Record<(typeof fields)[number], string>

const parse = (search: string): Filter & { cursor: string | undefined } => {
  const p = new URLSearchParams(search)
  return {
    code: p.get("code") ?? "",
    actor: p.get("actor") ?? "",
    subject: p.get("subject") ?? "",
    from: p.get("from") ?? "",
    to: p.get("to") ?? "",
    cursor: p.get("cursor") ?? undefined
  }
}

const toSearch = (f: Filter, cursor?: string) => {
  const p = new URLSearchParams()
  for (const k of fields) if (f[k] !== "") p.set(k, f[k])
  if (cursor !== undefined) p.set("cursor", cursor)
  const text = p.toString()
  return text === "" ? "" : `?${text}`
}

const SubjectLink = ({ subject }: { subject: string | null }) => {
  if (subject === null) return html`<span class="muted">—</span>`
  const task = /^task:(\d+)$/.exec(subject)
  return task ? html`<${Link} href=${`/tasks/${task[1]}`}>${subject}<//>` : html`${subject}`
}

const FilterForm = ({ initial, codes, onApply }: { initial: Filter; codes: Codes | undefined; onApply: (f: Filter) => void }) => {
  const [f, setF] = useState(initial)
  const text = (k: "actor" | "subject", label: string, placeholder: string) =>
    html`<div class="field">
      <label for=${`a-${k}`}>${label}</label>
      <input id=${`a-${k}`} value=${f[k]} placeholder=${placeholder} onInput=${(e: Event) => setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).value })} />
    </div>`
  const date = (k: "from" | "to", label: string) =>
    html`<div class="field">
      <label for=${`a-${k}`}>${label}</label>
      <input
        id=${`a-${k}`}
        type="datetime-local"
        value=${toLocalInput(f[k])}
        onInput=${(e: Event) => setF({ ...f, [k]: fromLocalInput((e.currentTarget as HTMLInputElement).value) ?? "" })}
      />
    </div>`
  return html`<form
    class="filters"
    role="search"
    aria-label="Filter the audit log"
    onSubmit=${(e: Event) => {
      e.preventDefault()
      onApply(f)
    }}
  >
    <div class="field-row">
      <div class="field">
        <label for="a-code">Event</label>
        <select id="a-code" value=${f.code} onChange=${(e: Event) => setF({ ...f, code: (e.currentTarget as HTMLSelectElement).value })}>
          <option value="">Any event</option>
          ${(codes?.audit ?? []).map((c) => html`<option key=${c.code} value=${c.code}>${c.title} (${c.code})</option>`)}
        </select>
      </div>
      ${text("actor", "Actor", "token:ops")} ${text("subject", "Subject", "task:42")} ${date("from", "From")} ${date("to", "To")}
    </div>
    <div class="actions">
      <button type="submit" class="primary">Apply filters</button>
      <${Link} href="/audit" class="button">Clear<//>
    </div>
  </form>`
}

export const Audit = () => {
  const search = useSearch()
  const [, navigate] = useLocation()
  const filter = useMemo(() => parse(search), [search])
  const [codes, setCodes] = useState<Codes | undefined>(undefined)
  useEffect(() => {
    document.title = "Audit log · AsterForge admin"
    presentationCodes().then(setCodes, () => setCodes(undefined))
  }, [])
  const page = usePoll(() => api.audit({ ...filter, limit: 50 }), `audit${search}`)
  const describe = (code: string) => codes?.audit.find((c) => c.code === code)?.description

  return html`<h1>Audit log</h1>
    <${FilterForm} key=${search} initial=${filter} codes=${codes} onApply=${(f: Filter) => navigate(`/audit${toSearch(f)}`)} />
    <${Updated} at=${page.updatedAt} />
    <${ErrorBanner} error=${page.error} what="The audit log cannot be loaded" />
    ${
      page.data === undefined
        ? page.error
          ? null
          : html`<${Loading} />`
        : page.data.items.length === 0
          ? html`<p class="muted">No event matches this filter.</p>`
          : html`<div class="table-wrap">
              <table data-testid="audit">
                <caption class="visually-hidden">Audit events, newest first</caption>
                <thead>
                  <tr><th scope="col">When</th><th scope="col">Event</th><th scope="col">Actor</th><th scope="col">Subject</th><th scope="col">Details</th></tr>
                </thead>
                <tbody>
                  ${page.data.items.map(
                    (e) => html`<tr key=${e.id}>
                      <td><${When} iso=${e.at} /></td>
                      <td title=${describe(e.code)}>${e.title ?? e.code}<div class="muted small"><code>${e.code}</code></div></td>
                      <td>${e.actor}</td>
                      <td><${SubjectLink} subject=${e.subject} /></td>
                      <td>
                        ${
                          Object.keys(e.details).length === 0
                            ? html`<span class="muted">—</span>`
                            : html`<details>
                                <summary>${Object.keys(e.details).length} field${Object.keys(e.details).length === 1 ? "" : "s"}</summary>
                                <${JsonTree} value=${e.details} label=${`Details of event ${e.id}`} />
                              </details>`
                        }
                      </td>
                    </tr>`
                  )}
                </tbody>
              </table>
            </div>`
    }
    <nav class="pager" aria-label="Pages">
      ${filter.cursor === undefined ? null : html`<${Link} href=${`/audit${toSearch(filter)}`} class="button">First page<//>`}
      ${page.data?.next ? html`<${Link} href=${`/audit${toSearch(filter, page.data.next)}`} class="button">Next page<//>` : null}
    </nav>`
}
