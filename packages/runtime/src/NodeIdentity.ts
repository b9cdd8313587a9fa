/**
 * NodeIdentity: who this process is (a fresh id per start, its mode, host, pid
 * and version). Created before anything else so every row and event this
 * process writes can say which node wrote it.
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Crypto from "node:crypto"
import * as Os from "node:os"
import * as ConfigSchema from "./ConfigSchema.ts"
import * as ConfigSection from "./ConfigSection.ts"
import * as NodeMode from "./NodeMode.ts"
import * as Module from "node:module"

/**
 * `[server]`, the node's part: which role this process plays, what it is
 * called, where it keeps local state. (The HTTP server declares `host` and
 * `port` of the same table.)
 *
 * @category config
 */
export const Config = ConfigSection.make(
  "server",
  {
    startMode: ConfigSection.key(ConfigSchema.Literals(NodeMode.names), {
      default: "primary",
      doc: "node mode: what this process runs",
      aliases: [{ name: "ASTERFORGE_MODE", map: (s) => s }]
    }),
    environment: ConfigSection.key(ConfigSchema.Literals(["development", "production"]), {
      default: "development",
      doc: "production enables strict secret rules",
      aliases: [{ name: "NODE_ENV", shown: "NODE_ENV=production", map: (s) => (s.trim() === "production" ? "production" : undefined) }]
    }),
    nodeName: ConfigSection.key(ConfigSchema.NonEmptyString, {
      default: Os.hostname(),
      shownDefault: "(the host name)",
      doc: "name shown for this node in status views"
    }),
    dataDir: ConfigSection.key(ConfigSchema.NonEmptyString, {
      default: ".asterforge",
      doc: "local state directory (embedded Postgres, pid files)"
    })
  },
  { id: "server#node" }
)
export type Config = ConfigSection.TypeOf<typeof Config>

export interface NodeIdentityShape {
  readonly id: string
  readonly name: string
  readonly mode: NodeMode.Name
  /** What this node runs, from its mode and configuration. */
  readonly role: NodeMode.Role
  readonly host: string
  readonly pid: number
  readonly version: string
  readonly startedAt: Date
}

export class NodeIdentity extends Context.Service<NodeIdentity, NodeIdentityShape>()("@asterforge/runtime/NodeIdentity") {}

/** This build's version, from the package manifest (one level above `src/` and `dist/` alike). */
export const version: string = (Module.createRequire(import.meta.url)("../package.json") as { version: string }).version

export interface Options {
  readonly mode: NodeMode.Name
  readonly name: string
  readonly role?: NodeMode.Role | undefined
}

export const make = (options: Options): NodeIdentityShape => ({
  id: Crypto.randomUUID(),
  name: options.name,
  mode: options.mode,
  role: options.role ?? NodeMode.roles[options.mode],
  host: Os.hostname(),
  pid: process.pid,
  version,
  startedAt: new Date()
})

export const layer = (options: Options): Layer.Layer<NodeIdentity> => Layer.sync(NodeIdentity, () => make(options))
