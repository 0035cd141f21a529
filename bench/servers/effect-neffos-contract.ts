/**
 * effect-neffos through a typed contract: the same server as effect-neffos.ts, with its events
 * declared by `Contract.make`. `echo` is an ask whose payload and answer are a small struct
 * (decoded from the request's JSON, encoded into the reply's); a broadcast is a push of `{ text }`,
 * encoded once per broadcast.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
// the compiled package, as users run it (bench/index.ts builds it first); typed by the sources
const { Contract, Server } = (await import("../../dist/index.js" as string)) as typeof import("../../src/index.js")
const NodeServer = (await import("../../dist/NodeServer.js" as string)) as typeof import("../../src/NodeServer.js")
import { host } from "../lib/host.js"
import { broadcastEvent, echoEvent, namespace } from "../lib/wire.js"

const Echo = Schema.Struct({ id: Schema.Number, user: Schema.String, text: Schema.String })

const Bench = Contract.make({
  [namespace]: {
    [echoEvent]: Contract.ask({ payload: Echo, success: Echo }),
    [broadcastEvent]: Contract.push({ text: Schema.String })
  }
})

const events = Contract.handlers(Bench, {
  [namespace]: {
    [echoEvent]: (_ns, payload) => Effect.succeed(payload)
  }
})

const live = NodeServer.layer({ port: 0, host: "127.0.0.1" }).pipe(Layer.provideMerge(Server.layer({ events })))

host(async () => {
  const runtime = ManagedRuntime.make(live)
  const [server, node] = await runtime.runPromise(Effect.all([Server.Server, NodeServer.NodeServer]))
  const typed = Contract.fromServer(server, Bench)
  const push = Bench[namespace][broadcastEvent]
  return {
    port: node.port,
    path: node.path,
    broadcast: (room, body) =>
      Effect.runPromise(typed.broadcast(push, { text: body }, room === "" ? undefined : { room })),
    connections: () => Effect.runSync(server.connectionCount)
  }
})
