/**
 * The browser check's page script: two clients dial with the browser transport,
 * typed by the chat's contract; one asks, the other chats, and the first receives
 * the server's relay. Bundled by test/Browser.test.ts for headless Chromium.
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { Chat } from "../../examples/chat-contract.js"
import { Client, Contract } from "../../src/index.js"

interface CheckResult {
  readonly id: string
  readonly welcome: string
  readonly workday: boolean
  readonly broadcast: { readonly from: string; readonly text: string }
  readonly otherId: string
}

declare global {
  interface Window {
    runCheck: (url: string) => Promise<CheckResult>
  }
}

window.runCheck = (url) =>
  Effect.gen(function*() {
    const chat = yield* Contract.dial(Chat, url)
    const notices = yield* chat.subscribe(Chat.default.notice)
    const messages = yield* chat.subscribe(Chat.default.message)
    const ns = yield* chat.connect("default")
    const welcome = yield* Queue.take(notices)
    const workday = yield* ns.ask(Chat.default.workday, "2026-11-25")
    const other = yield* Contract.dial(Chat, url, { headers: { "X-Username": "other-tab" } })
    const otherNs = yield* other.connect("default")
    yield* otherNs.emit(Chat.default.chat, { text: "hello from the other tab" })
    const broadcast = yield* Queue.take(messages)
    return { id: chat.conn.id, welcome, workday, broadcast, otherId: other.conn.id }
  }).pipe(Effect.provide(Client.layerBrowser), Effect.scoped, Effect.runPromise)
