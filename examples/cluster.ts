/**
 * Two server instances on two ports that share Redis (or NATS with `--nats`),
 * one neffos.js client on each, and messages crossing from one to the other:
 *
 *   npx tsx examples/cluster.ts          # Redis on REDIS_URL, default redis://127.0.0.1:6379
 *   npx tsx examples/cluster.ts --nats   # NATS on NATS_URL, default 127.0.0.1:4222
 *
 * - alice (on A) chats in room `lobby`: the server's `chat` handler broadcasts to
 *   the others of the room, and bob (on B) gets it;
 * - server A sends to the id `bob`, who is connected to B;
 * - server B asks `alice`, who is connected to A, and gets her answer;
 * - server A counts the connections of the whole cluster.
 *
 * Then it shuts everything down and exits.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Events, Message, Server } from "effect-neffos"
import * as NatsStackExchange from "effect-neffos/NatsStackExchange"
import * as NodeServer from "effect-neffos/NodeServer"
import * as RedisStackExchange from "effect-neffos/RedisStackExchange"
import * as StackExchange from "effect-neffos/StackExchange"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as neffos from "neffos.js"

const useNats = process.argv.includes("--nats")

const events = Events.namespaces({
  default: {
    chat: (ns, msg) => ns.broadcastOthers(msg)
  }
})

/** One instance: its own exchange connection(s), server and HTTP port. */
const instance = (name: string) => {
  const exchange = useNats
    ? NatsStackExchange.layer({ servers: process.env.NATS_URL ?? "127.0.0.1:4222", prefix: "cluster-example" })
    : RedisStackExchange.layer({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379", prefix: "cluster-example" })
  const server = Server.layer({
    events,
    // the application names its users; here a header the client sends
    idGenerator: (request) => request.headers["x-user"] ?? crypto.randomUUID()
  })
  return Effect.gen(function*() {
    const context = yield* Layer.build(
      NodeServer.layer({ port: 0 }).pipe(Layer.provideMerge(server), Layer.provideMerge(exchange))
    )
    const node = Context.get(context, NodeServer.NodeServer)
    yield* Effect.log(`instance ${name} on ${node.url}`)
    return {
      server: Context.get(context, Server.Server),
      exchange: Context.get(context, StackExchange.StackExchange),
      url: node.url
    }
  })
}

/** A neffos.js client that logs what it gets and answers the server's `whoami` asks. */
const user = (url: string, name: string, inbox: Queue.Queue<string>) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      neffos.dial(url, {
        default: {
          chat: (_ns: neffos.NSConn, msg: neffos.Message) => void inbox.unsafeOffer(`${name} got chat: ${msg.Body}`),
          notice: (_ns: neffos.NSConn, msg: neffos.Message) =>
            void inbox.unsafeOffer(`${name} got notice: ${msg.Body}`),
          whoami: () => neffos.reply(`I am ${name}, connected to ${url}`)
        }
      }, { headers: { "X-User": name } })
    ),
    (conn) => Effect.sync(() => conn.close())
  ).pipe(
    Effect.flatMap((conn) => Effect.promise(() => conn.connect("default"))),
    Effect.tap((ns) => Effect.promise(() => ns.joinRoom("lobby")))
  )

const program = Effect.gen(function*() {
  yield* Effect.log(`sharing ${useNats ? "NATS" : "Redis"}`)
  const a = yield* instance("A")
  const b = yield* instance("B")
  const inbox = yield* Queue.unbounded<string>()
  const alice = yield* user(a.url, "alice", inbox)
  yield* user(b.url, "bob", inbox)
  // both instances' subscriptions are confirmed by the broker
  yield* a.exchange.settled
  yield* b.exchange.settled

  alice.room("lobby").emit("chat", "hello from A")
  yield* Effect.log(yield* Queue.take(inbox))

  yield* a.server.send("bob", { namespace: "default", event: "notice", body: "a direct message from server A" })
  yield* Effect.log(yield* Queue.take(inbox))

  const answer = yield* b.server.ask({ to: "alice", namespace: "default", event: "whoami" })
  yield* Effect.log(`server B asked alice: ${Message.bodyText(answer)}`)

  yield* Effect.log(`connections in the cluster, as server A counts them: ${yield* a.server.clusterConnectionCount}`)
})

NodeRuntime.runMain(Effect.scoped(program).pipe(Effect.timeout("20 seconds")))
