#!/usr/bin/env node
/**
 * The mail-order bot's entry point: the AsterForge node command line with the
 * bot's module (`start`, `worker`, `migrate`, `config check`, ... each with
 * --help). `pnpm --filter mail-order-bot start` runs `start`.
 */
import { Runtime } from "@asterforge/runtime"
import * as MailOrderBot from "./MailOrderBot.ts"

Runtime.main({
  modules: [MailOrderBot.module],
  name: "mail-order-bot",
  description: "reads order e-mails from an IMAP mailbox (polling or IDLE) and writes orders"
})
