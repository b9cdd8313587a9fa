/**
 * The nodes: mode and what it runs, host and process, version, status,
 * heartbeat age, the leases it holds and the lanes it leads; stopped and
 * dead nodes on request.
 */
import { html } from "htm/preact"
import { useEffect, useState } from "preact/hooks"
import { api } from "../api.ts"
import { ErrorBanner, Loading, Updated, When } from "../components/common.ts"
import { ageSeconds, count, duration } from "../format.ts"
import { usePoll } from "../poll.ts"

export const Nodes = () => {
  useEffect(() => {
    document.title = "Nodes · AsterForge admin"
  }, [])
  const [all, setAll] = useState(false)
  const list = usePoll(() => api.nodes(all), `nodes:${all}`)
  const now = Date.now()
  return html`<h1>Nodes</h1>
    <label class="check">
      <input type="checkbox" checked=${all} onChange=${(e: Event) => setAll((e.currentTarget as HTMLInputElement).checked)} />
      Show stopped and dead nodes too
    </label>
    <${Updated} at=${list.updatedAt} />
    <${ErrorBanner} error=${list.error} what="The nodes cannot be loaded" />
    ${
      list.data === undefined
        ? list.error
          ? null
          : html`<${Loading} />`
        : html`<div class="table-wrap">
            <table data-testid="nodes">
              <caption class="visually-hidden">Nodes</caption>
              <thead>
                <tr>
                  <th scope="col">Node</th>
                  <th scope="col">Mode</th>
                  <th scope="col">Runs</th>
                  <th scope="col">Status</th>
                  <th scope="col">Heartbeat</th>
                  <th scope="col">Started</th>
                  <th scope="col">Host / pid</th>
                  <th scope="col">Version</th>
                  <th scope="col" class="num">Leases</th>
                  <th scope="col">Leads lanes</th>
                </tr>
              </thead>
              <tbody>
                ${list.data.items.map(
                  (n) => html`<tr key=${n.id}>
                    <th scope="row">${n.name}<div class="muted small"><code>${n.id}</code></div></th>
                    <td>${n.mode}</td>
                    <td>${[n.role.fullApi ? "API" : null, n.role.dispatches ? "tasks" : null, n.role.runsLanes ? "lanes" : null].filter((x) => x !== null).join(", ") || "—"}</td>
                    <td><span class=${`badge node-${n.status}`}>${n.status}</span></td>
                    <td>${n.status === "running" ? `${duration(ageSeconds(n.heartbeatAt, now))} ago` : html`<${When} iso=${n.heartbeatAt} />`}</td>
                    <td><${When} iso=${n.startedAt} /></td>
                    <td>${n.host} / ${n.pid}</td>
                    <td>${n.version}</td>
                    <td class="num">${count(n.leases)}</td>
                    <td>${n.lanes.length === 0 ? html`<span class="muted">none</span>` : n.lanes.join(", ")}</td>
                  </tr>`
                )}
              </tbody>
            </table>
          </div>`
    }`
}
