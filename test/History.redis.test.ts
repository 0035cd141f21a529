import * as RedisStackExchange from "effect-neffos/RedisStackExchange"
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { inject } from "vitest"
import { keys } from "../src/internal/historyRedis.js"
import { suite } from "./History.suite.js"
import { broker } from "./StackExchange.kit.js"

// the run's own Redis (test/services.ts)
const redisUrl = inject("redisUrl")

const exchange = (prefix: string, port?: number) =>
  RedisStackExchange.layer({
    url: port === undefined ? redisUrl : `redis://127.0.0.1:${port}`,
    prefix,
    redis: { retryStrategy: () => 50 }
  })

const dir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-neffos-history-redis-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const redisServer = (persistent: boolean) =>
  Effect.flatMap(dir, (data) =>
    broker(
      inject("redisServer"),
      (port) => [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        data,
        // every write on disk before it is answered: a restart keeps the history
        ...(persistent ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"])
      ],
      /Ready to accept connections/
    ))

suite({
  name: "Redis",
  exchange,
  brokers: { persistent: redisServer(true), volatile: redisServer(false), volatileExchange: exchange },
  stored: (prefix, namespace, room) =>
    Effect.acquireRelease(
      Effect.sync(() => new Redis(redisUrl, { lazyConnect: true })),
      (redis) => Effect.sync(() => redis.disconnect())
    ).pipe(Effect.flatMap((redis) => Effect.promise(() => redis.xlen(keys(prefix, namespace, room)[0])))),
  // MAXLEN ~ trims whole stream nodes (100 entries by default)
  bound: (size) => size + 100
})
