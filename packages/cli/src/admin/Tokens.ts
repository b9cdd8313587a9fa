/**
 * `asterforge tokens create|list|revoke`: API tokens of the admin API. A new
 * token is printed once, alone on the last line (`| tail -1` takes it); only
 * its SHA-256 is stored.
 *
 * @since 0.3.0
 */
import { Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { ControlPlane, type NodeCli } from "@asterforge/runtime"
import * as Table from "../Table.ts"
import { actor, connectionFlags, decodeFlag, json, output, withControl } from "./Connection.ts"

const M = ControlPlane.Models

const tokensText = (tokens: ReadonlyArray<ControlPlane.Models.TokenView>) =>
  Table.render(
    ["NAME", "ROLE", "PREFIX", "CREATED", "BY", "EXPIRES", "LAST USED", "REVOKED"],
    tokens.map((t) => [
      t.name,
      t.role,
      t.prefix,
      Table.when(t.createdAt),
      t.createdBy,
      Table.when(t.expiresAt),
      Table.ago(t.lastUsedAt),
      Table.when(t.revokedAt)
    ])
  )

/** `asterforge tokens ...`. */
export const command = (context: NodeCli.CommandContext) => {
  const run = withControl(context)
  const connection = connectionFlags(context)

  const create = Command.make(
    "create",
    {
      ...connection,
      name: Flag.String("name").pipe(Flag.withDescription("a name for the token (its audit actor is token:<name>)")),
      role: Flag.Literals("role", M.roles).pipe(
        Flag.withDescription("viewer (read), operator (retry, cancel, pause, enqueue), admin (delete, bulk, tokens)")
      ),
      expires: Flag.String("expires").pipe(Flag.withDescription("validity, e.g. 90m, 12h, 30d (default: no expiry)"), Flag.optional),
      json
    },
    (flags) =>
      run(flags, (control) =>
        Effect.gen(function* () {
          const request = yield* decodeFlag("--name/--role/--expires", M.CreateTokenRequest, {
            name: flags.name,
            role: flags.role,
            ...(Option.isSome(flags.expires) ? { expiresIn: flags.expires.value } : {})
          })
          const created = yield* control.createToken(request, actor())
          yield* output(
            flags.json,
            created,
            (t) =>
              `created token ${t.name} (role ${t.role}, ${t.expiresAt === null ? "no expiry" : `expires ${Table.when(t.expiresAt)}`}); it is shown once, store it now:\n${t.token}`
          )
        })
      )
  ).pipe(Command.withDescription("create an API token; the token is printed once, alone on the last line"))

  const list = Command.make(
    "list",
    { ...connection, revoked: Flag.Boolean("revoked").pipe(Flag.withDescription("revoked tokens too"), Flag.withDefault(false)), json },
    (flags) =>
      run(flags, (control) =>
        Effect.flatMap(control.listTokens({ includeRevoked: flags.revoked }), (t) =>
          output(flags.json, { items: t }, (v) => tokensText(v.items))
        )
      )
  ).pipe(Command.withDescription("API tokens (never the tokens themselves)"))

  const revoke = Command.make("revoke", { ...connection, name: Argument.String("name"), json }, (flags) =>
    run(flags, (control) =>
      Effect.gen(function* () {
        const name = yield* decodeFlag("<name>", M.TokenName, flags.name)
        const revoked = yield* control.revokeToken(name, actor())
        yield* output(flags.json, revoked, (t) => `revoked token ${t.name} (role ${t.role})`)
      })
    )
  ).pipe(Command.withDescription("revoke an API token; its browser sessions end (audited)"))

  return Command.make("tokens").pipe(
    Command.withDescription("API tokens of the admin API: create, list, revoke"),
    Command.withSubcommands([create, list, revoke])
  )
}
