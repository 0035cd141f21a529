/**
 * The services of a test run (vitest `globalSetup`): a Redis and a NATS server
 * of the run's own on free ports, stopped with the run, and the browser the
 * browser test drives. Tests read the addresses with `inject`, so nothing
 * depends on fixed ports or on services started by hand. A missing program
 * fails the run at once, with one line naming the package to install.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { TestProject } from "vitest/node"
import { broker } from "./StackExchange.kit.js"

declare module "vitest" {
  export interface ProvidedContext {
    /** `redis://127.0.0.1:<port>` of the run's Redis */
    readonly redisUrl: string
    /** `127.0.0.1:<port>` of the run's NATS (with JetStream) */
    readonly natsServers: string
    /** the executables, for tests that run a broker of their own */
    readonly redisServer: string
    readonly natsServer: string
    /** the Chromium executable */
    readonly chromium: string
  }
}

export interface Requirement {
  /** a program name looked up in the search directories, or an absolute path */
  readonly command: string
  /** the Debian package that provides it */
  readonly package: string
}

export const requirements = {
  redis: { command: "redis-server", package: "redis-server" },
  nats: { command: "nats-server", package: "nats-server" },
  chromium: { command: "/usr/bin/chromium", package: "chromium" }
} as const satisfies Record<string, Requirement>

/**
 * Where programs are looked up: `PATH`, then the sbin directories Debian
 * installs servers into (`nats-server` is in /usr/sbin, which a non-root
 * user's `PATH` often lacks).
 */
export const searchPath = (path: string | undefined = process.env.PATH): ReadonlyArray<string> => [
  ...(path ?? "").split(Path.delimiter).filter((dir) => dir !== ""),
  "/usr/local/sbin",
  "/usr/sbin",
  "/sbin"
]

const isExecutable = (file: string): boolean => {
  try {
    Fs.accessSync(file, Fs.constants.X_OK)
    return Fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** The executable a requirement names, if there is one. */
export const locate = (requirement: Requirement, dirs: ReadonlyArray<string>): string | undefined => {
  if (Path.isAbsolute(requirement.command)) {
    return isExecutable(requirement.command) ? requirement.command : undefined
  }
  return dirs.map((dir) => Path.join(dir, requirement.command)).find(isExecutable)
}

/** One line saying what is missing and how to install it, or `undefined` when nothing is. */
export const missing = (
  wanted: ReadonlyArray<Requirement>,
  dirs: ReadonlyArray<string>
): string | undefined => {
  const absent = wanted.filter((requirement) => locate(requirement, dirs) === undefined)
  if (absent.length === 0) return undefined
  const names = absent.map((requirement) => requirement.command).join(", ")
  const packages = [...new Set(absent.map((requirement) => requirement.package))].join(" ")
  return `${names} not found: install ${absent.length === 1 ? "it" : "them"} with "apt-get install -y ${packages}"`
}

/** A program the run needs is not installed; the message is the line to show. */
export class MissingProgram extends Data.TaggedError("MissingProgram")<{ readonly message: string }> {}

const tempDir = (name: string) =>
  Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), `effect-neffos-${name}-`))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )

/**
 * Checks every requirement first, then starts Redis and NATS on free ports
 * (each waits for its ready line, bounded); both stop, by pid, with the scope.
 */
export const start = (dirs: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const line = missing(Object.values(requirements), dirs)
    if (line !== undefined) return yield* new MissingProgram({ message: line })
    const redisServer = locate(requirements.redis, dirs)!
    const natsServer = locate(requirements.nats, dirs)!
    const redisDir = yield* tempDir("redis")
    const redis = yield* broker(
      redisServer,
      (port) => [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        redisDir
      ],
      /Ready to accept connections/
    )
    const natsDir = yield* tempDir("nats")
    const nats = yield* broker(
      natsServer,
      (port) => ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", natsDir],
      /Server is ready/
    )
    return {
      redisUrl: `redis://127.0.0.1:${redis.port}`,
      natsServers: `127.0.0.1:${nats.port}`,
      redisServer,
      natsServer,
      chromium: requirements.chromium.command
    }
  })

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const scope = Effect.runSync(Scope.make())
  const started = await Effect.runPromiseExit(Scope.extend(start(searchPath()), scope))
  if (Exit.isFailure(started)) {
    await Effect.runPromise(Scope.close(scope, started))
    const error = Cause.squash(started.cause)
    // vitest would wrap a thrown error in a report about test files; the line says all there is to say
    if (error instanceof MissingProgram) {
      process.stderr.write(`${error.message}\n`)
      process.exit(1)
    }
    throw error
  }
  project.provide("redisUrl", started.value.redisUrl)
  project.provide("natsServers", started.value.natsServers)
  project.provide("redisServer", started.value.redisServer)
  project.provide("natsServer", started.value.natsServer)
  project.provide("chromium", started.value.chromium)
  return () => Effect.runPromise(Scope.close(scope, Exit.void))
}
