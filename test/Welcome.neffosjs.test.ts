/**
 * What `_OnNamespaceConnected` sends reaches the published neffos.js 0.1.34, on Node
 * (in a process of its own) and in Chromium, on every one of 100 fresh connections
 * to the example chat server: with nothing sent after `connect`, and with an ask
 * right after it. The check itself is test/neffosjs/check.mjs. Then the frames that
 * make it so: the ping behind the connect reply, and its bound.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as path from "node:path"
import WebSocket from "ws"
import { ChatServer } from "../examples/chat.js"
import * as Message from "../src/Message.js"
import * as NodeServer from "../src/NodeServer.js"
import * as TestServer from "../src/TestServer.js"
import { browser, neffosModule, serveFiles } from "./chromium.js"
import { captureEvents } from "./fixtures.js"
import { startServer } from "./utils.js"

interface Result {
  readonly connections: number
  readonly welcomed: number
  readonly errors: ReadonlyArray<string>
}

const CONNECTIONS = 100
/** how long a client without an ask waits for its welcome after `connect` resolved */
const WAIT = 1000

const dir = path.join(import.meta.dirname, "neffosjs")

/** The example chat server on a free port, for the lifetime of the scope. */
const chatServer = Effect.gen(function*() {
  const context = yield* Layer.build(ChatServer(0))
  return (yield* Effect.provide(NodeServer.NodeServer, context)).url
})

/** The check in a Node process of its own (killed after 10 s). */
const onNode = (url: string, ask: boolean) =>
  Effect.async<Result, Error>((resume) => {
    const args = [path.join(dir, "node.mjs"), url, String(CONNECTIONS), ask ? "ask" : "no-ask", String(WAIT)]
    ChildProcess.execFile(process.execPath, args, { timeout: 10_000 }, (error, stdout, stderr) => {
      if (error !== null) resume(Effect.fail(new Error(`the neffos.js process failed: ${error.message}\n${stderr}`)))
      else resume(Effect.succeed(JSON.parse(stdout) as Result))
    })
  })

/** Both runs' counts in one message, so that a failure shows them side by side. */
const assertAllWelcomed = (noAsk: Result, ask: Result) => {
  const counts = `the welcome reached ${noAsk.welcomed} of ${noAsk.connections} without an ask, ` +
    `${ask.welcomed} of ${ask.connections} with an ask right after connect`
  assert.deepStrictEqual([...noAsk.errors, ...ask.errors], [], counts)
  assert.deepStrictEqual([noAsk.welcomed, ask.welcomed], [CONNECTIONS, CONNECTIONS], counts)
}

/**
 * A page of a loopback origin (Chromium blocks about:blank from reaching loopback)
 * that loads neffos.js's own ES module build and the check as they are.
 */
const page = `<!doctype html><title>welcome</title><script type="module">
import * as neffos from "/neffos.js"
import { checkWelcome } from "/check.mjs"
window.checkWelcome = (url, options) => checkWelcome(neffos, url, options)
</script>`

const servePage = serveFiles({
  "/": page,
  "/neffos.js": neffosModule,
  "/check.mjs": Fs.readFileSync(path.join(dir, "check.mjs"), "utf8")
})

declare global {
  interface Window {
    checkWelcome: (
      url: string,
      options: { readonly connections: number; readonly parallel: number; readonly ask: boolean; readonly wait: number }
    ) => Promise<Result>
  }
}

describe("neffos.js receives what _OnNamespaceConnected sends", () => {
  it.scopedLive("on Node, in a process of its own: 100 of 100, with and without an ask right after connect", () =>
    Effect.gen(function*() {
      const url = yield* chatServer
      // both processes at once: the busier the clients, the more frames share a read
      const [noAsk, ask] = yield* Effect.all([onNode(url, false), onNode(url, true)], { concurrency: 2 })
      assertAllWelcomed(noAsk, ask)
    }))

  it.scopedLive("in Chromium: 100 of 100, with and without an ask right after connect", () =>
    Effect.gen(function*() {
      const url = yield* chatServer
      const instance = yield* browser
      const tab = yield* Effect.promise(() => instance.newPage())
      const pageUrl = yield* servePage
      yield* Effect.promise(() => tab.goto(pageUrl))
      yield* Effect.promise(() => tab.waitForFunction(() => window.checkWelcome !== undefined, null, { timeout: 5000 }))
      const check = (ask: boolean) =>
        Effect.promise(() =>
          tab.evaluate(
            ([url, ask, connections, wait]) => window.checkWelcome(url, { connections, parallel: 4, ask, wait }),
            [url, ask, CONNECTIONS, WAIT] as const
          )
        ).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the page's check hung") }))
      assertAllWelcomed(yield* check(false), yield* check(true))
    }))
})

const PING = "<ping>"

/** A raw client that answers pings only when told: what it reads, pings included, in order. */
const pingClient = (url: string) =>
  Effect.gen(function*() {
    const seen = yield* Queue.unbounded<string>()
    const ws = yield* Effect.acquireRelease(
      Effect.async<WebSocket>((resume) => {
        const ws = new WebSocket(url, { autoPong: false })
        ws.on("message", (data) => seen.unsafeOffer((data as Buffer).toString("utf8")))
        ws.on("ping", () => seen.unsafeOffer(PING))
        ws.on("error", () => {})
        ws.once("open", () => resume(Effect.succeed(ws)))
      }),
      (ws) => Effect.sync(() => ws.terminate())
    )
    const next = Queue.take(seen).pipe(
      Effect.timeoutFail({ duration: Duration.seconds(2), onTimeout: () => new Error("nothing within 2 s") }),
      Effect.orDie
    )
    const send = (frame: string) => Effect.sync(() => ws.send(frame))
    yield* send("M")
    assert.match(yield* next, /^A/)
    return { next, send, pong: Effect.sync(() => ws.pong()), pending: Queue.size(seen) }
  })

describe("the connect reply's ping", () => {
  it.scopedLive("follows the reply; what _OnNamespaceConnected sends comes after its pong", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents })
      const client = yield* pingClient(url)
      yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* client.next, "$c;;;;;;")
      assert.strictEqual(yield* client.next, PING)
      yield* client.pong
      assert.strictEqual(yield* client.next, ";default;;chat;0;0;welcome")
    }))

  it.scopedLive("is not sent for a namespace without an _OnNamespaceConnected handler", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents })
      const client = yield* pingClient(url)
      yield* client.send("$c;second;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* client.next, "$c;;;;;;")
      // a ping would come before this reply: the server answers the ask only after the connect is done
      yield* client.send("$p;second;;ping;0;0;")
      assert.strictEqual(yield* client.next, "$p;second;;ping;0;0;pong")
    }))

  it.effect("a peer that answers no ping gets what _OnNamespaceConnected sends 1 second later", () =>
    Effect.gen(function*() {
      const client = yield* TestServer.connect({ id: "mute" })
      yield* client.setSilent(true)
      yield* client.connect("default")
      // (expectNone would wait for the server's dispatcher, which is what waits here)
      const welcome = yield* Effect.fork(client.expect({ event: "chat" }))
      yield* TestClock.adjust("999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(welcome)))
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(Message.bodyText(yield* Fiber.join(welcome)), "welcome")
    }).pipe(Effect.provide(TestServer.layer({ events: captureEvents }))))
})
