/**
 * One task: its state and facts, a timeline of its attempts (how each ended,
 * the error with its code's presentation text and, for admins, a defect's
 * stack; where the current one runs), the payload, result and metadata as
 * collapsible trees, its audit trail, and the actions the caller's role
 * allows in the task's state (retry, cancel: operator; delete: admin).
 */
import { html } from "htm/preact"
import { useEffect, useState } from "preact/hooks"
import { Link, useLocation } from "wouter-preact"
import { api, type Codes, presentationCodes, type TaskDetail as Task, type TaskError } from "../api.ts"
import { ConfirmDialog } from "../components/ConfirmDialog.ts"
import { ErrorBanner, Loading, Notice, StateBadge, Updated, When } from "../components/common.ts"
import { JsonTree } from "../components/JsonTree.ts"
import { dateTime, finished, retriable, stateLabel, unfinished } from "../format.ts"
import { usePoll } from "../poll.ts"
import { useCan } from "../session.ts"

type Action = "retry" | "cancel" | "delete"

const Fact = ({ label, children }: { label: string; children: unknown }) => html`<div><dt>${label}</dt><dd>${children}</dd></div>`

const failureText = (codes: Codes | undefined, tag: string) => codes?.failures.find((f) => f.tag === tag)?.text

const ErrorView = ({ error, codes }: { error: TaskError; codes: Codes | undefined }) => {
  const meaning = failureText(codes, error.tag)
  return html`<div class="attempt-error">
    <p>
      <span class="badge tag" title=${meaning}>${error.tag}</span>
      ${error.code === null ? null : html` <code>${error.code}</code>`}
      ${error.codeText === null ? null : html` <strong data-testid="code-text">${error.codeText}</strong>`}
    </p>
    <p class="message">${error.message}</p>
    ${meaning === undefined ? null : html`<p class="muted small">${error.tag}: ${meaning}</p>`}
    ${
      error.stack === undefined
        ? null
        : html`<details class="stack">
            <summary>Stack trace (shown to admins)</summary>
            <pre>${error.stack}</pre>
          </details>`
    }
  </div>`
}

/** One entry per attempt: its failure if it failed, else how the current attempt stands. */
const Timeline = ({ task, codes }: { task: Task; codes: Codes | undefined }) => {
  const byAttempt = new Map<number, Array<TaskError>>()
  for (const e of task.errors) {
    const n = e.attempt ?? 0
    byAttempt.set(n, [...(byAttempt.get(n) ?? []), e])
  }
  // Which node ran an attempt, where the audit trail says (a failure that ended the task, an interruption).
  const ranOn = new Map<number, string>()
  for (const e of task.audit) {
    const attempt = e.details.attempt
    if (typeof attempt === "number" && e.actor.startsWith("node:")) ranOn.set(attempt, e.actor.slice("node:".length))
  }
  const last = Math.max(task.attempt, ...byAttempt.keys())
  const entries = Array.from({ length: last }, (_, i) => i + 1)
  const current = (n: number) => {
    if (n !== task.attempt) return null
    switch (task.state) {
      case "running":
        return html`<p>Running on node <code title="lease owner">${task.leaseOwner ?? "?"}</code> since <${When} iso=${task.attemptedAt} /> (lease epoch ${task.leaseEpoch}).</p>`
      case "succeeded":
        return html`<p>Succeeded <${When} iso=${task.finishedAt} />.</p>`
      case "waiting_callback":
        return html`<p>Waiting for a callback until ${dateTime(task.callbackExpiresAt)}.</p>`
      case "cancelled":
        return byAttempt.has(n) ? null : html`<p>Cancelled <${When} iso=${task.finishedAt} />.</p>`
      default:
        return null
    }
  }
  if (entries.length === 0)
    return html`<p class="muted">Not attempted yet: ${stateLabel(task.state)}, due <${When} iso=${task.runAt} />.</p>`
  return html`<ol class="timeline" data-testid="timeline">
    ${entries.map(
      (n) => html`<li key=${n}>
        <h3>Attempt ${n}</h3>
        ${ranOn.has(n) && !(n === task.attempt && task.state === "running") ? html`<p class="muted small">On node <code>${ranOn.get(n)}</code></p>` : null}
        ${(byAttempt.get(n) ?? []).map(
          (e, i) => html`<div key=${i}>
            <p class="muted small">Failed ${e.at === null ? "" : html`<${When} iso=${e.at} />`}</p>
            <${ErrorView} error=${e} codes=${codes} />
          </div>`
        )}
        ${current(n)}
      </li>`
    )}
    ${
      task.state === "scheduled" || task.state === "available" || task.state === "retryable"
        ? html`<li class="next"><h3>Next</h3><p>${stateLabel(task.state)}: runs <${When} iso=${task.runAt} />.</p></li>`
        : null
    }
  </ol>`
}

export const TaskDetail = ({ id }: { id: string }) => {
  const canOperate = useCan("operator")
  const isAdmin = useCan("admin")
  const [, navigate] = useLocation()
  const [codes, setCodes] = useState<Codes | undefined>(undefined)
  const [pending, setPending] = useState<Action | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  const [actionError, setActionError] = useState<unknown>(undefined)
  const [notice, setNotice] = useState<string | undefined>(undefined)
  const task = usePoll(() => api.task(id), `task:${id}`)

  useEffect(() => {
    document.title = `Task ${id} · AsterForge admin`
    presentationCodes().then(setCodes, () => setCodes(undefined))
  }, [id])

  const act = async (action: Action) => {
    setBusy(true)
    setActionError(undefined)
    setNotice(undefined)
    try {
      if (action === "delete") {
        await api.remove(id)
        navigate("/tasks", { replace: true })
        return
      }
      const changed = action === "retry" ? await api.retry(id) : await api.cancel(id)
      setNotice(`${action === "retry" ? "Retried" : "Cancelled"}: the task is now ${stateLabel(changed.state)}.`)
      setPending(undefined)
    } catch (e) {
      setActionError(e)
    } finally {
      setBusy(false)
      task.refresh()
    }
  }

  const t = task.data
  if (t === undefined) {
    return html`<h1>Task #${id}</h1>
      <p><${Link} href="/tasks">All tasks<//></p>
      <${ErrorBanner} error=${task.error} what="The task cannot be loaded" />
      ${task.error ? null : html`<${Loading} />`}`
  }

  const allowed: ReadonlyArray<{ action: Action; label: string; enabled: boolean }> = [
    ...(canOperate ? [{ action: "retry" as const, label: "Retry", enabled: retriable.has(t.state) }] : []),
    ...(canOperate ? [{ action: "cancel" as const, label: "Cancel", enabled: unfinished.has(t.state) && !t.cancelRequested }] : []),
    ...(isAdmin ? [{ action: "delete" as const, label: "Delete", enabled: finished.has(t.state) }] : [])
  ]

  return html`<p class="crumbs"><${Link} href="/tasks">Tasks<//> / #${t.id}</p>
    <h1>${t.name} <span class="muted">#${t.id}</span> <span data-testid="task-state"><${StateBadge} state=${t.state} /></span></h1>
    <${Updated} at=${task.updatedAt} />
    <${ErrorBanner} error=${task.error} what="Refreshing failed (showing the last answer)" />
    <${Notice} text=${notice} />
    ${pending === undefined ? html`<${ErrorBanner} error=${actionError} what="Refused" />` : null}
    ${
      allowed.length === 0
        ? null
        : html`<div class="actions" role="group" aria-label="Actions on this task">
            ${allowed.map(
              (a) =>
                html`<button
                  key=${a.action}
                  type="button"
                  class=${a.action === "retry" ? "primary" : "danger"}
                  disabled=${!a.enabled || busy}
                  onClick=${() => (a.action === "retry" ? void act("retry") : setPending(a.action))}
                >
                  ${a.label}
                </button>`
            )}
          </div>`
    }
    <dl class="facts">
      <${Fact} label="Queue"><${Link} href=${`/tasks?queue=${encodeURIComponent(t.queue)}`}>${t.queue}<//><//>
      <${Fact} label="Attempts">${t.attempt} of ${t.maxAttempts}<//>
      <${Fact} label="Priority">${t.priority}<//>
      <${Fact} label="Created"><${When} iso=${t.createdAt} /><//>
      <${Fact} label="Runs at"><${When} iso=${t.runAt} /><//>
      <${Fact} label="Last attempt"><${When} iso=${t.attemptedAt} /><//>
      <${Fact} label="Finished"><${When} iso=${t.finishedAt} /><//>
      <${Fact} label="Lease owner">${t.leaseOwner ?? html`<span class="muted">none</span>`} (epoch ${t.leaseEpoch})<//>
      ${t.uniqueKey === null ? null : html`<${Fact} label="Unique key"><code>${t.uniqueKey}</code><//>`}
      ${t.deadline === null ? null : html`<${Fact} label="Deadline"><${When} iso=${t.deadline} /><//>`}
      ${t.cancelRequested ? html`<${Fact} label="Cancel">requested<//>` : null}
      <${Fact} label="Payload version">${t.payloadVersion}<//>
    </dl>
    <section aria-labelledby="attempts-title">
      <h2 id="attempts-title">Attempts</h2>
      <${Timeline} task=${t} codes=${codes} />
    </section>
    <div class="two-columns">
      <section aria-labelledby="payload-title">
        <h2 id="payload-title">Payload</h2>
        <${JsonTree} value=${t.payload} label="Payload" />
      </section>
      <section aria-labelledby="result-title">
        <h2 id="result-title">Result</h2>
        ${t.result === null ? html`<p class="muted">No result.</p>` : html`<${JsonTree} value=${t.result} label="Result" />`}
      </section>
    </div>
    ${
      Object.keys(t.metadata).length === 0
        ? null
        : html`<section aria-labelledby="metadata-title"><h2 id="metadata-title">Metadata</h2><${JsonTree} value=${t.metadata} label="Metadata" /></section>`
    }
    <section aria-labelledby="audit-title">
      <h2 id="audit-title">Audit trail</h2>
      ${
        t.audit.length === 0
          ? html`<p class="muted">No audit events for this task.</p>`
          : html`<div class="table-wrap">
              <table>
                <thead><tr><th scope="col">When</th><th scope="col">Event</th><th scope="col">Actor</th><th scope="col">Details</th></tr></thead>
                <tbody>
                  ${t.audit.map(
                    (e) => html`<tr key=${e.id}>
                      <td><${When} iso=${e.at} /></td>
                      <td>${e.title ?? e.code} <code class="muted">${e.code}</code></td>
                      <td>${e.actor}</td>
                      <td>
                        <details>
                          <summary>${Object.keys(e.details).length} fields</summary>
                          <${JsonTree} value=${e.details} label=${`Details of ${e.code}`} />
                        </details>
                      </td>
                    </tr>`
                  )}
                </tbody>
              </table>
            </div>`
      }
    </section>
    ${
      pending === undefined
        ? null
        : html`<${ConfirmDialog}
            title=${pending === "cancel" ? "Cancel this task" : "Delete this task"}
            confirmLabel=${pending === "cancel" ? "Cancel the task" : "Delete the task"}
            danger=${true}
            busy=${busy}
            error=${actionError}
            onConfirm=${() => void act(pending)}
            onClose=${() => {
              setPending(undefined)
              setActionError(undefined)
            }}
          >
            <p>
              ${
                pending === "cancel"
                  ? `Task #${t.id} (${t.name}) will not run again${t.state === "running" ? "; its running handler is interrupted" : ""}.`
                  : `Task #${t.id} (${t.name}) and its history are removed for good.`
              }
            </p>
          <//>`
    }`
}
