/**
 * TaskState: the states a task moves through, named once.
 *
 * ```
 *   scheduled ─┐                       ┌─> succeeded
 *   available ─┼─(claim)─> running ────┼─> failed
 *   retryable ─┘     ^        │        └─> cancelled
 *                    │        ├─> retryable / scheduled (snooze) / available (shutdown)
 *                    └────────┴─> waiting_callback ─(callback or timeout)─> ...
 * ```
 *
 * Every SQL statement, index predicate and rule that names a group of states
 * takes it from here (`inList`), so the groups cannot drift apart.
 *
 * @since 0.2.0
 */

/** Every task state. */
export const all = ["scheduled", "available", "running", "retryable", "waiting_callback", "succeeded", "failed", "cancelled"] as const

export type TaskState = (typeof all)[number]

/** States a task never leaves on its own: only pruning (or an admin retry of failed/cancelled) follows. */
export const finished = ["succeeded", "failed", "cancelled"] as const satisfies ReadonlyArray<TaskState>
export type Finished = (typeof finished)[number]

/** Everything else. */
export const unfinished = ["scheduled", "available", "running", "retryable", "waiting_callback"] as const satisfies ReadonlyArray<TaskState>

/** States a claim may take once `run_at` is due (due scheduled/retryable rows are claimed directly). */
export const claimable = ["available", "scheduled", "retryable"] as const satisfies ReadonlyArray<TaskState>

/** States that wait for time alone; promotion moves them to `available` when due. */
export const delayed = ["scheduled", "retryable"] as const satisfies ReadonlyArray<TaskState>

/** States an admin may send back to `available` with a fresh attempt budget. */
export const retriable = ["failed", "cancelled"] as const satisfies ReadonlyArray<TaskState>

export const isFinished = (state: TaskState): state is Finished => (finished as ReadonlyArray<TaskState>).includes(state)

export const isTaskState = (u: unknown): u is TaskState => typeof u === "string" && (all as ReadonlyArray<string>).includes(u)

/**
 * A group of states as SQL list text, `('succeeded', 'failed', 'cancelled')`,
 * for `state IN ...` in statements and index predicates. Constant text, so it
 * is safe to splice with `sql.literal`.
 */
export const inList = (states: ReadonlyArray<TaskState>): string => `(${states.map((s) => `'${s}'`).join(", ")})`
