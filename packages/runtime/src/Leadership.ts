/**
 * Leadership: decides which node runs which lane. The only place that does.
 *
 * `layerAdvisoryLock` (the default): per lane, a session advisory lock taken on
 * this node's dedicated leadership connection (`PgConnection.make`, not a
 * pooled connection: a pooled session would keep the lock after its scope
 * closed). Whoever holds the lock leads; the winner bumps the lane's epoch in
 * `lane_leaders`, and every maintenance write is fenced on that epoch, so a
 * node that lost its lock can no longer act even if it has not noticed yet.
 * Non-leaders retry every `maintenance.election_interval`, or at once when a
 * leader announces it let go. If the leadership connection dies, every lane on
 * this node is interrupted at once and elections start over on a new
 * connection; the server dropped the locks with the old session, so other
 * nodes may already lead.
 *
 * `layerAlways` (single node, tests) leads everything; `layerNever` nothing.
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import { PgClient, PgConnection } from "@effect/sql-pg"
import * as Crypto from "node:crypto"
import { DatabaseUrl } from "./Database.ts"
import * as LaneSql from "./internal/sql/laneLeaders.ts"
import { NodeIdentity } from "./NodeIdentity.ts"
import { Notifications } from "./Notifications.ts"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * `[maintenance]`, the leadership part: how often a node bids for lanes it does not lead.
 *
 * @category config
 */
export const Config = ConfigSection.make(
  "maintenance",
  {
    electionInterval: ConfigSection.key(ConfigSchema.Duration({ minimum: "50 millis", maximum: "10 minutes" }), {
      default: "1 second",
      doc: "how often a node retries to win lanes it does not lead"
    }),
    leaderSilence: ConfigSection.key(ConfigSchema.Duration({ minimum: "1 second", maximum: "1 hour" }), {
      default: "10 seconds",
      doc: "a leader silent this long (frozen, paused, cut off) loses its lanes: the server ends its leadership session"
    })
  },
  {
    id: "maintenance#leadership",
    check: (c) =>
      Duration.isLessThan(c.leaderSilence, Duration.times(c.electionInterval, 3))
        ? [
            {
              key: "maintenance.leader_silence",
              message: "must be at least 3 x maintenance.election_interval, or a healthy leader's keepalive could be taken for silence"
            }
          ]
        : []
  }
)
export type Config = ConfigSection.TypeOf<typeof Config>

export interface LaneLeadership {
  readonly lane: string
  readonly leader: boolean
  readonly epoch: number | null
  readonly since: Date | null
}

export interface LeadershipShape {
  /**
   * Runs `work(epoch)` whenever this node leads `lane`, and interrupts it the
   * moment leadership is lost. Never returns; interrupting it gives the lane up.
   */
  readonly lead: <R>(lane: string, work: (epoch: number) => Effect.Effect<void, never, R>) => Effect.Effect<never, never, R>
  readonly status: Effect.Effect<ReadonlyArray<LaneLeadership>>
}

export class Leadership extends Context.Service<Leadership, LeadershipShape>()("@asterforge/runtime/Leadership") {}

/** Application name of the leadership connection, so operators (and tests) can find it. */
export const applicationName = "asterforge-leadership"
const releaseChannel = "asterforge_lanes"

/** Stable signed 64-bit lock key per lane, namespaced so it never meets an application's keys. */
export const lockKey = (lane: string): string =>
  Crypto.createHash("sha256").update(`asterforge.lane.${lane}`).digest().readBigInt64BE(0).toString()

const statusTracker = Effect.gen(function* () {
  const state = yield* Ref.make(new Map<string, LaneLeadership>())
  const set = (entry: LaneLeadership) =>
    Ref.update(state, (m) => new Map(m).set(entry.lane, entry)).pipe(
      Effect.andThen(Metric.update(Telemetry.labelled(Telemetry.metrics.laneLeader, { lane: entry.lane }), entry.leader ? 1 : 0))
    )
  return { set, status: Effect.map(Ref.get(state), (m) => [...m.values()]) }
})

const follower = (lane: string): LaneLeadership => ({ lane, leader: false, epoch: null, since: null })

/** One node leads every lane (a single node, or tests). Epochs are still taken, so fences hold. */
export const layerAlways: Layer.Layer<Leadership, never, SqlClient.SqlClient | NodeIdentity> = Layer.effect(
  Leadership,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const node = yield* NodeIdentity
    const tracker = yield* statusTracker
    return Leadership.of({
      lead: (lane, work) =>
        Effect.gen(function* () {
          const [row] = yield* LaneSql.takeOver(sql, lane, node.id).pipe(Effect.orDie)
          const epoch = Number(row!.epoch)
          yield* tracker.set({ lane, leader: true, epoch, since: new Date() })
          yield* work(epoch)
          return yield* Effect.never
        }),
      status: tracker.status
    })
  })
)

/** This node leads nothing. */
export const layerNever: Layer.Layer<Leadership> = Layer.effect(
  Leadership,
  Effect.gen(function* () {
    const tracker = yield* statusTracker
    return Leadership.of({
      lead: (lane) => tracker.set(follower(lane)).pipe(Effect.andThen(Effect.never)),
      status: tracker.status
    })
  })
)

interface Session {
  readonly conn: PgConnection.PgConnection
  /** Completes when the connection is found dead. */
  readonly lost: Deferred.Deferred<void>
}

export const layerAdvisoryLock: Layer.Layer<
  Leadership,
  never,
  SqlClient.SqlClient | PgClient.PgClient | Notifications | NodeIdentity | DatabaseUrl | ConfigSection.Tag<"maintenance#leadership">
> = Layer.effect(
  Leadership,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const pg = yield* PgClient.PgClient
    const notifications = yield* Notifications
    const node = yield* NodeIdentity
    const config = yield* Config
    const { url } = yield* DatabaseUrl
    const interval = config.electionInterval
    const tracker = yield* statusTracker
    const layerScope = yield* Effect.scope

    // ---- the dedicated connection, replaced when it dies ------------------------
    let current: Session | undefined
    const waiters: Array<Deferred.Deferred<Session>> = []

    // The server ends the session of a leader that goes silent (SIGSTOP, a long GC pause, a cut
    // network): its locks go with it, other nodes take the lanes, and the epoch fence refuses
    // whatever the old leader writes when it wakes. The keepalive below keeps a live leader busy.
    const silenceMs = Math.round(Duration.toMillis(config.leaderSilence))
    const connect = Effect.gen(function* () {
      const conn = yield* PgConnection.make({ url, applicationName, connectTimeout: Duration.seconds(5) })
      yield* conn
        .query(`SET idle_session_timeout = ${silenceMs}`)
        .pipe(
          Effect.catchCause((cause) =>
            Effect.logWarning(
              "idle_session_timeout is not available (PostgreSQL < 14): a frozen leader keeps its lanes until its connection drops",
              cause
            )
          )
        )
      const lost = yield* Deferred.make<void>()
      return { conn, lost } satisfies Session
    })

    // Keeps one session open; when the keepalive fails, marks it lost (interrupting every lane led
    // through it) and opens another. Backoff while the database is away.
    const supervisor = Effect.gen(function* () {
      while (true) {
        const session = yield* Effect.scoped(
          Effect.gen(function* () {
            const s = yield* connect
            current = s
            for (const w of waiters.splice(0)) yield* Deferred.succeed(w, s)
            yield* Effect.logDebug("leadership connection open")
            // Keepalive: a dead socket must be noticed within one election interval.
            yield* s.conn.query("SELECT 1").pipe(
              Effect.timeout(Duration.seconds(5)),
              Effect.repeat(Schedule.spaced(interval)),
              Effect.catchCause(() => Effect.void)
            )
            current = undefined
            yield* Deferred.succeed(s.lost, undefined)
            yield* Effect.logWarning("leadership connection lost: interrupting every lane led by this node")
            return s
          })
        ).pipe(Effect.option)
        if (Option.isNone(session)) yield* Effect.logWarning("leadership connection failed to open; retrying")
        yield* Effect.sleep(interval)
      }
    }).pipe(Telemetry.component("leadership"))
    yield* Effect.forkIn(supervisor, layerScope)

    const session: Effect.Effect<Session> = Effect.suspend(() => {
      if (current !== undefined) return Effect.succeed(current)
      return Effect.flatMap(Deferred.make<Session>(), (d) => {
        waiters.push(d)
        return Deferred.await(d)
      })
    })

    // ---- prompt takeover when a leader lets go ----------------------------------
    // After the subscription was lost, a release may have been missed: every lane bids at once.
    const retryNow = new Map<string, Queue.Queue<void>>()
    yield* notifications
      .subscribe(releaseChannel, {
        onMessage: (lane) => {
          const q = retryNow.get(lane)
          return q ? Queue.offer(q, undefined) : Effect.void
        },
        onResubscribed: Effect.forEach(retryNow.values(), (q) => Queue.offer(q, undefined), { discard: true })
      })
      .pipe(Scope.provide(layerScope))

    const tryLock = (s: Session, key: string) =>
      s.conn.query("SELECT pg_try_advisory_lock($1::bigint) AS ok", [key]).pipe(
        Effect.map((r) => r.rows[0]?.ok === true),
        Effect.timeout(Duration.seconds(5))
      )

    const lead: LeadershipShape["lead"] = (lane, work) =>
      Effect.gen(function* () {
        const key = lockKey(lane)
        const wake = yield* Queue.sliding<void>(1)
        retryNow.set(lane, wake)
        yield* tracker.set(follower(lane))
        while (true) {
          const s = yield* session
          const won = yield* tryLock(s, key).pipe(Effect.orElseSucceed(() => false))
          if (!won) {
            yield* Queue.take(wake).pipe(Effect.timeoutOption(interval))
            continue
          }
          const epochRow = yield* LaneSql.takeOver(sql, lane, node.id).pipe(Effect.option)
          if (Option.isNone(epochRow) || epochRow.value[0] === undefined) {
            yield* s.conn.query("SELECT pg_advisory_unlock($1::bigint)", [key]).pipe(Effect.ignore)
            yield* Effect.sleep(interval)
            continue
          }
          const epoch = Number(epochRow.value[0].epoch)
          yield* Metric.update(Telemetry.labelled(Telemetry.metrics.elections, { lane }), 1)
          yield* tracker.set({ lane, leader: true, epoch, since: new Date() })
          yield* Effect.logInfo(`leading lane ${lane} (epoch ${epoch})`)
          // Lead until the work ends or the session is lost; on the way out, always let go.
          yield* Effect.raceFirst(work(epoch), Deferred.await(s.lost)).pipe(
            Effect.onExit(() =>
              Effect.gen(function* () {
                yield* tracker.set(follower(lane))
                if (!(yield* Deferred.isDone(s.lost))) {
                  yield* s.conn
                    .query("SELECT pg_advisory_unlock($1::bigint)", [key])
                    .pipe(Effect.timeout(Duration.seconds(2)), Effect.ignore)
                  yield* pg.notify(releaseChannel, lane).pipe(Effect.timeout(Duration.seconds(2)), Effect.ignore)
                }
              })
            )
          )
        }
      }).pipe(Effect.annotateLogs({ component: "leadership", lane })) as Effect.Effect<never>

    return Leadership.of({ lead, status: tracker.status })
  })
)
