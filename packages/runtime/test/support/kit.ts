/**
 * The test kit: one place for what every test sets up.
 *
 * - configuration: `testConfig(env)`, the defaults plus environment overrides,
 *   always through `RuntimeConfig.resolve` and the documented variable names;
 * - a fresh database: `database(label)` as a Layer (created when built, dropped
 *   when released), `freshDatabase(label)` for promise-style tests, and
 *   `setUp(statements)`, `queryDb` / `query` to set up and assert outside the
 *   code under test;
 * - in-process nodes: `node(...)` (the whole `Runtime.layer` the CLI runs) and
 *   `core(...)` (the services every node has, nothing that runs by itself) as
 *   Layers on the current `TestDatabase`, and `startNode(...)` for
 *   promise-style tests that spawn processes around an in-process client;
 * - waiting: `eventually` polls a condition, in real time, within a bound.
 *
 * With `@effect/vitest`: share a node across a describe block with
 * `layer(Kit.node(...).pipe(Layer.provideMerge(Kit.database("x"))), { excludeTestServices: true })`.
 * `excludeTestServices` keeps the real clock: a node's own fibers (polling,
 * heartbeats, lanes) must see time pass. Provide `TestClock.layer()` to one
 * test when that test, not the node, is about time.
 */
import { Cause, Context, Effect, Exit, Layer, Result, Scope } from "effect"
import * as Net from "node:net"
import type { ApplicationModule } from "../../src/ApplicationModule.ts"
import type * as NodeMode from "../../src/NodeMode.ts"
import * as Runtime from "../../src/Runtime.ts"
import * as RuntimeConfig from "../../src/RuntimeConfig.ts"
import { type TaskInfo, TaskQueue } from "../../src/TaskQueue.ts"
import * as TaskState from "../../src/TaskState.ts"
import { freshDatabase, query } from "./database.ts"

export { freshDatabase, query, type TestDatabase as FreshDatabase } from "./database.ts"

export type Env = Readonly<Record<string, string>>

// ---------------------------------------------------------------------------
// Configuration

/** A path that never exists: tests configure through environment variables only. */
export const noConfigFile = "/nonexistent/asterforge.toml"

/**
 * The defaults plus `env`, resolved like a node resolves its own (with the
 * modules' own sections); an invalid set-up throws with every problem.
 */
export const testConfig = (env: Env = {}, modules: ReadonlyArray<ApplicationModule> = []): RuntimeConfig.RuntimeConfigShape =>
  Result.getOrThrow(
    RuntimeConfig.resolve(
      { file: noConfigFile, fileRequired: false, env },
      modules.flatMap((m) => m.config ?? [])
    )
  )

/** What an in-process node runs with unless the test says otherwise: quiet, and quick to stop. */
const nodeDefaults: Env = {
  ASTERFORGE_TELEMETRY_LOG_LEVEL: "warn",
  ASTERFORGE_SHUTDOWN_GRACE: "1s"
}

// ---------------------------------------------------------------------------
// The test database

/** The database the code under test connects to. */
export class TestDatabase extends Context.Service<
  TestDatabase,
  {
    readonly name: string
    readonly url: string
  }
>()("asterforge/test/TestDatabase") {}

/** A fresh database on the test server, created when the layer is built and dropped when it is released. */
export const database = (label: string): Layer.Layer<TestDatabase> =>
  Layer.effect(
    TestDatabase,
    Effect.acquireRelease(
      Effect.promise(() => freshDatabase(label)),
      (db) => Effect.promise(() => db.drop())
    ).pipe(Effect.map((db) => TestDatabase.of({ name: db.name, url: db.url })))
  )

/** A database that already exists (made by `freshDatabase`); never dropped by the layer. */
export const existingDatabase = (url: string): Layer.Layer<TestDatabase> =>
  Layer.succeed(TestDatabase, TestDatabase.of({ name: new URL(url).pathname.slice(1), url }))

/** One statement on its own connection to the test database (not the node's pool): set-up and assertions. */
export const queryDb = <Row = Record<string, unknown>>(
  text: string,
  params: ReadonlyArray<unknown> = []
): Effect.Effect<ReadonlyArray<Row>, never, TestDatabase> =>
  Effect.flatMap(TestDatabase, (db) => Effect.promise(() => query<Row>(db.url, text, params)))

/** Runs set-up statements (test tables, fixtures) on the test database once, when the layer is built. */
export const setUp = (statements: ReadonlyArray<string>): Layer.Layer<never, never, TestDatabase> =>
  Layer.effectDiscard(Effect.forEach(statements, (statement) => queryDb(statement), { discard: true }))

/** The test configuration pointed at the test database. */
export const databaseConfig = (
  env: Env = {},
  modules: ReadonlyArray<ApplicationModule> = []
): Effect.Effect<RuntimeConfig.RuntimeConfigShape, never, TestDatabase> =>
  Effect.map(TestDatabase, (db) => testConfig({ DATABASE_URL: db.url, ...env }, modules))

/** `RuntimeConfig` for layers built piece by piece (database, audit log, ...), on the test database. */
export const configLayer = (env: Env = {}): Layer.Layer<RuntimeConfig.RuntimeConfig | RuntimeConfig.SectionServices, never, TestDatabase> =>
  Layer.unwrap(Effect.map(databaseConfig(env), RuntimeConfig.layer))

// ---------------------------------------------------------------------------
// In-process nodes

export interface NodeOptions {
  /** Default `primary`. */
  readonly mode?: NodeMode.Name | undefined
  readonly modules?: ReadonlyArray<ApplicationModule> | undefined
  /** Environment overrides, by their documented names. */
  readonly env?: Env | undefined
}

/** Where an in-process node's HTTP server listens. */
export class NodeAddress extends Context.Service<NodeAddress, { readonly baseUrl: string }>()("asterforge/test/NodeAddress") {}

/**
 * Builds `layer` with a memo map of its own. A node is a whole process in
 * miniature: a second node built inside a test (whose context carries the
 * shared layer's memo map) must get its own dispatcher, pool and lanes, not
 * the first node's memoized ones.
 */
const isolated = <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const memoMap = yield* Layer.makeMemoMap
      return yield* Layer.buildWithMemoMap(layer, memoMap, yield* Effect.scope)
    })
  )

/**
 * A whole node (`Runtime.layer`, as the CLI runs it) on the test database and
 * a free loopback port; releasing the layer runs the real shutdown sequence.
 */
export const node = (options: NodeOptions = {}) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const port = yield* Effect.promise(freePort)
      const config = yield* databaseConfig({ ...nodeDefaults, ASTERFORGE_SERVER_PORT: String(port), ...options.env }, options.modules)
      return isolated(Runtime.layer({ config, mode: options.mode ?? "primary", modules: options.modules ?? [] })).pipe(
        Layer.merge(Layer.succeed(NodeAddress, NodeAddress.of({ baseUrl: `http://127.0.0.1:${port}` })))
      )
    })
  )

/**
 * The services every node has (database with migrations, audit log, health,
 * task queue, node row) and nothing that acts by itself: no dispatcher, no
 * lanes, no HTTP. For tests that drive one part by hand.
 */
export const core = (options: NodeOptions = {}) =>
  Layer.unwrap(
    Effect.map(databaseConfig({ ...nodeDefaults, ...options.env }, options.modules), (config) =>
      isolated(Runtime.coreLayer(config, options.mode ?? "primary", options.modules ?? []))
    )
  )

/** An in-process node for promise-style tests: `run` effects against it, `close` it (the real shutdown). */
export interface TestNode {
  readonly context: Context.Context<any>
  readonly baseUrl: string
  readonly run: <A, E>(effect: Effect.Effect<A, E, any>) => Promise<A>
  readonly close: () => Promise<void>
}

export const startNode = async (options: NodeOptions & { readonly url: string }): Promise<TestNode> => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(node(options).pipe(Layer.provide(existingDatabase(options.url))), scope))
  return {
    context,
    baseUrl: Context.get(context, NodeAddress).baseUrl,
    run: (effect) => Effect.runPromise(Effect.provideContext(effect, context) as Effect.Effect<any, any, never>),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

// ---------------------------------------------------------------------------
// Waiting

const pollEveryMs = 50

/**
 * Polls `check` until it gives a value other than undefined, and returns it.
 * Bounded (`timeoutMs`), never a timing assertion. A failing check counts as
 * "not yet"; its last error is in the timeout message. Takes an Effect (and
 * returns one) or an async function (and returns a Promise). Waits in real
 * time, whatever clock the test runs under: it waits on the database and on
 * other processes.
 */
export function eventually<A, E, R>(check: Effect.Effect<A | undefined, E, R>, what: string, timeoutMs?: number): Effect.Effect<A, Error, R>
export function eventually<A>(check: () => Promise<A | undefined>, what: string, timeoutMs?: number): Promise<A>
export function eventually<A, E, R>(
  check: Effect.Effect<A | undefined, E, R> | (() => Promise<A | undefined>),
  what: string,
  timeoutMs = 20_000
): Effect.Effect<A, Error, R> | Promise<A> {
  if (Effect.isEffect(check)) return eventuallyEffect(check as Effect.Effect<A | undefined, E, R>, what, timeoutMs)
  return Effect.runPromise(eventuallyEffect(Effect.tryPromise(check), what, timeoutMs))
}

const realPause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, pollEveryMs)))

const eventuallyEffect = <A, E, R>(
  check: Effect.Effect<A | undefined, E, R>,
  what: string,
  timeoutMs: number
): Effect.Effect<A, Error, R> =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    let last: string | undefined
    while (Date.now() < deadline) {
      const exit = yield* Effect.exit(check)
      if (Exit.isSuccess(exit)) {
        if (exit.value !== undefined) return exit.value
      } else {
        if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.failCause(exit.cause as Cause.Cause<never>)
        last = lastError(exit.cause)
      }
      yield* realPause
    }
    return yield* Effect.fail(new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`))
  })

const lastError = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  // tryPromise wraps what the async check threw; show the original.
  const original = error instanceof Error && error.cause !== undefined ? error.cause : error
  return String(original)
}

/** A loopback port that was free a moment ago. */
export const freePort = () =>
  new Promise<number>((resolve) => {
    const s = Net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as Net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

/** A task as the node's `TaskQueue` reads it. */
export const taskInfo = (id: string) => Effect.flatMap(TaskQueue, (q) => q.get(id))

/** Waits until the task satisfies `predicate`; `what` names the wait in the timeout's message. */
export const untilTask = (id: string, predicate: (t: TaskInfo) => boolean, what: string) =>
  eventually(
    Effect.map(taskInfo(id), (t) => (predicate(t) ? t : undefined)),
    `task ${id} ${what}`
  )

/** Waits until the task has finished (succeeded, failed or cancelled). */
export const taskFinished = (id: string) =>
  untilTask(id, (t) => (TaskState.finished as ReadonlyArray<string>).includes(t.state), "to finish")
