// Background work on AsterForge: a typed task, enqueued in the same transaction as the app's write.
import { Effect, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { SqlClient } from "effect/sql"
import { ApplicationModule, Runtime, Task, TaskQueue } from "@asterforge/runtime"

const SendWelcome = Task.define({
  name: "mail.send_welcome",
  payload: Schema.Struct({ email: Schema.String }),
  queue: "mail",
  retry: { maxAttempts: 5 },
  timeout: "30 seconds"
})

const Signups = ApplicationModule.make({
  name: "signups",
  tasks: [
    Task.handler(SendWelcome, ({ email }, task) =>
      email.endsWith("@invalid.example")
        ? Task.terminal(`cannot deliver to ${email}`, "mail.undeliverable")
        : Effect.logInfo(`welcome mail to ${email} (attempt ${task.attempt})`)
    )
  ],
  routes: HttpRouter.use(
    Effect.fn(function* (router) {
      const sql = yield* SqlClient.SqlClient
      const tasks = yield* TaskQueue.TaskQueue
      yield* router.add(
        "POST",
        "/signups/:email",
        Effect.gen(function* () {
          const { email = "" } = yield* HttpRouter.params
          // The signup row and its task commit together, or neither does.
          const task = yield* sql.withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO signups (email) VALUES (${email})` // the app's own table
              return yield* tasks.enqueue(SendWelcome, { email }, { uniqueKey: `welcome:${email}` })
            })
          )
          return HttpServerResponse.jsonUnsafe(task, { status: 202 })
        }).pipe(Effect.catch((e) => Effect.succeed(HttpServerResponse.jsonUnsafe({ error: String(e) }, { status: 400 }))))
      )
    })
  )
})

Runtime.main({ modules: [Signups] })
