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
 * - server A counts the connections of the whole cluster;
 * - presence: each instance reads the cluster's online count and the lobby's
 *   members (display names the server set from a header) from its own replica;
 * - server B joins alice (on A) to room `vip`: her client sees the join, and a
 *   broadcast made right after reaches her; server A describes bob's connections.
 *
 * Then it shuts everything down and exits.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Events, Message, Presence, Server } from "effect-neffos"
import * as NatsStackExchange from "effect-neffos/NatsStackExchange"
import * as NodeServer from "effect-neffos/NodeServer"
import * as RedisStackExchange from "effect-neffos/RedisStackExchange"
import * as StackExchange from "effect-neffos/StackExchange"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
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
    idGenerator: (request) => request.headers["x-user"] ?? crypto.randomUUID(),
    // who is online, on every instance; the server sets each connection's display name
    presence: true,
    onConnect: (conn) =>
      Effect.flatMap(
        Server.Server,
        (self) => self.presence.setMetadata(conn, { name: `${conn.id[0].toUpperCase()}${conn.id.slice(1)}` })
      )
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
          whoami: () => neffos.reply(`I am ${name}, connected to ${url}`),
          _OnRoomJoined: (_ns: neffos.NSConn, msg: neffos.Message) =>
            void (msg.Room === "vip" && inbox.unsafeOffer(`${name} was joined to ${msg.Room} by the server`))
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

  // presence: every instance has the whole cluster's members, reads are local (no broker round trip)
  yield* lobbyHas(b.server.presence, 2)
  for (const [name, instance] of [["A", a], ["B", b]] as const) {
    const online = yield* instance.server.presence.count("default")
    yield* Effect.log(`online, as server ${name} sees it: ${online.connections} connections, ${online.ids} users`)
  }
  const lobby = yield* b.server.presence.members("default", "lobby")
  for (const member of lobby) {
    const where = member.instance === a.server.instanceId ? "A" : "B"
    yield* Effect.log(
      `in the lobby: ${member.metadata?.name} (${member.id}, on ${where}, since ${
        new Date(member.joinedAt).toISOString()
      })`
    )
  }

  // remote control: B moves alice (on A) into a room; the call returns once her client joined
  const joined = yield* b.server.joinRoom({ namespace: "default", id: "alice" }, "vip")
  yield* Effect.log(
    `joinRoom: ${joined.value.count} connection(s), complete: ${joined.complete}, per instance: ${
      joined.instances.map((o) => `${o.instance === a.server.instanceId ? "A" : "B"} ${o._tag}`).join(", ")
    }`
  )
  yield* Effect.log(yield* Queue.take(inbox))
  yield* b.server.broadcast({ namespace: "default", room: "vip", event: "notice", body: "welcome to vip" })
  yield* Effect.log(yield* Queue.take(inbox))
  const info = yield* a.server.connectionsInfo({ id: "bob" })
  for (const conn of info.value) {
    yield* Effect.log(
      `bob's connection ${conn.ref}: ${JSON.stringify(conn.namespaces)} ${JSON.stringify(conn.metadata)}`
    )
  }
})

/** Waits until the lobby has `n` members in this instance's view (its state, then its changes). */
const lobbyHas = (presence: Presence.Presence, n: number) =>
  presence.watch("default", "lobby").pipe(
    Stream.scan(0, (count, event) =>
      event._tag === "State"
        ? event.members.length
        : event._tag === "Join"
        ? count + 1
        : event._tag === "Leave"
        ? count - 1
        : count),
    Stream.takeUntil((count) => count >= n),
    Stream.runDrain
  )

NodeRuntime.runMain(Effect.scoped(program).pipe(Effect.timeout("20 seconds")))
