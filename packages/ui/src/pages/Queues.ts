/**
 * The queues: each with its pause state (who changed it, when), depth by
 * state, oldest waiting task and throughput over the last 15 minutes, and
 * Pause / Resume for operators. A paused queue is claimed by no node until
 * it is resumed; enqueue still works.
 */
import { html } from "htm/preact"
import { useEffect, useState } from "preact/hooks"
import { Link } from "wouter-preact"
import { api } from "../api.ts"
import { ErrorBanner, Loading, Notice, tasksHref, Updated, When } from "../components/common.ts"
import { count, duration, stateLabel, states } from "../format.ts"
import { usePoll } from "../poll.ts"
import { useCan } from "../session.ts"

const minutes = 15

export const Queues = () => {
  useEffect(() => {
    document.title = "Queues · AsterForge admin"
  }, [])
  const canOperate = useCan("operator")
  const list = usePoll(() => api.queues(minutes), "queues")
  const [busy, setBusy] = useState<string | undefined>(undefined)
  const [actionError, setActionError] = useState<unknown>(undefined)
  const [notice, setNotice] = useState<string | undefined>(undefined)

  const toggle = async (queue: string, pause: boolean) => {
    setBusy(queue)
    setActionError(undefined)
    setNotice(undefined)
    try {
      const changed = pause ? await api.pause(queue) : await api.resume(queue)
      setNotice(`Queue ${changed.name} is ${changed.paused ? "paused: no node claims its tasks" : "active again"}.`)
    } catch (e) {
      setActionError(e)
    } finally {
      setBusy(undefined)
      list.refresh()
    }
  }

  return html`<h1>Queues</h1>
    <${Updated} at=${list.updatedAt} />
    <${Notice} text=${notice} />
    <${ErrorBanner} error=${actionError} what="Refused" />
    <${ErrorBanner} error=${list.error} what="The queues cannot be loaded" />
    ${
      list.data === undefined
        ? list.error
          ? null
          : html`<${Loading} />`
        : list.data.items.length === 0
          ? html`<p class="muted">No queues yet: a queue appears with its first task or registered task.</p>`
          : html`<div class="table-wrap">
              <table data-testid="queues">
                <caption class="visually-hidden">Queues</caption>
                <thead>
                  <tr>
                    <th scope="col">Queue</th>
                    <th scope="col">State</th>
                    <th scope="col">Unfinished</th>
                    <th scope="col">Oldest waiting</th>
                    <th scope="col" class="num">Done / failed (${minutes} min)</th>
                    ${canOperate ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : null}
                  </tr>
                </thead>
                <tbody>
                  ${list.data.items.map((q) => {
                    const unfinished = states.filter((s) => !["succeeded", "failed", "cancelled"].includes(s) && (q.depth[s] ?? 0) > 0)
                    const done = q.throughput.reduce((n, m) => n + m.succeeded, 0)
                    const failed = q.throughput.reduce((n, m) => n + m.failed, 0)
                    return html`<tr key=${q.name} data-queue=${q.name}>
                      <th scope="row"><${Link} href=${tasksHref({ queue: q.name })}>${q.name}<//></th>
                      <td data-testid="queue-state">
                        ${q.paused ? html`<span class="badge paused">paused</span>` : "active"}
                        ${q.changedBy === null ? null : html`<div class="muted small">by ${q.changedBy} <${When} iso=${q.changedAt} /></div>`}
                      </td>
                      <td>
                        ${
                          unfinished.length === 0
                            ? html`<span class="muted">none</span>`
                            : unfinished.map(
                                (s) =>
                                  html`<${Link} key=${s} class="chip" href=${tasksHref({ queue: q.name, state: [s] })}>${count(q.depth[s] ?? 0)} ${stateLabel(s)}<//> `
                              )
                        }
                      </td>
                      <td>${q.oldestAvailableAgeSeconds === null ? html`<span class="muted">—</span>` : duration(q.oldestAvailableAgeSeconds)}</td>
                      <td class="num">${count(done)} / ${count(failed)}</td>
                      ${
                        canOperate
                          ? html`<td>
                              <button
                                type="button"
                                class=${q.paused ? "primary" : ""}
                                disabled=${busy === q.name}
                                onClick=${() => void toggle(q.name, !q.paused)}
                                aria-label=${`${q.paused ? "Resume" : "Pause"} queue ${q.name}`}
                              >
                                ${q.paused ? "Resume" : "Pause"}
                              </button>
                            </td>`
                          : null
                      }
                    </tr>`
                  })}
                </tbody>
              </table>
            </div>`
    }`
}
