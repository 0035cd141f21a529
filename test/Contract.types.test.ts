/**
 * Type-level tests of typed contracts. Each `@ts-expect-error` line must fail to
 * compile (`npm run typecheck`, part of `npm test`, checks that it does); the
 * `expectTypeOf` assertions check the inferred types. The file also runs under
 * vitest, where it only builds values.
 */
import { describe, expectTypeOf, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Client from "../src/Client.js"
import * as Contract from "../src/Contract.js"
import type * as Errors from "../src/Errors.js"
import * as Server from "../src/Server.js"
import * as TestServer from "../src/TestServer.js"

class InvalidDate extends Schema.TaggedError<InvalidDate>()("InvalidDate", { input: Schema.String }) {}
class Undeclared extends Schema.TaggedError<Undeclared>()("Undeclared", {}) {}
class Calendar extends Context.Tag("Calendar")<Calendar, { readonly isWorkday: (date: string) => boolean }>() {}

const Chat = Contract.make({
  default: Contract.namespace({
    chat: Contract.emit({ text: Schema.String }),
    message: Contract.push({ from: Schema.String, text: Schema.String }),
    notice: Contract.push(Schema.String),
    workday: Contract.ask({ payload: Schema.String, success: Schema.Boolean, error: InvalidDate }),
    confirm: Contract.ask({ payload: Schema.String, success: Schema.Boolean, direction: "toClient" })
  }, { room: Schema.Literal("lobby", "kitchen") }),
  status: {
    ping: Contract.ask({ success: Schema.Literal("pong") })
  }
})

const events = Contract.handlers(Chat, {
  default: {
    chat: (ns, { text }, { room }) => ns.broadcastOthers(Chat.default.message, { from: ns.conn.id, text }, { room }),
    workday: (_ns, date) =>
      Effect.flatMap(
        Calendar,
        (calendar) =>
          date.length === 10 ? Effect.succeed(calendar.isWorkday(date)) : Effect.fail(new InvalidDate({ input: date }))
      )
  },
  status: { ping: () => Effect.succeed("pong" as const) }
})

describe("Contract types", () => {
  it("declarations: payloads, successes, errors and rooms are the schemas' types", () => {
    expectTypeOf<Contract.Payload<typeof Chat.default.chat>>().toEqualTypeOf<{ readonly text: string }>()
    expectTypeOf<Contract.Success<typeof Chat.default.workday>>().toEqualTypeOf<boolean>()
    expectTypeOf<Contract.Failure<typeof Chat.default.workday>>().toEqualTypeOf<InvalidDate>()
    expectTypeOf<Contract.Failure<typeof Chat.status.ping>>().toEqualTypeOf<never>()
    expectTypeOf<Contract.Payload<typeof Chat.status.ping>>().toEqualTypeOf<void>()
    expectTypeOf<Contract.RoomOf<typeof Chat, "default">>().toEqualTypeOf<"lobby" | "kitchen">()
    expectTypeOf<Contract.RoomOf<typeof Chat, "status">>().toEqualTypeOf<string>()
    expectTypeOf(Chat.default.confirm.direction).toEqualTypeOf<"toClient">()
    expectTypeOf(Chat.default.workday.direction).toEqualTypeOf<"toServer">()
  })

  it("handlers: their requirements become the server layer's", () => {
    expectTypeOf(events).toEqualTypeOf<Server.Options<never, Calendar>["events"]>()
    expectTypeOf(Server.layer({ events })).toEqualTypeOf<Layer.Layer<Server.Server, never, Calendar>>()
  })

  it("handlers: exhaustive, exact and typed", () => {
    Contract.handlers(Chat, {
      // @ts-expect-error a missing handler: `workday` is not handled
      default: {
        chat: () => Effect.void
      },
      status: { ping: () => Effect.succeed("pong" as const) }
    })
    Contract.handlers(Chat, {
      default: {
        chat: () => Effect.void,
        workday: () => Effect.succeed(true),
        // @ts-expect-error a misspelt event: `workdai` is not in the contract
        workdai: () => Effect.succeed(true)
      },
      status: { ping: () => Effect.succeed("pong" as const) }
    })
    Contract.handlers(Chat, {
      default: {
        chat: () => Effect.void,
        // @ts-expect-error an undeclared error: `workday` declares only InvalidDate
        workday: () => Effect.fail(new Undeclared())
      },
      status: { ping: () => Effect.succeed("pong" as const) }
    })
    Contract.handlers(Chat, {
      default: {
        chat: () => Effect.void,
        // @ts-expect-error a wrong success type: `workday` answers a boolean
        workday: () => Effect.succeed("yes")
      },
      status: { ping: () => Effect.succeed("pong" as const) }
    })
    Contract.handlers(Chat, {
      default: {
        // @ts-expect-error a wrong payload type: `chat`'s payload is { text: string }
        chat: (_ns, payload: { readonly text: number }) => Effect.log(payload.text),
        workday: () => Effect.succeed(true)
      },
      status: { ping: () => Effect.succeed("pong" as const) }
    })
    Contract.handlers(Chat, {
      default: {
        chat: () => Effect.void,
        workday: () => Effect.succeed(true),
        // @ts-expect-error a push is not handled by the server
        notice: () => Effect.void
      },
      status: { ping: () => Effect.succeed("pong" as const) }
    })
    Contract.handlers(Chat, {
      default: { chat: () => Effect.void, workday: () => Effect.succeed(true) },
      status: { ping: () => Effect.succeed("pong" as const) },
      // @ts-expect-error a namespace the contract does not have
      extra: {}
    })
  })

  it("server sends: pushes only, with their payload and room types", () =>
    Effect.gen(function*() {
      const chat = yield* Contract.server(Chat)
      expectTypeOf(chat.broadcast(Chat.default.notice, "hello", { room: "lobby" })).toEqualTypeOf<
        Effect.Effect<void, Errors.StackExchangeError>
      >()
      // @ts-expect-error a wrong payload type
      yield* chat.broadcast(Chat.default.notice, 42)
      // @ts-expect-error a room the namespace's room schema does not allow
      yield* chat.broadcast(Chat.default.notice, "hello", { room: "garage" })
      // @ts-expect-error an emit is not sent by the server
      yield* chat.broadcast(Chat.default.chat, { text: "hi" })
      // @ts-expect-error a push sent as an ask
      yield* chat.ask("alice", Chat.default.notice, "hello")
      // @ts-expect-error a client → server ask is not asked by the server
      yield* chat.ask("alice", Chat.default.workday, "2026-11-25")
      const confirmed = chat.ask("alice", Chat.default.confirm, "sure?")
      expectTypeOf(confirmed).toEqualTypeOf<
        Effect.Effect<boolean, Contract.AskError | Errors.ConnectionNotFound | Errors.StackExchangeError>
      >()
    }))

  it("the client: typed emits, asks with declared errors, pushes, required ask handlers", () =>
    Effect.gen(function*() {
      const client = yield* Contract.dial(Chat, "ws://127.0.0.1:8080/echo", {
        handlers: { default: { confirm: (_ns, question) => Effect.succeed(question.length > 0) } }
      })
      const ns = yield* client.connect("default")
      const workday = ns.ask(Chat.default.workday, "2026-11-25")
      expectTypeOf(workday).toEqualTypeOf<Effect.Effect<boolean, InvalidDate | Contract.AskError | Errors.Offline>>()
      yield* ns.emit(Chat.default.chat, { text: "hi" }, { room: "kitchen" })
      // @ts-expect-error a wrong payload type
      yield* ns.emit(Chat.default.chat, { text: 1 })
      // @ts-expect-error a push is not emitted by the client
      yield* ns.emit(Chat.default.notice, "hi")
      // @ts-expect-error a push sent as an ask
      yield* ns.ask(Chat.default.notice, "hi")
      // @ts-expect-error an event of another namespace
      yield* ns.ask(Chat.status.ping, undefined)
      // @ts-expect-error a namespace the contract does not have
      yield* client.connect("defualt")
      // @ts-expect-error a room the namespace's room schema does not allow
      yield* ns.joinRoom("garage")
      expectTypeOf(client.pushes(Chat.default.message)).toEqualTypeOf<
        Stream.Stream<{ readonly from: string; readonly text: string }>
      >()
      expectTypeOf(client.subscribe(Chat.default.notice)).toEqualTypeOf<
        Effect.Effect<Queue.Dequeue<string>, never, Scope.Scope>
      >()
      // @ts-expect-error only pushes arrive as pushes
      client.pushes(Chat.default.chat)
      // @ts-expect-error the contract has server → client asks: their handlers are required
      yield* Contract.dial(Chat, "ws://127.0.0.1:8080/echo")
      // @ts-expect-error a missing handler for the server's ask `confirm`
      yield* Contract.dial(Chat, "ws://127.0.0.1:8080/echo", { handlers: { default: {} } })
    }).pipe(Effect.scoped))

  it("the client's handlers carry their requirements", () => {
    const dialed = Contract.dial(Chat, "ws://127.0.0.1:8080/echo", {
      handlers: { default: { confirm: (_ns, date) => Effect.map(Calendar, (calendar) => calendar.isWorkday(date)) } }
    })
    expectTypeOf(dialed).toEqualTypeOf<
      Effect.Effect<
        Contract.ContractClient<typeof Chat>,
        Errors.HandshakeRejected | Errors.HandshakeError,
        Client.ClientTransport | Scope.Scope | Calendar
      >
    >()
  })

  it("the test kit's typed clients", () =>
    Effect.gen(function*() {
      const alice = yield* TestServer.connectContract(Chat, { id: "alice" })
      const ns = yield* alice.connect("default")
      yield* ns.emit(Chat.default.chat, { text: "hi" })
      expectTypeOf(alice.expectPush(Chat.default.message)).toEqualTypeOf<
        Effect.Effect<
          { readonly from: string; readonly text: string },
          TestServer.UnexpectedMessage | Errors.ConnectionClosed
        >
      >()
      // @ts-expect-error an emit is never pushed
      yield* alice.expectPush(Chat.default.chat)
    }))
})
