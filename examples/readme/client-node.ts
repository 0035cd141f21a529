// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Effect, Stream } from "effect"
import { Client, Events, Message, Reply } from "effect-neffos"
import * as NodeClient from "effect-neffos/NodeClient"

export const program = Effect.gen(function*() {
  const conn = yield* Client.dial("ws://127.0.0.1:8080/echo", {
    events: Events.client({
      default: {
        chat: (_ns, msg) => Effect.log(`chat: ${Message.bodyText(msg)}`),
        ping: () => Effect.succeed(Reply.text("pong")) // answers the server's asks
      }
    }),
    headers: { "X-Username": "alice" },
    askTimeout: "5 seconds",
    reconnect: true, // or any Schedule, e.g. Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(30)))
    retryFirstDial: true, // the first dial follows the schedule too: start before the server does
    offline: { capacity: 100 } // what is sent while reconnecting waits, and goes out once restored
  })
  const ns = yield* conn.connect("default") // fails RemoteError if the server refuses
  yield* ns.emit("chat", "hello")
  const reply = yield* ns.ask("workday", "2026-11-25") // AskTimeout | RemoteError | ConnectionClosed | ...
  yield* Effect.log(Message.bodyText(reply))
  const room = yield* ns.joinRoom("lobby")
  yield* room.emit("chat", "hi lobby")
  yield* conn.state.pipe(Stream.runForEach((state) => Effect.log(state._tag)), Effect.fork)
}).pipe(Effect.scoped, Effect.provide(NodeClient.layer))
