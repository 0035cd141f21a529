// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import { Effect, Layer } from "effect"
import { Admin, Server } from "effect-neffos"
import * as NodeServer from "effect-neffos/NodeServer"
import { events, requireOperator } from "./handlers.js"

const app = HttpRouter.empty.pipe(
  HttpRouter.all("/ws", NodeServer.endpoint),
  HttpRouter.mountApp("/admin", Effect.zipRight(requireOperator, Admin.dashboard)), // your check, then the app
  HttpRouter.get("/metrics", Admin.metrics)
)
export const Main = app.pipe(
  HttpServer.serve(),
  Layer.provide(Admin.layer()),
  Layer.provideMerge(NodeServer.layerHttpServer({ port: 8080 })),
  Layer.provide(Server.layer({ events }))
)
