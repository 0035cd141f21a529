import * as RedisStackExchange from "effect-neffos/RedisStackExchange"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Redis } from "ioredis"
import { inject } from "vitest"
import { broker } from "./StackExchange.kit.js"
import { suite } from "./StackExchange.suite.js"

// the run's own Redis (test/services.ts)
const redisUrl = inject("redisUrl")

suite({
  name: "Redis",
  exchange: (prefix, port, options) =>
    RedisStackExchange.layer({
      url: port === undefined ? redisUrl : `redis://127.0.0.1:${port}`,
      prefix,
      redis: { retryStrategy: () => 50 },
      ...options
    }),
  fromConfig: (prefix) =>
    RedisStackExchange.layerConfig({
      url: Config.string("REDIS_URL"),
      prefix: Config.string("NEFFOS_PREFIX")
    }).pipe(
      Layer.provide(Layer.setConfigProvider(
        ConfigProvider.fromMap(new Map([["REDIS_URL", redisUrl], ["NEFFOS_PREFIX", prefix]]))
      ))
    ),
  ownBroker: broker(
    inject("redisServer"),
    (port) => ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    /Ready to accept connections/
  ),
  brokerChannels: (prefix) =>
    Effect.acquireRelease(
      Effect.sync(() => new Redis(redisUrl, { lazyConnect: true })),
      (redis) => Effect.sync(() => redis.disconnect())
    ).pipe(
      Effect.flatMap((redis) => Effect.promise(() => redis.pubsub("CHANNELS", `${prefix}.*`) as Promise<Array<string>>))
    )
})
