/**
 * AuditLog: structured audit events that never make a request wait on an insert.
 *
 * `record(event)` validates the event and puts it on a bounded in-memory queue;
 * a writer fiber inserts batches. The layer's finalizer ends the queue and
 * waits for the writer to drain it, so every event whose `record` returned
 * reaches the table on a graceful stop. Because the audit log is the last
 * writer in the shutdown order, everything stopping above it can still audit.
 *
 * Overflow (the buffer is full, e.g. the database is down) is an explicit
 * choice: `backpressure` (default) makes `record` wait for room; `drop`
 * returns at once and counts the loss in `asterforge_audit_dropped_total`.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as AuditSql from "./internal/sql/auditEvents.ts"
import { NodeIdentity } from "./NodeIdentity.ts"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import * as Shutdown from "./Shutdown.ts"
import * as Telemetry from "./Telemetry.ts"

/**
 * `[audit]`: the in-memory buffer between `record()` and the table.
 *
 * @category config
 */
export const Config = ConfigSection.make("audit", {
  bufferSize: ConfigSection.key(ConfigSchema.Int(1, 1_000_000), {
    default: 10_000,
    doc: "events held in memory before the overflow policy applies"
  }),
  batchSize: ConfigSection.key(ConfigSchema.Int(1, 10_000), { default: 500, doc: "events per insert statement" }),
  overflow: ConfigSection.key(ConfigSchema.Literals(["backpressure", "drop"]), {
    default: "backpressure",
    doc: "full buffer: make record() wait, or drop and count"
  })
})
export type Config = ConfigSection.TypeOf<typeof Config>

/** One audit event. Build the runtime's own with the `AuditEvents` catalogue, which fixes each code's details. */
export const AuditEvent = Schema.Struct({
  /** Stable, dotted code: `task.failed`, `node.started`. Never free text. */
  code: Schema.String.check(Schema.isPattern(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/)),
  /** Who did it: `system`, `node:<id>`, `user:<name>`. */
  actor: Schema.NonEmptyString,
  /** What it was done to: `task:123`, `node:<id>`. */
  subject: Schema.optional(Schema.String),
  details: Schema.optional(Schema.JsonObject),
  at: Schema.optional(Schema.Date)
})
export type AuditEvent = typeof AuditEvent.Type

export interface AuditLogShape {
  /** Accepts the event for writing; waits only when the buffer is full and overflow = "backpressure". */
  readonly record: (event: AuditEvent) => Effect.Effect<void>
  /** Waits until everything recorded before the call has been written (tests, admin "flush now"). */
  readonly flush: Effect.Effect<void>
  /** Events waiting in memory. */
  readonly depth: Effect.Effect<number>
}

export class AuditLog extends Context.Service<AuditLog, AuditLogShape>()("@asterforge/runtime/AuditLog") {}

const validate = Schema.decodeUnknownResult(AuditEvent)

/** An invalid event is a bug in the code that built it, so it is a defect with the reason. */
const checked = (event: AuditEvent): Effect.Effect<AuditEvent> => {
  const r = validate(event)
  return Result.isSuccess(r)
    ? Effect.succeed(r.success)
    : Effect.die(new Error(`invalid audit event ${JSON.stringify(event.code)}: ${r.failure.message}`))
}

const toRow =
  (nodeId: string) =>
  (e: AuditEvent): AuditSql.Row => ({
    code: e.code,
    actor: e.actor,
    subject: e.subject ?? null,
    details: e.details ?? {},
    at: e.at ?? new Date(),
    node_id: nodeId
  })

/** SQLSTATE classes 22 (data exception) and 23 (integrity violation): retrying the same rows cannot help. */
const isRejectedData = (cause: Cause.Cause<unknown>): boolean =>
  cause.reasons.some((r) => {
    const error = Cause.isFailReason(r) ? r.error : Cause.isDieReason(r) ? r.defect : undefined
    const code = (error as { reason?: { cause?: { code?: unknown } } } | undefined)?.reason?.cause?.code
    return typeof code === "string" && /^(22|23)/.test(code)
  })

/** How long the finalizer may spend draining before giving up (and saying how many were lost). */
const finalFlushBudget = (timeout: Duration.Duration) => Duration.max(Duration.seconds(1), Duration.times(timeout, 0.8))

/** Buffered writer: bounded queue, batch inserts, drained by the finalizer. */
export const layerBuffered: Layer.Layer<
  AuditLog,
  never,
  SqlClient.SqlClient | NodeIdentity | ConfigSection.Tag<"audit"> | ConfigSection.Tag<"shutdown">
> = Layer.effect(
  AuditLog,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const shutdown = yield* Shutdown.Config
    const { id: nodeId } = yield* NodeIdentity
    const { bufferSize, batchSize, overflow } = yield* Config
    const row = toRow(nodeId)

    type Item = { readonly _tag: "Event"; readonly row: AuditSql.Row } | { readonly _tag: "Barrier"; readonly done: () => void }
    const queue = yield* Queue.make<Item, Cause.Done>({
      capacity: bufferSize,
      strategy: overflow === "drop" ? "dropping" : "suspend"
    })

    const insertBatch = (rows: ReadonlyArray<AuditSql.Row>) =>
      AuditSql.insert(sql, rows).pipe(
        Effect.timed,
        Effect.tap(([elapsed]) => Metric.update(Telemetry.metrics.auditFlushDuration, Duration.toSeconds(elapsed))),
        Effect.andThen(Metric.update(Telemetry.metrics.auditFlushed, rows.length)),
        Effect.withSpan(Telemetry.spans.auditFlush, { attributes: { "asterforge.audit.batch_size": rows.length } })
      )

    // A batch that fails for a transient reason (connection lost, server
    // restarting) is retried until it lands: dropping audit records silently
    // is worse than holding them while the database is away; the buffer bound
    // and the overflow policy decide what callers experience meanwhile.
    // A batch the database rejects for its data (SQLSTATE class 22/23, e.g. a
    // NUL character jsonb cannot store) would fail forever, so it is split and
    // only the offending rows are dropped, each logged with its code and subject.
    const insertUntilWritten = (rows: ReadonlyArray<AuditSql.Row>): Effect.Effect<void> => {
      let delay = 100
      const attempt: Effect.Effect<void> = insertBatch(rows).pipe(
        Effect.catchCause((cause) =>
          Effect.gen(function* () {
            yield* Metric.update(Telemetry.metrics.auditFlushFailures, 1)
            if (isRejectedData(cause)) {
              if (rows.length > 1) return yield* Effect.forEach(rows, (r) => insertUntilWritten([r]), { discard: true })
              yield* Metric.update(Telemetry.metrics.auditDropped, 1)
              return yield* Effect.logError(
                `audit event ${rows[0]!.code} (${rows[0]!.subject ?? "no subject"}) rejected by the database and dropped`,
                cause
              )
            }
            yield* Effect.logWarning(`audit batch of ${rows.length} failed; retrying in ${delay} ms`, cause)
            yield* Effect.sleep(Duration.millis(delay))
            delay = Math.min(delay * 2, 5_000)
            return yield* attempt
          })
        )
      )
      return attempt
    }

    const writer = Effect.gen(function* () {
      while (true) {
        const items = yield* Queue.takeBetween(queue, 1, batchSize)
        const rows: Array<AuditSql.Row> = []
        const barriers: Array<() => void> = []
        for (const item of items) {
          if (item._tag === "Event") rows.push(item.row)
          else barriers.push(item.done)
        }
        if (rows.length > 0) yield* insertUntilWritten(rows)
        yield* Metric.update(Telemetry.metrics.auditBufferDepth, yield* Queue.size(queue))
        for (const done of barriers) done()
      }
    }).pipe(
      Effect.catchIf(Cause.isDone, () => Effect.void),
      Telemetry.component("audit")
    )

    const fiber = yield* Effect.forkScoped(writer)
    // Registered after the fork, so it runs before the fork's own interruption.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        const pending = yield* Queue.size(queue)
        yield* Queue.end(queue)
        const joined = yield* Fiber.join(fiber).pipe(Effect.timeoutOption(finalFlushBudget(shutdown.timeout)))
        if (Option.isNone(joined)) {
          const lost = yield* Queue.size(queue)
          yield* Effect.logError(`audit flush did not finish in time: ${lost} event(s) not written`)
        } else if (pending > 0) {
          yield* Effect.logInfo(`audit buffer flushed (${pending} event(s) at shutdown)`)
        }
      }).pipe(Telemetry.component("audit"))
    )

    const record = (event: AuditEvent) =>
      Effect.flatMap(checked(event), (e) =>
        Effect.flatMap(Queue.offer(queue, { _tag: "Event", row: row(e) }), (accepted) =>
          accepted ? Metric.update(Telemetry.metrics.auditRecorded, 1) : Metric.update(Telemetry.metrics.auditDropped, 1)
        )
      )

    const flush = Effect.callback<void>((resume) => {
      const done = () => resume(Effect.void)
      // A barrier behind every event recorded so far; the writer releases it after their batch.
      Effect.runFork(Queue.offer(queue, { _tag: "Barrier", done }).pipe(Effect.flatMap((ok) => (ok ? Effect.void : Effect.sync(done)))))
    })

    return AuditLog.of({ record, flush, depth: Queue.size(queue) })
  })
)

/** Writes each event synchronously; for tools and tests that want no buffering. */
export const layerDirect: Layer.Layer<AuditLog, never, SqlClient.SqlClient | NodeIdentity> = Layer.effect(
  AuditLog,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const { id } = yield* NodeIdentity
    const row = toRow(id)
    return AuditLog.of({
      record: (event) => Effect.flatMap(checked(event), (e) => AuditSql.insert(sql, [row(e)]).pipe(Effect.orDie)),
      flush: Effect.void,
      depth: Effect.succeed(0)
    })
  })
)
