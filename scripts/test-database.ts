/**
 * Vitest global setup: decides which PostgreSQL server the tests use.
 *
 * 1. TEST_DATABASE_URL, or DATABASE_URL, when set;
 * 2. the local server on 127.0.0.1:5432 (database `test`, trust auth), as CI has;
 * 3. otherwise (or with TEST_DATABASE_URL=embedded) an embedded PostgreSQL under
 *    .asterforge/test, stopped afterwards.
 *
 * Each test file then creates its own database on that server.
 */
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { PgConnection } from "@effect/sql-pg"
import type { TestProject } from "vitest/node"
import * as EmbeddedPostgres from "../packages/runtime/src/EmbeddedPostgres.ts"

declare module "vitest" {
  export interface ProvidedContext {
    adminDatabaseUrl: string
  }
}

const reachable = (url: string) =>
  Effect.runPromise(
    Effect.scoped(
      PgConnection.make({ url: Redacted.make(url), connectTimeout: "2 seconds" }).pipe(Effect.flatMap((c) => c.query("SELECT 1")))
    ).pipe(
      Effect.as(true),
      Effect.orElseSucceed(() => false)
    )
  )

let scope: Scope.Closeable | undefined

export async function setup(project: TestProject) {
  const explicit = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL
  const forceEmbedded = explicit === "embedded"
  const local = "postgres://postgres@127.0.0.1:5432/test"
  let url: string
  if (explicit && !forceEmbedded) {
    url = explicit
  } else if (!forceEmbedded && (await reachable(local))) {
    url = local
  } else {
    scope = Effect.runSync(Scope.make())
    const ctx = await Effect.runPromise(Layer.buildWithScope(EmbeddedPostgres.layer({ dataDir: ".asterforge/test" }), scope))
    const pg = Context.get(ctx, EmbeddedPostgres.EmbeddedPostgres)
    url = Redacted.value(pg.url)
  }
  const shown = url.replace(/:[^:@/]+@/, ":***@")
  console.log(`[tests] PostgreSQL: ${shown}`)
  project.provide("adminDatabaseUrl", url)
}

export async function teardown() {
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
}
