/**
 * When schedules fire, as pure rules: cron expressions in a named zone across
 * daylight-saving changes, interval grids, and what is due after downtime
 * under coalesce and catch-up.
 */
import { Result } from "effect"
import { describe, expect, it } from "vitest"
import * as CronSource from "../../src/sources/Cron.ts"

const at = (iso: string) => new Date(iso)
const cron = (expression: string, zone?: string) => Result.getOrThrow(CronSource.cronSpec(expression, zone))
const anchor = at("2026-01-01T00:00:00Z")

/** The next `n` fires after `from`. */
const fires = (spec: CronSource.Spec, from: string, n: number) => {
  const out: Array<string> = []
  let t = at(from)
  for (let i = 0; i < n; i++) {
    t = spec.next(t, anchor)
    out.push(t.toISOString())
  }
  return out
}

describe("cron fires in a named time zone", () => {
  it("09:00 in New York stays 09:00 local across both daylight-saving changes", () => {
    const spec = cron("0 9 * * *", "America/New_York")
    // 2026-03-08: clocks go forward (EST -05:00 -> EDT -04:00).
    expect(fires(spec, "2026-03-06T15:00:00Z", 3)).toEqual([
      "2026-03-07T14:00:00.000Z",
      "2026-03-08T13:00:00.000Z",
      "2026-03-09T13:00:00.000Z"
    ])
    // 2026-11-01: clocks go back (EDT -> EST).
    expect(fires(spec, "2026-10-30T14:00:00Z", 3)).toEqual([
      "2026-10-31T13:00:00.000Z",
      "2026-11-01T14:00:00.000Z",
      "2026-11-02T14:00:00.000Z"
    ])
  })

  it("02:30 in Berlin fires once on the day it does not exist and once on the day it exists twice", () => {
    const spec = cron("30 2 * * *", "Europe/Berlin")
    // 2026-03-29 02:00-03:00 is skipped: the fire moves past the gap, one fire that day.
    const spring = fires(spec, "2026-03-28T00:00:00Z", 3)
    expect(spring).toEqual(["2026-03-28T01:30:00.000Z", "2026-03-29T01:30:00.000Z", "2026-03-30T00:30:00.000Z"])
    // 2026-10-25 02:00-03:00 happens twice: only the first one fires.
    const autumn = fires(spec, "2026-10-24T00:00:00Z", 3)
    expect(autumn).toEqual(["2026-10-24T00:30:00.000Z", "2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"])
  })

  it("previous is the last fire strictly before, the mirror of next", () => {
    const spec = cron("0 9 * * *", "America/New_York")
    expect(spec.previous(at("2026-03-08T13:00:00Z"), anchor)?.toISOString()).toBe("2026-03-07T14:00:00.000Z")
    expect(spec.previous(at("2026-03-08T13:00:00.001Z"), anchor)?.toISOString()).toBe("2026-03-08T13:00:00.000Z")
  })

  it("six fields put seconds first", () => {
    expect(fires(cron("*/20 * * * * *"), "2026-01-01T00:00:05Z", 3)).toEqual([
      "2026-01-01T00:00:20.000Z",
      "2026-01-01T00:00:40.000Z",
      "2026-01-01T00:01:00.000Z"
    ])
  })

  it("a bad expression or zone is refused with the reason", () => {
    expect(CronSource.cronSpec("61 * * * *")).toEqual(Result.fail(expect.stringContaining("between 0 and 59")))
    expect(CronSource.cronSpec("* * * * *", "Mars/Olympus")).toEqual(Result.fail(expect.stringContaining("time zone")))
    expect(() =>
      CronSource.make({ name: "x", cron: "* * * * *", every: "1 minute", task: undefined as never, payload: () => ({}) })
    ).toThrow(/either cron or every/)
    expect(() => CronSource.make({ name: "x", every: "0 seconds", task: undefined as never, payload: () => ({}) })).toThrow(/interval/)
  })
})

describe("interval fires", () => {
  const spec = Result.getOrThrow(CronSource.everySpec("15 minutes"))
  it("fire on the grid anchored where the schedule was registered", () => {
    const a = at("2026-01-01T00:07:00Z")
    expect(spec.next(at("2026-01-01T00:07:00Z"), a).toISOString()).toBe("2026-01-01T00:22:00.000Z")
    expect(spec.next(at("2026-01-01T00:30:00Z"), a).toISOString()).toBe("2026-01-01T00:37:00.000Z")
    expect(spec.previous(at("2026-01-01T00:37:00Z"), a)?.toISOString()).toBe("2026-01-01T00:22:00.000Z")
    expect(spec.previous(at("2026-01-01T00:07:00Z"), a)).toBeUndefined()
  })
})

describe("what is due", () => {
  const hourly = cron("0 * * * *")
  const since = at("2026-05-01T05:00:00Z")
  const now = at("2026-05-01T10:20:00Z")

  it("on time: the one fire that just came due, whatever the policy", () => {
    const onTime = { since: at("2026-05-01T09:00:00Z"), anchor, now }
    for (const missed of ["coalesce", { catchUp: 5 }] as const) {
      expect(CronSource.plan(hourly, { ...onTime, missed })).toEqual({
        fires: [at("2026-05-01T10:00:00Z")],
        skipped: 0,
        next: at("2026-05-01T11:00:00Z")
      })
    }
  })

  it("after downtime, coalesce: the latest missed fire once, the rest skipped", () => {
    expect(CronSource.plan(hourly, { since, anchor, now, missed: "coalesce" })).toEqual({
      fires: [at("2026-05-01T10:00:00Z")],
      skipped: 4,
      next: at("2026-05-01T11:00:00Z")
    })
  })

  it("after downtime, catch-up: the latest n in order, the older ones skipped", () => {
    expect(CronSource.plan(hourly, { since, anchor, now, missed: { catchUp: 3 } }).fires).toEqual([
      at("2026-05-01T08:00:00Z"),
      at("2026-05-01T09:00:00Z"),
      at("2026-05-01T10:00:00Z")
    ])
    expect(CronSource.plan(hourly, { since, anchor, now, missed: { catchUp: 100 } })).toMatchObject({ skipped: 0 })
    expect(CronSource.plan(hourly, { since, anchor, now, missed: { catchUp: 100 } }).fires).toHaveLength(5)
  })

  it("nothing is due before the first fire after `since`; a long downtime counts skipped fires up to a bound", () => {
    expect(CronSource.plan(hourly, { since: now, anchor, now, missed: "coalesce" }).fires).toEqual([])
    const seconds = cron("* * * * * *")
    const long = CronSource.plan(seconds, { since: at("2026-04-01T00:00:00Z"), anchor, now, missed: "coalesce" })
    expect(long.fires).toEqual([at("2026-05-01T10:20:00Z")])
    expect(long.skipped).toBe(1000)
  })

  it("a schedule's fires are done up to its last fire, its registration or its resume, whichever is last", () => {
    const created = at("2026-01-01T00:00:00Z")
    expect(CronSource.doneUntil({ created_at: created, last_fire_at: null, resumed_at: null })).toEqual(created)
    expect(CronSource.doneUntil({ created_at: created, last_fire_at: since, resumed_at: null })).toEqual(since)
    expect(CronSource.doneUntil({ created_at: created, last_fire_at: since, resumed_at: now })).toEqual(now)
  })
})
