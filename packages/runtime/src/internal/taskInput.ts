/**
 * The rules a task's input must meet before anything is written: enqueue
 * options within what the columns hold, text Postgres can store, ids and
 * cursors that are task ids. Pure, so each rule is a table row in a unit test;
 * `TaskQueue` turns a problem into a typed `...Invalid` error (a 4xx), never
 * into a database error that would read as an outage.
 */
import { Duration, Option } from "effect"

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
export interface Options {
  readonly runAt?: Date | undefined
  readonly delay?: Duration.Input | undefined
  readonly priority?: number | undefined
  readonly queue?: string | undefined
  readonly uniqueKey?: string | undefined
  readonly maxAttempts?: number | undefined
  readonly deadline?: Date | undefined
  readonly metadata?: Record<string, unknown> | undefined
}

const dateProblem = (what: string, date: Date | undefined): string | undefined => {
  if (date === undefined) return undefined
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) return `${what} is not a valid date`
  if (date.getTime() > latestDate) return `${what} must not be later than 9999-12-31`
  if (date.getUTCFullYear() < 1) return `${what} must not be earlier than year 1`
  return undefined
}

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
    if (Option.isNone(d) || !Duration.isFinite(d.value) || Duration.toMillis(d.value) < 0) return "delay is not a valid duration"
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
 * character"`; undefined when it is storable.
 */
export const unstorableText = (value: unknown, path: string, depth = 0): string | undefined => {
  if (typeof value === "string") {
    const bad = badString(value)
    return bad === undefined ? undefined : `${path} ${bad}`
  }
  if (depth > 64 || value === null || typeof value !== "object") return undefined
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const bad = unstorableText(item, `${path}[${i}]`, depth + 1)
      if (bad !== undefined) return bad
    }
    return undefined
  }
  for (const [key, item] of Object.entries(value)) {
    const badKey = badString(key)
    if (badKey !== undefined) return `a key of ${path} ${badKey}`
    const bad = unstorableText(item, `${path}.${key}`, depth + 1)
    if (bad !== undefined) return bad
  }
  return undefined
}

/** A task id as the database holds it (`1` to 2^63-1, canonical digits), or undefined: no task has any other id. */
export const taskId = (id: string): string | undefined => {
  if (!/^[1-9]\d{0,18}$/.test(id)) return undefined
  return BigInt(id) <= maxId ? id : undefined
}
