/**
 * ConfigSection: one table of configuration keys, declared by the service that
 * reads it.
 *
 * A section is a name (`worker`, `maintenance.promotion`: the TOML table) and
 * its keys, each a value Schema from `ConfigSchema` with a default and a line
 * of documentation. Everything else is derived from that one declaration: the
 * TOML key names (snake_case of the field), the environment variable names
 * (`ASTERFORGE_<SECTION>_<KEY>`), decoding with every problem listed, the
 * typed value the service receives, the defaults it exports, and the
 * `config check` / README reference. `RuntimeConfig` assembles the sections of
 * the runtime's services (and lanes) and reads the sources once.
 *
 * ```ts
 * export const Config = ConfigSection.make("worker", {
 *   concurrency: ConfigSection.key(ConfigSchema.Int(1, 64), { default: 4, doc: "handlers run at once per queue" })
 * })
 * export type Config = ConfigSection.TypeOf<typeof Config>   // { readonly concurrency: number }
 *
 * // in the service's layer:
 * const { concurrency } = yield* Config
 * ```
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as ConfigSchema from "./ConfigSchema.ts"
import type { Problem } from "./RuntimeError.ts"

/** Another environment variable users already know for a key (`DATABASE_URL`), and how its text maps onto the key. */
export interface EnvAlias {
  readonly name: string
  /** How the reference shows it when only one value sets the key (`NODE_ENV=production`); default: the name. */
  readonly shown?: string
  /** The value for the key, or undefined when this text does not set it (`DISABLE_INLINE_WORKER=0`). */
  readonly map: (text: string) => unknown
}

/** One key: its value Schema, default (as a source would write it) and documentation. */
export interface Key<A> {
  readonly schema: ConfigSchema.Value<any>
  /** The default as TOML would hold it; `undefined`: the key is optional and unset by default. */
  readonly default: unknown
  readonly optional: boolean
  readonly doc: string
  /** Never printed or logged; a decode failure never shows the value. */
  readonly secret: boolean
  /** Applied while the node runs when the config file changes. */
  readonly reloadable: boolean
  readonly aliases: ReadonlyArray<EnvAlias>
  /** The default as the reference shows it, when the value itself depends on the machine (`hostname`). */
  readonly shownDefault: string | undefined
  /** How `config check` shows the value when it may hold credentials (a URL): default `show`. */
  readonly display: ((value: any) => string) | undefined
  /** Phantom: the decoded type. */
  readonly _A?: A
}

interface KeyOptions {
  readonly doc: string
  readonly shownDefault?: string
  readonly display?: (value: any) => string
  readonly secret?: boolean
  readonly reloadable?: boolean
  readonly aliases?: ReadonlyArray<EnvAlias>
}

/**
 * A key with a default: its decoded type is the Schema's.
 *
 * @category constructors
 */
export const key = <A>(schema: ConfigSchema.Value<A>, options: KeyOptions & { readonly default: unknown }): Key<A> => ({
  schema,
  default: options.default,
  optional: false,
  doc: options.doc,
  secret: options.secret ?? false,
  reloadable: options.reloadable ?? false,
  aliases: options.aliases ?? [],
  shownDefault: options.shownDefault,
  display: options.display
})

/**
 * A key that may stay unset: its decoded type is `Option` of the Schema's.
 *
 * @category constructors
 */
export const optionalKey = <A>(schema: ConfigSchema.Value<A>, options: KeyOptions): Key<Option.Option<A>> => ({
  schema,
  default: undefined,
  optional: true,
  doc: options.doc,
  secret: options.secret ?? false,
  reloadable: options.reloadable ?? false,
  aliases: options.aliases ?? [],
  shownDefault: options.shownDefault,
  display: options.display
})

export type Fields = Readonly<Record<string, Key<any>>>

/** The typed value of a set of fields. */
export type ValueOf<F extends Fields> = { readonly [K in keyof F]: F[K] extends Key<infer A> ? A : never }

/** The typed value of a section. */
export type TypeOf<S> = S extends Section<any, infer F> ? ValueOf<F> : never

/** What a caller may pass for a section in code (`Lane.make({ batchSize: 500 })`): any key, as a source would write it. */
export type Input<S> = S extends Section<any, infer F> ? { readonly [K in keyof F]?: unknown } : never

/** The identity of a section in an Effect's requirements: `ConfigSection.Tag<"worker">`. */
export interface Tag<Id extends string> {
  readonly _configSection: Id
}

/**
 * A section is also the Context key of its decoded value: a service reads its
 * own configuration with `yield* Dispatcher.Config` and depends on nothing else
 * of the configuration. `RuntimeConfig.layer` provides every section.
 */
export interface Section<Id extends string, F extends Fields> extends Context.Service<Tag<Id>, ValueOf<F>> {
  /** Unique per declaration: the table name, or `table#owner` when several owners share a table. */
  readonly id: Id
  /** The TOML table: `worker`, `maintenance.promotion`. */
  readonly section: string
  readonly doc: string
  readonly fields: F
  /** Rules across this section's keys, run on the decoded value. */
  readonly check: (value: ValueOf<F>) => ReadonlyArray<Problem>
}

export type Any = Section<any, any>

/** The requirement a section satisfies: `TagOf<typeof Dispatcher.Config>` is `Tag<"worker">`. */
export type TagOf<S> = S extends Section<infer Id, any> ? Tag<Id> : never

const sectionPattern = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/

/**
 * Declares a section. Several owners may declare keys of one table (`[server]`
 * holds the HTTP server's host and port and the node's name and mode): each
 * gives its own `id`. `check` relates keys of the section (the heartbeat
 * shorter than half the lease); rules across sections live in `RuntimeConfig`.
 *
 * @category constructors
 */
export const make = <const Name extends string, F extends Fields, const Id extends string = Name>(
  name: Name,
  fields: F,
  options: { readonly id?: Id; readonly doc?: string; readonly check?: (value: ValueOf<F>) => ReadonlyArray<Problem> } = {}
): Section<Id, F> => {
  if (!sectionPattern.test(name)) throw new Error(`config section ${JSON.stringify(name)} must be dotted lower-case words`)
  const id = (options.id ?? name) as Id
  const tag = Context.Service<Tag<Id>, ValueOf<F>>(`@asterforge/runtime/Config/${id}`)
  return Object.assign(tag, { id, section: name, doc: options.doc ?? "", fields, check: options.check ?? (() => []) })
}

/** `batchSize` -> `batch_size`: the key's name in TOML and (upper-cased) in the environment. */
export const snakeCase = (field: string): string => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** `worker.batch_size` style name of a field. */
export const keyName = (section: Any, field: string): string => `${section.section}.${snakeCase(field)}`

/** `ASTERFORGE_WORKER_BATCH_SIZE`: the environment variable of a dotted key. */
export const envName = (dottedKey: string): string => `ASTERFORGE_${dottedKey.replace(/\./g, "_").toUpperCase()}`

const issueMessage = (error: Schema.SchemaError): string => ConfigSchema.messageOf(error)

/** A raw value for one field, and how to name it in a problem (`server.port`, `ASTERFORGE_SERVER_PORT`, `--port`). */
export interface Raw {
  readonly value: unknown
  readonly label: string
}

/**
 * Decodes one section from raw values by field (missing fields take their
 * default), listing every problem: each with the key as the user wrote it,
 * and the offending value unless the key is secret.
 */
export const decode = <F extends Fields>(
  section: Section<any, F>,
  raw: { readonly [K in keyof F]?: Raw | undefined }
): Result.Result<ValueOf<F>, ReadonlyArray<Problem>> => {
  const problems: Array<Problem> = []
  const out: Record<string, unknown> = {}
  for (const [field, spec] of Object.entries(section.fields) as Array<[string, Key<unknown>]>) {
    const dotted = keyName(section as Any, field)
    const given = raw[field as keyof F]
    const input = given ?? (spec.default === undefined ? undefined : { value: spec.default, label: dotted })
    if (input === undefined) {
      out[field] = Option.none()
      continue
    }
    const decoded = Schema.decodeUnknownResult(spec.schema)(input.value)
    if (Result.isFailure(decoded)) {
      const shown = spec.secret ? "" : `, got ${spec.display ? showDisplayed(spec.display, input.value) : showRaw(input.value)}`
      const where = input.label === dotted ? dotted : `${input.label} (${dotted})`
      problems.push({ key: where, message: `${issueMessage(decoded.failure)}${shown}` })
      continue
    }
    out[field] = spec.optional ? Option.some(decoded.success) : decoded.success
  }
  if (problems.length > 0) return Result.fail(problems)
  const value = out as ValueOf<F>
  const crossProblems = section.check(value)
  return crossProblems.length > 0 ? Result.fail(crossProblems) : Result.succeed(value)
}

/**
 * Decodes values given in code (`Promoter.make({ batchSize: 500 })`) and throws
 * one Error naming every bad or unknown option: a misconfigured part is a
 * programming error, found when the node is composed.
 */
export const decodeOrThrow = <F extends Fields>(
  section: Section<any, F>,
  given: { readonly [K in keyof F]?: unknown } | undefined
): ValueOf<F> => {
  const raw: Record<string, Raw> = {}
  const unknown: Array<string> = []
  for (const [field, value] of Object.entries(given ?? {})) {
    if (!Object.hasOwn(section.fields, field)) unknown.push(field)
    else if (value !== undefined) raw[field] = { value: toInput(value), label: field }
  }
  const decoded = decode(section, raw as never)
  const problems = [
    ...unknown.map((f) => `unknown option ${f} (known: ${Object.keys(section.fields).join(", ")})`),
    ...(Result.isFailure(decoded) ? decoded.failure.map((p) => `${p.key}: ${p.message}`) : [])
  ]
  if (problems.length > 0 || Result.isFailure(decoded)) throw new Error(`invalid options for ${section.section}: ${problems.join("; ")}`)
  return decoded.success
}

/** Values given in code may already be typed: a Duration becomes its milliseconds, so the key's Schema decodes it. */
const toInput = (value: unknown): unknown => (Duration.isDuration(value) ? Duration.toMillis(value) : value)

/** The section's defaults, decoded (optional keys are `Option.none()`). */
export const defaults = <F extends Fields>(section: Section<any, F>): ValueOf<F> => decodeOrThrow(section, {})

/** A value through its key's `display` (which masks what must not be shown); nothing when it cannot be displayed. */
const showDisplayed = (display: (value: any) => string, u: unknown): string => {
  try {
    return JSON.stringify(display(u))
  } catch {
    return "(a value that cannot be shown)"
  }
}

/** A value as a source gave it, for an error message (never for a secret); numeric text reads as the number it meant. */
const showRaw = (u: unknown): string => {
  if (typeof u === "string" && u.trim() !== "" && Number.isFinite(Number(u))) return u.trim()
  try {
    return JSON.stringify(u) ?? String(u)
  } catch {
    return String(u)
  }
}

/** A decoded value as `config check` prints it; secrets are `<redacted>`. */
export const show = (u: unknown): string => {
  if (Option.isOption(u)) return Option.isSome(u) ? show(u.value) : "(unset)"
  if (Redacted.isRedacted(u)) return "<redacted>"
  if (Duration.isDuration(u)) return Duration.format(u)
  if (u instanceof Map) return [...u].map(([k, v]) => `${k}=${show(v)}`).join(",") || "(none)"
  if (Array.isArray(u)) return u.map(show).join(",") || "(none)"
  return typeof u === "string" ? u : (JSON.stringify(u) ?? String(u))
}
