/**
 * AuditLog against a real Postgres: batching, the two overflow policies while
 * the table is locked (so the writer is stuck), and rows the database rejects.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Metric, Redacted } from "effect"
import { PgConnection } from "@effect/sql-pg"
import * as AuditLog from "../../src/AuditLog.ts"
import * as Database from "../../src/Database.ts"
import * as NodeIdentity from "../../src/NodeIdentity.ts"
import * as Telemetry from "../../src/Telemetry.ts"
import * as Kit from "../support/kit.ts"

/** A buffered audit log with its own pool, configured by `env`, on the file's test database. */
const auditLayer = (env: Kit.Env) =>
  AuditLog.layerBuffered.pipe(
    Layer.provideMerge(Database.layer),
    Layer.provideMerge(Kit.configLayer(env)),
    Layer.provideMerge(NodeIdentity.layer({ mode: "primary", name: "audit-test" }))
  )

/** Holds an exclusive lock on audit_events until `release` is called: inserts block meanwhile. */
const lockTable = Effect.gen(function* () {
  const db = yield* Kit.TestDatabase
  const conn = yield* PgConnection.make({ url: Redacted.make(db.url) })
  yield* conn.query("BEGIN")
  yield* conn.query("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
  return { release: conn.query("COMMIT").pipe(Effect.asVoid) }
})

const count = (code: string) =>
  Effect.map(Kit.queryDb<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE code = $1", [code]), (r) => r[0]!.n)

layer(Kit.database("audit"), { excludeTestServices: true })("AuditLog", (it) => {
  it.effect("writes in batches and flush waits until everything recorded is in the table", () =>
    Effect.gen(function* () {
      yield* Effect.gen(function* () {
        const audit = yield* AuditLog.AuditLog
        for (let i = 0; i < 1234; i++) yield* audit.record({ code: "test.batched", actor: "test", subject: `n:${i}`, details: { i } })
        yield* audit.flush
      }).pipe(Effect.provide(auditLayer({ ASTERFORGE_AUDIT_BATCH_SIZE: "100" })))
      expect(yield* count("test.batched")).toBe(1234)
      const [row] = yield* Kit.queryDb<{ details: { i: number }; node_id: string | null }>(
        "SELECT details, node_id FROM audit_events WHERE subject = 'n:7'"
      )
      expect(row?.details).toEqual({ i: 7 })
      expect(row?.node_id).toMatch(/^[0-9a-f-]{36}$/)
    })
  )

  it.effect("overflow = backpressure: record() waits while the buffer is full, and nothing is lost", () =>
    Effect.gen(function* () {
      yield* Effect.scoped(
        Effect.gen(function* () {
          const audit = yield* AuditLog.AuditLog
          const lock = yield* lockTable
          // Buffer 5: the writer takes one batch and blocks on the lock; the rest fills the buffer.
          const producer = yield* Effect.forkChild(
            Effect.forEach(
              Array.from({ length: 50 }, (_, i) => i),
              (i) => audit.record({ code: "test.backpressure", actor: "test", details: { i } }),
              { discard: true }
            )
          )
          yield* Kit.eventually(
            Effect.map(audit.depth, (d) => (d === 5 ? true : undefined)),
            "the buffer to fill up"
          )
          // Deterministic, not timing: the producer cannot finish while the table is locked.
          expect(producer.pollUnsafe()).toBeUndefined()
          expect(yield* audit.depth).toBe(5)
          yield* lock.release
          yield* Fiber.join(producer)
          yield* audit.flush
        })
      ).pipe(Effect.provide(auditLayer({ ASTERFORGE_AUDIT_BUFFER_SIZE: "5", ASTERFORGE_AUDIT_BATCH_SIZE: "5" })))
      expect(yield* count("test.backpressure")).toBe(50)
    })
  )

  it.effect("overflow = drop: record() returns at once when full, and every drop is counted", () =>
    Effect.gen(function* () {
      const dropped = yield* Effect.scoped(
        Effect.gen(function* () {
          const audit = yield* AuditLog.AuditLog
          const lock = yield* lockTable
          const before = (yield* Metric.value(Telemetry.metrics.auditDropped)).count
          // Completes despite the lock: drops instead of waiting.
          for (let i = 0; i < 50; i++) yield* audit.record({ code: "test.dropping", actor: "test", details: { i } })
          const after = (yield* Metric.value(Telemetry.metrics.auditDropped)).count
          yield* lock.release
          yield* audit.flush
          return after - before
        })
      ).pipe(
        Effect.provide(
          auditLayer({ ASTERFORGE_AUDIT_BUFFER_SIZE: "5", ASTERFORGE_AUDIT_BATCH_SIZE: "5", ASTERFORGE_AUDIT_OVERFLOW: "drop" })
        )
      )
      const written = yield* count("test.dropping")
      expect(dropped).toBeGreaterThan(0)
      expect(written + dropped).toBe(50)
    })
  )

  it.effect("a row the database rejects is dropped alone and logged; the rest of its batch is written", () =>
    Effect.gen(function* () {
      yield* Effect.gen(function* () {
        const audit = yield* AuditLog.AuditLog
        yield* audit.record({ code: "test.poison", actor: "test", subject: "good:1" })
        // jsonb cannot store a NUL character: SQLSTATE 22P05, never going to succeed.
        yield* audit.record({ code: "test.poison", actor: "test", subject: "bad", details: { text: "nul \u0000 inside" } })
        yield* audit.record({ code: "test.poison", actor: "test", subject: "good:2" })
        yield* audit.flush
      }).pipe(Effect.provide(auditLayer({ ASTERFORGE_AUDIT_BATCH_SIZE: "10", ASTERFORGE_TELEMETRY_LOG_LEVEL: "none" })))
      const rows = yield* Kit.queryDb<{ subject: string }>("SELECT subject FROM audit_events WHERE code = 'test.poison' ORDER BY id")
      expect(rows.map((r) => r.subject)).toEqual(["good:1", "good:2"])
    })
  )

  it.effect("an event that breaks its schema is a defect naming the code, not a silent write", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Effect.gen(function* () {
          const audit = yield* AuditLog.AuditLog
          yield* audit.record({ code: "Not A Code", actor: "test" })
        }).pipe(Effect.provide(auditLayer({})))
      )
      expect(exit._tag).toBe("Failure")
      expect(String(exit)).toContain('invalid audit event "Not A Code"')
    })
  )
})
