/**
 * The bench's "Postgres server CPU per job" reading (`readPostgresCpuMs`): the CPU of the
 * `postgres` processes on this host, read from /proc, which must see the tests' own server and grow
 * with the work that server does.
 */
import { afterAll, describe, expect, inject, it } from "vitest"
import { readPostgresCpuMs } from "../../src/machine.ts"
import { closeSharedPools, queryInt } from "../../src/pg.ts"

describe("readPostgresCpuMs", () => {
  afterAll(closeSharedPools)

  it("sees the local server and grows by the CPU a query burns in it", async () => {
    const url = inject("adminDatabaseUrl")
    await queryInt(url, "SELECT 1") // the backend exists before the first reading
    const before = readPostgresCpuMs()
    expect(before).not.toBeNull()
    // Several hundred ms of one backend's CPU on any machine this runs on; no parallel workers.
    const n = await queryInt(url, "SELECT count(*) FROM generate_series(1, 5000000) AS s(i) WHERE i % 7 = 0")
    expect(n).toBe(714285)
    const after = readPostgresCpuMs()
    expect(after).not.toBeNull()
    // Kernel ticks are 10 ms: the query's CPU shows as a clear step, not rounding noise.
    expect(after! - before!).toBeGreaterThanOrEqual(50)
  })
})
