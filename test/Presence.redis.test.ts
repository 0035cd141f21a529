import * as RedisStackExchange from "effect-neffos/RedisStackExchange"
import { inject } from "vitest"
import { suite } from "./Presence.suite.js"
import { broker } from "./StackExchange.kit.js"

// the run's own Redis (test/services.ts)
const redisUrl = inject("redisUrl")

suite({
  name: "Redis",
  exchange: (prefix, port) =>
    RedisStackExchange.layer({
      url: port === undefined ? redisUrl : `redis://127.0.0.1:${port}`,
      prefix,
      redis: { retryStrategy: () => 50 }
    }),
  port: Number(new URL(redisUrl).port),
  ownBroker: broker(
    inject("redisServer"),
    (port) => ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    /Ready to accept connections/
  ),
  childArgs: ["redis", redisUrl]
})
