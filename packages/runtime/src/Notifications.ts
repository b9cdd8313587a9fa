/**
 * Notifications: this node's LISTEN subscriptions, kept alive.
 *
 * A LISTEN lives on one database connection; when that connection is lost (a
 * database restart, a failover, a dropped socket) the subscription ends with
 * it and PostgreSQL does not queue what was sent meanwhile. Each subscription
 * here is a supervised loop: it listens again with backoff (100 ms doubling to
 * 1 s) until the server is back, and then runs the subscriber's
 * `onResubscribed`, whose job is to catch up on what it may have missed (claim
 * now, check cancels, bid for lanes). Meanwhile the node is not ready: the
 * `notifications` readiness check names every channel that is down, since
 * when, and why.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { PgClient } from "@effect/sql-pg"
import { HealthRegistry, fail, pass } from "./Health.ts"
import * as Telemetry from "./Telemetry.ts"

/** What a subscriber does with its channel. */
export interface Subscriber {
  /** Runs for each notification, in order; a failure is logged and the next one is taken. */
  readonly onMessage: (payload: string) => Effect.Effect<void>
  /** Runs each time the subscription is back after a loss: notifications sent meanwhile were missed. */
  readonly onResubscribed?: Effect.Effect<void> | undefined
}

export interface NotificationsShape {
  /**
   * Listens on `channel` for the life of the current scope. Returns once the
   * first LISTEN is confirmed or has failed (then it keeps trying in the
   * background): it never fails, a channel that is down shows in readiness.
   */
  readonly subscribe: (channel: string, subscriber: Subscriber) => Effect.Effect<void, never, Scope.Scope>
}

/** @category services */
export class Notifications extends Context.Service<Notifications, NotificationsShape>()("@asterforge/runtime/Notifications") {}

/** A channel's subscription as readiness shows it. */
interface ChannelState {
  up: boolean
  /** When it went down (ms since epoch), while down. */
  downSince: number | undefined
  lastError: string | undefined
  attempts: number
}

const firstBackoff = Duration.millis(100)
const maxBackoff = Duration.seconds(1)

const backoffAfter = (attempts: number): Duration.Duration =>
  Duration.min(Duration.times(firstBackoff, 2 ** Math.min(attempts - 1, 10)), maxBackoff)

/**
 * The service, on the node's pool (each subscription holds one pooled
 * connection), with its readiness check.
 *
 * @category layers
 */
export const layer: Layer.Layer<Notifications, never, PgClient.PgClient | HealthRegistry> = Layer.effect(
  Notifications,
  Effect.gen(function* () {
    const pg = yield* PgClient.PgClient
    const health = yield* HealthRegistry
    const channels = new Map<string, ChannelState>()

    yield* health.register({
      name: "notifications",
      check: Effect.sync(() => {
        const down = [...channels].filter(([, s]) => !s.up)
        const data = Object.fromEntries([...channels].map(([name, s]) => [name, s.up ? "listening" : "resubscribing"]))
        if (down.length === 0) return pass(undefined, data)
        const now = Date.now()
        const detail = down
          .map(([name, s]) => `LISTEN ${name} lost ${now - (s.downSince ?? now)} ms ago, retrying (attempt ${s.attempts}): ${s.lastError}`)
          .join("; ")
        return fail(detail, data)
      })
    })

    const subscribe = (channel: string, subscriber: Subscriber) =>
      Effect.gen(function* () {
        const state: ChannelState = { up: false, downSince: undefined, lastError: undefined, attempts: 0 }
        channels.set(channel, state)
        yield* Effect.addFinalizer(() => Effect.sync(() => channels.delete(channel)))
        const firstAttempt = yield* Deferred.make<void>()
        let subscribedBefore = false

        // One subscription: LISTEN, then deliver until the connection fails the queue.
        const listenOnce = Effect.scoped(
          Effect.gen(function* () {
            const queue = yield* pg.listen(channel)
            const resubscribed = subscribedBefore
            subscribedBefore = true
            state.up = true
            state.downSince = undefined
            state.attempts = 0
            yield* Deferred.succeed(firstAttempt, undefined)
            if (resubscribed) {
              yield* Metric.update(Telemetry.labelled(Telemetry.metrics.resubscribes, { channel }), 1)
              yield* Effect.logInfo(`LISTEN ${channel} resubscribed`)
              if (subscriber.onResubscribed) yield* subscriber.onResubscribed
            }
            while (true) {
              const n = yield* Queue.take(queue)
              yield* subscriber
                .onMessage(n.payload)
                .pipe(Effect.catchCause((cause) => Effect.logError(`handling a notification on ${channel} failed`, cause)))
            }
          })
        )

        const supervised = Effect.gen(function* () {
          while (true) {
            const exit = yield* Effect.exit(listenOnce)
            if (exit._tag === "Failure" && Cause.hasInterruptsOnly(exit.cause)) return
            const error = exit._tag === "Failure" ? Cause.squash(exit.cause) : undefined
            const message = error instanceof Error ? error.message : String(error)
            if (state.up || state.attempts === 0) {
              yield* Effect.logWarning(`LISTEN ${channel} lost; resubscribing with backoff (notifications meanwhile are missed)`, message)
            }
            state.up = false
            state.downSince ??= Date.now()
            state.lastError = message
            state.attempts++
            yield* Deferred.succeed(firstAttempt, undefined)
            yield* Effect.sleep(backoffAfter(state.attempts))
          }
        }).pipe(Telemetry.component("notifications"))

        yield* Effect.forkScoped(supervised)
        yield* Deferred.await(firstAttempt)
      })

    return Notifications.of({ subscribe })
  })
)
