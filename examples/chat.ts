/**
 * A small chat server: `npm start`, then connect with examples/chat-client.ts,
 * neffos.js or this package's client to ws://127.0.0.1:8080/echo.
 *
 * Its events are declared once, with their schemas, in examples/chat-contract.ts:
 *
 * - namespace `default`; rooms (`lobby`, `team-1`, …) are joined and left by the clients;
 * - `chat` (`{ text }`) is relayed as `message` (`{ from, text }`) to everyone else
 *   in the sender's room (or the whole namespace);
 * - `workday` is an ask: the payload is a date (YYYY-MM-DD), the answer whether it
 *   is a workday, using the application's own `Calendar` service; a non-date fails
 *   with the contract's `InvalidDate`;
 * - `notice`: a welcome on connect, who joined or left a room, and every 30
 *   seconds a notice to everyone.
 *
 * A client's id is its `X-Username` header (`X-Websocket-Header-X-Username` from
 * browsers), or a random UUID.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Contract, Server } from "effect-neffos"
import * as NodeServer from "effect-neffos/NodeServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as esbuild from "esbuild"
import * as Fs from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Chat, InvalidDate } from "./chat-contract.js"

class Calendar extends Context.Tag("example/Calendar")<Calendar, {
  readonly isWorkday: (date: Date) => boolean
}>() {}

/** The application's own service, used by the `workday` handler (exported for examples/chat.test.ts). */
export const CalendarLive = Layer.succeed(Calendar, {
  isWorkday: (date) => date.getUTCDay() !== 0 && date.getUTCDay() !== 6
})

/** The chat's handlers, one for each event clients send (exported for examples/chat.test.ts). */
export const events = Contract.handlers(Chat, {
  default: {
    _OnNamespaceConnected: (ns) => ns.emit(Chat.default.notice, `welcome, ${ns.conn.id}`),
    _OnRoomJoined: (ns, _msg, { room }) => ns.broadcastOthers(Chat.default.notice, `${ns.conn.id} joined`, { room }),
    _OnRoomLeft: (ns, _msg, { room }) => ns.broadcastOthers(Chat.default.notice, `${ns.conn.id} left`, { room }),
    chat: (ns, { text }, { room }) => ns.broadcastOthers(Chat.default.message, { from: ns.conn.id, text }, { room }),
    workday: (_ns, input) =>
      Effect.gen(function*() {
        const calendar = yield* Calendar
        const date = new Date(`${input}T12:00:00Z`)
        if (Number.isNaN(date.getTime())) return yield* new InvalidDate({ input })
        return calendar.isWorkday(date)
      })
  }
})

/** The server's options: the handlers, and ids from the `X-Username` header. */
export const options: Server.Options<never, Calendar> = {
  events,
  idGenerator: (request) => request.headers["x-username"] ?? crypto.randomUUID()
}

/** A notice to everyone every 30 seconds, on the Effect clock (so `TestClock` drives it in tests). */
export const Notices = Layer.scopedDiscard(
  Effect.gen(function*() {
    const chat = yield* Contract.server(Chat)
    yield* chat.broadcast(Chat.default.notice, "server notice: still here").pipe(
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
    yield* Effect.log(`chat server on ${node.url}; the chat page: http://${node.host}:${node.port}/`)
    yield* Effect.log(
      "namespace 'default': emit chat {text}; pushes message {from,text} and notice; ask workday \"YYYY-MM-DD\" -> boolean"
    )
  })
)

const pageDir = fileURLToPath(new URL("./chat-page/", import.meta.url))

/**
 * The chat's web page on `/` and its script on `/chat.js`, bundled with esbuild when
 * the server starts: the page runs effect-neffos's own browser client, and nothing
 * comes from elsewhere.
 */
export const chatPage = Effect.gen(function*() {
  const html = yield* Effect.promise(() => Fs.readFile(path.join(pageDir, "index.html"), "utf8"))
  const bundle = yield* Effect.promise(() =>
    esbuild.build({
      entryPoints: [path.join(pageDir, "main.ts")],
      bundle: true,
      format: "esm",
      platform: "browser",
      minify: true,
      write: false,
      logLevel: "silent"
    })
  )
  return HttpRouter.empty.pipe(
    HttpRouter.get("/", HttpServerResponse.text(html, { contentType: "text/html; charset=utf-8" })),
    HttpRouter.get(
      "/chat.js",
      HttpServerResponse.text(bundle.outputFiles[0].text, { contentType: "text/javascript; charset=utf-8" })
    )
  )
})

/**
 * The chat server on `port` (0 picks a free one), with its periodic notice and, with
 * `page`, the web page on the same port.
 */
export const ChatServer = (port: number, { page = false }: { readonly page?: boolean } = {}) =>
  Notices.pipe(
    Layer.provideMerge(
      Layer.unwrapEffect(
        Effect.map(
          page ? Effect.map(chatPage, Option.some) : Effect.succeed(Option.none()),
          (app) => NodeServer.layer({ port, host: "127.0.0.1", path: "/echo", app: Option.getOrUndefined(app) })
        )
      )
    ),
    Layer.provideMerge(Server.layer(options).pipe(Layer.provide(CalendarLive)))
  )

if (import.meta.url === `file://${process.argv[1]}`) {
  NodeRuntime.runMain(
    Layer.launch(Banner.pipe(Layer.provide(ChatServer(Number(process.env.PORT ?? 8080), { page: true }))))
  )
}
