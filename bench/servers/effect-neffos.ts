/**
 * effect-neffos through its public API: namespace `default` with an `echo` event that replies with
 * the request's body, served by `NodeServer`. The first argument picks the broadcast policy:
 * `default` (bounded sliding outboxes) or `strict` (lossless, waits for room); `history` is the
 * default policy with the fan-out room recoverable (its last 1,000 messages kept in memory).
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
// the compiled package, as users run it (bench/index.ts builds it first); typed by the sources
const { Events, Reply, Server } = (await import("../../dist/index.js" as string)) as typeof import("../../src/index.js")
const NodeServer = (await import("../../dist/NodeServer.js" as string)) as typeof import("../../src/NodeServer.js")
import { host } from "../lib/host.js"
import { broadcastEvent, echoEvent, namespace, room } from "../lib/wire.js"

const strict = process.argv[2] === "strict"
const history = process.argv[2] === "history"
  ? { rooms: [{ namespace, room, size: 1000, ttl: "1 minute" as const }] }
  : undefined

const events = Events.namespaces({
  [namespace]: {
    [echoEvent]: (_ns, message) => Effect.succeed(Reply.make(message.body))
  }
})

const live = NodeServer.layer({ port: 0, host: "127.0.0.1" }).pipe(
  Layer.provideMerge(Server.layer({ events, strict, history }))
)

host(async () => {
  const runtime = ManagedRuntime.make(live)
  const [server, node] = await runtime.runPromise(Effect.all([Server.Server, NodeServer.NodeServer]))
  return {
    port: node.port,
    path: node.path,
    // what a caller outside an Effect fiber does; a strict broadcast may wait for room
    broadcast: (room, body) => Effect.runPromise(server.broadcast({ namespace, room, event: broadcastEvent, body })),
    connections: () => Effect.runSync(server.connectionCount)
  }
})
