/**
 * PollingSource: "call this effect every interval, enqueue what it returns".
 *
 * `poll` returns the events it sees, each with its key (a row id, a file name,
 * an upstream event id); every one is published under `<source>:<key>`, so an
 * event seen again by the next poll while its task is unfinished is not
 * enqueued twice. A poll that fails counts as a failed run: logged, counted,
 * and the source starts again after a backoff. Leader-placed by default (one
 * node polls); `placement: "every-node"` polls on every node.
 *
 * ```ts
 * const Invoices = PollingSource.make({
 *   name: "billing.invoices",
 *   every: "30 seconds",
 *   task: SendInvoice,
 *   poll: Effect.map(fetchUnsent, (rows) => rows.map((r) => ({ payload: { id: r.id }, key: r.id })))
 * })
 * ```
 *
 * @since 0.3.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Task from "../Task.ts"
import * as TaskSource from "../TaskSource.ts"
import * as Telemetry from "../Telemetry.ts"

/** @category models */
export interface Options<P, E, R> {
  readonly name: string
  /** Time between the end of one poll and the start of the next. */
  readonly every: Duration.Input
  readonly task: Task.Definition<P, any>
  /** One poll: the events seen now. */
  readonly poll: Effect.Effect<ReadonlyArray<TaskSource.Publication<P>>, E, R>
  /** Default `"leader"`. */
  readonly placement?: TaskSource.Placement | undefined
}

/**
 * Declares a polling source. A bad interval is a programming error, thrown.
 *
 * @category constructors
 */
export const make = <P, E = never, R = never>(options: Options<P, E, R>): TaskSource.TaskSource<R> => {
  const every = Duration.fromInput(options.every)
  if (Option.isNone(every) || Duration.toMillis(every.value) < 1 || !Duration.isFinite(every.value))
    throw new Error(`invalid polling source ${JSON.stringify(options.name)}: every must be a positive, finite duration`)
  return TaskSource.make<R>({
    name: options.name,
    kind: "polling",
    placement: options.placement ?? "leader",
    run: (publisher) =>
      Effect.gen(function* () {
        while (true) {
          yield* options.poll.pipe(
            Effect.flatMap((items) => (items.length === 0 ? Effect.void : publisher.publish(options.task, items))),
            Effect.andThen(publisher.event),
            Effect.withSpan(Telemetry.spans.sourcePoll, { root: true, attributes: { "asterforge.source": options.name } })
          )
          yield* Effect.sleep(every.value)
        }
      })
  })
}
