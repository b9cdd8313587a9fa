// Background work on AsterForge: a typed task, enqueued in the same transaction as the app's write.
import { Effect, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { SqlClient } from "effect/sql"
import { ApplicationModule, HttpProblem, Runtime, Task, TaskQueue } from "@asterforge/runtime"

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
              const added = yield* sql`INSERT INTO signups (email) VALUES (${email}) ON CONFLICT DO NOTHING RETURNING email`
              if (added.length === 0) return undefined // signed up before: no second welcome
              return yield* tasks.enqueue(SendWelcome, { email }, { uniqueKey: `welcome:${email}` })
            })
          )
          if (task === undefined) return HttpProblem.make(409, "AlreadySignedUp", `${email} has signed up already`)
          return HttpServerResponse.jsonUnsafe(task, { status: 202 })
        }).pipe(
          // Refusals in the node's shape: a refused enqueue keeps its status (bad input 4xx, an outage 503).
          Effect.catchTag("RuntimeError", (e) => Effect.succeed(HttpProblem.fromRuntimeError(e))),
          Effect.catchTag("SqlError", () =>
            Effect.succeed(HttpProblem.make(503, "TaskStoreUnavailable", "the database is unavailable; retry"))
          )
        )
      )
    })
  )
})

Runtime.main({ modules: [Signups] })
