// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Effect } from "effect"
import { Server } from "effect-neffos"
import { events, NotAllowed } from "./handlers.js"

export const ServerLive = Server.layer({
  events,
  idGenerator: (request) => request.headers["x-username"] ?? crypto.randomUUID(), // ids need not be unique
  // after the client's M; fail to refuse
  onConnect: (conn) =>
    conn.request.headers["x-token"] === "secret"
      ? Effect.asVoid(conn.connect("default")) // server-initiated connect, no polling
      : Effect.fail(new NotAllowed({ message: "bad token" })), // client gets H<message>, then close 1008
  onDisconnect: (conn) => Effect.log(`${conn.id} left`)
})
