/**
 * Completed and failed tasks per minute, as a uPlot line chart sized to its
 * container (it follows the container's width on resize). For assistive
 * technology the chart is an image labelled with the totals, and the same
 * numbers are in a table that is visually hidden.
 */
import { html } from "htm/preact"
import { useEffect, useRef } from "preact/hooks"
import uPlot from "uplot"
import { count } from "../format.ts"

export interface MinutePoint {
  /** The minute's start, ISO 8601. */
  readonly minute: string
  readonly succeeded: number
  readonly failed: number
}

const colors = { succeeded: "#2a7d46", failed: "#c0392b" }

export const ThroughputChart = ({ points }: { points: ReadonlyArray<MinutePoint> }) => {
  const box = useRef<HTMLDivElement>(null)
  const chart = useRef<uPlot | null>(null)
  const data: uPlot.AlignedData = [
    points.map((p) => new Date(p.minute).getTime() / 1000),
    points.map((p) => p.succeeded),
    points.map((p) => p.failed)
  ]

  useEffect(() => {
    const el = box.current
    if (el === null) return
    const plot = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: 220,
        scales: { y: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil(max * 1.1))] } },
        axes: [{}, { label: "tasks / min", size: 56 }],
        series: [
          {},
          { label: "Completed", stroke: colors.succeeded, width: 2, points: { show: false } },
          { label: "Failed", stroke: colors.failed, width: 2, points: { show: false } }
        ],
        legend: { live: false }
      },
      data,
      el
    )
    chart.current = plot
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(200, el.clientWidth), height: 220 }))
    resize.observe(el)
    return () => {
      resize.disconnect()
      plot.destroy()
      chart.current = null
    }
  }, [])

  useEffect(() => {
    chart.current?.setData(data)
  })

  const completed = points.reduce((n, p) => n + p.succeeded, 0)
  const failed = points.reduce((n, p) => n + p.failed, 0)
  const summary = `Tasks finished per minute over the last ${points.length} minutes: ${count(completed)} completed, ${count(failed)} failed`
  return html`<figure class="chart">
    <div ref=${box} role="img" aria-label=${summary} data-testid="throughput-chart"></div>
    <figcaption class="muted">${summary}.</figcaption>
    <table class="visually-hidden">
      <caption>Tasks finished per minute</caption>
      <thead><tr><th scope="col">Minute</th><th scope="col">Completed</th><th scope="col">Failed</th></tr></thead>
      <tbody>
        ${points.map((p) => html`<tr key=${p.minute}><th scope="row">${new Date(p.minute).toLocaleTimeString()}</th><td>${p.succeeded}</td><td>${p.failed}</td></tr>`)}
      </tbody>
    </table>
  </figure>`
}
