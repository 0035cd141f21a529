/**
 * What the recovery tests on real sockets share: a TCP proxy between the client
 * and the servers that cuts the network (every socket destroyed, new ones refused)
 * and restores it (maybe towards another instance), server instances with history
 * rules, a recovering client that records what its room gets, and a stream of
 * broadcasts at a fixed rate.
 */
import * as Client from "effect-neffos/Client"
import type * as Conn from "effect-neffos/Conn"
import * as Events from "effect-neffos/Events"
import * as History from "effect-neffos/History"
import * as Message from "effect-neffos/Message"
import * as NodeClient from "effect-neffos/NodeClient"
import * as NodeServer from "effect-neffos/NodeServer"
import * as Server from "effect-neffos/Server"
import type * as StackExchange from "effect-neffos/StackExchange"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Net from "node:net"

/** `live-*` rooms keep 2,000 messages, `small-*` rooms 100. */
export const rules: History.Options = {
  rooms: [
    { namespace: "default", room: /^live-/, size: 2000, ttl: "1 minute" },
    { namespace: "default", room: /^small-/, size: 100, ttl: "1 minute" }
  ]
}

const events = Events.namespaces({ default: {} })

export interface Instance {
  readonly server: Server.Server
  readonly port: number
  /** stops the instance (its connections are closed with 1001) */
  readonly stop: Effect.Effect<void>
}

/** A server instance on 127.0.0.1 port 0, with an exchange when given; it lives until `stop` or the scope's end. */
export const instance = (
  exchange?: Layer.Layer<StackExchange.StackExchange, unknown>
): Effect.Effect<Instance, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const serverLayer = Server.layer({ events, history: rules, shutdownTimeout: "1 second" })
    const layer = exchange === undefined
      ? NodeServer.layer({ port: 0 }).pipe(Layer.provideMerge(serverLayer))
      : NodeServer.layer({ port: 0 }).pipe(Layer.provideMerge(serverLayer), Layer.provide(exchange))
    const context = yield* Layer.buildWithScope(layer, scope).pipe(Effect.orDie)
    const node = Context.get(context, NodeServer.NodeServer)
    return {
      server: Context.get(context, Server.Server),
      port: Number(new URL(node.url).port),
      stop: Scope.close(scope, Exit.void)
    }
  })

export interface Proxy {
  readonly port: number
  /** destroys every socket through it (both sides see the connection drop) and refuses new ones */
  readonly cut: Effect.Effect<void>
  /** lets connections through again, to `target` when given */
  readonly restore: (target?: number) => Effect.Effect<void>
}

/** A TCP proxy on 127.0.0.1 port 0 towards `target`. */
export const proxy = (target: number): Effect.Effect<Proxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    let to = target
    let down = false
    const open = new Set<Net.Socket>()
    const track = (socket: Net.Socket) => {
      open.add(socket)
      socket.on("close", () => open.delete(socket))
      socket.on("error", () => socket.destroy())
    }
    const server = Net.createServer((client) => {
      track(client)
      if (down) return void client.destroy()
      const upstream = Net.connect(to, "127.0.0.1")
      track(upstream)
      client.pipe(upstream)
      upstream.pipe(client)
      client.on("close", () => upstream.destroy())
      upstream.on("close", () => client.destroy())
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as Net.AddressInfo).port)))
      }),
      () =>
        Effect.async<void>((resume) => {
          for (const socket of open) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    )
    return {
      port,
      cut: Effect.sync(() => {
        down = true
        for (const socket of open) socket.destroy()
      }),
      restore: (next) =>
        Effect.sync(() => {
          if (next !== undefined) to = next
          down = false
        })
    }
  })

export interface Recorder {
  readonly conn: Client.ClientConn
  /** bodies received in the room, in order, with their offsets */
  readonly received: Array<readonly [body: string, offset: number | undefined]>
  readonly recovery: Queue.Dequeue<History.RecoveryEvent>
  readonly awaitCount: (count: number, timeout?: Duration.DurationInput) => Effect.Effect<void>
  readonly awaitState: (tag: Client.ConnectionState["_tag"]) => Effect.Effect<void>
  readonly awaitRecovery: Effect.Effect<History.RecoveryEvent>
}

/** A client through `port` that reconnects every 20 ms, joined to `room`, recording its `msg` events. */
export const recorder = (port: number, room: string): Effect.Effect<Recorder, never, Scope.Scope> =>
  Effect.gen(function*() {
    const received: Array<readonly [string, number | undefined]> = []
    const watchers = new Set<{ readonly count: number; readonly reached: Deferred.Deferred<void> }>()
    const record = (_ns: Conn.ClientNSConn, msg: Message.Message) =>
      Effect.sync(() => {
        received.push([Message.bodyText(msg), Option.getOrUndefined(History.position(msg))?.offset])
        for (const watcher of watchers) {
          if (received.length >= watcher.count) {
            watchers.delete(watcher)
            Deferred.unsafeDone(watcher.reached, Effect.void)
          }
        }
      })
    const conn = yield* Client.dial(`ws://127.0.0.1:${port}/echo`, {
      events: Events.client({ default: { msg: record } }),
      reconnect: Schedule.spaced("20 millis"),
      reconnectProbe: "direct"
    }).pipe(Effect.provide(NodeClient.layer), Effect.orDie)
    const recovery = yield* Queue.unbounded<History.RecoveryEvent>()
    yield* Effect.forkScoped(Stream.runForEach(History.events(conn), (event) => Queue.offer(recovery, event)))
    const ns = yield* Effect.orDie(conn.connect("default"))
    yield* Effect.orDie(ns.joinRoom(room))
    return {
      conn,
      received,
      recovery,
      awaitCount: (count, timeout = "10 seconds") =>
        Effect.suspend(() => {
          if (received.length >= count) return Effect.void
          const reached = Deferred.unsafeMake<void>(FiberId.none)
          watchers.add({ count, reached })
          return Deferred.await(reached)
        }).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => new Error(`received ${received.length} of ${count}`)
          }),
          Effect.orDie
        ),
      awaitState: (tag) =>
        Stream.runHead(Stream.filter(conn.state, (state) => state._tag === tag)).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`no ${tag} state`) }),
          Effect.orDie,
          Effect.asVoid
        ),
      awaitRecovery: Queue.take(recovery).pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("no recovery event") }),
        Effect.orDie
      )
    }
  })

/**
 * Broadcasts `m0`..`m<count-1>` into `room` at `rate` per second (batches every
 * 5 ms), from `from(i)`; `at(i)` runs before message i is sent.
 */
export const broadcastAtRate = (options: {
  readonly count: number
  readonly rate: number
  readonly room: string
  readonly from: (i: number) => Server.Server
  readonly at?: (i: number) => Effect.Effect<void>
  readonly prefix?: string
}): Effect.Effect<void> =>
  Effect.gen(function*() {
    const perBatch = Math.max(1, Math.round(options.rate / 200))
    const start = Date.now()
    for (let i = 0; i < options.count; i++) {
      if (options.at !== undefined) yield* options.at(i)
      yield* Effect.orDie(
        options.from(i).broadcast({
          namespace: "default",
          room: options.room,
          event: "msg",
          body: `${options.prefix ?? "m"}${i}`
        })
      )
      if ((i + 1) % perBatch === 0) {
        const due = start + ((i + 1) / options.rate) * 1000
        const wait = due - Date.now()
        if (wait > 0) yield* Effect.sleep(wait)
      }
    }
  })

/** The bodies `m<from>`..`m<to-1>`. */
export const bodies = (from: number, to: number, prefix = "m"): Array<string> =>
  Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`)
