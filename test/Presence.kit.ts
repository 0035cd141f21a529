/**
 * What the cluster presence tests share: instances with presence that can be
 * killed (their broker connections cut through a proxy, so that no goodbye and
 * no leave ever crosses), a wait on the presence changes of several instances,
 * and the truth to compare presence with.
 */
import * as Events from "effect-neffos/Events"
import * as Message from "effect-neffos/Message"
import * as NodeServer from "effect-neffos/NodeServer"
import type * as Presence from "effect-neffos/Presence"
import * as Server from "effect-neffos/Server"
import * as StackExchange from "effect-neffos/StackExchange"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Net from "node:net"

export const events = Events.namespaces({
  default: {
    // the client names itself; the server keeps the name as presence metadata
    name: (ns, msg) =>
      Effect.flatMap(Server.Server, (server) => server.presence.setMetadata(ns.conn, { name: Message.bodyText(msg) })),
    chat: (ns, msg) => ns.broadcastOthers({ room: msg.room, event: "chat", body: msg.body })
  }
})

export interface PresenceInstance {
  readonly name: string
  readonly server: Server.Server
  readonly url: string
  readonly exchange: StackExchange.StackExchange
  readonly lifecycle: Queue.Dequeue<Server.ServerEvent>
  /** releases the instance (graceful, unless its broker connections were cut first) */
  readonly close: Effect.Effect<void>
}

export const cluster = { heartbeatInterval: "250 millis", instanceTtl: "1500 millis" } as const

/** An instance with presence on 127.0.0.1 port 0, released with the scope or by `close`. */
export const presenceInstance = (
  name: string,
  exchange: Layer.Layer<StackExchange.StackExchange, unknown>,
  options?: Partial<Server.Options<never, never>>
): Effect.Effect<PresenceInstance, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.flatMap(Effect.scope, (parent) => Scope.fork(parent, ExecutionStrategy.sequential))
    const serverLayer = Server.layer({
      events,
      presence: true,
      cluster,
      lifecycleCapacity: 16_384,
      idGenerator: (request) => new URL(request.url, "http://x").searchParams.get("id") ?? crypto.randomUUID(),
      ...options
    })
    const context = yield* Layer.buildWithScope(
      NodeServer.layer({ port: 0 }).pipe(Layer.provideMerge(serverLayer), Layer.provideMerge(exchange)),
      scope
    ).pipe(Effect.orDie)
    const server = Context.get(context, Server.Server)
    return {
      name,
      server,
      url: Context.get(context, NodeServer.NodeServer).url,
      exchange: Context.get(context, StackExchange.StackExchange),
      lifecycle: yield* Scope.extend(server.subscribe, scope),
      close: Scope.close(scope, Exit.void)
    }
  })

// -----------------------------------------------------------------------------
// a TCP proxy to the broker: cutting it is, for the broker and the other
// instances, what a SIGKILL of the instance behind it looks like
// -----------------------------------------------------------------------------

export interface Proxy {
  readonly port: number
  /** stops listening and drops every connection through it, at once */
  readonly cut: Effect.Effect<void>
}

export const proxy = (target: number): Effect.Effect<Proxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer((client) => {
      const upstream = Net.connect(target, "127.0.0.1")
      for (const socket of [client, upstream]) {
        sockets.add(socket)
        socket.on("error", () => {})
        socket.on("close", () => {
          sockets.delete(socket)
          client.destroy()
          upstream.destroy()
        })
      }
      client.pipe(upstream)
      upstream.pipe(client)
    })
    const port = yield* Effect.async<number>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as Net.AddressInfo).port)))
    })
    const cut = Effect.sync(() => {
      server.close()
      for (const socket of sockets) socket.destroy()
      sockets.clear()
    })
    yield* Effect.addFinalizer(() => cut)
    return { port, cut }
  })

// -----------------------------------------------------------------------------
// views and waits
// -----------------------------------------------------------------------------

/** `id@instance` of every member, sorted: what an instance's presence says. */
export const view = (
  instances: ReadonlyArray<PresenceInstance>,
  on: PresenceInstance,
  namespace: string,
  room?: string
): Effect.Effect<ReadonlyArray<string>> =>
  Effect.map(on.server.presence.members(namespace, room), (members) => label(instances, members))

const label = (instances: ReadonlyArray<PresenceInstance>, members: ReadonlyArray<Presence.Member>) =>
  members.map((m) => `${m.id}@${instances.find((i) => i.server.instanceId === m.instance)?.name ?? m.instance}`).sort()

/** `id@instance` of the connections the instances themselves hold: what presence must say. */
export const truth = (
  instances: ReadonlyArray<PresenceInstance>,
  namespace: string,
  room?: string
): Effect.Effect<ReadonlyArray<string>> =>
  Effect.map(
    Effect.forEach(instances, (i) =>
      Effect.map(i.server.members(namespace, room), (conns) => conns.map((c) => `${c.id}@${i.name}`))),
    (lists) =>
      lists.flat().sort()
  )

/**
 * Waits until `check` holds: checked now, then after every presence change on any
 * of `watched` (and at least every 100 ms); a defect naming `what` and the last
 * mismatch if not within `timeout`.
 */
export const until = (
  watched: ReadonlyArray<PresenceInstance>,
  check: Effect.Effect<string | undefined>,
  what: string,
  timeout: Duration.DurationInput = "3 seconds"
): Effect.Effect<void> =>
  Effect.scoped(Effect.gen(function*() {
    const pull = yield* Stream.toPull(
      Stream.mergeAll(watched.map((i) => i.server.presence.changes), { concurrency: "unbounded" })
    )
    let last = yield* check
    const deadline = Date.now() + Duration.toMillis(Duration.decode(timeout))
    while (last !== undefined) {
      const left = deadline - Date.now()
      if (left <= 0) return yield* Effect.dieMessage(`${what}: not within ${Duration.format(timeout)}: ${last}`)
      // a change wakes it; the short bound covers a change made before the stream subscribed
      yield* Effect.timeoutOption(Effect.ignore(pull), Math.min(left, 100))
      last = yield* check
    }
  }))

/** Every instance in `watched` sees exactly the members the live instances hold, counts included. */
export const agree = (
  live: ReadonlyArray<PresenceInstance>,
  watched: ReadonlyArray<PresenceInstance>,
  namespace: string,
  room?: string
): Effect.Effect<string | undefined> =>
  Effect.gen(function*() {
    const expected = yield* truth(live, namespace, room)
    const ids = new Set(expected.map((m) => m.slice(0, m.lastIndexOf("@")))).size
    for (const i of watched) {
      const seen = yield* view(live, i, namespace, room)
      if (JSON.stringify(seen) !== JSON.stringify(expected)) {
        return `${i.name} sees ${JSON.stringify(seen)}, expected ${JSON.stringify(expected)}`
      }
      const count = yield* i.server.presence.count(namespace, room)
      if (count.connections !== expected.length || count.ids !== ids) {
        return `${i.name} counts ${JSON.stringify(count)}, expected ${expected.length} / ${ids}`
      }
    }
    return undefined
  })
