/** Pure rules of lanes: definition checks, the default pass timeout, pass spacing, failure backoff. */
import { afterEach, describe, expect, it, vi } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as Lane from "../../src/Lane.ts"
import * as Maintenance from "../../src/Maintenance.ts"

afterEach(() => {
  vi.restoreAllMocks()
})

const runOnce = () => Effect.succeed({})

describe("Lane.make", () => {
  it.each([
    {
      case: "an upper-case name",
      options: { name: "Bad-Name", interval: "1 second" },
      error: 'invalid lane "Bad-Name": name must be dotted lower-case words'
    },
    {
      case: "a zero interval",
      options: { name: "x", interval: "0 seconds" },
      error: 'invalid lane "x": interval must be a positive duration'
    },
    {
      case: "an unparsable interval",
      options: { name: "x", interval: "soon" },
      error: 'invalid lane "x": interval must be a positive duration'
    },
    {
      case: "a zero timeout",
      options: { name: "x", interval: "1 second", timeout: "0 millis" },
      error: 'invalid lane "x": timeout must be a positive duration'
    },
    {
      case: "jitter above 0.5",
      options: { name: "x", interval: "1 second", jitter: 0.6 },
      error: 'invalid lane "x": jitter must be between 0 and 0.5'
    },
    {
      case: "negative jitter",
      options: { name: "x", interval: "1 second", jitter: -0.1 },
      error: 'invalid lane "x": jitter must be between 0 and 0.5'
    },
    {
      case: "several problems",
      options: { name: "x", interval: "0 seconds", jitter: 2 },
      error: 'invalid lane "x": interval must be a positive duration; jitter must be between 0 and 0.5'
    }
  ] as const)("refuses $case, naming the lane and every problem", ({ options, error }) => {
    expect(() => Lane.make({ ...options, runOnce } as Lane.Options<never, never>)).toThrow(new Error(error))
  })

  it.each([
    { interval: "1 second", timeout: 10_000 }, // at least 10 s
    { interval: "1 minute", timeout: 60_000 }, // the interval
    { interval: "1 hour", timeout: 300_000 } // at most 5 minutes
  ] as const)("a lane every $interval gets a default pass timeout of $timeout ms", ({ interval, timeout }) => {
    expect(Duration.toMillis(Lane.make({ name: "x", interval, runOnce }).timeout)).toBe(timeout)
  })

  it("keeps an explicit timeout and jitter; dotted names are fine", () => {
    const lane = Lane.make({ name: "orders.report", interval: "1 hour", timeout: "3 seconds", jitter: 0, runOnce })
    expect([lane.name, Duration.toMillis(lane.timeout), lane.jitter]).toEqual(["orders.report", 3000, 0])
  })
})

describe("Lane.nextDelay and Lane.startStagger", () => {
  const lane = Lane.make({ name: "x", interval: "10 seconds", jitter: 0.2, runOnce })

  it.each([
    { random: 0, next: 8000, stagger: 0 },
    { random: 0.5, next: 10_000, stagger: 500 },
    { random: 0.999999, next: 12_000, stagger: 1000 }
  ])("Math.random() = $random: next pass in $next ms, first pass after $stagger ms", ({ random, next, stagger }) => {
    vi.spyOn(Math, "random").mockReturnValue(random)
    expect(Duration.toMillis(Lane.nextDelay(lane))).toBe(next)
    expect(Duration.toMillis(Lane.startStagger(lane))).toBe(stagger)
  })

  it("without jitter the delay is the interval; the stagger never exceeds a short interval", () => {
    vi.spyOn(Math, "random").mockReturnValue(0.999999)
    const short = Lane.make({ name: "x", interval: "200 millis", jitter: 0, runOnce })
    expect(Duration.toMillis(Lane.nextDelay(short))).toBe(200)
    expect(Duration.toMillis(Lane.startStagger(short))).toBe(200)
  })

  it("the delay is never below 1 ms", () => {
    vi.spyOn(Math, "random").mockReturnValue(0)
    expect(Duration.toMillis(Lane.nextDelay(Lane.make({ name: "x", interval: "1 millis", jitter: 0.5, runOnce })))).toBe(1)
  })
})

describe("Maintenance.failureBackoff", () => {
  it.each([
    { interval: "1 second", failures: 1, ms: 2000 },
    { interval: "1 second", failures: 2, ms: 4000 },
    { interval: "1 second", failures: 5, ms: 32_000 },
    { interval: "1 second", failures: 6, ms: 60_000 }, // capped at a minute
    { interval: "1 second", failures: 1000, ms: 60_000 },
    { interval: "10 seconds", failures: 1, ms: 20_000 },
    { interval: "10 seconds", failures: 3, ms: 60_000 }
  ] as const)("a lane every $interval, $failures failure(s) in a row: next try in $ms ms", ({ interval, failures, ms }) => {
    const lane = Lane.make({ name: "x", interval, runOnce })
    expect(Duration.toMillis(Maintenance.failureBackoff(lane, failures))).toBe(ms)
  })
})
