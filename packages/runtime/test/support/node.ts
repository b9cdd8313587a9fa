/**
 * An in-process node for tests: the same `Runtime.layer` the CLI runs, built
 * in a scope the test closes (which runs the real shutdown sequence).
 */
import { Context, Effect, Exit, Layer, Result, Scope } from "effect"
import * as Net from "node:net"
import type { ApplicationModule } from "../../src/ApplicationModule.ts"
import * as NodeMode from "../../src/NodeMode.ts"
import * as Runtime from "../../src/Runtime.ts"
import * as RuntimeConfig from "../../src/RuntimeConfig.ts"

export interface TestNode {
  readonly context: Context.Context<any>
  readonly baseUrl: string
  readonly run: <A, E>(effect: Effect.Effect<A, E, any>) => Promise<A>
  readonly close: () => Promise<void>
}

export const startNode = async (options: {
  readonly url: string
  readonly mode?: NodeMode.Name
  readonly modules?: ReadonlyArray<ApplicationModule>
  readonly env?: Record<string, string>
}): Promise<TestNode> => {
  const port = await freePort()
  const config = Result.getOrThrow(RuntimeConfig.resolve({
    file: "/nonexistent/asterforge.toml",
    fileRequired: false,
    env: {
      DATABASE_URL: options.url,
      ASTERFORGE_SERVER_PORT: String(port),
      ASTERFORGE_TELEMETRY_LOG_LEVEL: "warn",
      ASTERFORGE_SHUTDOWN_GRACE: "1s",
      ...options.env
    }
  }))
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(
    Runtime.layer({ config, mode: options.mode ?? "primary", modules: options.modules ?? [] }),
    scope
  ))
  return {
    context,
    baseUrl: `http://127.0.0.1:${port}`,
    run: (effect) => Effect.runPromise(Effect.provideContext(effect, context) as Effect.Effect<any, any, never>),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** Polls `check` until it returns a value other than undefined. Bounded; never a timing assertion. */
export const eventually = async <A>(check: () => Promise<A | undefined>, what: string, timeoutMs = 20_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const v = await check()
      if (v !== undefined) return v
    } catch (e) {
      last = e
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`)
}

/** A loopback port that was free a moment ago. */
export const freePort = () =>
  new Promise<number>((resolve) => {
    const s = Net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as Net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
