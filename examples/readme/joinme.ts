// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Effect } from "effect"
import { type Conn, Message } from "effect-neffos"

export const joinme = (ns: Conn.NSConn, msg: Message.Message) =>
  Effect.gen(function*() {
    const room = yield* ns.joinRoom(Message.bodyText(msg)) // server-initiated join
    yield* room.emit("welcome", "you are in") // to this connection, in the room
    const answer = yield* ns.ask("confirm", "ok?", { timeout: "2 seconds" }) // server asks the client
    yield* Effect.log(Message.bodyText(answer))
  })
