/**
 * A terminal client for the chat server, typed by the same contract
 * (examples/chat-contract.ts): `npm start` in one terminal, then
 *
 *   npx tsx examples/chat-client.ts alice
 *
 * (and `bob` in another; `CHAT_URL` overrides ws://127.0.0.1:8080/echo). Type a
 * line to chat in the current room, or `/join <room>`, `/leave`,
 * `/workday <YYYY-MM-DD>`, `/quit`. Lines can be piped in too:
 *
 *   printf '/join lobby\n/workday 2026-11-25\nhello\n' | npx tsx examples/chat-client.ts alice
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeClient from "effect-neffos/NodeClient"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as readline from "node:readline"
import { session } from "./chat-session.js"

if (import.meta.url === `file://${process.argv[1]}`) {
  // the terminal's lines, read from when the session starts taking them
  const lines = Stream.unwrapScoped(
    Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => readline.createInterface({ input: process.stdin })),
        (input) => Effect.sync(() => input.close())
      ),
      (input) => Stream.orDie(Stream.fromAsyncIterable(input, (error) => error))
    )
  )
  session({
    name: process.argv[2] ?? "guest",
    url: process.env.CHAT_URL ?? "ws://127.0.0.1:8080/echo",
    lines,
    print: (line) => Console.log(line)
  }).pipe(
    Effect.scoped,
    Effect.provide(NodeClient.layer),
    NodeRuntime.runMain
  )
}
