/**
 * Server.layerConfig, NodeServer.layerConfig and the exchanges' layerConfig: every
 * data option from Effect `Config`, broker URLs as `Redacted`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { inject } from "vitest"
import * as Events from "../src/Events.js"
import * as NodeServer from "../src/NodeServer.js"
import * as RedisStackExchange from "../src/RedisStackExchange.js"
import * as Server from "../src/Server.js"
import * as StackExchange from "../src/StackExchange.js"
import { handshaken } from "./utils.js"

const events = Events.namespaces({ default: {} })

/** Environment variables, as `ConfigProvider.fromEnv` would read them. */
const env = (vars: Record<string, string>) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars)), { pathDelim: "_" }))

const build = <E>(layer: Layer.Layer<NodeServer.NodeServer | Server.Server, E>, vars: Record<string, string>) =>
  Layer.build(layer.pipe(Layer.provide(env(vars))))

describe("Config", () => {
  it.scopedLive("NodeServer.layerConfig and Server.layerConfig read PORT, WS_PATH and the NEFFOS_ variables", () =>
    Effect.gen(function*() {
      const context = yield* build(
        NodeServer.layerConfig().pipe(Layer.provideMerge(Server.layerConfig({ events, maxNameLength: 100 }))),
        {
          PORT: "0",
          WS_PATH: "/ws",
          NEFFOS_MAX_NAME_LENGTH: "8",
          NEFFOS_OUTBOX_CAPACITY: "7",
          NEFFOS_OUTBOX_STRATEGY: "dropping"
        }
      )
      const node = Context.get(context, NodeServer.NodeServer)
      assert.match(node.url, /^ws:\/\/127\.0\.0\.1:\d+\/ws$/)
      assert.notStrictEqual(node.port, 0)
      const { client, id } = yield* handshaken(node.url)
      yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* client.nextText, "$c;;;;;;")
      // the configuration's 8 wins over the code's 100
      yield* client.send("$a;default;;ninechars;0;0;")
      assert.strictEqual(yield* client.nextText, "$a;default;;;1;0;name too long")
      const stats = yield* (yield* Context.get(context, Server.Server).connection(id)).stats
      assert.strictEqual(stats.outboxCapacity, 7)
    }))

  it.scopedLive("what the configuration leaves out keeps the code's value", () =>
    Effect.gen(function*() {
      const context = yield* build(
        NodeServer.layerConfig().pipe(Layer.provideMerge(Server.layerConfig({ events, maxNameLength: 7 }))),
        { PORT: "0" }
      )
      const node = Context.get(context, NodeServer.NodeServer)
      assert.match(node.url, /\/echo$/)
      const { client } = yield* handshaken(node.url)
      yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* client.nextText, "$c;;;;;;")
      yield* client.send("$a;default;;eightchr;0;0;")
      assert.strictEqual(yield* client.nextText, "$a;default;;;1;0;name too long")
    }))

  it.effect("NEFFOS_OUTBOX_FLUSH_INTERVAL is the outbox's flush window", () =>
    Effect.gen(function*() {
      const read = (vars: Record<string, string>) =>
        Effect.withConfigProvider(
          Server.config,
          ConfigProvider.fromMap(new Map(Object.entries(vars)), { pathDelim: "_" })
        )
      const given = yield* read({ NEFFOS_OUTBOX_FLUSH_INTERVAL: "2 millis" })
      assert.isTrue(Duration.equals(Duration.decode(given.outbox!.flushInterval!), Duration.millis(2)))
      assert.isUndefined((yield* read({})).outbox?.flushInterval)
    }))

  it.scopedLive("a malformed value fails the layer with a ConfigError", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        build(NodeServer.layerConfig().pipe(Layer.provideMerge(Server.layerConfig({ events }))), {
          PORT: "0",
          NEFFOS_PING_INTERVAL: "soon"
        })
      )
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "PING_INTERVAL")
    }))

  it.scopedLive("a broker URL is read as Redacted", () =>
    Effect.gen(function*() {
      const exchange = yield* Layer.build(
        RedisStackExchange.layerConfig({ url: Config.redacted("REDIS_URL") }).pipe(
          Layer.provide(env({ REDIS_URL: inject("redisUrl") }))
        )
      )
      yield* Context.get(exchange, StackExchange.StackExchange).settled
    }))
})
