// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
declare const token: string
declare const render: (message: unknown) => void

import { Effect } from "effect"
import { Client, Events } from "effect-neffos"

export const program = Effect.gen(function*() {
  const conn = yield* Client.dial("wss://example.com/echo", {
    events: Events.client({ default: { chat: (_ns, msg) => Effect.sync(() => render(msg)) } }),
    headers: { "X-Token": token }, // sent as X-Websocket-Header-X-Token query parameters
    reconnect: true // a refused upgrade has no status in a browser: every failure is retried
  })
  const ns = yield* conn.connect("default")
  yield* ns.emit("chat", "hello from the browser")
  yield* Effect.never
}).pipe(Effect.scoped, Effect.provide(Client.layerBrowser))
