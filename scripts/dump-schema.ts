/**
 * `pnpm schema:dump`: applies the runtime's migrations to a throwaway database
 * and writes its schema to packages/runtime/schema.sql (see schema-dump.ts).
 * Run it after adding a migration and commit the file with it.
 *
 * The server is the one the tests use: TEST_DATABASE_URL or DATABASE_URL when
 * set, else 127.0.0.1:5432 (database `test`) when it answers, else an embedded
 * PostgreSQL under .asterforge/test (TEST_DATABASE_URL=embedded forces it).
 */
import { Context, Effect, Layer, Redacted } from "effect"
import { PgConnection } from "@effect/sql-pg"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as EmbeddedPostgres from "../packages/runtime/src/EmbeddedPostgres.ts"
import { dumpFreshSchema, schemaFile } from "./schema-dump.ts"

const local = "postgres://postgres@127.0.0.1:5432/test"

const reachable = (url: string) =>
  Effect.scoped(
    PgConnection.make({ url: Redacted.make(url), connectTimeout: "2 seconds" }).pipe(Effect.flatMap((c) => c.query("SELECT 1")))
  ).pipe(
    Effect.as(true),
    Effect.orElseSucceed(() => false)
  )

const program = Effect.gen(function* () {
  const explicit = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL
  const useUrl = (url: string) => Effect.promise(() => dumpFreshSchema(url))
  if (explicit && explicit !== "embedded") return yield* useUrl(explicit)
  if (explicit !== "embedded" && (yield* reachable(local))) return yield* useUrl(local)
  console.log(
    `[schema] ${explicit === "embedded" ? "TEST_DATABASE_URL=embedded" : "no PostgreSQL on 127.0.0.1:5432"}: using an embedded one under .asterforge/test`
  )
  return yield* Effect.scoped(
    Effect.gen(function* () {
      const ctx = yield* Layer.build(EmbeddedPostgres.layer({ dataDir: ".asterforge/test" }))
      return yield* useUrl(Redacted.value(Context.get(ctx, EmbeddedPostgres.EmbeddedPostgres).url))
    })
  )
})

const schema = await Effect.runPromise(program)
const before = Fs.existsSync(schemaFile) ? Fs.readFileSync(schemaFile, "utf8") : undefined
Fs.writeFileSync(schemaFile, schema)
const shown = Path.relative(process.cwd(), schemaFile)
console.log(before === schema ? `[schema] ${shown} is up to date` : `[schema] wrote ${shown}`)
