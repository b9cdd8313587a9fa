/**
 * NodeMode: the four roles one codebase can run as, and what each role runs.
 *
 * This is data, not behaviour: `Runtime.layer` reads `roles` to choose Layers,
 * so no service ever branches on the mode itself.
 */
export const names = ["primary", "follower", "maintenance", "worker"] as const
export type Name = (typeof names)[number]

export interface Role {
  /** Serves the full HTTP API (admin, callbacks, module routes); otherwise health and status only. */
  readonly fullApi: boolean
  /** Claims tasks and runs handlers (primary: unless `worker.inline = false`). */
  readonly dispatches: boolean
  /** Runs maintenance lanes, each behind its own leader election. */
  readonly runsLanes: boolean
}

export const roles: Readonly<Record<Name, Role>> = {
  primary: { fullApi: true, dispatches: true, runsLanes: true },
  follower: { fullApi: true, dispatches: false, runsLanes: false },
  maintenance: { fullApi: false, dispatches: false, runsLanes: true },
  worker: { fullApi: false, dispatches: true, runsLanes: false }
}

/**
 * The role a node actually plays: a primary's dispatching is its "inline
 * worker", which `worker.inline = false` (DISABLE_INLINE_WORKER=1) turns off,
 * leaving task execution to dedicated worker nodes.
 */
export const roleFor = (mode: Name, options: { readonly inlineWorker: boolean }): Role =>
  mode === "primary" ? { ...roles.primary, dispatches: options.inlineWorker } : roles[mode]
