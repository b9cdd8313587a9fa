/**
 * The maintenance lanes: leader (and whether it still runs), epoch, when it
 * was elected, last run, interval, how long the last pass took and what it
 * did, and the last error. A lane whose last pass failed is marked.
 */
import { html } from "htm/preact"
import { useEffect } from "preact/hooks"
import { api } from "../api.ts"
import { ErrorBanner, Loading, Updated, When } from "../components/common.ts"
import { count, duration, millis } from "../format.ts"
import { usePoll } from "../poll.ts"

export const Lanes = () => {
  useEffect(() => {
    document.title = "Lanes · AsterForge admin"
  }, [])
  const list = usePoll(() => api.lanes(), "lanes")
  return html`<h1>Lanes</h1>
    <${Updated} at=${list.updatedAt} />
    <${ErrorBanner} error=${list.error} what="The lanes cannot be loaded" />
    ${
      list.data === undefined
        ? list.error
          ? null
          : html`<${Loading} />`
        : list.data.items.length === 0
          ? html`<p class="muted">No lane has run yet.</p>`
          : html`<div class="table-wrap">
              <table data-testid="lanes">
                <caption class="visually-hidden">Maintenance lanes</caption>
                <thead>
                  <tr>
                    <th scope="col">Lane</th>
                    <th scope="col">Leader</th>
                    <th scope="col" class="num">Epoch</th>
                    <th scope="col">Elected</th>
                    <th scope="col">Last run</th>
                    <th scope="col">Every</th>
                    <th scope="col">Took</th>
                    <th scope="col">Last counts</th>
                    <th scope="col">Last error</th>
                  </tr>
                </thead>
                <tbody>
                  ${list.data.items.map((l) => {
                    const failing = l.lastError !== null && l.lastErrorAt !== null && (l.lastRunAt === null || l.lastErrorAt >= l.lastRunAt)
                    return html`<tr key=${l.lane} class=${failing ? "row-error" : ""}>
                      <th scope="row">${l.lane}</th>
                      <td>
                        ${l.leaderNodeName ?? html`<span class="muted">none</span>`}
                        ${l.leaderStatus !== null && l.leaderStatus !== "running" ? html` <span class=${`badge node-${l.leaderStatus}`}>${l.leaderStatus}</span>` : null}
                      </td>
                      <td class="num">${l.epoch}</td>
                      <td><${When} iso=${l.electedAt} /></td>
                      <td><${When} iso=${l.lastRunAt} /></td>
                      <td>${l.intervalMs === null ? "—" : duration(l.intervalMs / 1000)}</td>
                      <td>${l.lastDurationMs === null ? "—" : millis(l.lastDurationMs)}</td>
                      <td>
                        ${
                          l.lastCounts === null || Object.keys(l.lastCounts).length === 0
                            ? html`<span class="muted">—</span>`
                            : Object.entries(l.lastCounts)
                                .map(([k, v]) => `${k}: ${count(v)}`)
                                .join(", ")
                        }
                      </td>
                      <td>
                        ${
                          l.lastError === null
                            ? html`<span class="muted">none</span>`
                            : html`<span class=${failing ? "text-error" : "muted"}>${l.lastError}</span> <${When} iso=${l.lastErrorAt} />`
                        }
                      </td>
                    </tr>`
                  })}
                </tbody>
              </table>
            </div>`
    }`
}
