/** Driver side of the worker process: fork it, exchange IPC messages, make sure it ends. */
import { type ChildProcess, fork } from "node:child_process"
import { isNotImplemented } from "./Adapter.ts"
import type { FromWorker, ToWorker, WorkerSpec } from "./protocol.ts"

const WORKER_ENTRY = new URL("./worker.ts", import.meta.url)

/** The worker process failed; `message` is its error message (the stack went to stderr). */
export class WorkerError extends Error {
  readonly workerMessage: string
  constructor(message: string, workerMessage: string) {
    super(message)
    this.workerMessage = workerMessage
  }
}

export interface WorkerProcess {
  readonly pid: number | undefined
  send(msg: ToWorker): void
  /** The next message of this type (rejects if the worker fails, exits or does not answer in time). */
  next<T extends FromWorker["type"]>(type: T, timeoutMs: number): Promise<Extract<FromWorker, { type: T }>>
  /** Wait for the worker to exit; SIGKILL it (this pid only) after `timeoutMs`. */
  finish(timeoutMs?: number): Promise<{ code: number | null; signal: string | null; killed: boolean }>
}

/**
 * `execArgv` replaces (does not extend) the driver's own flags, so every system's worker runs with
 * exactly the flags the harness chose; NODE_OPTIONS reaches it through the inherited environment.
 */
export const forkWorker = (spec: WorkerSpec, execArgv: ReadonlyArray<string>): WorkerProcess => {
  const child: ChildProcess = fork(WORKER_ENTRY, [], {
    execPath: process.execPath, // the same Node binary as the driver
    execArgv: [...execArgv],
    env: { ...process.env, BENCH_WORKER_SPEC: JSON.stringify(spec) },
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  const queue: Array<FromWorker> = []
  const waiters: Array<{ type: string; resolve: (m: FromWorker) => void; reject: (e: Error) => void }> = []
  let failure: Error | null = null
  let exitInfo: { code: number | null; signal: string | null } | null = null

  const failAll = (e: Error) => {
    failure ??= e
    for (const w of waiters.splice(0)) w.reject(failure)
  }
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.on("exit", (code, signal) => {
      exitInfo = { code, signal }
      failAll(new Error(`worker process exited (${code ?? signal}) unexpectedly`))
      resolve(exitInfo)
    })
  })
  child.on("error", (e) => failAll(e))
  child.on("message", (m: FromWorker) => {
    if (m.type === "error") {
      if (!isNotImplemented(m.message)) console.error(`[bench worker ${spec.system}] ${m.stack}`)
      failAll(new WorkerError(`worker process failed: ${m.message}`, m.message))
      return
    }
    const i = waiters.findIndex((w) => w.type === m.type)
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m)
    else queue.push(m)
  })

  return {
    pid: child.pid,
    send: (msg) => {
      if (child.connected) child.send(msg)
    },
    next: (type, timeoutMs) =>
      new Promise((resolve, reject) => {
        const qi = queue.findIndex((m) => m.type === type)
        if (qi >= 0) return resolve(queue.splice(qi, 1)[0] as never)
        if (failure !== null) return reject(failure)
        const timer = setTimeout(() => {
          const wi = waiters.indexOf(waiter)
          if (wi >= 0) waiters.splice(wi, 1)
          reject(new Error(`no '${type}' from the worker process within ${timeoutMs} ms`))
        }, timeoutMs)
        const waiter = {
          type,
          resolve: (m: FromWorker) => {
            clearTimeout(timer)
            resolve(m as never)
          },
          reject: (e: Error) => {
            clearTimeout(timer)
            reject(e)
          }
        }
        waiters.push(waiter)
      }),
    finish: async (timeoutMs = 30_000) => {
      if (exitInfo !== null) return { ...exitInfo, killed: false }
      let timer: NodeJS.Timeout | undefined
      const timedOut = new Promise<null>((r) => (timer = setTimeout(() => r(null), timeoutMs)))
      const r = await Promise.race([exited, timedOut])
      clearTimeout(timer)
      if (r !== null) return { ...r, killed: false }
      child.kill("SIGKILL")
      return { ...(await exited), killed: true }
    }
  }
}
