/**
 * One chat session, typed by the chat's contract (examples/chat-contract.ts): it
 * dials, prints what the server pushes, and runs what the user types — a chat line,
 * or `/join <room>`, `/leave`, `/workday <YYYY-MM-DD>`, `/quit`. The terminal client
 * (examples/chat-client.ts) and the web page (examples/chat-page/) are this same
 * session with their own lines and output; it needs a `Client.ClientTransport`
 * (`NodeClient.layer` on Node, `Client.layerBrowser` in a browser).
 */
import { Contract } from "effect-neffos"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Chat, RoomName } from "./chat-contract.js"

export interface SessionOptions {
  readonly name: string
  readonly url: string
  /** what the user types, one command or chat line per element */
  readonly lines: Stream.Stream<string>
  /** where the session writes what happens */
  readonly print: (line: string) => Effect.Effect<void>
}

type Room = Contract.ClientRoom<typeof Chat, "default">

/**
 * One chat session: dials with the contract, prints what the server pushes,
 * and runs the typed lines until they end (or `/quit`).
 */
export const session = ({ lines, name, print, url }: SessionOptions) =>
  Effect.gen(function*() {
    const chat = yield* Contract.dial(Chat, url, {
      headers: { "X-Username": name },
      // the handler form: `message` pushes, with the room they were sent in
      handlers: {
        default: {
          message: (_ns, { from, text }, { room }) => print(`[${room ?? "everyone"}] ${from}: ${text}`)
        }
      }
    })
    // the stream form: `notice` pushes, subscribed before connecting so that the welcome is not missed
    const notices = yield* chat.subscribe(Chat.default.notice)
    yield* Stream.fromQueue(notices).pipe(Stream.runForEach((text) => print(`* ${text}`)), Effect.forkScoped)

    const ns = yield* chat.connect("default")
    const current = yield* Ref.make<Room | undefined>(undefined)

    const join = (input: string) =>
      Effect.gen(function*() {
        const name = yield* Schema.decodeUnknown(RoomName)(input) // user input: decode before using it
        yield* Effect.flatMap(Ref.get(current), (room) => room === undefined ? Effect.void : room.leave())
        yield* Ref.set(current, yield* ns.joinRoom(name))
        yield* print(`you are in ${name}`)
      }).pipe(Effect.catchTag("ParseError", () => print(`not a room name: ${input}`)))

    const leave = Effect.flatMap(Ref.getAndSet(current, undefined), (room) =>
      room === undefined ? print("you are in no room") : Effect.zipRight(room.leave(), print(`you left ${room.name}`)))

    const workday = (date: string) =>
      ns.ask(Chat.default.workday, date).pipe(
        Effect.flatMap((workday) =>
          print(`${date} is ${workday ? "a workday" : "a weekend day"}`)
        ),
        Effect.catchTag("InvalidDate", (error) => print(error.message)) // the contract's own error class
      )

    const say = (text: string) =>
      Effect.flatMap(
        Ref.get(current),
        (room) => room === undefined ? ns.emit(Chat.default.chat, { text }) : room.emit(Chat.default.chat, { text })
      )

    const run = (line: string): Effect.Effect<void, Error> => {
      const [command, ...rest] = line.trim().split(/\s+/)
      const argument = rest.join(" ")
      switch (command) {
        case "/join":
          return join(argument)
        case "/leave":
          return leave
        case "/workday":
          return workday(argument)
        default:
          return line.trim().length === 0 ? Effect.void : say(line)
      }
    }

    yield* lines.pipe(
      Stream.takeWhile((line) => line.trim() !== "/quit"),
      Stream.runForEach((line) => run(line).pipe(Effect.catchAll((error) => print(`error: ${error.message}`))))
    )
  })
