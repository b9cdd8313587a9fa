/**
 * Where configuration values come from: the TOML file, the environment and
 * CLI flags, each read into raw values by dotted key (`worker.concurrency`),
 * with the origin and the name the user wrote (for error messages). Unknown
 * sections, keys and `ASTERFORGE_*` variables are problems with a "did you
 * mean" hint; nothing is decoded here (the sections' Schemas do that).
 */
import * as Result from "effect/Result"
import * as Toml from "effect/encoding/Toml"
import * as Fs from "node:fs"
import type * as ConfigSection from "../../ConfigSection.ts"
import type { Problem } from "../../RuntimeError.ts"
import { scrubTomlError } from "../redact.ts"
import { didYouMean } from "./didYouMean.ts"

/** The sources, lowest precedence first: file < env < flags (defaults below all). */
export interface Sources {
  /** Path of the TOML file. When given explicitly it must exist; `asterforge.toml` in the cwd is optional. */
  readonly file?: string | undefined
  /** Whether a missing file is a problem (default: only when `file` or `ASTERFORGE_CONFIG` names one). */
  readonly fileRequired?: boolean | undefined
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** CLI flags, already mapped to keys: `{ key: "server.port", value: "8080", label: "--port" }`. */
  readonly flags?: ReadonlyArray<{ readonly key: string; readonly value: unknown; readonly label: string }> | undefined
}

export type Origin = "default" | "file" | "env" | "flag" | "unset"

export interface RawValue {
  readonly value: unknown
  readonly origin: Origin
  /** How to name this value in an error message. */
  readonly label: string
}

/** One known key: its dotted name, the section declaring it and the field there. */
export interface KeySpec {
  readonly dotted: string
  readonly section: ConfigSection.Any
  readonly field: string
  readonly key: ConfigSection.Key<unknown>
}

/** Every known key by dotted name, and every table name. */
export interface Catalog {
  readonly keys: ReadonlyMap<string, KeySpec>
  readonly tables: ReadonlySet<string>
}

/** Variables that configure where configuration comes from, not a key. */
const reservedEnv = new Set(["ASTERFORGE_MODE", "ASTERFORGE_CONFIG"])

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u) && !(u instanceof Date)

/** Reads and parses the TOML file; problems are collected, not thrown. */
export const readFile = (catalog: Catalog, path: string, required: boolean, problems: Array<Problem>): Map<string, RawValue> => {
  const out = new Map<string, RawValue>()
  let text: string
  try {
    text = Fs.readFileSync(path, "utf8")
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === "ENOENT" && !required) return out
    problems.push({ key: path, message: code === "ENOENT" ? "config file not found" : `cannot read config file: ${String(e)}` })
    return out
  }
  const parsed = Toml.parse(text)
  if (Result.isFailure(parsed)) {
    problems.push({ key: path, message: `malformed TOML: ${scrubTomlError(text, parsed.failure.message)}` })
    return out
  }
  walk(catalog, path, parsed.success, "", out, problems)
  return out
}

const isTablePrefix = (catalog: Catalog, path: string): boolean => [...catalog.tables].some((t) => t === path || t.startsWith(`${path}.`))

const walk = (
  catalog: Catalog,
  file: string,
  node: Record<string, unknown>,
  prefix: string,
  out: Map<string, RawValue>,
  problems: Array<Problem>
) => {
  for (const [name, value] of Object.entries(node)) {
    const path = prefix === "" ? name : `${prefix}.${name}`
    if (prefix !== "" && catalog.keys.has(path)) {
      out.set(path, { value, origin: "file", label: path })
    } else if (isTablePrefix(catalog, path)) {
      if (isPlainObject(value)) walk(catalog, file, value, path, out, problems)
      else problems.push({ key: path, message: `expected a [${path}] table` })
    } else if (prefix === "") {
      const tops = [...new Set([...catalog.tables].map((t) => t.split(".")[0]!))]
      problems.push({ key: `${file}: [${name}]`, message: `unknown section${didYouMean(name, tops)}` })
    } else {
      const siblings = [...catalog.keys.keys(), ...catalog.tables]
        .filter((k) => k.startsWith(`${prefix}.`))
        .map((k) => k.slice(prefix.length + 1).split(".")[0]!)
      problems.push({ key: path, message: `unknown key${didYouMean(name, [...new Set(siblings)])}` })
    }
  }
}

/** `ASTERFORGE_<TABLE>_<KEY>` per key, plus the well-known names (`DATABASE_URL`); the explicit name wins. */
export const readEnv = (
  catalog: Catalog,
  env: Readonly<Record<string, string | undefined>>,
  envName: (dotted: string) => string,
  problems: Array<Problem>
): Map<string, RawValue> => {
  const out = new Map<string, RawValue>()
  const known = new Set<string>()
  for (const spec of catalog.keys.values()) {
    const name = envName(spec.dotted)
    known.add(name)
    for (const alias of spec.key.aliases) {
      const raw = env[alias.name]
      if (raw === undefined || raw === "") continue
      const mapped = alias.map(raw)
      if (mapped !== undefined) out.set(spec.dotted, { value: mapped, origin: "env", label: alias.name })
    }
    const raw = env[name]
    if (raw !== undefined && raw !== "") out.set(spec.dotted, { value: raw, origin: "env", label: name })
  }
  // A typo in an ASTERFORGE_* variable would otherwise be silently ignored.
  for (const name of Object.keys(env)) {
    if (name.startsWith("ASTERFORGE_") && !known.has(name) && !reservedEnv.has(name)) {
      problems.push({ key: name, message: `unknown environment variable${didYouMean(name, [...known])}` })
    }
  }
  return out
}

/** Flags, already named by key; an unknown key (from `--set`) is a problem. */
export const readFlags = (catalog: Catalog, flags: NonNullable<Sources["flags"]>, problems: Array<Problem>): Map<string, RawValue> => {
  const out = new Map<string, RawValue>()
  for (const f of flags) {
    if (f.value === undefined) continue
    if (!catalog.keys.has(f.key)) {
      problems.push({ key: f.label, message: `unknown key "${f.key}"${didYouMean(f.key, [...catalog.keys.keys()])}` })
      continue
    }
    out.set(f.key, { value: f.value, origin: "flag", label: f.label })
  }
  return out
}
