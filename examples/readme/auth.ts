// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Layer, Option } from "effect"
import { Server } from "effect-neffos"
import * as NodeServer from "effect-neffos/NodeServer"
import { events, Users, UsersLive } from "./users.js" // your handlers and your user directory

export const websocket = Effect.gen(function*() {
  const headers = yield* NodeServer.requestHeaders // real headers and X-Websocket-Header-* query parameters
  const authorization = headers["authorization"]
  if (authorization === undefined) return HttpServerResponse.empty({ status: 401 })
  const user = (yield* Users).byToken(authorization.replace(/^Bearer /, ""))
  if (Option.isNone(user)) return HttpServerResponse.empty({ status: 403 })
  return yield* NodeServer.endpointWith({ id: user.value })
})

export const AuthServer = (port: number) =>
  HttpRouter.empty.pipe(
    HttpRouter.all("/ws", websocket),
    HttpServer.serve(),
    HttpServer.withLogAddress,
    Layer.provideMerge(NodeServer.layerHttpServer({ port })),
    Layer.provide(Server.layer({ events })),
    Layer.provide(UsersLive)
  )
