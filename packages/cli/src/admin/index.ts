/**
 * The admin commands of `asterforge`: `tasks`, `queues`, `nodes`, `lanes`,
 * `audit`, `tokens`. They read and act on the database directly (no node
 * needs to run), print tables (`--json` for scripts), and audit every action
 * with `cli:<user>` as actor. An application adds them to its own binary with
 * `Runtime.main({ modules, commands: adminCommands })`.
 *
 * @since 0.3.0
 */
import type { NodeCli } from "@asterforge/runtime"
import * as Tasks from "./Tasks.ts"
import * as Tokens from "./Tokens.ts"
import * as Views from "./Views.ts"

/** Every admin command, for `Runtime.main({ commands })`. */
export const adminCommands = (context: NodeCli.CommandContext) => [
  Tasks.command(context),
  ...Views.commands(context),
  Tokens.command(context)
]
