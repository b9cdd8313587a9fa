import { readFileSync } from "node:fs"

/** Peak resident set size of this process (VmHWM from /proc/self/status), MiB; null off Linux. */
export const peakRssMiB = (): number | null => {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/self/status", "utf8"))
    return m?.[1] === undefined ? null : Number(m[1]) / 1024
  } catch {
    return null
  }
}

/** Samples process.memoryUsage.rss() every `intervalMs`; `maxMiB()` is the largest seen. */
export const startRssSampler = (intervalMs = 100) => {
  let max = process.memoryUsage.rss()
  const timer = setInterval(() => {
    max = Math.max(max, process.memoryUsage.rss())
  }, intervalMs)
  timer.unref()
  return {
    maxMiB: () => Math.max(max, process.memoryUsage.rss()) / 2 ** 20,
    stop: () => clearInterval(timer)
  }
}
