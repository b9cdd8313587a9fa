/**
 * The `asterforge` command: the node command line with no application
 * modules (`start`, `worker`, `maintenance run`, `migrate`, `config check`),
 * for what needs no app code, and the admin commands (`tasks`, `queues`,
 * `nodes`, `lanes`, `audit`, `tokens`) that work on the database directly.
 * An application's own entry point (`Runtime.main({ modules })`) has the same
 * node commands, and the admin ones with `commands: adminCommands`.
 *
 * @since 0.2.0
 */
import { Runtime } from "@asterforge/runtime"
import { adminCommands } from "./admin/index.ts"

export { adminCommands } from "./admin/index.ts"

/** Runs the `asterforge` command as this process. */
export const main = (): void =>
  Runtime.main({
    name: "asterforge",
    description: "AsterForge: an application runtime for Effect services",
    commands: adminCommands
  })
