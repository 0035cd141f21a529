/**
 * The server: options, the per-connection timers, accepting sockets, the hooks
 * that keep the registry in step with the connections, sends and asks by id, the
 * stack exchange adapter and shutdown. Fan-out is in broadcast.ts, the index in
 * registry.ts, the close of every connection in shutdown.ts.
 *
 * Over 450 lines on purpose: the accept path, the connections' hooks, sends and
 * asks by id and the exchange adapter all read and change the same registry,
 * timers and lifecycle stream, and `make` keeps them in one closure so that
 * releasing the layer ends all of them; what stands alone has moved out
 * (broadcast.ts, registry.ts, shutdown.ts, serverObserve.ts, recovery.ts,
 * cluster.ts).
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import type * as Conn from "../Conn.js"
import * as Errors from "../Errors.js"
import type * as Message from "../Message.js"
import type * as Server from "../Server.js"
import type * as StackExchange from "../StackExchange.js"
import * as Broadcast from "./broadcast.js"
import * as Cluster from "./cluster.js"
import type { ConnConfig, EventTable, OutboxConfig } from "./connConfig.js"
import { protocol } from "./dispatch.js"
import { failureOf, logsDebug } from "./failure.js"
import * as msg from "./message.js"
import * as Metrics from "./metrics.js"
import * as Observe from "./observe.js"
import type { Outbox } from "./outbox.js"
import * as Recovery from "./recovery.js"
import { Registry, targets } from "./registry.js"
import { withQueryHeaders } from "./request.js"
import {
  ServerConn,
  type ServerConnConfig,
  type ServerHooks,
  type ServerNSConn,
  type ServerRoom
} from "./serverConn.js"
import { ServerObserver, views } from "./serverObserve.js"
import { closeAll } from "./shutdown.js"
import { type DelayQueue, Timers } from "./timers.js"
import type { RawSocket, SocketHandlers } from "./transport.js"

/** @internal */
export const ServerTag = Context.GenericTag<Server.Server>("effect-neffos/Server")

/**
 * The StackExchange tag by its key: the exchange implementation stays out of the
 * server's imports (it needs Node), so the package root stays browser-safe.
 */
const StackExchangeTag = Context.GenericTag<StackExchange.StackExchange>("effect-neffos/StackExchange")

/** @internal */
export const droppedFrames = Metrics.droppedFrames

/** @internal */
export const connectionsGauge = Metrics.connections

const defaults = {
  askTimeout: Duration.seconds(30),
  handshakeTimeout: Duration.seconds(10),
  pingInterval: Duration.seconds(25),
  pingTimeout: Duration.seconds(20),
  shutdownTimeout: Duration.seconds(5),
  writeTimeout: Duration.seconds(5),
  maxMessageSize: 1024 * 1024,
  inboundCapacity: 256,
  maxNameLength: 256,
  maxRoomsPerConnection: 1000,
  lifecycleCapacity: 1024,
  outbox: { capacity: 1024, strategy: "sliding" as const, highWaterMark: 64 * 1024, maxBytes: 4 * 1024 * 1024 },
  /** after shutdown closed a socket, how long its close handshake may take before it is dropped */
  closeGrace: Duration.millis(500)
}

const isNativeOnly = (table: EventTable): boolean => {
  if (table.size !== 1) return false
  const events = table.get("")
  return events !== undefined && events.size === 1 && events.has("_OnNativeMessage")
}

const resolveOutbox = (o: Server.OutboxOptions | undefined) => ({
  capacity: Math.max(1, o?.capacity ?? defaults.outbox.capacity),
  strategy: o?.strategy ?? defaults.outbox.strategy,
  highWaterMark: o?.highWaterMark ?? defaults.outbox.highWaterMark,
  maxBytes: Math.max(1, o?.maxBytes ?? defaults.outbox.maxBytes),
  flushInterval: windowMillis(o?.flushInterval)
})

/** A flush window in whole milliseconds (rounded up); 0: none. */
const windowMillis = (input: Duration.DurationInput | undefined): number => {
  if (input === undefined) return 0
  const ms = Duration.toMillis(input)
  return Number.isFinite(ms) && ms > 0 ? Math.ceil(ms) : 0
}

/** @internal */
export const make = <E, R>(
  options: Server.Options<E, R>
): Effect.Effect<Server.Server, never, Scope.Scope | Exclude<R, Server.Server>> =>
  Effect.gen(function*() {
    const table = options.events.table as EventTable
    const nativeOnly = isNativeOnly(table)
    const native: ConnConfig["native"] = nativeOnly
      ? "only"
      : table.get("")?.has("_OnNativeMessage")
      ? "fallback"
      : "none"
    const askTimeout = Duration.decode(options.askTimeout ?? defaults.askTimeout)
    const writeTimeout = Duration.decode(
      typeof options.strict === "object" ? options.strict.writeTimeout ?? defaults.writeTimeout : defaults.writeTimeout
    )
    const strictByDefault = options.strict !== undefined && options.strict !== false
    const shutdownTimeout = Duration.decode(options.shutdownTimeout ?? defaults.shutdownTimeout)
    const idGenerator = options.idGenerator ?? (() => crypto.randomUUID())

    const registry = new Registry<ServerConn>()
    const instanceId = crypto.randomUUID()
    const observer = yield* Observe.make({
      side: "server",
      metrics: options.metrics ?? true,
      namespaces: table.keys(),
      instanceId
    })
    const observed = new ServerObserver(observer, registry)
    Observe.live.add(observer)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        observer.flush()
        Observe.live.delete(observer)
      })
    )
    const broadcaster = yield* Broadcast.make<ServerConn>(writeTimeout, observer)
    // recoverable rooms (recovery.ts): nothing of it exists without history rules
    const recovery = options.history === undefined
      ? undefined
      : yield* Recovery.make(options.history, broadcaster, registry, writeTimeout)
    const lifecycle = yield* PubSub.sliding<Server.ServerEvent>(
      Math.max(1, options.lifecycleCapacity ?? defaults.lifecycleCapacity)
    )
    const publish = (event: Server.ServerEvent): void => {
      // unsafeOffer does not slide: when full, publishing (which completes at once) drops the oldest
      if (!lifecycle.unsafeOffer(event)) Effect.runSync(PubSub.publish(lifecycle, event))
    }
    let accepting = true
    const shutdownDone = Deferred.unsafeMake<void>(FiberId.none)
    /** connections between their upgrade and their A<id> (or close) */
    const handshaking = new Set<ServerConn>()
    let bridge: StackExchange.Bridge | undefined
    const cluster = yield* Cluster.make(
      instanceId,
      registry,
      options.presence === true ? {} : options.presence === false ? undefined : options.presence,
      options.cluster
    )
    // the fibers of every connection (dispatchers, close sequences, onConnect) belong to the server:
    // releasing the layer interrupts whatever is still running
    const fibers = yield* FiberSet.make<unknown, unknown>()
    let fork: <A, E2>(effect: Effect.Effect<A, E2>) => Fiber.RuntimeFiber<A, E2>

    const timers = yield* Timers.make
    const handshakeQueue = timers.queue<ServerConn>(options.handshakeTimeout ?? defaults.handshakeTimeout, (conn) => {
      if (conn.closed || conn.isAccepted) return
      if (handshaking.delete(conn)) observed.handshakeEnded(conn, "timeout")
      conn.unsafeClose(1008, "handshake timeout", false)
    })
    const pongQueue = timers.queue<{ conn: ServerConn; seq: number }>(
      options.pingTimeout ?? defaults.pingTimeout,
      ({ conn, seq }) => {
        if (!conn.closed && conn.awaitingPong && conn.pingSeq === seq) conn.unsafeTerminate(1006, "ping timeout")
      }
    )
    const pingQueue = timers.queue<ServerConn>(options.pingInterval ?? defaults.pingInterval, (conn) => {
      if (conn.closed) return
      // an unanswered ping keeps its deadline: a newer ping would move pingSeq past it (pingInterval < pingTimeout)
      if (!conn.awaitingPong) {
        if (!conn.socket.ping()) return
        conn.awaitingPong = true
        conn.pongTimer = pongQueue.push({ conn, seq: ++conn.pingSeq })
      }
      conn.pingTimer = pingQueue.push(conn)
    })
    const keepAlive = Duration.toMillis(options.pingInterval ?? defaults.pingInterval) > 0
    // flush windows: one delay queue per window length, shared by the connections that use it
    const windows = new Map<number, DelayQueue<Outbox>>()
    const withWindow = (outbox: ReturnType<typeof resolveOutbox>): OutboxConfig => {
      const ms = outbox.flushInterval
      if (ms === 0) return outbox
      let window = windows.get(ms)
      if (window === undefined) {
        window = timers.queue<Outbox>(ms, (o) => o.windowElapsed())
        windows.set(ms, window)
      }
      return { ...outbox, window }
    }
    const sharedOutbox = typeof options.outbox === "function" ? undefined : withWindow(resolveOutbox(options.outbox))
    const outboxFor = (request: Conn.Request) =>
      sharedOutbox ??
        withWindow(resolveOutbox((options.outbox as (request: Conn.Request) => Server.OutboxOptions)(request)))
    yield* Effect.forkScoped(timers.run)
    // once a second: the message counters flushed, the outbox high-water mark measured
    if (observer.metrics) yield* Effect.forkScoped(observed.sampler)

    /** A topic gained its first local member or lost its last one: the exchange subscribes or unsubscribes. */
    const topicChanged = (topic: StackExchange.Topic, members: number, added: boolean) => {
      if (bridge !== undefined && members === (added ? 1 : 0)) bridge.topicChanged(topic, added)
    }

    const hooks: ServerHooks = {
      namespaceChanged: (ns: ServerNSConn, added: boolean) => {
        const members = registry.namespaceChanged(ns.namespace, ns.conn, added)
        observed.namespaceChanged(ns.namespace, added)
        topicChanged({ _tag: "Namespace", namespace: ns.namespace }, members, added)
        cluster.membershipChanged(ns.conn, ns.namespace, "", added)
        publish({
          _tag: added ? "NamespaceConnected" : "NamespaceDisconnected",
          conn: ns.conn,
          namespace: ns.namespace
        })
      },
      roomChanged: (room: ServerRoom, added: boolean) => {
        const conn = room.ns.conn
        const namespace = room.ns.namespace
        const members = registry.roomChanged(namespace, room.name, conn, added)
        topicChanged({ _tag: "Room", namespace, room: room.name }, members, added)
        cluster.membershipChanged(conn, namespace, room.name, added)
        publish({ _tag: added ? "RoomJoined" : "RoomLeft", conn: conn, namespace, room: room.name })
      },
      handshake: (conn: ServerConn) => {
        if (!accepting) return conn.unsafeClose(1001, "server shutdown", false)
        const onConnect = options.onConnect
        if (onConnect === undefined) return conn.accept()
        fork(
          Effect.exit(Effect.suspend(() => onConnect(conn))).pipe(
            Effect.flatMap((exit) => {
              if (Exit.isSuccess(exit)) return Effect.sync(() => conn.accept())
              const failure = failureOf(exit.cause)
              const refuse = (text: string) =>
                Effect.sync(() => {
                  if (handshaking.delete(conn)) observed.handshakeEnded(conn, "refused")
                  conn.reject(text)
                })
              if (failure === undefined) return refuse("rejected")
              const { log, text } = conn.describeFailure(failure, "", "", "onConnect")
              return Effect.zipRight(log, refuse(text))
            })
          ) as Effect.Effect<void>
        )
      },
      accepted: (conn: ServerConn) => {
        handshaking.delete(conn)
        if (conn.handshakeTimer !== undefined) conn.handshakeTimer.value = undefined
        conn.handshakeTimer = undefined
        const withId = registry.add(conn)
        observed.handshakeEnded(conn, "accepted")
        topicChanged({ _tag: "Connection", id: conn.id }, withId, true)
        publish({ _tag: "Connected", conn: conn })
      },
      closed: (conn: ServerConn) => {
        if (handshaking.delete(conn)) observed.handshakeEnded(conn, "failed")
        // onConnect may have set its metadata before refusing it
        cluster.closed(conn)
        if (!conn.isAccepted) return Effect.void
        const withId = registry.remove(conn)
        const logged = observed.closed(conn)
        topicChanged({ _tag: "Connection", id: conn.id }, withId, false)
        publish({ _tag: "Disconnected", conn: conn, code: conn.closeCode, reason: conn.closeReason })
        const onDisconnect = options.onDisconnect === undefined ? Effect.void : Effect.catchAllCause(
          Effect.suspend(() => options.onDisconnect!(conn) as Effect.Effect<void>),
          (cause) => Effect.logError("effect-neffos: onDisconnect failed", cause)
        )
        return logged === Effect.void ? onDisconnect : Effect.zipRight(logged, onDisconnect)
      },
      broadcast: (message, to, except) =>
        broadcast(
          to === undefined ? message : { ...message, to },
          except === undefined ? undefined : { except }
        ).pipe(
          Effect.catchAll((error) =>
            Effect.logWarning("effect-neffos: a broadcast did not reach the other instances", error)
          )
        ),
      dropped: (conn) => observer.onDropped(conn.outbox.strategy),
      joinRecovery: recovery?.joinRecovery
    }

    const config: ServerConnConfig = {
      side: "server",
      protocol,
      events: table,
      fork: <A, E2>(effect: Effect.Effect<A, E2>) => fork(effect),
      askTimeout,
      inboundCapacity: options.inboundCapacity ?? defaults.inboundCapacity,
      answerUnrepliedAsks: options.answerUnrepliedAsks ?? true,
      native,
      errorText: options.errorText,
      logsDebug: logsDebug(yield* Effect.runtime<never>()),
      maxNameLength: options.maxNameLength ?? defaults.maxNameLength,
      maxRooms: options.maxRoomsPerConnection ?? defaults.maxRoomsPerConnection,
      hooks,
      observe: observer.active ? observer : undefined
    }

    const unsafeAccept = (
      socket: RawSocket,
      incoming: Conn.Request,
      acceptOptions?: { readonly id?: string | undefined }
    ): SocketHandlers => {
      const request = withQueryHeaders(incoming)
      const reconnectTries = Number.parseInt(request.headers["x-websocket-reconnect"] ?? "0", 10)
      const conn = new ServerConn(
        acceptOptions?.id ?? idGenerator(request),
        socket,
        config,
        outboxFor(request),
        request,
        Number.isFinite(reconnectTries) && reconnectTries > 0 ? reconnectTries : 0
      )
      if (recovery?.recovers(request)) conn.recovery = new Map()
      if (!accepting) {
        conn.unsafeClose(1001, "server shutdown", false)
        return conn.handlers
      }
      if (nativeOnly) {
        conn.openNative()
      } else {
        handshaking.add(conn)
        observed.upgraded(conn)
        conn.handshakeTimer = handshakeQueue.push(conn)
      }
      if (keepAlive) conn.pingTimer = pingQueue.push(conn)
      return conn.handlers
    }

    /** What a span of the server says about itself. */
    const spanOptions = (kind: Tracer.SpanKind, attributes: Record<string, unknown>): Tracer.SpanOptions => ({
      kind,
      attributes: { ...attributes, "neffos.instance_id": instanceId },
      captureStackTrace: false
    })

    const broadcast = (
      input: Server.Outgoing,
      opts?: Server.BroadcastOptions
    ): Effect.Effect<void, Errors.StackExchangeError> => {
      if (observer.tracer === undefined) return broadcastWith(input, opts, undefined)
      return Effect.suspend(() => {
        const dropped = observer.dropped
        const waits = observer.strictWaits
        return broadcastWith(input, opts, (receivers) =>
          Effect.annotateCurrentSpan({
            "neffos.receivers": receivers,
            "neffos.dropped": observer.dropped - dropped,
            "neffos.strict_waits": observer.strictWaits - waits
          }))
      }).pipe(Effect.withSpan(
        "effect-neffos.broadcast",
        spanOptions("producer", {
          "neffos.namespace": input.namespace ?? "",
          "neffos.room": input.room ?? "",
          "neffos.event": input.event ?? "",
          "neffos.strict": opts?.strict ?? strictByDefault
        })
      ))
    }

    const broadcastWith = (
      input: Server.Outgoing,
      opts: Server.BroadcastOptions | undefined,
      delivered: ((receivers: number) => Effect.Effect<void>) | undefined
    ): Effect.Effect<void, Errors.StackExchangeError> =>
      Effect.suspend(() => {
        const message = msg.isMessage(input) && input.wait === "" ? input : msg.make({ ...input, wait: "" })
        const except = opts?.except
        const exceptConn = typeof except === "object" ? (except as ServerConn) : undefined
        const exceptId = typeof except === "string" ? except : undefined
        const skip = { key: exceptConn?.key ?? -1, id: exceptId }
        const strict = opts?.strict ?? strictByDefault
        // a recoverable room's broadcast is stored, and delivered with its position to those who asked
        const history = recovery?.settingsFor(message, input.to)
        const offered = history === undefined
          ? broadcaster.deliver(registry.snapshot, message, input.to, skip, strict)
          : recovery!.deliver(message, history, skip, strict)
        const local = delivered === undefined ? offered : Effect.tap(offered, delivered)
        if (bridge === undefined) return Effect.asVoid(local)
        const remote = bridge.publish(message, {
          to: input.to,
          except: {
            connection: exceptConn === undefined ? undefined : { instance: instanceId, key: exceptConn.key },
            id: exceptId
          },
          confirm: opts?.confirm,
          history: history !== undefined && recovery!.isShared() ? history : undefined
        })
        return Effect.zipRight(local, remote)
      })

    /** The local connections with this id (and connected to `namespace`, when given). */
    const withId = (id: string, namespace?: string): ReadonlyArray<ServerConn> => {
      const all = registry.withId(id)
      return namespace === undefined ? all : all.filter((conn) => conn.nsMap.has(namespace))
    }

    const localAsk = (request: Server.AskRequest, timeout: Duration.DurationInput | undefined) =>
      Effect.suspend((): Effect.Effect<Message.Message, Errors.AskError | Errors.ConnectionNotFound> => {
        const conns = withId(request.to, request.namespace)
        if (conns.length === 0) {
          return Effect.fail(new Errors.ConnectionNotFound({ id: request.to, namespace: request.namespace }))
        }
        const askOne = (conn: ServerConn) => {
          const ns = conn.nsMap.get(request.namespace)
          if (ns === undefined) {
            return Effect.fail(new Errors.BadNamespace({ namespace: request.namespace, reason: "NotConnected" }))
          }
          return ns.askIn(request.room ?? "", request.event, request.body ?? "", timeout)
        }
        // several connections may share an id: the first reply wins, as in neffos
        return conns.length === 1 ? askOne(conns[0]) : Effect.raceAll(conns.map(askOne))
      })

    const send = (id: string, input: Server.Outgoing) =>
      observer.tracer === undefined ? sendNow(id, input) : Effect.withSpan(
        sendNow(id, input),
        "effect-neffos.send",
        spanOptions("producer", {
          "neffos.to": id,
          "neffos.namespace": input.namespace ?? "",
          "neffos.room": input.room ?? "",
          "neffos.event": input.event ?? ""
        })
      )

    const sendNow = (id: string, input: Server.Outgoing) =>
      Effect.suspend(() => {
        const found = withId(id, input.namespace ?? "").length
        const message = msg.make({ ...input, wait: "" })
        const local = broadcaster.deliver(registry.snapshot, message, id, Broadcast.noSkip, false)
        if (bridge === undefined) {
          return found === 0
            ? Effect.fail(new Errors.ConnectionNotFound({ id, namespace: message.namespace }))
            : Effect.asVoid(local)
        }
        if (found === 0) return bridge.send(id, message)
        // found here: the other instances are a bonus, not a condition, so nobody needs to confirm
        return Effect.zipRight(local, bridge.publish(message, { to: id, except: {} }))
      })

    const ask = (request: Server.AskRequest, opts?: Conn.RequestOptions) =>
      Effect.suspend(() => {
        if (bridge === undefined || withId(request.to, request.namespace).length > 0) {
          return localAsk(request, opts?.timeout)
        }
        const remote = bridge.ask(request, opts?.timeout ?? askTimeout)
        // a local ask has the connection's own span (handles.ts); a remote one continues on the other instance
        return observer.tracer === undefined ? remote : Effect.withSpan(
          remote,
          `effect-neffos.ask ${request.namespace}.${request.event}`,
          spanOptions("client", {
            "neffos.to": request.to,
            "neffos.namespace": request.namespace,
            "neffos.room": request.room ?? "",
            "neffos.event": request.event,
            "neffos.cross_instance": true
          })
        )
      })

    const closeLocal = (id: string, code: number, reason: string): number => {
      const conns = registry.withId(id)
      for (const conn of conns) conn.unsafeClose(code, reason)
      return conns.length
    }

    const disconnect = (
      id: string,
      opts?: { readonly code?: number | undefined; readonly reason?: string | undefined }
    ) =>
      Effect.suspend(() => {
        const code = opts?.code ?? 1000
        const reason = opts?.reason ?? ""
        const local = closeLocal(id, code, reason)
        if (bridge === undefined) return Effect.succeed(local)
        return Effect.map(bridge.close(id, code, reason), (remote) => local + remote)
      })

    const infoListeners = new Set<(origin: string, payload: Uint8Array) => void>()
    const localServer: StackExchange.LocalServer = {
      instanceId,
      topics: () => registry.topics(),
      deliver: (message, { except, stored, to }) => {
        const key = except.connection !== undefined && except.connection.instance === instanceId
          ? except.connection.key
          : -1
        const recovered = recovery === undefined
          ? -1
          : recovery.deliverRemote(message, to, { key, id: except.id }, stored)
        return recovered >= 0 ? recovered : broadcaster.fanOut(registry.snapshot, message, to, { key, id: except.id })
      },
      ask: (request, timeout) => localAsk(request, timeout),
      count: (id, namespace) => withId(id, namespace).length,
      connectionCount: () => HashMap.size(registry.snapshot.all),
      close: closeLocal,
      reportStatus: (status) => {
        cluster.status(status)
        const up = status._tag === "Up"
        if (observer.brokerUp !== up) {
          fork(
            up
              ? Effect.logInfo("effect-neffos: the stack exchange's broker is back")
              : Effect.logWarning("effect-neffos: the stack exchange's broker is down").pipe(
                Effect.annotateLogs({ reason: status.error.reason, operation: status.error.operation })
              )
          )
        }
        observer.brokerUp = up
        publish(up ? { _tag: "StackExchangeUp" } : { _tag: "StackExchangeDown", error: status.error })
      },
      cluster: cluster.receive,
      info: (origin, payload) => {
        for (const listener of infoListeners) listener(origin, payload)
      }
    }

    const shutdown = Effect.suspend(() => {
      if (!accepting) return Deferred.await(shutdownDone)
      accepting = false
      const refused = Array.from(handshaking)
      for (const conn of refused) conn.unsafeClose(1001, "server shutdown", false)
      const conns = Array.from(HashMap.values(registry.snapshot.all))
      return closeAll(refused, conns, shutdownTimeout, defaults.closeGrace).pipe(
        Effect.flatMap((dropped) =>
          dropped === 0 ? Effect.void : Effect.logInfo(
            `effect-neffos: shutdown dropped ${dropped} of ${conns.length} connections whose sockets were backed up at shutdownTimeout`
          )
        ),
        Effect.ensuring(Deferred.done(shutdownDone, Exit.void))
      )
    })

    const members = (s: typeof registry.snapshot, namespace: string, room: string | undefined) =>
      targets(s, namespace, room ?? "", undefined)

    const server: Server.Server = {
      instanceId,
      broadcast,
      history: (namespace, room, readOptions) =>
        recovery === undefined
          ? Effect.fail(new Errors.HistoryUnavailable({ namespace, room, reason: "NotRecoverable" }))
          : recovery.history(namespace, room, readOptions),
      send,
      ask,
      disconnect,
      do: <E2, R2>(
        f: (conn: Conn.Conn) => Effect.Effect<unknown, E2, R2>,
        opts?: { readonly concurrency?: number | "unbounded" | undefined }
      ) =>
        Effect.flatMap(registry.get, (s) =>
          Effect.forEach(
            Array.from(HashMap.values(s.all)),
            f,
            { concurrency: opts?.concurrency ?? 16, discard: true }
          )),
      connectionCount: Effect.map(registry.get, (s) => HashMap.size(s.all)),
      clusterConnectionCount: Effect.suspend(() =>
        bridge === undefined ? Effect.succeed(localServer.connectionCount()) : bridge.connectionCount
      ),
      connections: Effect.map(registry.get, (s) => Array.from(HashMap.values(s.all))),
      connection: (id: string) =>
        Effect.suspend(() => {
          const conns = registry.withId(id)
          return conns.length === 0
            ? Effect.fail(new Errors.ConnectionNotFound({ id }))
            : Effect.succeed(conns[0])
        }),
      connectionsById: (id: string) => Effect.sync(() => registry.withId(id)),
      members: (namespace: string, room?: string) =>
        Effect.map(registry.get, (s) => {
          const found = members(s, namespace, room)
          return found === undefined ? [] : Array.from(HashMap.values(found))
        }),
      memberCount: (namespace: string, room?: string) =>
        Effect.map(registry.get, (s) => {
          const found = members(s, namespace, room)
          return found === undefined ? 0 : HashMap.size(found)
        }),
      presence: cluster.presence,
      joinRoom: cluster.remote.joinRoom,
      leaveRoom: cluster.remote.leaveRoom,
      disconnectConnections: cluster.remote.disconnect,
      connectionsInfo: cluster.remote.connectionsInfo,
      lifecycle: Stream.fromPubSub(lifecycle),
      subscribe: PubSub.subscribe(lifecycle),
      maxMessageSize: options.maxMessageSize ?? defaults.maxMessageSize,
      unsafeAccept,
      unsafeIsAccepting: () => accepting,
      shutdown
    }

    // handlers may use the Server itself: their fibers run with it in their context
    fork = yield* FiberSet.runtime(fibers)<never>().pipe(Effect.provideService(ServerTag, server))
    yield* Effect.addFinalizer(() => shutdown)
    views.set(server, {
      instanceId,
      startedAt: Date.now(),
      observer,
      registry,
      measure: () => observed.measure(),
      publishInfo: (payload) => bridge?.info?.(payload),
      infoListeners
    })
    const exchange = yield* Effect.serviceOption(StackExchangeTag)
    if (Option.isSome(exchange)) {
      observer.brokerUp = true
      const attached = bridge = yield* exchange.value.attach(localServer)
      yield* cluster.attach({
        publish: (payload, to) => Effect.runSync(Effect.ignore(attached.cluster(payload, { to }))),
        request: (payload, timeout) => attached.cluster(payload, { confirm: timeout }),
        settled: exchange.value.settled
      })
      recovery?.attach(attached)
      // finalizers run last-first: shut down (the last broadcasts still cross) before detaching
      yield* Effect.addFinalizer(() => shutdown)
    }
    return server
  })
