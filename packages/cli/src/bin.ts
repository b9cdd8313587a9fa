#!/usr/bin/env node
/** Entry point of the `asterforge` command (root `pnpm start` runs `asterforge start`). */
import { Effect } from "effect"
import { Command } from "effect/cli"
import { NodeServices } from "@effect/platform-node"
import { Runtime } from "@asterforge/runtime"
import * as Cli from "./Cli.ts"

Runtime.run(
  Cli.command.pipe(Command.run({ version: Cli.version }), Effect.provide(NodeServices.layer)),
  { shutdownTimeout: () => Cli.shutdownTimeout }
)
