/**
 * The task list: filters (states, queue, name, created and finished time
 * ranges, payload containment, error code) kept in the URL so a view can be
 * shared, newest first with keyset pages (`cursor` in the URL too), and
 * actions on selected rows (retry, cancel: operator; delete: admin) or on
 * every task the filter matches (admin: the API's bulk action, with a dry
 * run's count and sample shown before the confirm step).
 */
import { html } from "htm/preact"
import { useEffect, useMemo, useState } from "preact/hooks"
import { Link, useLocation, useSearch } from "wouter-preact"
import { api, type BulkResult, type Codes, presentationCodes, type Query, type TaskSummary } from "../api.ts"
import { ConfirmDialog } from "../components/ConfirmDialog.ts"
import { ErrorBanner, Loading, Notice, StateBadge, Updated, When } from "../components/common.ts"
import { count, finished, fromLocalInput, retriable, stateLabel, states, toLocalInput, unfinished } from "../format.ts"
import { usePoll } from "../poll.ts"
import { useCan } from "../session.ts"

const pageSize = 50

const textFields = ["queue", "name", "errorCode", "payload"] as const
const dateFields = ["createdAfter", "createdBefore", "finishedAfter", "finishedBefore"] as const

/** The filter as the URL has it. */
interface Filter {
  readonly state: ReadonlyArray<string>
  readonly queue: string
  readonly name: string
  readonly errorCode: string
  readonly payload: string
  readonly createdAfter: string
  readonly createdBefore: string
  readonly finishedAfter: string
  readonly finishedBefore: string
}

const parse = (search: string): Filter & { readonly cursor: string | undefined } => {
  const p = new URLSearchParams(search)
  const get = (k: string) => p.get(k) ?? ""
  return {
    state: p.getAll("state"),
    queue: get("queue"),
    name: get("name"),
    errorCode: get("errorCode"),
    payload: get("payload"),
    createdAfter: get("createdAfter"),
    createdBefore: get("createdBefore"),
    finishedAfter: get("finishedAfter"),
    finishedBefore: get("finishedBefore"),
    cursor: p.get("cursor") ?? undefined
  }
}

const toSearch = (filter: Filter, cursor?: string): string => {
  const p = new URLSearchParams()
  for (const s of filter.state) p.append("state", s)
  for (const k of [...textFields, ...dateFields]) if (filter[k] !== "") p.set(k, filter[k])
  if (cursor !== undefined) p.set("cursor", cursor)
  const text = p.toString()
  return text === "" ? "" : `?${text}`
}

const toQuery = (filter: Filter): Query => ({
  state: filter.state,
  queue: filter.queue,
  name: filter.name,
  errorCode: filter.errorCode,
  payload: filter.payload,
  createdAfter: filter.createdAfter,
  createdBefore: filter.createdBefore,
  finishedAfter: filter.finishedAfter,
  finishedBefore: filter.finishedBefore
})

/** The filter as the bulk action's body takes it (payload as a JSON object). */
const toBulkFilter = (filter: Filter) => {
  const out: Record<string, unknown> = {}
  if (filter.state.length > 0) out.state = filter.state
  for (const k of ["queue", "name", "errorCode", ...dateFields] as const) if (filter[k] !== "") out[k] = filter[k]
  if (filter.payload !== "") out.payload = JSON.parse(filter.payload)
  return out
}

type Action = "retry" | "cancel" | "delete"

const verbs: Record<Action, { readonly label: string; readonly past: string; readonly applies: ReadonlySet<string> }> = {
  retry: { label: "Retry", past: "Retried", applies: retriable },
  cancel: { label: "Cancel", past: "Cancelled", applies: unfinished },
  delete: { label: "Delete", past: "Deleted", applies: finished }
}

const plural = (n: number) => `${count(n)} task${n === 1 ? "" : "s"}`

const FilterForm = ({ initial, codes, onApply }: { initial: Filter; codes: Codes | undefined; onApply: (f: Filter) => void }) => {
  const [f, setF] = useState<Filter>(initial)
  const set = (k: keyof Filter, v: string | ReadonlyArray<string>) => setF((old) => ({ ...old, [k]: v }))
  const input = (k: (typeof textFields)[number], label: string, options: { list?: string; placeholder?: string } = {}) =>
    html`<div class="field">
      <label for=${`f-${k}`}>${label}</label>
      <input
        id=${`f-${k}`}
        name=${k}
        value=${f[k]}
        list=${options.list}
        placeholder=${options.placeholder}
        onInput=${(e: Event) => set(k, (e.currentTarget as HTMLInputElement).value)}
      />
    </div>`
  const date = (k: (typeof dateFields)[number], label: string) =>
    html`<div class="field">
      <label for=${`f-${k}`}>${label}</label>
      <input
        id=${`f-${k}`}
        name=${k}
        type="datetime-local"
        value=${toLocalInput(f[k])}
        onInput=${(e: Event) => set(k, fromLocalInput((e.currentTarget as HTMLInputElement).value) ?? "")}
      />
    </div>`
  const taskNames = codes?.tasks.map((t) => t.task) ?? []
  const queueNames = [...new Set(codes?.tasks.map((t) => t.queue) ?? [])]
  const errorCodes = codes?.tasks.flatMap((t) => t.codes) ?? []
  return html`<form
    class="filters"
    role="search"
    aria-label="Filter tasks"
    onSubmit=${(e: Event) => {
      e.preventDefault()
      onApply(f)
    }}
  >
    <fieldset class="states">
      <legend>State</legend>
      ${states.map(
        (s) =>
          html`<label key=${s} class="check">
            <input
              type="checkbox"
              name="state"
              value=${s}
              checked=${f.state.includes(s)}
              onChange=${(e: Event) =>
                set("state", (e.currentTarget as HTMLInputElement).checked ? [...f.state, s] : f.state.filter((x) => x !== s))}
            />
            ${stateLabel(s)}
          </label>`
      )}
    </fieldset>
    <div class="field-row">
      ${input("queue", "Queue", { list: "queue-names" })} ${input("name", "Task name", { list: "task-names" })}
      ${input("errorCode", "Error code", { list: "error-codes" })}
      ${input("payload", "Payload contains (JSON)", { placeholder: '{"customer":42}' })}
    </div>
    <div class="field-row">
      ${date("createdAfter", "Created after")} ${date("createdBefore", "Created before")} ${date("finishedAfter", "Finished after")}
      ${date("finishedBefore", "Finished before")}
    </div>
    <datalist id="queue-names">${queueNames.map((q) => html`<option key=${q} value=${q} />`)}</datalist>
    <datalist id="task-names">${taskNames.map((n) => html`<option key=${n} value=${n} />`)}</datalist>
    <datalist id="error-codes">${errorCodes.map((c) => html`<option key=${c.code} value=${c.code}>${c.text}</option>`)}</datalist>
    <div class="actions">
      <button type="submit" class="primary">Apply filters</button>
      <${Link} href="/tasks" class="button">Clear<//>
    </div>
  </form>`
}

/** What the confirm dialog is about: selected rows, or every task the filter matches (with its dry run). */
type Pending =
  | { readonly _tag: "selected"; readonly action: Action; readonly ids: ReadonlyArray<string>; readonly skipped: number }
  | { readonly _tag: "matching"; readonly action: Action; readonly preview: BulkResult | undefined }

export const Tasks = () => {
  const search = useSearch()
  const [, navigate] = useLocation()
  const filter = useMemo(() => parse(search), [search])
  const canOperate = useCan("operator")
  const isAdmin = useCan("admin")
  const [codes, setCodes] = useState<Codes | undefined>(undefined)
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set())
  const [allMatching, setAllMatching] = useState(false)
  const [pending, setPending] = useState<Pending | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  const [actionError, setActionError] = useState<unknown>(undefined)
  const [notice, setNotice] = useState<string | undefined>(undefined)

  useEffect(() => {
    document.title = "Tasks · AsterForge admin"
    presentationCodes().then(setCodes, () => setCodes(undefined))
  }, [])
  useEffect(() => {
    setSelected(new Set())
    setAllMatching(false)
  }, [search])

  const page = usePoll(() => api.tasks({ ...toQuery(filter), limit: pageSize, cursor: filter.cursor }), `tasks${search}`)
  const items: ReadonlyArray<TaskSummary> = page.data?.items ?? []
  const pageSelected = items.length > 0 && items.every((t) => selected.has(t.id))

  const toggle = (id: string, on: boolean) => {
    setAllMatching(false)
    setSelected((old) => {
      const next = new Set(old)
      if (on) next.add(id)
      else next.delete(id)
      return next
    })
  }

  const open = (action: Action) => {
    setActionError(undefined)
    setNotice(undefined)
    if (allMatching) {
      setPending({ _tag: "matching", action, preview: undefined })
      let body: Parameters<typeof api.bulk>[0]
      try {
        body = { filter: toBulkFilter(filter), action, dryRun: true }
      } catch (e) {
        setActionError(e)
        return
      }
      api.bulk(body).then(
        (preview) => setPending({ _tag: "matching", action, preview }),
        (e) => setActionError(e)
      )
      return
    }
    const chosen = items.filter((t) => selected.has(t.id))
    const ids = chosen.filter((t) => verbs[action].applies.has(t.state)).map((t) => t.id)
    setPending({ _tag: "selected", action, ids, skipped: chosen.length - ids.length })
  }

  const confirm = async () => {
    if (pending === undefined) return
    setBusy(true)
    setActionError(undefined)
    try {
      if (pending._tag === "matching") {
        const done = await api.bulk({ filter: toBulkFilter(filter), action: pending.action, dryRun: false })
        setNotice(
          `${verbs[pending.action].past} ${plural(done.count)}${done.capped ? ` (capped at ${count(done.cap)}; run it again for the rest)` : ""}.`
        )
      } else {
        const call = pending.action === "retry" ? api.retry : pending.action === "cancel" ? api.cancel : api.remove
        for (const id of pending.ids) await call(id)
        setNotice(`${verbs[pending.action].past} ${plural(pending.ids.length)}.`)
      }
      setPending(undefined)
      setSelected(new Set())
      setAllMatching(false)
    } catch (e) {
      setActionError(e)
    } finally {
      setBusy(false)
      page.refresh()
    }
  }

  const actions: ReadonlyArray<Action> = allMatching
    ? ["retry", "cancel", "delete"]
    : isAdmin
      ? ["retry", "cancel", "delete"]
      : ["retry", "cancel"]
  const selectionText = allMatching ? "every task matching this filter" : `${plural(selected.size)} selected`

  return html`<h1>Tasks</h1>
    <${FilterForm} key=${search} initial=${filter} codes=${codes} onApply=${(f: Filter) => navigate(`/tasks${toSearch(f)}`)} />
    <${Notice} text=${notice} />
    ${pending === undefined ? html`<${ErrorBanner} error=${actionError} what="Refused" />` : null}
    <${ErrorBanner} error=${page.error} what="The tasks cannot be loaded" />
    <${Updated} at=${page.updatedAt} />
    ${
      canOperate && (selected.size > 0 || allMatching)
        ? html`<div class="selection-bar" role="region" aria-label="Actions on the selection">
            <span data-testid="selection">${selectionText}</span>
            ${actions.map(
              (a) =>
                html`<button key=${a} type="button" class=${a === "delete" ? "danger" : ""} onClick=${() => open(a)}>${verbs[a].label}…</button>`
            )}
          </div>`
        : null
    }
    ${
      isAdmin && pageSelected && !allMatching && page.data?.next !== null
        ? html`<p class="select-all">
            All ${count(items.length)} tasks on this page are selected.
            <button type="button" class="link" onClick=${() => setAllMatching(true)}>Select every task matching this filter</button>
          </p>`
        : null
    }
    ${
      page.data === undefined
        ? page.error
          ? null
          : html`<${Loading} />`
        : items.length === 0
          ? html`<p class="muted" data-testid="no-tasks">No task matches this filter.</p>`
          : html`<div class="table-wrap">
              <table class="tasks" data-testid="tasks">
                <caption class="visually-hidden">Tasks, newest first</caption>
                <thead>
                  <tr>
                    ${
                      canOperate
                        ? html`<th scope="col" class="select">
                            <input
                              type="checkbox"
                              aria-label="Select every task on this page"
                              checked=${pageSelected}
                              onChange=${(e: Event) => {
                                const on = (e.currentTarget as HTMLInputElement).checked
                                setAllMatching(false)
                                setSelected(on ? new Set(items.map((t) => t.id)) : new Set())
                              }}
                            />
                          </th>`
                        : null
                    }
                    <th scope="col">Task</th>
                    <th scope="col">Name</th>
                    <th scope="col">Queue</th>
                    <th scope="col">State</th>
                    <th scope="col" class="num">Attempts</th>
                    <th scope="col">Last error</th>
                    <th scope="col">Created</th>
                    <th scope="col">Finished</th>
                  </tr>
                </thead>
                <tbody>
                  ${items.map(
                    (t) => html`<tr key=${t.id} data-task=${t.id}>
                      ${
                        canOperate
                          ? html`<td class="select">
                              <input
                                type="checkbox"
                                aria-label=${`Select task ${t.id}`}
                                checked=${allMatching || selected.has(t.id)}
                                onChange=${(e: Event) => toggle(t.id, (e.currentTarget as HTMLInputElement).checked)}
                              />
                            </td>`
                          : null
                      }
                      <td><${Link} href=${`/tasks/${t.id}`}>#${t.id}<//></td>
                      <td>${t.name}</td>
                      <td>${t.queue}</td>
                      <td><${StateBadge} state=${t.state} /></td>
                      <td class="num">${t.attempt}/${t.maxAttempts}</td>
                      <td class="error-cell">
                        ${
                          t.lastError === null
                            ? html`<span class="muted">—</span>`
                            : html`<span title=${t.lastError.message}>${t.lastError.codeText ?? `${t.lastError.tag}: ${t.lastError.message}`}</span>`
                        }
                      </td>
                      <td><${When} iso=${t.createdAt} /></td>
                      <td><${When} iso=${t.finishedAt} /></td>
                    </tr>`
                  )}
                </tbody>
              </table>
            </div>`
    }
    <nav class="pager" aria-label="Pages">
      ${filter.cursor === undefined ? null : html`<${Link} href=${`/tasks${toSearch(filter)}`} class="button">First page<//>`}
      ${page.data?.next ? html`<${Link} href=${`/tasks${toSearch(filter, page.data.next)}`} class="button">Next page<//>` : null}
    </nav>
    ${
      pending === undefined
        ? null
        : html`<${ConfirmDialog}
            title=${`${verbs[pending.action].label} tasks`}
            confirmLabel=${pending._tag === "matching" && pending.preview !== undefined ? `${verbs[pending.action].label} ${plural(pending.preview.count)}` : verbs[pending.action].label}
            danger=${pending.action !== "retry"}
            busy=${busy}
            canConfirm=${pending._tag === "matching" ? pending.preview !== undefined && pending.preview.count > 0 : pending.ids.length > 0}
            error=${actionError}
            onConfirm=${() => void confirm()}
            onClose=${() => {
              setPending(undefined)
              setActionError(undefined)
            }}
          >
            ${
              pending._tag === "selected"
                ? html`<p>
                    This will ${pending.action} <strong data-testid="preview-count" data-count=${pending.ids.length}>${plural(pending.ids.length)}</strong>.
                    ${pending.skipped > 0 ? ` ${plural(pending.skipped)} of the selection cannot be ${verbs[pending.action].past.toLowerCase()} in their state and are left alone.` : ""}
                  </p>`
                : pending.preview === undefined
                  ? html`<p aria-live="polite">Counting the tasks this filter matches (a dry run)…</p>`
                  : html`<p aria-live="polite">
                        This will ${pending.action}
                        <strong data-testid="preview-count" data-count=${pending.preview.count}>${plural(pending.preview.count)}</strong>
                        matching this filter${pending.preview.capped ? html` (more match: one run acts on at most ${count(pending.preview.cap)})` : ""}.
                      </p>
                      ${
                        pending.preview.sample.length > 0
                          ? html`<p class="muted">For example:</p>
                              <ul class="sample">
                                ${pending.preview.sample.map((t) => html`<li key=${t.id}>#${t.id} ${t.name} (${stateLabel(t.state)})</li>`)}
                              </ul>`
                          : null
                      }`
            }
          <//>`
    }`
}
