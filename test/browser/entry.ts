/**
 * The browser check's page script: two clients dial with the browser transport;
 * one asks, the other chats, and the first receives the server's broadcast.
 * Bundled by test/Browser.test.ts for headless Chromium.
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { Client, Events, Message } from "../../src/index.js"

interface CheckResult {
  readonly id: string
  readonly welcome: string
  readonly workday: string
  readonly broadcast: string
}

declare global {
  interface Window {
    runCheck: (url: string) => Promise<CheckResult>
  }
}

window.runCheck = (url) =>
  Effect.gen(function*() {
    const received = yield* Queue.unbounded<string>()
    const conn = yield* Client.dial(url, {
      events: Events.client({
        default: {
          notice: (_ns, msg) => Effect.asVoid(Queue.offer(received, Message.bodyText(msg))),
          chat: (_ns, msg) => Effect.asVoid(Queue.offer(received, Message.bodyText(msg)))
        }
      })
    })
    const ns = yield* conn.connect("default")
    const welcome = yield* Queue.take(received)
    const workday = Message.bodyText(yield* ns.ask("workday", "2026-11-25"))
    const other = yield* Client.dial(url, { events: Events.client({ default: {} }) })
    const otherNs = yield* other.connect("default")
    yield* otherNs.emit("chat", "hello from the other tab")
    const broadcast = yield* Queue.take(received)
    return { id: conn.id, welcome, workday, broadcast }
  }).pipe(Effect.provide(Client.layerBrowser), Effect.scoped, Effect.runPromise)
