/**
 * Nothing missed across a reconnect: a server whose `ticker-*` rooms are
 * recoverable, a client of this package that reaches it through a small TCP
 * proxy, and a stream of ticks. Mid-stream the proxy cuts the client off (its
 * socket is destroyed, new ones are refused) and lets it back a while later: the
 * client prints what it recovered, then checks that it has every tick exactly
 * once, in order. A second, longer outage in a room that keeps only 20 messages
 * shows the other outcome: the client is told it could not recover, and why.
 *
 *   npx tsx examples/recovery.ts
 *
 * Everything runs in this process, in memory; with `RedisStackExchange` or
 * `NatsStackExchange` (`history` option) the history is shared by every instance.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Client, Events, History, Message, Server } from "effect-neffos"
import * as NodeClient from "effect-neffos/NodeClient"
import * as NodeServer from "effect-neffos/NodeServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Net from "node:net"

const history: History.Options = {
  rooms: [
    { namespace: "default", room: "ticker-small", size: 20, ttl: "1 minute" },
    { namespace: "default", room: /^ticker-/, size: 1000, ttl: "1 minute" }
  ]
}

/** A TCP proxy to `port` that can cut every connection and refuse new ones until restored. */
const proxy = (port: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly port: number; readonly cut: () => void; readonly restore: () => void; close: () => void }>(
      (resume) => {
        let down = false
        const open = new Set<Net.Socket>()
        const server = Net.createServer((client) => {
          open.add(client)
          client.on("close", () => open.delete(client))
          client.on("error", () => client.destroy())
          if (down) return void client.destroy()
          const upstream = Net.connect(port, "127.0.0.1")
          upstream.on("error", () => upstream.destroy())
          client.pipe(upstream).pipe(client)
          client.on("close", () => upstream.destroy())
          upstream.on("close", () => client.destroy())
        })
        server.listen(0, "127.0.0.1", () =>
          resume(Effect.succeed({
            port: (server.address() as Net.AddressInfo).port,
            cut: () => {
              down = true
              for (const socket of open) socket.destroy()
            },
            restore: () => {
              down = false
            },
            close: () => {
              for (const socket of open) socket.destroy()
              server.close()
            }
          })))
      }
    ),
    (proxy) => Effect.sync(() => proxy.close())
  )

const program = Effect.gen(function*() {
  const context = yield* Layer.build(
    NodeServer.layer({ port: 0 }).pipe(
      Layer.provideMerge(Server.layer({ events: Events.namespaces({ default: {} }), history }))
    )
  )
  const server = Context.get(context, Server.Server)
  const net = yield* proxy(Number(new URL(Context.get(context, NodeServer.NodeServer).url).port))

  const received = new Map<string, Array<string>>()
  const conn = yield* Client.dial(`ws://127.0.0.1:${net.port}/echo`, {
    events: Events.client({
      default: {
        tick: (_ns, msg) =>
          Effect.sync(() => {
            const list = received.get(msg.room) ?? []
            list.push(Message.bodyText(msg))
            received.set(msg.room, list)
          })
      }
    }),
    reconnect: Schedule.spaced("100 millis"),
    reconnectProbe: "direct",
    recovery: {
      onNotRecovered: (event) =>
        Effect.log(`${event.room}: not recovered (${event.reason}) — the application fetches its state again`)
    }
  }).pipe(Effect.provide(NodeClient.layer))
  yield* History.events(conn).pipe(
    Stream.runForEach((event) =>
      event._tag === "Recovered"
        ? Effect.log(
          `${event.room}: recovered, ${event.replayed} missed ticks replayed after offset ${event.position.offset}`
        )
        : Effect.void
    ),
    Effect.forkScoped
  )
  yield* conn.state.pipe(Stream.runForEach((state) => Effect.log(`connection: ${state._tag}`)), Effect.forkScoped)
  const ns = yield* conn.connect("default")
  yield* ns.joinRoom("ticker-main")
  yield* ns.joinRoom("ticker-small")

  const tick = (room: string, n: number) =>
    server.broadcast({ namespace: "default", room, event: "tick", body: `tick ${n}` })
  const waitFor = (room: string, count: number) =>
    Effect.sync(() => received.get(room)?.length ?? 0).pipe(
      Effect.repeat({ until: (n) => n >= count, schedule: Schedule.spaced("20 millis") }),
      Effect.timeout("10 seconds")
    )

  // 1. 200 ticks, one every 10 ms; the client is cut off from tick 50 to tick 120
  for (let n = 0; n < 200; n++) {
    if (n === 50) {
      yield* Effect.log("-- the network drops the client --")
      net.cut()
    }
    if (n === 120) {
      yield* Effect.log("-- the network is back --")
      net.restore()
    }
    yield* tick("ticker-main", n)
    yield* Effect.sleep("10 millis")
  }
  yield* waitFor("ticker-main", 200)
  const main = received.get("ticker-main") ?? []
  const inOrder = main.every((body, i) => body === `tick ${i}`)
  yield* Effect.log(`ticker-main: ${main.length} of 200 ticks, each once and in order: ${inOrder}`)
  const latest = yield* server.history("default", "ticker-main", { limit: 1 })
  yield* Effect.log(`the room is at offset ${latest.position.offset}; its latest: ${latest.entries[0]?.message.body}`)

  // 2. a longer outage in a room that keeps 20: more than 20 ticks are missed
  yield* tick("ticker-small", 0)
  yield* waitFor("ticker-small", 1)
  net.cut()
  yield* Effect.sleep("200 millis")
  for (let n = 1; n <= 50; n++) yield* tick("ticker-small", n)
  net.restore()
  yield* Effect.sleep("500 millis")
  yield* tick("ticker-small", 51)
  yield* waitFor("ticker-small", 2)
  yield* Effect.log(`ticker-small: got ${(received.get("ticker-small") ?? []).join(", ")}`)
})

NodeRuntime.runMain(Effect.scoped(program))
