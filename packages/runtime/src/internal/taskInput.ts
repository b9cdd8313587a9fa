/**
 * The rules a task's input must meet before anything is written: enqueue
 * options within what the columns hold, text Postgres can store, ids and
 * cursors that are task ids. Pure, so each rule is a table row in a unit test;
 * `TaskQueue` turns a problem into a typed `...Invalid` error (a 4xx), never
 * into a database error that would read as an outage.
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type { EnqueueOptions } from "../TaskQueue.ts"

/** `priority` is an `integer` column. */
export const priorityRange = { min: -2_147_483_648, max: 2_147_483_647 } as const
/** More attempts than this is a mistake, not a policy. */
export const maxAttemptsLimit = 1_000_000
/** Delays and deadlines beyond ten years are refused (and stay far from timestamp overflow). */
export const maxDelayMs = Duration.toMillis(Duration.days(3650))
/** Latest `runAt` / `deadline` accepted: the last moment of year 9999. */
export const latestDate = Date.UTC(9999, 11, 31, 23, 59, 59, 999)
/** Longest unique key. */
export const maxUniqueKeyLength = 1024
/** Largest task id (`bigint`). */
const maxId = 9_223_372_036_854_775_807n

/** Options as `TaskQueue.enqueue` takes them. */
export type Options = EnqueueOptions

const dateProblem = (what: string, date: Date | undefined): string | undefined => {
  if (date === undefined) return undefined
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) return `${what} is not a valid date`
  if (date.getTime() > latestDate) return `${what} must not be later than 9999-12-31`
  if (date.getUTCFullYear() < 1) return `${what} must not be earlier than year 1`
  return undefined
}

/** Whether a duration input holds a NaN (`NaN`, `[NaN, 0]`, `{ seconds: NaN }`): `Duration` reads NaN as zero, "run now". */
const hasNaN = (input: unknown): boolean =>
  typeof input === "number"
    ? Number.isNaN(input)
    : typeof input === "object" &&
      input !== null &&
      !Duration.isDuration(input) &&
      Object.values(input).some((v) => typeof v === "number" && Number.isNaN(v))

/** The first thing wrong with `options`, in words, or undefined. */
export const optionsProblem = (options: Options): string | undefined => {
  const { priority, maxAttempts, delay, queue, uniqueKey } = options
  if (priority !== undefined && (!Number.isInteger(priority) || priority < priorityRange.min || priority > priorityRange.max)) {
    return `priority must be an integer between ${priorityRange.min} and ${priorityRange.max}`
  }
  if (maxAttempts !== undefined && (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > maxAttemptsLimit)) {
    return `maxAttempts must be an integer between 1 and ${maxAttemptsLimit}`
  }
  const dates = dateProblem("runAt", options.runAt) ?? dateProblem("deadline", options.deadline)
  if (dates !== undefined) return dates
  if (delay !== undefined) {
    const d = Duration.fromInput(delay)
    if (Option.isNone(d) || hasNaN(delay) || !Duration.isFinite(d.value) || Duration.toMillis(d.value) < 0)
      return "delay is not a valid duration"
    if (Duration.toMillis(d.value) > maxDelayMs) return "delay must be at most 3650 days"
  }
  if (queue !== undefined && !/^[a-z0-9_.-]{1,64}$/i.test(queue)) return "queue must be 1-64 characters of [a-z0-9_.-]"
  if (uniqueKey !== undefined) {
    if (typeof uniqueKey !== "string" || uniqueKey.length === 0 || uniqueKey.length > maxUniqueKeyLength) {
      return `uniqueKey must be 1-${maxUniqueKeyLength} characters`
    }
    const text = unstorableText(uniqueKey, "uniqueKey")
    if (text !== undefined) return text
  }
  return options.metadata === undefined ? undefined : unstorableText(options.metadata, "metadata")
}

const badString = (s: string): string | undefined => {
  if (s.includes("\u0000")) return "contains a NUL character"
  if (!s.isWellFormed()) return "contains a lone surrogate (not valid Unicode)"
  return undefined
}

/**
 * Where a JSON value holds text Postgres cannot store (a NUL character, a lone
 * UTF-16 surrogate), keys included: `"payload.items[2].name contains a NUL
 * character"`; undefined when it is storable. Walks with its own stack, so
 * text at any depth is checked (a depth cut-off would wave deep text through)
 * and deep nesting cannot overflow the call stack; a cycle is walked once.
 */
export const unstorableText = (value: unknown, path: string): string | undefined => {
  // Each entry: a value (or an object's key, `isKey`) and how to name it; names are built only for the one reported.
  interface At {
    readonly value: unknown
    readonly parent: At | undefined
    readonly segment: string
    readonly isKey?: boolean
  }
  const name = (at: At | undefined): string => {
    const segments: Array<string> = []
    for (let a = at; a !== undefined; a = a.parent) segments.push(a.segment)
    return segments.reverse().join("")
  }
  const seen = new Set<object>()
  const stack: Array<At> = [{ value, parent: undefined, segment: path }]
  while (stack.length > 0) {
    const at = stack.pop()!
    const v = at.value
    if (typeof v === "string") {
      const bad = badString(v)
      if (bad !== undefined) return at.isKey === true ? `a key of ${name(at.parent)} ${bad}` : `${name(at)} ${bad}`
      continue
    }
    if (v === null || typeof v !== "object" || seen.has(v)) continue
    seen.add(v)
    const children: Array<At> = []
    if (Array.isArray(v)) {
      for (const [i, item] of v.entries()) children.push({ value: item, parent: at, segment: `[${i}]` })
    } else {
      for (const [key, item] of Object.entries(v)) {
        children.push({ value: key, parent: at, segment: "", isKey: true })
        children.push({ value: item, parent: at, segment: `.${key}` })
      }
    }
    // Reversed, so the first problem in document order is the one reported.
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!)
  }
  return undefined
}

/** A task id as the database holds it (`1` to 2^63-1, canonical digits), or undefined: no task has any other id. */
export const taskId = (id: string): string | undefined => {
  if (!/^[1-9]\d{0,18}$/.test(id)) return undefined
  return BigInt(id) <= maxId ? id : undefined
}
