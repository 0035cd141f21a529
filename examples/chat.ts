/**
 * A small chat server: `npm start`, then connect with neffos.js (or this
 * package's client) to ws://127.0.0.1:8080/echo.
 *
 * - namespace `default`; rooms are joined and left by the clients;
 * - `chat` is broadcast to everyone else (in the message's room, if any);
 * - `workday` is an ask: the body is a date (YYYY-MM-DD), the reply says whether
 *   it is a workday, using the application's own `Calendar` service;
 * - every 30 seconds the server sends a `notice` to everyone.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Events, Message, Reply, Server } from "effect-neffos"
import * as NodeServer from "effect-neffos/NodeServer"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"

class Calendar extends Context.Tag("example/Calendar")<Calendar, {
  readonly isWorkday: (date: Date) => boolean
}>() {}

/** The application's own service, used by the `workday` handler (exported for examples/chat.test.ts). */
export const CalendarLive = Layer.succeed(Calendar, {
  isWorkday: (date) => date.getUTCDay() !== 0 && date.getUTCDay() !== 6
})

class InvalidDate extends Data.TaggedError("InvalidDate")<{ readonly input: string }> {
  override get message() {
    return `not a date: ${this.input}`
  }
}

/** The chat's handlers (exported for examples/chat.test.ts). */
export const events = Events.namespaces({
  default: {
    _OnNamespaceConnected: (ns) => ns.emit("notice", `welcome, ${ns.conn.id}`),
    _OnRoomJoined: (ns, msg) => ns.broadcastOthers({ room: msg.room, event: "notice", body: `${ns.conn.id} joined` }),
    _OnRoomLeft: (ns, msg) => ns.broadcastOthers({ room: msg.room, event: "notice", body: `${ns.conn.id} left` }),
    chat: (ns, msg) => ns.broadcastOthers(msg),
    workday: (_ns, msg) =>
      Effect.gen(function*() {
        const calendar = yield* Calendar
        const input = Message.bodyText(msg)
        const date = new Date(`${input}T12:00:00Z`)
        if (Number.isNaN(date.getTime())) return yield* Effect.fail(new InvalidDate({ input }))
        return Reply.text(calendar.isWorkday(date) ? `${input} is a workday` : `${input} is a weekend day`)
      })
  }
})

/** A notice to everyone every 30 seconds, on the Effect clock (so `TestClock` drives it in tests). */
export const Notices = Layer.scopedDiscard(
  Effect.gen(function*() {
    const server = yield* Server.Server
    yield* server.broadcast({ namespace: "default", event: "notice", body: "server notice: still here" }).pipe(
      Effect.ignoreLogged,
      Effect.repeat(Schedule.spaced("30 seconds")),
      Effect.delay("30 seconds"),
      Effect.forkScoped
    )
  })
)

const Banner = Layer.effectDiscard(
  Effect.gen(function*() {
    const node = yield* NodeServer.NodeServer
    yield* Effect.log(`chat server on ${node.url}`)
    yield* Effect.log(
      "events in namespace 'default': chat (broadcast to others, per room), workday (ask: YYYY-MM-DD), notice (from the server)"
    )
  })
)

/** The chat server on `port` (0 picks a free one), with its periodic notice. */
export const ChatServer = (port: number) =>
  Notices.pipe(
    Layer.provideMerge(NodeServer.layer({ port, host: "127.0.0.1", path: "/echo" })),
    Layer.provideMerge(Server.layer({ events }).pipe(Layer.provide(CalendarLive)))
  )

if (import.meta.url === `file://${process.argv[1]}`) {
  NodeRuntime.runMain(Layer.launch(Banner.pipe(Layer.provide(ChatServer(Number(process.env.PORT ?? 8080))))))
}
