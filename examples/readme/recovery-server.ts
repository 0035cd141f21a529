// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Server } from "effect-neffos"
import { events } from "./handlers.js"

export const RecoverableLive = Server.layer({
  events,
  history: {
    rooms: [
      { namespace: "default", room: /^chat-/, size: 1000, ttl: "5 minutes" }, // first match wins
      { room: "ticker", size: 100, ttl: "30 seconds" } // any namespace
    ]
    // or rooms: (namespace, room) => settings | undefined (asked once per room, then cached)
    // maxReplay: the most messages one resume replays (default: the room's size)
    // maxBytes (64 MiB), maxRooms (100,000): the in-memory store's bounds
  }
})
