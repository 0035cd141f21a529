import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { locate, missing, MissingProgram, requirements, searchPath, start } from "./services.js"

/** A directory of the test's own, removed with the scope. */
const directory = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-neffos-services-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const program = (dir: string, name: string, mode = 0o755) => {
  const file = Path.join(dir, name)
  Fs.writeFileSync(file, "#!/bin/sh\n", { mode })
  return file
}

const servers = [requirements.redis, requirements.nats]

const root = Path.join(import.meta.dirname, "..")
const nowhere = Path.join(root, "no-such-directory")
/** what a run without PATH lacks here; `undefined` where even that run would find everything */
const withoutPath = missing(Object.values(requirements), searchPath(nowhere))

/** Runs vitest itself (on a quick file) with this PATH: exit code and stderr, bounded. */
const vitest = (path: string) =>
  Effect.async<{ readonly code: number | null; readonly stderr: string }>((resume) => {
    const child = ChildProcess.spawn(
      process.execPath,
      [Path.join(root, "node_modules", "vitest", "vitest.mjs"), "run", "test/Message.test.ts"],
      { cwd: root, env: { ...process.env, PATH: path, NO_COLOR: "1" }, stdio: ["ignore", "ignore", "pipe"] }
    )
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => stderr += chunk.toString("utf8"))
    child.once("exit", (code) => resume(Effect.succeed({ code, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  }).pipe(
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("vitest did not exit") }),
    Effect.orDie
  )

describe("test services", () => {
  it.scoped("finds a program in the search directories", () =>
    Effect.gen(function*() {
      const dir = yield* directory
      const redis = program(dir, "redis-server")
      program(dir, "nats-server")
      assert.strictEqual(locate(requirements.redis, [dir]), redis)
      assert.isUndefined(missing(servers, ["/nonexistent", dir]))
    }))

  it.scoped("names the one missing program and its package in one line", () =>
    Effect.gen(function*() {
      const dir = yield* directory
      program(dir, "redis-server")
      program(dir, "nats-server", 0o644)
      assert.strictEqual(
        missing(servers, [dir]),
        "nats-server not found: install it with \"apt-get install -y nats-server\""
      )
    }))

  it.scoped("names every missing program in one line", () =>
    Effect.gen(function*() {
      const dir = yield* directory
      const browser = { command: Path.join(dir, "chromium"), package: "chromium" }
      assert.strictEqual(
        missing([...servers, browser], [dir]),
        `redis-server, nats-server, ${browser.command} not found: install them with ` +
          "\"apt-get install -y redis-server nats-server chromium\""
      )
    }))

  it("looks in PATH, then in the sbin directories", () => {
    assert.deepStrictEqual(searchPath(["/a", "", "/b"].join(Path.delimiter)), [
      "/a",
      "/b",
      "/usr/local/sbin",
      "/usr/sbin",
      "/sbin"
    ])
  })

  it.scoped("starting fails at once, before any server starts, when a program is missing", () =>
    Effect.gen(function*() {
      const dir = yield* directory
      program(dir, "nats-server")
      const error = yield* Effect.flip(start([dir]))
      assert.instanceOf(error, MissingProgram)
      assert.notInclude(error.message, "\n")
      assert.match(error.message, /^redis-server\b.* not found: install .* with "apt-get install -y redis-server\b/)
    }))

  it.live.skipIf(withoutPath === undefined)(
    "a run without the programs ends at once with the one line",
    () =>
      Effect.gen(function*() {
        const { code, stderr } = yield* vitest(nowhere)
        assert.strictEqual(code, 1)
        assert.strictEqual(stderr, `${withoutPath}\n`)
      }),
    30_000
  )
})
