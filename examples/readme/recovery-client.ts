// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Console, Effect, Option, Stream } from "effect"
import { Client, Events, History, Message } from "effect-neffos"

declare const url: string
declare const refetchRoom: (room: string) => Effect.Effect<void>

export const program = Effect.gen(function*() {
  const conn = yield* Client.dial(url, {
    events: Events.client({
      default: {
        chat: (_ns, msg) => Effect.log(`${Message.bodyText(msg)} at ${Option.getOrThrow(History.position(msg)).offset}`)
      }
    }),
    reconnect: true,
    recovery: { onNotRecovered: (event) => refetchRoom(event.room) } // what it missed is unknown: fetch the state again
  })
  yield* History.events(conn).pipe(Stream.runForEach(Console.log), Effect.fork) // Recovered / NotRecovered, per room
  const where = yield* History.positions(conn) // the last position seen in every recoverable room
  return { where }
})
