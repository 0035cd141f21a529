// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Effect } from "effect"
import { type Conn, Server } from "effect-neffos"

declare const conn: Conn.Conn

export const program = Effect.gen(function*() {
  const server = yield* Server.Server // anywhere: an HTTP handler, a background fiber, a handler
  yield* server.broadcast({ namespace: "default", room: "lobby", event: "chat", body: "hi" }, { except: conn })
  yield* server.broadcast({ namespace: "default", event: "chat", body: "hi" }, { except: "user-42" }) // every conn with that id
  yield* server.broadcast({ namespace: "default", event: "note", body: "psst", to: "user-7" })
  yield* server.send("user-42", { namespace: "default", event: "notification", body: "mail" }) // fails ConnectionNotFound
  const reply = yield* server.ask({ to: "user-42", namespace: "default", event: "ping" }, { timeout: "2 seconds" })
  yield* server.do((conn) => conn.close({ code: 4000 }), { concurrency: 16 }) // typed failure channel
  yield* server.disconnect("user-42") // every connection with that id
  const count = yield* server.connectionCount
  const inLobby = yield* server.members("default", "lobby") // this instance's members (see Presence)
  return { reply, count, inLobby }
})
