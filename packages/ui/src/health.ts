/**
 * What the overview puts at the top: the unhealthy things in an overview
 * answer, as sentences, most serious first. Readiness checks that fail on the
 * serving node, stuck leases (expired, not rescued), running nodes whose
 * heartbeat is late, lanes whose last pass failed, lanes without a running
 * leader, and lanes far behind their interval.
 */
import type { Overview } from "./api.ts"
import { ageSeconds, count, duration } from "./format.ts"

export interface Problem {
  readonly severity: "error" | "warning"
  readonly text: string
  /** Where to look closer (a route of the UI). */
  readonly href?: string
}

/** A node heartbeat older than this is late (the default heartbeat is every few seconds). */
const lateHeartbeatSeconds = 30

export const problems = (overview: Overview, now: number = Date.now()): ReadonlyArray<Problem> => {
  const found: Array<Problem> = []
  const { health } = overview
  for (const check of health.checks) {
    if (check.status === "fail") {
      found.push({
        severity: "error",
        text: `Readiness check "${check.name}" fails on ${health.node.name}${check.detail ? `: ${check.detail}` : ""}`
      })
    }
  }
  if (health.stuckLeases.count > 0) {
    found.push({
      severity: "error",
      text: `${count(health.stuckLeases.count)} running task${health.stuckLeases.count === 1 ? " holds a lease" : "s hold leases"} that expired over ${duration(health.stuckLeases.afterSeconds)} ago without a rescue (is the lease_rescue lane running?)`,
      href: "/tasks?state=running"
    })
  }
  for (const node of overview.nodes) {
    const age = ageSeconds(node.heartbeatAt, now)
    if (age > lateHeartbeatSeconds) {
      found.push({
        severity: "warning",
        text: `Node ${node.name} (${node.mode}) last sent a heartbeat ${duration(age)} ago`,
        href: "/nodes"
      })
    }
  }
  for (const lane of overview.lanes) {
    const failedLast =
      lane.lastError !== null && (lane.lastRunAt === null || (lane.lastErrorAt !== null && lane.lastErrorAt >= lane.lastRunAt))
    if (failedLast) found.push({ severity: "error", text: `Lane ${lane.lane}: its last pass failed: ${lane.lastError}`, href: "/lanes" })
    if (lane.leaderStatus !== "running") {
      found.push({ severity: "warning", text: `Lane ${lane.lane} has no running leader`, href: "/lanes" })
    } else if (lane.lastRunAt !== null && lane.intervalMs !== null) {
      const behind = ageSeconds(lane.lastRunAt, now)
      if (behind > Math.max(60, (lane.intervalMs / 1000) * 5)) {
        found.push({
          severity: "warning",
          text: `Lane ${lane.lane} last ran ${duration(behind)} ago (every ${duration(lane.intervalMs / 1000)})`,
          href: "/lanes"
        })
      }
    }
  }
  return found.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === "error" ? -1 : 1))
}
