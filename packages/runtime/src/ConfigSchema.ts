/**
 * ConfigSchema: the value Schemas configuration keys are declared with.
 *
 * Each decodes both shapes a value arrives in: what a TOML file holds (a
 * number, a boolean, a table) and what an environment variable or a CLI flag
 * holds (always a string), so a key is declared once and every source goes
 * through the same Schema. Failures are Schema issues with a message an
 * operator can act on (the bounds, the expected form); the configuration
 * module lists them all with their keys.
 *
 * Bounds are part of each value Schema: a zero heartbeat or a duration that
 * overflows SQL intervals is refused here, before anything starts.
 *
 * @since 0.2.0
 */
import * as B from "effect/ByteSize"
import * as D from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as R from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaTransformation from "effect/SchemaTransformation"

/** A Schema from whatever a source holds (`unknown`) to the key's typed value. */
export type Value<A> = Schema.Codec<A, unknown>

const invalid = (input: unknown, message: string) => new SchemaIssue.InvalidValue({ message }, input)

const kinds = new WeakMap<object, string>()

/** How a value Schema is described to people (`integer 1..64`, `duration`), for the configuration reference. */
export const describe = (value: Value<unknown>): string => kinds.get(value) ?? "value"

const kind = <A>(text: string, value: Value<A>): Value<A> => {
  kinds.set(value, text)
  return value
}

/** What a parse function returns when the input is not acceptable. */
class Problem {
  readonly message: string
  constructor(message: string) {
    this.message = message
  }
}
const problem = (message: string) => new Problem(message)

/** `unknown` -> A through `parse`, which returns the value or the problem in words. */
const parsed = <A>(to: Schema.Codec<A, A>, parse: (u: unknown) => NoInfer<A> | Problem, show: (a: A) => unknown): Value<A> =>
  Schema.Unknown.pipe(
    Schema.decodeTo(
      to,
      SchemaTransformation.transformEffect({
        decode: (u: unknown) => {
          const r = parse(u)
          return r instanceof Problem ? Effect.fail(invalid(u, r.message)) : Effect.succeed(r)
        },
        encode: (a: A) => Effect.succeed(show(a))
      })
    )
  ) as unknown as Value<A>

const numberFrom = (u: unknown): number | undefined => {
  if (typeof u === "number") return u
  if (typeof u === "string" && u.trim() !== "" && Number.isFinite(Number(u))) return Number(u)
  return undefined
}

/** An integer within `[minimum, maximum]`; accepts `8` or `"8"`. */
export const Int = (minimum: number, maximum: number): Value<number> =>
  kind(
    `integer ${minimum}..${maximum}`,
    parsed(
      Schema.Number,
      (u) => {
        const n = numberFrom(u)
        if (n === undefined || !Number.isInteger(n)) return problem(`Expected an integer between ${minimum} and ${maximum}`)
        return n >= minimum && n <= maximum ? n : problem(`Expected a value between ${minimum} and ${maximum}`)
      },
      (n) => n
    )
  )

const truthy = ["1", "true", "yes", "on"]
const falsy = ["0", "false", "no", "off"]

/** `true`/`false`, or `1`/`0`, `yes`/`no`, `on`/`off` as text. */
// biome-ignore lint/suspicious/noShadowRestrictedNames: named like Schema.Boolean; always used qualified, as ConfigSchema.Boolean
export const Boolean: Value<boolean> = kind(
  "boolean",
  parsed(
    Schema.Boolean,
    (u) => {
      if (typeof u === "boolean") return u
      const v = typeof u === "string" ? u.trim().toLowerCase() : undefined
      if (v !== undefined && truthy.includes(v)) return true
      if (v !== undefined && falsy.includes(v)) return false
      return problem("Expected a boolean (true/false, 1/0, yes/no, on/off)")
    },
    (b) => b
  )
)

/** A non-empty string. */
export const NonEmptyString: Value<string> = kind(
  "string",
  parsed(
    Schema.String,
    (u) => (typeof u === "string" && u.length > 0 ? u : problem("Expected a non-empty string")),
    (s) => s
  )
)

/** An `http://` or `https://` URL with a host (a collector, a webhook target). */
export const HttpUrl: Value<string> = kind(
  "http(s) URL",
  parsed(
    Schema.String,
    (u) => (typeof u === "string" && /^https?:\/\/[^\s/]+/.test(u) ? u : problem("Expected an http(s) URL such as http://127.0.0.1:4318")),
    (s) => s
  )
)

/** One of the given strings. */
export const Literals = <const L extends ReadonlyArray<string>>(values: L): Value<L[number]> =>
  kind(
    values.join(" / "),
    parsed(
      Schema.String as unknown as Schema.Codec<L[number], L[number]>,
      (u) =>
        typeof u === "string" && values.includes(u) ? (u as L[number]) : problem(`Expected ${values.map((v) => `"${v}"`).join(" | ")}`),
      (s) => s
    )
  )

/** A secret string: `Redacted`, so it prints `<redacted>`; a failure never shows the value. */
export const Secret: Value<R.Redacted<string>> = kind(
  "secret",
  parsed(
    Schema.Redacted(Schema.String) as unknown as Schema.Codec<R.Redacted<string>, R.Redacted<string>>,
    (u) => (typeof u === "string" && u.length > 0 ? R.make(u) : problem("Expected a non-empty string")),
    (r) => r
  )
)

const durationPattern = /^(\d+(?:\.\d+)?)\s*(ms|millis|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?)$/i
const unitMillis = (unit: string): number => {
  const u = unit.toLowerCase()
  if (u === "ms" || u.startsWith("mil")) return 1
  if (u.startsWith("h")) return 3_600_000
  if (u.startsWith("d")) return 86_400_000
  if (u.startsWith("m")) return 60_000
  return 1000
}

/** The most a duration key may say: ten years (`interval` arithmetic in Postgres stays far from overflow). */
export const maxDuration = D.days(3650)

const formatMillis = (ms: number): string => D.format(D.millis(ms))

/**
 * A duration: `"500ms"`, `"10 seconds"`, `"2 minutes"`, `"1h"`, `"7 days"`, or a
 * number of milliseconds, within `[minimum, maximum]` (default: more than zero,
 * at most ten years).
 */
export const Duration = (bounds: { readonly minimum?: D.Input; readonly maximum?: D.Input } = {}): Value<D.Duration> => {
  const min = bounds.minimum === undefined ? undefined : D.toMillis(D.fromInputUnsafe(bounds.minimum))
  const max = D.toMillis(bounds.maximum === undefined ? maxDuration : D.fromInputUnsafe(bounds.maximum))
  const range = min === undefined ? `more than 0 and at most ${formatMillis(max)}` : `between ${formatMillis(min)} and ${formatMillis(max)}`
  return kind(
    min === undefined && max === D.toMillis(maxDuration) ? "duration" : `duration ${range.replace("more than 0 and at most", "up to")}`,
    parsed(
      Schema.Duration,
      (u) => {
        let ms: number | undefined
        if (typeof u === "number" && Number.isFinite(u)) ms = u
        else if (typeof u === "string") {
          const m = durationPattern.exec(u.trim())
          if (m) ms = Number(m[1]) * unitMillis(m[2]!)
          else if (u.trim() !== "" && Number.isFinite(Number(u))) ms = Number(u)
        }
        if (ms === undefined) return problem('Expected a duration such as "500ms", "10 seconds", "2 minutes" or a number of milliseconds')
        if ((min === undefined ? ms <= 0 : ms < min) || ms > max) return problem(`Expected a duration ${range}`)
        return D.millis(ms)
      },
      (d) => D.toMillis(d)
    )
  )
}

/**
 * A size in bytes: `"1 MiB"`, `"512KiB"`, `"10 MB"`, or a number of bytes,
 * within `[minimum, maximum]` bytes. Decodes to the number of bytes.
 */
export const Bytes = (minimum: number, maximum: number): Value<number> =>
  kind(
    `size ${B.format(B.bytes(minimum))}..${B.format(B.bytes(maximum))}`,
    parsed(
      Schema.Number,
      (u) => {
        let n: number | undefined
        if (typeof u === "number") n = u
        else if (typeof u === "string") {
          const size = /^\s*\d+\s*$/.test(u) ? Option.some(B.bytes(Number(u))) : B.fromString(u)
          n = Option.isSome(size) ? Option.getOrUndefined(B.toNumber(size.value)) : undefined
        }
        if (n === undefined || !Number.isSafeInteger(n)) return problem('Expected a size such as "1 MiB", "512 KiB" or a number of bytes')
        return n >= minimum && n <= maximum
          ? n
          : problem(`Expected a size between ${B.format(B.bytes(minimum))} and ${B.format(B.bytes(maximum))}`)
      },
      (n) => n
    )
  )

/** A duration that may be zero (a delay that is off by default). */
export const DurationOrZero = (maximum: D.Input = maxDuration): Value<D.Duration> => Duration({ minimum: 0, maximum })

/**
 * A list: a TOML array, or comma-separated text (`"a,b"`), each item checked
 * by `item`. The empty list is `[]` or `""`.
 */
export const List = <A>(item: Value<A>): Value<ReadonlyArray<A>> => {
  const decodeItem = Schema.decodeUnknownResult(item)
  return kind(
    `list of ${describe(item)}`,
    parsed(
      Schema.Array(Schema.Any) as unknown as Schema.Codec<ReadonlyArray<A>, ReadonlyArray<A>>,
      (u) => {
        const raw: ReadonlyArray<unknown> | undefined = Array.isArray(u)
          ? u
          : typeof u === "string"
            ? u
                .split(",")
                .map((s) => s.trim())
                .filter((s) => s !== "")
            : undefined
        if (raw === undefined) return problem("Expected a list: a TOML array or comma-separated text")
        const out: Array<A> = []
        for (const [i, r] of raw.entries()) {
          const d = decodeItem(r)
          if (d._tag === "Failure") return problem(`item ${i + 1} (${JSON.stringify(r)}): ${messageOf(d.failure)}`)
          out.push(d.success)
        }
        return out
      },
      (a) => a
    )
  )
}

/**
 * A map of names to values: a TOML table (`{ default = 8, mail = 2 }`) or text
 * (`"default=8,mail=2"`). Names must match `name`.
 */
export const NamedValues = <A>(
  value: Value<A>,
  name: { readonly pattern: RegExp; readonly describe: string }
): Value<ReadonlyMap<string, A>> => {
  const decodeValue = Schema.decodeUnknownResult(value)
  return kind(
    `"name=value,..." (${describe(value)})`,
    parsed(
      Schema.Any as unknown as Schema.Codec<ReadonlyMap<string, A>, ReadonlyMap<string, A>>,
      (u) => {
        let entries: Array<readonly [string, unknown]>
        if (typeof u === "string") {
          entries = []
          for (const part of u
            .split(",")
            .map((p) => p.trim())
            .filter((p) => p !== "")) {
            const eq = part.indexOf("=")
            if (eq < 0) return problem(`expected name=value, got ${JSON.stringify(part)}`)
            entries.push([part.slice(0, eq).trim(), part.slice(eq + 1).trim()])
          }
        } else if (typeof u === "object" && u !== null && !Array.isArray(u)) {
          entries = Object.entries(u)
        } else {
          return problem('Expected "name=value,..." or a table of name = value')
        }
        const out = new Map<string, A>()
        for (const [k, v] of entries) {
          if (!name.pattern.test(k)) return problem(`invalid name ${JSON.stringify(k)}: ${name.describe}`)
          const d = decodeValue(v)
          if (d._tag === "Failure") return problem(`${k}: ${messageOf(d.failure)}`)
          out.set(k, d.success)
        }
        return out
      },
      (m) => Object.fromEntries(m)
    )
  )
}

/** The first issue's message of a failed decode, for nesting in another message. */
export const messageOf = (error: Schema.SchemaError): string =>
  formatter(error.issue)
    .issues.map((i) => i.message)
    .join("; ")

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()
