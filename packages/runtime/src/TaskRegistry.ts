/**
 * TaskRegistry: the task definitions and handlers this node knows, by name.
 *
 * Filled from the application modules at start. Every node has it (a follower
 * enqueues by name and validates callback results); only dispatching nodes run
 * the handlers. It holds handlers of any requirements (`Task.Handler`):
 * `ApplicationModule.make` checked them against what the runtime provides, and
 * the dispatcher runs them in fibers that carry those services.
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import type * as Task from "./Task.ts"

/** Lookups by task name. */
export interface TaskRegistryShape {
  readonly get: (name: string) => Task.Handler | undefined
  readonly definition: (name: string) => Task.Definition | undefined
  readonly names: ReadonlyArray<string>
  /** Queues that registered tasks use, in registration order. */
  readonly queues: ReadonlyArray<string>
}

/** The task registry service. */
export class TaskRegistry extends Context.Service<TaskRegistry, TaskRegistryShape>()("@asterforge/runtime/TaskRegistry") {}

/** A registry of `handlers`; one name registered by two different handlers is a programming error (thrown). */
export const make = (handlers: ReadonlyArray<Task.Handler>): TaskRegistryShape => {
  const byName = new Map<string, Task.Handler>()
  for (const h of handlers) {
    const existing = byName.get(h.definition.name)
    if (existing !== undefined && existing !== h) throw new Error(`task "${h.definition.name}" is registered twice`)
    byName.set(h.definition.name, h)
  }
  return {
    get: (name) => byName.get(name),
    definition: (name) => byName.get(name)?.definition,
    names: [...byName.keys()],
    queues: [...new Set([...byName.values()].map((h) => h.definition.queue))]
  }
}

/**
 * The registry as a layer.
 *
 * @category layers
 */
export const layer = (handlers: ReadonlyArray<Task.Handler>): Layer.Layer<TaskRegistry> => Layer.sync(TaskRegistry, () => make(handlers))
