/**
 * Shared by the built-in lanes (not exported from the package): option
 * validation, so a bad tunable fails at definition time with its name, and the
 * bounded batch loop every cleaning lane uses.
 */
import { Duration, Effect } from "effect"

/** A check on one option's value: the problem in words, or undefined when it is fine. */
export type Rule = (value: unknown) => string | undefined

export const integer = (min: number, max: number): Rule => (value) =>
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max
    ? undefined
    : `must be an integer between ${min} and ${max}`

/** A finite, positive duration (`"5 seconds"`, milliseconds, a Duration). */
export const duration: Rule = (value) => {
  const parsed = value === null || value === undefined ? undefined : Duration.fromInput(value as Duration.Input)
  return parsed !== undefined && parsed._tag === "Some" && Duration.isFinite(parsed.value) && Duration.toMillis(parsed.value) > 0
    ? undefined
    : `must be a finite positive duration such as "5 seconds"`
}

const show = (value: unknown): string => {
  try {
    return typeof value === "string" ? JSON.stringify(value) : String(JSON.stringify(value) ?? value)
  } catch {
    return String(value)
  }
}

/**
 * Merges `options` over `defaults`, checking each given value with its rule.
 * Unknown keys and bad values throw one Error that names every bad option, so
 * a misconfigured lane is found when the node starts, not at its first pass.
 */
export const resolve = <D extends object>(
  lane: string,
  defaults: D,
  options: Partial<D> | undefined,
  rules: { readonly [K in keyof D]-?: Rule }
): D => {
  const merged: Record<string, unknown> = { ...(defaults as Record<string, unknown>) }
  const problems: Array<string> = []
  for (const [key, value] of Object.entries(options ?? {})) {
    const rule = (rules as Record<string, Rule | undefined>)[key]
    if (rule === undefined) {
      problems.push(`unknown option ${key} (known: ${Object.keys(rules).join(", ")})`)
      continue
    }
    if (value === undefined) continue
    const problem = rule(value)
    if (problem !== undefined) problems.push(`${key} ${problem} (got ${show(value)})`)
    else merged[key] = value
  }
  if (problems.length > 0) throw new Error(`invalid options for lane ${JSON.stringify(lane)}: ${problems.join("; ")}`)
  return merged as D
}

export const millis = (input: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(input))

/**
 * Runs `statement` (one bounded batch, returning how many rows it acted on)
 * until a batch comes back short or `maxBatches` ran, and returns the total.
 * Each statement is its own short transaction: a pass never holds many locks,
 * and a large backlog is worked off over several passes instead of one long one.
 * A stale epoch makes the first statement change nothing, which ends the loop.
 */
export const inBatches = <E, R>(
  options: { readonly batchSize: number; readonly maxBatches: number },
  statement: Effect.Effect<number, E, R>
): Effect.Effect<number, E, R> =>
  Effect.gen(function*() {
    let total = 0
    for (let i = 0; i < options.maxBatches; i++) {
      const n = yield* statement
      total += n
      if (n < options.batchSize) break
    }
    return total
  })
