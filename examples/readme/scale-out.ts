// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Layer } from "effect"
import { Server } from "effect-neffos"
import * as NodeServer from "effect-neffos/NodeServer"
import * as RedisStackExchange from "effect-neffos/RedisStackExchange" // or NatsStackExchange
import { events } from "./handlers.js"

export const Live = NodeServer.layer({ port: 8080 }).pipe(
  Layer.provide(Server.layer({ events })),
  Layer.provide(RedisStackExchange.layer({ url: "redis://127.0.0.1:6379", prefix: "chat" }))
  // NatsStackExchange.layer({ servers: ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"], prefix: "chat" })
  // RedisStackExchange.layerConfig({ url: Config.string("REDIS_URL") })
)
