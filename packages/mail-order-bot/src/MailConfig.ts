/**
 * MailConfig: the bot's `[mail]` section: which mailbox, how to reach it, and
 * whether to poll it or wait on IMAP IDLE.
 *
 * Read like every other section: `[mail]` in asterforge.toml, then
 * `ASTERFORGE_MAIL_<KEY>` variables, then `--set mail.<key>=...`; validated
 * with the runtime's sections before anything starts, every problem listed
 * (`host`, `user` and `password` are required), the password never shown.
 *
 * ```toml
 * [mail]
 * host = "imap.example.com"
 * user = "orders@example.com"
 * password = "..."            # or ASTERFORGE_MAIL_PASSWORD
 * mode = "idle"              # or "poll"
 * ```
 *
 * @since 0.3.0
 */
import { Redacted, Schema, SchemaTransformation } from "effect"
import { ConfigSchema, ConfigSection } from "@asterforge/runtime"
import type * as ImapSource from "./ImapSource.ts"

/** Text that must be set: an empty default reads as "required", naming what to set. */
const required = (what: string) => Schema.String.check(Schema.makeFilter((s: string) => s.trim() !== "" || `required: ${what}`))

const requiredText = (what: string): ConfigSchema.Value<string> => required(what) as unknown as ConfigSchema.Value<string>

const requiredSecret = (what: string): ConfigSchema.Value<Redacted.Redacted<string>> =>
  required(what).pipe(
    Schema.decodeTo(
      Schema.Redacted(Schema.String),
      SchemaTransformation.transform({
        decode: (s: string) => Redacted.make(s),
        encode: (r: Redacted.Redacted<string>) => Redacted.value(r)
      })
    )
  ) as unknown as ConfigSchema.Value<Redacted.Redacted<string>>

/**
 * `[mail]`: the mailbox the bot reads orders from.
 *
 * @category config
 */
export const Config = ConfigSection.make("mail", {
  host: ConfigSection.key(requiredText("the IMAP server's host name (ASTERFORGE_MAIL_HOST)"), {
    default: "",
    doc: "IMAP server host (required)",
    shownDefault: "(required)"
  }),
  port: ConfigSection.key(ConfigSchema.Int(1, 65535), { default: 993, doc: "IMAP port: 993 with tls, usually 143 without" }),
  tls: ConfigSection.key(ConfigSchema.Boolean, {
    default: true,
    doc: "connect with TLS (993); false: plain, upgraded with STARTTLS when the server offers it"
  }),
  user: ConfigSection.key(requiredText("the mailbox login (ASTERFORGE_MAIL_USER)"), {
    default: "",
    doc: "login name (required)",
    shownDefault: "(required)"
  }),
  password: ConfigSection.key(requiredSecret("the mailbox password (ASTERFORGE_MAIL_PASSWORD)"), {
    default: "",
    doc: "login password (required; never logged)",
    secret: true,
    shownDefault: "(required)"
  }),
  mailbox: ConfigSection.key(ConfigSchema.NonEmptyString, { default: "INBOX", doc: "the folder order mails arrive in" }),
  mode: ConfigSection.key(ConfigSchema.Literals(["poll", "idle"]), {
    default: "poll",
    doc: "poll: search for unread mail every poll_interval; idle: the server wakes the bot (IMAP IDLE)"
  }),
  pollInterval: ConfigSection.key(ConfigSchema.Duration({ minimum: "100 millis", maximum: "1 hour" }), {
    default: "30 seconds",
    doc: "mode = poll: time between two searches"
  }),
  maxIdleTime: ConfigSection.key(ConfigSchema.Duration({ minimum: "1 second", maximum: "29 minutes" }), {
    default: "5 minutes",
    doc: "mode = idle: IDLE is renewed, and the mailbox searched again, at least this often (IDLE can die silently)"
  }),
  connectTimeout: ConfigSection.key(ConfigSchema.Duration({ minimum: "100 millis", maximum: "5 minutes" }), {
    default: "10 seconds",
    doc: "connecting and logging in, and each IMAP command, must finish within this"
  }),
  failedFolder: ConfigSection.optionalKey(ConfigSchema.NonEmptyString, {
    doc: "move mails that are not orders here (created when missing); unset: leave them unread and flag them"
  })
})
export type Config = ConfigSection.TypeOf<typeof Config>

/** How the IMAP source and the handler reach the mailbox, from the section. */
export const settings = (c: Config): ImapSource.Settings => ({
  host: c.host,
  port: c.port,
  tls: c.tls,
  user: c.user,
  password: c.password,
  mailbox: c.mailbox,
  mode: c.mode,
  pollInterval: c.pollInterval,
  maxIdleTime: c.maxIdleTime,
  timeout: c.connectTimeout
})
