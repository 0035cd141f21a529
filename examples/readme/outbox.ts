// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Server } from "effect-neffos"
import { events } from "./handlers.js"

export const StrictLive = Server.layer({
  events,
  outbox: { capacity: 1024, maxBytes: 4 * 1024 * 1024, strategy: "sliding" }, // or "dropping", or "disconnect"
  // or per connection: outbox: (request) => request.headers["x-role"] === "dashboard" ? { strategy: "dropping" } : {}
  strict: { writeTimeout: "5 seconds" } // optional: see below
})
