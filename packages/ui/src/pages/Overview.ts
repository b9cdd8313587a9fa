/**
 * The overview: what is unhealthy (at the top), tasks by state over all
 * queues, completed and failed tasks per minute, each queue's depth by state
 * (each count links to those tasks), its oldest waiting task and pause state,
 * the running nodes with their heartbeat age, and the lanes with their leader
 * and last run. One request per refresh (`GET /admin/api/overview`).
 */
import { html } from "htm/preact"
import { useEffect } from "preact/hooks"
import { Link } from "wouter-preact"
import { api, type Overview as OverviewData } from "../api.ts"
import { ErrorBanner, Loading, tasksHref, Updated, When } from "../components/common.ts"
import { ThroughputChart } from "../components/ThroughputChart.ts"
import { ageSeconds, count, duration, millis, stateLabel, states } from "../format.ts"
import { problems } from "../health.ts"
import { usePoll } from "../poll.ts"

const minutes = 30

const Attention = ({ overview }: { overview: OverviewData }) => {
  const found = problems(overview)
  if (found.length === 0) {
    return html`<section class="attention healthy" aria-labelledby="attention-title" data-testid="attention">
      <h2 id="attention-title">Health</h2>
      <p>Everything looks healthy: ${overview.health.node.name} is ready, no stuck leases, every lane ran.</p>
    </section>`
  }
  return html`<section class="attention" aria-labelledby="attention-title" data-testid="attention">
    <h2 id="attention-title">Needs attention (${found.length})</h2>
    <ul>
      ${found.map(
        (p, i) =>
          html`<li key=${i} class=${p.severity}>
            <span class="visually-hidden">${p.severity}: </span>${p.text}
            ${p.href ? html` <${Link} href=${p.href}>Look</${Link}>` : null}
          </li>`
      )}
    </ul>
  </section>`
}

const QueueTable = ({ overview }: { overview: OverviewData }) =>
  html`<div class="table-wrap">
    <table data-testid="queue-depth">
      <caption>Queues: tasks by state (finished: last 24 h)</caption>
      <thead>
        <tr>
          <th scope="col">Queue</th>
          ${states.map((s) => html`<th scope="col" class="num" key=${s}>${stateLabel(s)}</th>`)}
          <th scope="col">Oldest waiting</th>
          <th scope="col">State</th>
        </tr>
      </thead>
      <tbody>
        ${overview.queues.items.map(
          (q) =>
            html`<tr key=${q.name} data-queue=${q.name}>
              <th scope="row"><${Link} href=${tasksHref({ queue: q.name })}>${q.name}<//></th>
              ${states.map((s) => {
                const n = q.depth[s] ?? 0
                return html`<td class="num" key=${s} data-state=${s} data-count=${n}>
                  ${n === 0 ? html`<span class="muted">0</span>` : html`<${Link} href=${tasksHref({ queue: q.name, state: [s] })}>${count(n)}<//>`}
                </td>`
              })}
              <td>${q.oldestAvailableAgeSeconds === null ? html`<span class="muted">—</span>` : duration(q.oldestAvailableAgeSeconds)}</td>
              <td>${q.paused ? html`<span class="badge paused">paused</span>` : "active"}</td>
            </tr>`
        )}
      </tbody>
    </table>
  </div>`

export const Overview = () => {
  useEffect(() => {
    document.title = "Overview · AsterForge admin"
  }, [])
  const { data, error, updatedAt } = usePoll(() => api.overview(minutes), "overview")
  if (data === undefined)
    return html`<h1>Overview</h1><${ErrorBanner} error=${error} what="The overview cannot be loaded" />${error ? null : html`<${Loading} />`}`

  const totals = Object.fromEntries(states.map((s) => [s, data.queues.items.reduce((n, q) => n + (q.depth[s] ?? 0), 0)]))
  const points = data.queues.items[0]?.throughput.map((p, i) => ({
    minute: p.minute,
    succeeded: data.queues.items.reduce((n, q) => n + (q.throughput[i]?.succeeded ?? 0), 0),
    failed: data.queues.items.reduce((n, q) => n + (q.throughput[i]?.failed ?? 0), 0)
  }))
  const now = Date.now()

  return html`<h1>Overview</h1>
    <${Updated} at=${updatedAt} />
    <${ErrorBanner} error=${error} what="Refreshing failed (showing the last answer)" />
    <${Attention} overview=${data} />
    <section aria-labelledby="totals-title">
      <h2 id="totals-title">Tasks by state</h2>
      <ul class="cards" data-testid="totals">
        ${states.map(
          (s) =>
            html`<li key=${s} class=${`card state-${s}`}>
              <${Link} href=${tasksHref({ state: [s] })}>
                <span class="card-count" data-state=${s} data-count=${totals[s]}>${count(totals[s] ?? 0)}</span>
                <span class="card-label">${stateLabel(s)}</span>
              <//>
            </li>`
        )}
      </ul>
    </section>
    <section aria-labelledby="throughput-title">
      <h2 id="throughput-title">Completed and failed per minute</h2>
      ${points === undefined || points.length === 0 ? html`<p class="muted">No queues yet.</p>` : html`<${ThroughputChart} points=${points} />`}
    </section>
    <section aria-labelledby="queues-title">
      <h2 id="queues-title">Queues</h2>
      ${data.queues.items.length === 0 ? html`<p class="muted">No queues yet.</p>` : html`<${QueueTable} overview=${data} />`}
    </section>
    <div class="two-columns">
      <section aria-labelledby="nodes-title">
        <h2 id="nodes-title">Nodes</h2>
        <div class="table-wrap">
          <table>
            <thead><tr><th scope="col">Node</th><th scope="col">Mode</th><th scope="col">Heartbeat</th><th scope="col" class="num">Leases</th></tr></thead>
            <tbody>
              ${data.nodes.map(
                (n) =>
                  html`<tr key=${n.id}>
                    <th scope="row" title=${n.id}>${n.name}</th>
                    <td>${n.mode}</td>
                    <td>${duration(ageSeconds(n.heartbeatAt, now))} ago</td>
                    <td class="num">${count(n.leases)}</td>
                  </tr>`
              )}
            </tbody>
          </table>
        </div>
      </section>
      <section aria-labelledby="lanes-title">
        <h2 id="lanes-title">Lanes</h2>
        <div class="table-wrap">
          <table>
            <thead><tr><th scope="col">Lane</th><th scope="col">Leader</th><th scope="col">Last run</th><th scope="col">Took</th></tr></thead>
            <tbody>
              ${data.lanes.map(
                (l) =>
                  html`<tr key=${l.lane} class=${l.lastError !== null && l.lastErrorAt !== null && (l.lastRunAt === null || l.lastErrorAt >= l.lastRunAt) ? "row-error" : ""}>
                    <th scope="row">${l.lane}</th>
                    <td>${l.leaderNodeName ?? html`<span class="muted">none</span>`}</td>
                    <td><${When} iso=${l.lastRunAt} /></td>
                    <td>${l.lastDurationMs === null ? "—" : millis(l.lastDurationMs)}</td>
                  </tr>`
              )}
            </tbody>
          </table>
        </div>
      </section>
    </div>`
}
