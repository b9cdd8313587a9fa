#!/usr/bin/env node
/** Entry point of the `asterforge` command (root `pnpm start` runs `asterforge start`). */
import { main } from "./Cli.ts"

main()
