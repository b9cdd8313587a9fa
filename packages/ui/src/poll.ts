/**
 * Live data for a view by polling, gently: one request at a time, the next
 * one `intervalMs` after the last answer (so at most one request per view per
 * interval, however slow the node), none while the tab is hidden (a hidden
 * tab that becomes visible refreshes at once if its data is stale), and a new
 * request at once when the view's inputs change or after an action
 * (`refresh`). Dashboards that poll hard hurt production databases.
 */
import { useCallback, useEffect, useRef, useState } from "preact/hooks"

/** How often views refresh by default. */
export const defaultIntervalMs = 5000

export interface Polled<A> {
  /** The last answer (kept while a later request fails). */
  readonly data: A | undefined
  /** The last request's failure, cleared by the next success. */
  readonly error: unknown
  /** When the last answer arrived. */
  readonly updatedAt: Date | undefined
  /** Asks again now (after an action); the schedule restarts from its answer. */
  readonly refresh: () => void
}

/** Polls `load` while the view is shown; `key` identifies its inputs (a new key asks at once and drops the old data). */
export const usePoll = <A>(load: () => Promise<A>, key: string, intervalMs: number = defaultIntervalMs): Polled<A> => {
  const [state, setState] = useState<{ key: string; data: A | undefined; error: unknown; updatedAt: Date | undefined }>({
    key,
    data: undefined,
    error: undefined,
    updatedAt: undefined
  })
  const loadRef = useRef(load)
  loadRef.current = load
  const kick = useRef<() => void>(() => {})

  useEffect(() => {
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    let inFlight = false
    let again = false
    let lastAt = 0

    const run = async () => {
      if (stopped) return
      if (inFlight) {
        again = true
        return
      }
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      inFlight = true
      try {
        const data = await loadRef.current()
        if (!stopped) setState({ key, data, error: undefined, updatedAt: new Date() })
      } catch (error) {
        if (!stopped) setState((s) => ({ ...s, key, data: s.key === key ? s.data : undefined, error }))
      } finally {
        inFlight = false
        lastAt = Date.now()
      }
      if (stopped) return
      if (again) {
        again = false
        void run()
      } else schedule()
    }
    const schedule = () => {
      if (!stopped && document.visibilityState === "visible") timer = setTimeout(() => void run(), intervalMs)
    }
    const visibility = () => {
      if (document.visibilityState !== "visible") {
        if (timer !== undefined) clearTimeout(timer)
        timer = undefined
      } else if (!inFlight && timer === undefined) {
        if (Date.now() - lastAt >= intervalMs) void run()
        else timer = setTimeout(() => void run(), intervalMs - (Date.now() - lastAt))
      }
    }
    kick.current = () => void run()
    document.addEventListener("visibilitychange", visibility)
    void run()
    return () => {
      stopped = true
      if (timer !== undefined) clearTimeout(timer)
      document.removeEventListener("visibilitychange", visibility)
    }
  }, [key, intervalMs])

  const refresh = useCallback(() => kick.current(), [])
  const current = state.key === key
  return {
    data: current ? state.data : undefined,
    error: current ? state.error : undefined,
    updatedAt: current ? state.updatedAt : undefined,
    refresh
  }
}
