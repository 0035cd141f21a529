// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Effect, Layer } from "effect"
import { Server } from "effect-neffos"
import * as NodeServer from "effect-neffos/NodeServer"
import * as RedisStackExchange from "effect-neffos/RedisStackExchange"
import { displayName, events } from "./handlers.js"

export const Live = NodeServer.layer({ port: 8080 }).pipe(
  Layer.provide(Server.layer({
    events,
    presence: true, // or { push, pushEvent, pushInterval, diffInterval, changesCapacity }
    cluster: { heartbeatInterval: "1 second", instanceTtl: "5 seconds" }, // the defaults
    onConnect: (conn) =>
      Effect.flatMap(Server.Server, (server) => server.presence.setMetadata(conn, { name: displayName(conn) }))
  })),
  Layer.provide(RedisStackExchange.layer({ url: "redis://127.0.0.1:6379", prefix: "chat" })) // or NATS, or none
)
