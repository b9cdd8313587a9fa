/**
 * The `asterforge` command: the node command line with no application
 * modules (`start`, `worker`, `maintenance run`, `migrate`, `config check`),
 * for what needs no app code. An application's own entry point
 * (`Runtime.main({ modules })`) has the same commands for its nodes.
 *
 * @since 0.2.0
 */
import { Runtime } from "@asterforge/runtime"

/** Runs the `asterforge` command as this process. */
export const main = (): void =>
  Runtime.main({
    name: "asterforge",
    description: "AsterForge: an application runtime for Effect services"
  })
