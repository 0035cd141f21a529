// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Console, Effect, Stream } from "effect"
import { Contract } from "effect-neffos"
import { Chat } from "./chat-contract.js"

export const program = Effect.gen(function*() {
  const chat = yield* Contract.dial(Chat, "ws://127.0.0.1:8080/echo", {
    headers: { "X-Username": "alice" },
    handlers: {
      default: {
        confirm: (_ns, question) => Effect.succeed(question.endsWith("?")), // required: the server's asks
        message: (_ns, { from, text }, { room }) => Console.log(`[${room}] ${from}: ${text}`) // optional: pushes
      }
    }
  }) // plus any Client.dial option (reconnect, askTimeout, …)
  const notices = yield* chat.subscribe(Chat.default.notice) // a scoped Dequeue: nothing missed from now on
  const ns = yield* chat.connect("default")
  const lobby = yield* ns.joinRoom("lobby")
  yield* lobby.emit(Chat.default.chat, { text: "hi" })
  const workday = yield* ns.ask(Chat.default.workday, "2026-11-25") // Effect<boolean, InvalidDate | AskTimeout | …>
  yield* chat.pushes(Chat.default.message, { room: "lobby" }).pipe(Stream.runForEach(Console.log), Effect.fork)
  return { notices, workday }
})
