// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Server } from "effect-neffos"
import { events } from "./handlers.js"

export const CoalescedLive = Server.layer({ events, outbox: { flushInterval: "2 millis" } })

// per connection: the outbox function chooses from the upgrade request
export const TickerLive = Server.layer({
  events,
  outbox: (request) => request.headers["x-role"] === "ticker" ? { flushInterval: "5 millis" } : {}
})
