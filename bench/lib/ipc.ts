/**
 * Typed request/reply over the Node IPC channel between the benchmark and its child processes
 * (servers and the load generator). The child `serve`s an API object; the parent `spawnWorker`s it
 * and `call`s methods by name.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export type Api = { readonly [method: string]: (arg: never) => unknown }

interface Request {
  readonly id: number
  readonly method: string
  readonly arg: unknown
}

type Response =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string }

const ready = "ready"

/** Runs in the child: answers requests with the API's methods and exits when the parent goes away. */
export const serve = (api: Api): void => {
  const send = (message: Response | typeof ready) => process.send?.(message)
  const methods = api as unknown as Record<string, (arg: unknown) => unknown>
  process.on("message", (request: Request) => {
    Promise.resolve()
      .then(() => methods[request.method](request.arg))
      .then(
        (value) => send({ id: request.id, ok: true, value }),
        (error: unknown) =>
          send({
            id: request.id,
            ok: false,
            error: error instanceof Error ? error.stack ?? error.message : String(error)
          })
      )
  })
  process.on("disconnect", () => process.exit(0))
  send(ready)
}

export interface Worker<A extends Api> {
  readonly call: <K extends keyof A & string>(
    method: K,
    ...args: Parameters<A[K]>
  ) => Promise<Awaited<ReturnType<A[K]>>>
  readonly stop: () => Promise<void>
}

export interface SpawnOptions {
  /** The CPU to pin the process to with taskset, or undefined for no pinning. */
  readonly cpu: number | undefined
  readonly nodeFlags?: ReadonlyArray<string>
  readonly args?: ReadonlyArray<string>
}

/** No single request (a connection wave, an echo run, a broadcast) may take longer than this. */
const callTimeoutMs = 120_000

const live = new Set<ChildProcess>()

/** Kills every child still running; safe to call from an `exit` handler. */
export const killAll = () => {
  for (const child of live) child.kill("SIGKILL")
}

const benchDir = path.dirname(path.dirname(fileURLToPath(import.meta.url)))

/** Starts `node --import tsx bench/<file>` (pinned when asked) and resolves once it serves requests. */
export const spawnWorker = <A extends Api>(file: string, options: SpawnOptions): Promise<Worker<A>> => {
  const node = [process.execPath, ...(options.nodeFlags ?? []), "--import", "tsx", path.join(benchDir, file)]
  const argv = [...node, ...(options.args ?? [])]
  const command = options.cpu === undefined ? argv : ["taskset", "-c", String(options.cpu), ...argv]
  // children report over IPC only; stdout is dropped so stray logging cannot garble the tables
  const child = spawn(command[0], command.slice(1), { stdio: ["ignore", "ignore", "inherit", "ipc"] })
  live.add(child)
  const pending = new Map<number, { resolve: (value: never) => void; reject: (error: Error) => void }>()
  let nextId = 0
  let exited: Error | undefined
  const exitedPromise = new Promise<void>((resolve) => child.once("exit", () => resolve()))

  child.on("exit", (code, signal) => {
    live.delete(child)
    exited = new Error(`${file} exited (code ${code}, signal ${signal})`)
    for (const p of pending.values()) p.reject(exited)
    pending.clear()
  })

  const stop = async () => {
    if (exited) return
    child.kill("SIGTERM")
    const timer = setTimeout(() => child.kill("SIGKILL"), 3000)
    await exitedPromise
    clearTimeout(timer)
  }

  const call: Worker<A>["call"] = (method, ...args) =>
    new Promise((resolve, reject) => {
      if (exited) return reject(exited)
      const id = nextId++
      const timer = setTimeout(() => {
        pending.delete(id)
        reject(new Error(`${file}: ${method} timed out after ${callTimeoutMs} ms`))
      }, callTimeoutMs)
      pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        reject: (error) => {
          clearTimeout(timer)
          reject(error)
        }
      })
      child.send({ id, method, arg: args[0] } satisfies Request)
    })

  return new Promise((resolve, reject) => {
    const startup = setTimeout(() => {
      void stop()
      reject(new Error(`${file} did not start within 30 s`))
    }, 30_000)
    child.once("exit", () => {
      clearTimeout(startup)
      reject(exited)
    })
    child.on("message", (message: Response | typeof ready) => {
      if (message === ready) {
        clearTimeout(startup)
        resolve({ call, stop })
        return
      }
      const p = pending.get(message.id)
      if (!p) return
      pending.delete(message.id)
      if (message.ok) p.resolve(message.value as never)
      else p.reject(new Error(`${file}: ${message.error}`))
    })
  })
}
