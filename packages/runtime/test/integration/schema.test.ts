/**
 * Schema drift: a freshly migrated database must match the committed
 * packages/runtime/schema.sql, dumped by the same code as `pnpm schema:dump`.
 * A migration that changes the schema therefore lands together with the
 * regenerated file, and the review sees the schema change as SQL.
 */
import * as Fs from "node:fs"
import { describe, expect, it } from "vitest"
import { dumpFreshSchema, lineDiff, schemaFile } from "../../../../scripts/schema-dump.ts"
import { adminUrl } from "../support/database.ts"

describe("schema.sql", () => {
  it("matches the schema the migrations build", async () => {
    const fresh = await dumpFreshSchema(adminUrl())
    const committed = Fs.existsSync(schemaFile) ? Fs.readFileSync(schemaFile, "utf8") : ""
    if (fresh !== committed) {
      expect.fail(
        "packages/runtime/schema.sql differs from a freshly migrated database: run `pnpm schema:dump` and commit it.\n" +
          "(- committed, + migrations)\n" +
          lineDiff(committed, fresh)
      )
    }
  })
})
