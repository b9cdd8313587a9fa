/**
 * Test databases: one fresh database per test file on the server chosen by the
 * global setup (scripts/test-database.ts), dropped when the file is done.
 */
import { Effect, Redacted } from "effect"
import { PgConnection } from "@effect/sql-pg"
import * as Crypto from "node:crypto"
import { inject } from "vitest"

export const adminUrl = (): string => inject("adminDatabaseUrl")

/** Runs one statement on its own connection; for setup and assertions outside the code under test. */
export const query = async <Row = Record<string, unknown>>(
  url: string,
  text: string,
  params: ReadonlyArray<unknown> = []
): Promise<ReadonlyArray<Row>> =>
  Effect.runPromise(
    Effect.scoped(
      PgConnection.make({ url: Redacted.make(url), connectTimeout: "5 seconds" }).pipe(
        Effect.flatMap((c) => c.query(text, params, false)),
        Effect.map((r) => r.rows as unknown as ReadonlyArray<Row>)
      )
    )
  )

export interface TestDatabase {
  readonly name: string
  readonly url: string
  readonly drop: () => Promise<void>
}

export const withDatabaseName = (url: string, name: string): string => {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

export const freshDatabase = async (label: string): Promise<TestDatabase> => {
  const admin = adminUrl()
  const name = `af_${label.replace(/[^a-z0-9]/gi, "_").toLowerCase()}_${Crypto.randomBytes(4).toString("hex")}`
  await query(admin, `CREATE DATABASE ${name}`)
  return {
    name,
    url: withDatabaseName(admin, name),
    drop: async () => {
      await query(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    }
  }
}
