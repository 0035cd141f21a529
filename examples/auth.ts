/**
 * Authentication before the upgrade, on an @effect/platform `HttpRouter`: the
 * endpoint answers 401 without a token and 403 with a wrong one, so a refused
 * client is never upgraded; an accepted one gets its user name as connection id.
 *
 * A token arrives as a real `Authorization` header from Node clients, and as the
 * `X-Websocket-Header-Authorization` query parameter from neffos.js in browsers
 * (which cannot set WebSocket headers): `NodeServer.requestHeaders` shows both the
 * same way, exactly as the server will see them.
 *
 *   npx tsx examples/auth.ts    # ws://127.0.0.1:8081/ws, tokens "alice-token" and "bob-token"
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Events, Message, Reply, Server } from "effect-neffos"
import * as NodeServer from "effect-neffos/NodeServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/** The application's own user directory (here: two fixed tokens). */
export class Users extends Context.Tag("example/Users")<Users, {
  readonly byToken: (token: string) => Option.Option<string>
}>() {}

export const UsersLive = Layer.succeed(Users, {
  byToken: (token) => Option.fromNullable(({ "alice-token": "alice", "bob-token": "bob" } as const)[token])
})

/** The WebSocket route: 401 without a token, 403 with an unknown one, else upgraded with the user as id. */
export const websocket = Effect.gen(function*() {
  const headers = yield* NodeServer.requestHeaders // real headers and X-Websocket-Header-* query parameters
  const authorization = headers["authorization"]
  if (authorization === undefined) return HttpServerResponse.empty({ status: 401 })
  const user = (yield* Users).byToken(authorization.replace(/^Bearer /, ""))
  if (Option.isNone(user)) return HttpServerResponse.empty({ status: 403 })
  return yield* NodeServer.endpointWith({ id: user.value })
})

export const events = Events.namespaces({
  default: {
    whoami: (ns) => Effect.succeed(Reply.text(ns.conn.id)),
    chat: (ns, msg) => ns.broadcastOthers({ event: "chat", body: `${ns.conn.id}: ${Message.bodyText(msg)}` })
  }
})

/** The app on `port` (0 picks a free one); the `HttpServer` tells its address. */
export const AuthServer = (port: number) =>
  HttpRouter.empty.pipe(
    HttpRouter.all("/ws", websocket),
    HttpServer.serve(),
    HttpServer.withLogAddress,
    Layer.provideMerge(NodeServer.layerHttpServer({ port })),
    Layer.provide(Server.layer({ events })),
    Layer.provide(UsersLive)
  )

if (import.meta.url === `file://${process.argv[1]}`) {
  NodeRuntime.runMain(Layer.launch(AuthServer(Number(process.env.PORT ?? 8081))))
}
