/** Whole-machine CPU accounting from /proc/stat (Linux), to judge how quiet a measured phase was. */
import { readdirSync, readFileSync } from "node:fs"
import { sleep } from "./protocol.ts"

export interface CpuTimes {
  readonly total: number
  readonly idle: number
  readonly steal: number
}

export const readCpuTimes = (): CpuTimes | null => {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!
    // cpu user nice system idle iowait irq softirq steal guest guest_nice
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f
    return { total: user + nice + system + idle + iowait + irq + softirq + steal, idle: idle + iowait, steal }
  } catch {
    return null
  }
}

export interface CpuWindow {
  /** share of all CPUs that was busy (anything but idle/iowait, steal included), % */
  readonly busyPct: number
  /** share taken by the hypervisor, % */
  readonly stealPct: number
}

export const cpuWindow = (a: CpuTimes | null, b: CpuTimes | null): CpuWindow | null => {
  if (a === null || b === null || b.total <= a.total) return null
  const total = b.total - a.total
  const pct = (x: number) => Math.round((x / total) * 1000) / 10
  return { busyPct: pct(total - (b.idle - a.idle)), stealPct: pct(b.steal - a.steal) }
}

/**
 * Wait (up to `maxSeconds`) until the machine was less than `thresholdPct` busy for two
 * consecutive 0.5 s windows. Returns the time waited, ms.
 */
export const waitForQuiet = async (maxSeconds: number, thresholdPct = 10): Promise<number> => {
  const start = performance.now()
  if (maxSeconds <= 0) return 0
  let quietWindows = 0
  while (performance.now() - start < maxSeconds * 1000) {
    const a = readCpuTimes()
    await sleep(500)
    const w = cpuWindow(a, readCpuTimes())
    if (w === null) return 0
    quietWindows = w.busyPct < thresholdPct ? quietWindows + 1 : 0
    if (quietWindows >= 2) break
  }
  return Math.round(performance.now() - start)
}

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks (100 on every mainstream kernel). */
const USER_HZ = 100

/**
 * CPU time (user + system) of every `postgres` process on this host so far, ms: the server's
 * backends, WAL writer, checkpointer and autovacuum alike. Null where /proc cannot be read or no
 * such process is visible (a server on another host or in another PID namespace). Processes that
 * exit inside a window take their CPU with them, so read it around a phase whose connections
 * stay open (the worker's do).
 */
export const readPostgresCpuMs = (): number | null => {
  let ticks = 0
  let seen = 0
  try {
    for (const pid of readdirSync("/proc")) {
      if (!/^\d+$/.test(pid)) continue
      let stat: string
      try {
        stat = readFileSync(`/proc/${pid}/stat`, "utf8")
      } catch {
        continue // exited meanwhile
      }
      const close = stat.lastIndexOf(")")
      if (stat.slice(stat.indexOf("(") + 1, close) !== "postgres") continue
      // after "pid (comm) ": state ppid ... utime is field 14, stime 15 (1-based over the whole line)
      const f = stat.slice(close + 2).split(" ")
      ticks += Number(f[11]) + Number(f[12])
      seen++
    }
  } catch {
    return null
  }
  return seen === 0 ? null : (ticks * 1000) / USER_HZ
}
