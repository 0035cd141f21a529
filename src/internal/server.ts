/** @internal */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as HashMap from "effect/HashMap"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Ref from "effect/Ref"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Conn from "../Conn.js"
import * as Errors from "../Errors.js"
import type * as Message from "../Message.js"
import type * as Server from "../Server.js"
import type * as StackExchange from "../StackExchange.js"
import { type ConnHooks, ConnImpl, type EventTable, failureText, type NSConnImpl, type RoomImpl } from "./conn.js"
import * as msg from "./message.js"
import type { Frame } from "./outbox.js"
import { Timers } from "./timers.js"
import { type RawSocket, SharedText, type SocketHandlers } from "./transport.js"

/** @internal */
export const ServerTag = Context.GenericTag<Server.Server>("effect-neffos/Server")

/**
 * The StackExchange tag by its key: the exchange implementation stays out of the
 * server's imports (it needs Node), so the package root stays browser-safe.
 */
const StackExchangeTag = Context.GenericTag<StackExchange.StackExchange>("effect-neffos/StackExchange")

type Members = HashMap.HashMap<number, ConnImpl>

interface NamespaceIndex {
  readonly conns: Members
  readonly rooms: HashMap.HashMap<string, Members>
}

interface State {
  readonly all: Members
  readonly byId: HashMap.HashMap<string, Members>
  readonly namespaces: HashMap.HashMap<string, NamespaceIndex>
}

const emptyState: State = { all: HashMap.empty(), byId: HashMap.empty(), namespaces: HashMap.empty() }
const emptyNamespace: NamespaceIndex = { conns: HashMap.empty(), rooms: HashMap.empty() }

const sizeOf = (members: Option.Option<Members>): number =>
  Option.match(members, { onNone: () => 0, onSome: HashMap.size })

const addTo = (members: Members | undefined, conn: ConnImpl): Members =>
  HashMap.set(members ?? HashMap.empty(), conn.key, conn)

const removeFrom = (members: Members, conn: ConnImpl): Option.Option<Members> => {
  const next = HashMap.remove(members, conn.key)
  return HashMap.isEmpty(next) ? Option.none() : Option.some(next)
}

/** @internal */
export const droppedFrames = Metric.counter("effect_neffos_outbox_dropped_frames", {
  description: "frames dropped by outbox overflow policies",
  incremental: true
})

/** @internal */
export const connectionsGauge = Metric.gauge("effect_neffos_connections", {
  description: "open connections"
})

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
  outbox: { capacity: 1024, strategy: "sliding" as const, highWaterMark: 64 * 1024, maxBytes: 4 * 1024 * 1024 },
  /** after shutdown closed a socket, how long its close handshake may take before it is dropped */
  closeGrace: Duration.millis(500)
}

const isNativeOnly = (table: EventTable): boolean => {
  if (table.size !== 1) return false
  const events = table.get("")
  return events !== undefined && events.size === 1 && events.has("_OnNativeMessage")
}

/** @internal */
export const make = <E, R>(
  options: Server.Options<E, R>
): Effect.Effect<Server.Server, never, Scope.Scope | Exclude<R, Server.Server>> =>
  Effect.gen(function*() {
    const table = options.events.table as EventTable
    const nativeOnly = isNativeOnly(table)
    const native = nativeOnly
      ? "only" as const
      : table.get("")?.has("_OnNativeMessage")
      ? "fallback" as const
      : "none" as const
    const askTimeout = Duration.decode(options.askTimeout ?? defaults.askTimeout)
    const writeTimeout = Duration.decode(
      typeof options.strict === "object" ? options.strict.writeTimeout ?? defaults.writeTimeout : defaults.writeTimeout
    )
    const strictByDefault = options.strict !== undefined && options.strict !== false
    const shutdownTimeout = Duration.decode(options.shutdownTimeout ?? defaults.shutdownTimeout)
    const idGenerator = options.idGenerator ?? (() => crypto.randomUUID())
    const resolveOutbox = (o: Server.OutboxOptions | undefined) => ({
      capacity: Math.max(1, o?.capacity ?? defaults.outbox.capacity),
      strategy: o?.strategy ?? defaults.outbox.strategy,
      highWaterMark: o?.highWaterMark ?? defaults.outbox.highWaterMark,
      maxBytes: Math.max(1, o?.maxBytes ?? defaults.outbox.maxBytes)
    })
    const sharedOutbox = typeof options.outbox === "function" ? undefined : resolveOutbox(options.outbox)
    const outboxFor = (request: Conn.Request) =>
      sharedOutbox ?? resolveOutbox((options.outbox as (request: Conn.Request) => Server.OutboxOptions)(request))

    const state = yield* Ref.make(emptyState)
    const lifecycle = yield* PubSub.unbounded<Server.ServerEvent>()
    const strictLock = yield* Effect.makeSemaphore(1)
    let accepting = true
    const shutdownDone = Deferred.unsafeMake<void>(FiberId.none)
    /** connections between their upgrade and their A<id> (or close) */
    const handshaking = new Set<ConnImpl>()

    const update = (f: (s: State) => State): State => Effect.runSync(Ref.updateAndGet(state, f))
    const instanceId = crypto.randomUUID()
    let bridge: StackExchange.Bridge | undefined
    const publish = (event: Server.ServerEvent): void => {
      lifecycle.unsafeOffer(event)
    }
    // only a client connection reconnects: a server's never fails with `Errors.Offline`
    const asConn = (conn: ConnImpl): Conn.Conn => conn as unknown as Conn.Conn

    const baseRuntime = (yield* Effect.runtime<Exclude<R, Server.Server>>()) as Runtime.Runtime<unknown>
    let runtime: Runtime.Runtime<any> = baseRuntime

    const timers = yield* Timers.make
    const handshakeQueue = timers.queue<ConnImpl>(options.handshakeTimeout ?? defaults.handshakeTimeout, (conn) => {
      if (!conn.closed && !conn.isAccepted) conn.unsafeClose(1008, "handshake timeout", false)
    })
    const pongQueue = timers.queue<{ conn: ConnImpl; seq: number }>(
      options.pingTimeout ?? defaults.pingTimeout,
      ({ conn, seq }) => {
        if (!conn.closed && conn.awaitingPong && conn.pingSeq === seq) conn.unsafeTerminate(1006, "ping timeout")
      }
    )
    const pingQueue = timers.queue<ConnImpl>(options.pingInterval ?? defaults.pingInterval, (conn) => {
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
    yield* Effect.forkScoped(timers.run)

    const topicChanged = (topic: StackExchange.Topic, members: number, added: boolean) => {
      if (bridge !== undefined && members === (added ? 1 : 0)) bridge.topicChanged(topic, added)
    }

    const register = (conn: ConnImpl) => {
      const next = update((s) => ({
        ...s,
        all: addTo(s.all, conn),
        byId: HashMap.set(s.byId, conn.id, addTo(HashMap.get(s.byId, conn.id).pipe(Option.getOrUndefined), conn))
      }))
      connectionsGauge.unsafeUpdate(HashMap.size(next.all), [])
      topicChanged({ _tag: "Connection", id: conn.id }, sizeOf(HashMap.get(next.byId, conn.id)), true)
      publish({ _tag: "Connected", conn: asConn(conn) })
    }

    const unregister = (conn: ConnImpl) => {
      const next = update((s) => ({
        ...s,
        all: HashMap.remove(s.all, conn.key),
        byId: HashMap.modifyAt(s.byId, conn.id, Option.flatMap((m) => removeFrom(m, conn)))
      }))
      connectionsGauge.unsafeUpdate(HashMap.size(next.all), [])
      topicChanged({ _tag: "Connection", id: conn.id }, sizeOf(HashMap.get(next.byId, conn.id)), false)
    }

    const hooks: ConnHooks = {
      namespaceChanged: (ns: NSConnImpl, added: boolean) => {
        const conn = ns.conn
        const next = update((s) => ({
          ...s,
          namespaces: HashMap.modifyAt(s.namespaces, ns.namespace, (index) => {
            const current = Option.getOrElse(index, () => emptyNamespace)
            if (added) return Option.some({ ...current, conns: addTo(current.conns, conn) })
            const conns = HashMap.remove(current.conns, conn.key)
            return HashMap.isEmpty(conns) && HashMap.isEmpty(current.rooms)
              ? Option.none()
              : Option.some({ ...current, conns })
          })
        }))
        topicChanged(
          { _tag: "Namespace", namespace: ns.namespace },
          sizeOf(Option.map(HashMap.get(next.namespaces, ns.namespace), (index) => index.conns)),
          added
        )
        publish({
          _tag: added ? "NamespaceConnected" : "NamespaceDisconnected",
          conn: asConn(conn),
          namespace: ns.namespace
        })
      },
      roomChanged: (room: RoomImpl, added: boolean) => {
        const conn = room.ns.conn
        const namespace = room.ns.namespace
        const next = update((s) => ({
          ...s,
          namespaces: HashMap.modifyAt(s.namespaces, namespace, (index) => {
            const current = Option.getOrElse(index, () => emptyNamespace)
            const rooms = HashMap.modifyAt(
              current.rooms,
              room.name,
              (members) =>
                added
                  ? Option.some(addTo(Option.getOrUndefined(members), conn))
                  : Option.flatMap(members, (m) => removeFrom(m, conn))
            )
            return HashMap.isEmpty(current.conns) && HashMap.isEmpty(rooms)
              ? Option.none()
              : Option.some({ ...current, rooms })
          })
        }))
        topicChanged(
          { _tag: "Room", namespace, room: room.name },
          sizeOf(
            Option.flatMap(HashMap.get(next.namespaces, namespace), (index) => HashMap.get(index.rooms, room.name))
          ),
          added
        )
        publish({ _tag: added ? "RoomJoined" : "RoomLeft", conn: asConn(conn), namespace, room: room.name })
      },
      handshake: (conn: ConnImpl) => {
        if (!accepting) return conn.unsafeClose(1001, "server shutdown", false)
        const onConnect = options.onConnect
        if (onConnect === undefined) return conn.accept()
        Runtime.runFork(runtime)(
          Effect.exit(Effect.suspend(() => onConnect(conn as unknown as Conn.Conn))).pipe(
            Effect.flatMap((exit) => {
              if (Exit.isSuccess(exit)) return Effect.sync(() => conn.accept())
              const failure = Exit.isFailure(exit) ? exit.cause : undefined
              return Effect.sync(() => conn.reject(rejectionText(failure)))
            })
          )
        )
      },
      accepted: (conn: ConnImpl) => {
        handshaking.delete(conn)
        if (conn.handshakeTimer !== undefined) conn.handshakeTimer.value = undefined
        conn.handshakeTimer = undefined
        register(conn)
      },
      closed: (conn: ConnImpl) =>
        Effect.gen(function*() {
          handshaking.delete(conn)
          if (!conn.isAccepted) return
          unregister(conn)
          publish({ _tag: "Disconnected", conn: asConn(conn), code: conn.closeCode, reason: conn.closeReason })
          if (options.onDisconnect !== undefined) {
            yield* Effect.catchAllCause(
              options.onDisconnect(conn as unknown as Conn.Conn) as Effect.Effect<void>,
              (cause) => Effect.logError("effect-neffos: onDisconnect failed", cause)
            )
          }
        }),
      broadcast: (message, to, except) =>
        broadcast(
          to === undefined ? message : { ...message, to },
          except === undefined ? undefined : { except: except as unknown as Conn.Conn }
        ).pipe(
          Effect.catchAll((error) =>
            Effect.logWarning("effect-neffos: a broadcast did not reach the other instances", error)
          )
        ),
      dropped: () => droppedFrames.unsafeUpdate(1, [])
    }

    const rejectionText = (cause: Cause.Cause<unknown> | undefined): string =>
      cause === undefined ? "rejected" : failureText(cause) ?? "internal error"

    const config = {
      side: "server" as const,
      events: table,
      get runtime() {
        return runtime
      },
      askTimeout,
      inboundCapacity: options.inboundCapacity ?? defaults.inboundCapacity,
      answerUnrepliedAsks: options.answerUnrepliedAsks ?? true,
      native,
      maxNameLength: options.maxNameLength ?? defaults.maxNameLength,
      maxRooms: options.maxRoomsPerConnection ?? defaults.maxRoomsPerConnection,
      hooks
    }

    const unsafeAccept = (
      socket: RawSocket,
      incoming: Conn.Request,
      acceptOptions?: { readonly id?: string | undefined }
    ): SocketHandlers => {
      const request = withQueryHeaders(incoming)
      const reconnectTries = Number.parseInt(request.headers["x-websocket-reconnect"] ?? "0", 10)
      const conn = new ConnImpl(
        acceptOptions?.id ?? idGenerator(request),
        socket,
        config,
        outboxFor(request),
        request,
        Number.isFinite(reconnectTries) && reconnectTries > 0 ? reconnectTries : 0
      )
      if (!accepting) {
        conn.unsafeClose(1001, "server shutting down", false)
        return conn.handlers
      }
      if (nativeOnly) {
        conn.markAccepted()
        conn.openNative()
      } else {
        handshaking.add(conn)
        conn.handshakeTimer = handshakeQueue.push(conn)
      }
      if (keepAlive) conn.pingTimer = pingQueue.push(conn)
      return conn.handlers
    }

    const targets = (s: State, message: Message.Message, to: string | undefined): Members | undefined => {
      const index = HashMap.get(s.namespaces, message.namespace)
      if (Option.isNone(index)) return undefined
      const members = message.room.length > 0
        ? Option.getOrUndefined(HashMap.get(index.value.rooms, message.room))
        : index.value.conns
      if (members === undefined || to === undefined) return members
      const byId = Option.getOrUndefined(HashMap.get(s.byId, to))
      if (byId === undefined) return undefined
      return HashMap.filter(byId, (conn) => HashMap.has(members, conn.key))
    }

    /** Offers the message to the local receivers; returns how many it was offered to. */
    const deliver = (
      s: State,
      message: Message.Message,
      to: string | undefined,
      exceptKey: number,
      exceptId: string | undefined,
      strict: boolean
    ): Effect.Effect<number> => {
      const members = targets(s, message, to)
      if (members === undefined || HashMap.isEmpty(members)) return Effect.succeed(0)
      const encoded = msg.encode(message)
      const frame: Frame = typeof encoded === "string" ? new SharedText(encoded) : encoded
      if (!strict) {
        let count = 0
        for (const conn of HashMap.values(members)) {
          if (conn.key !== exceptKey && conn.id !== exceptId) {
            conn.write(frame)
            count++
          }
        }
        return Effect.succeed(count)
      }
      return strictLock.withPermits(1)(Effect.suspend(() => {
        const waiting: Array<ConnImpl> = []
        let count = 0
        for (const conn of HashMap.values(members)) {
          if (conn.key === exceptKey || conn.id === exceptId) continue
          count++
          if (!conn.outbox.offerIfRoom(frame)) waiting.push(conn)
        }
        if (waiting.length === 0) return Effect.succeed(count)
        return Effect.as(
          Effect.forEach(waiting, (conn) => strictWrite(conn, frame), { concurrency: "unbounded", discard: true }),
          count
        )
      }))
    }

    const broadcast = (
      input: Server.Outgoing,
      opts?: Server.BroadcastOptions
    ): Effect.Effect<void, Errors.StackExchangeError> =>
      Effect.flatMap(Ref.get(state), (s) => {
        const message = msg.isMessage(input) && input.wait === "" ? input : msg.make({ ...input, wait: "" })
        const except = opts?.except
        const exceptConn = typeof except === "object" ? (except as unknown as ConnImpl) : undefined
        const exceptId = typeof except === "string" ? except : undefined
        const local = deliver(
          s,
          message,
          input.to,
          exceptConn?.key ?? -1,
          exceptId,
          opts?.strict ?? strictByDefault
        )
        if (bridge === undefined) return Effect.asVoid(local)
        const remote = bridge.publish(message, {
          to: input.to,
          except: {
            connection: exceptConn === undefined ? undefined : { instance: instanceId, key: exceptConn.key },
            id: exceptId
          }
        })
        return Effect.zipRight(local, remote)
      })

    /** Waits until the frame fits in the receiver's outbox; a receiver still full after writeTimeout is closed. */
    const strictWrite = (conn: ConnImpl, frame: Frame): Effect.Effect<void> =>
      Effect.async<void>((resume) => {
        let waiting = true
        const attempt = () => {
          if (!waiting) return
          if (conn.outbox.offerIfRoom(frame)) resume(Effect.void)
          else conn.outbox.onRoom(attempt)
        }
        conn.outbox.onRoom(attempt)
        return Effect.sync(() => {
          waiting = false
        })
      }).pipe(
        Effect.timeoutOption(writeTimeout),
        Effect.map((written) => {
          if (Option.isNone(written)) conn.unsafeClose(1008, "slow consumer", false)
        })
      )

    const connectionsWithId = (id: string, namespace?: string) =>
      Effect.map(Ref.get(state), (s) => {
        const members = Option.getOrUndefined(HashMap.get(s.byId, id))
        if (members === undefined) return []
        const all = Array.from(HashMap.values(members))
        return namespace === undefined ? all : all.filter((conn) => conn.nsMap.has(namespace))
      })

    const localAsk = (request: Server.AskRequest, timeout: Duration.DurationInput | undefined) =>
      Effect.flatMap(connectionsWithId(request.to, request.namespace), (conns): Effect.Effect<
        Message.Message,
        Errors.AskError | Errors.ConnectionNotFound
      > => {
        if (conns.length === 0) {
          return Effect.fail(new Errors.ConnectionNotFound({ id: request.to, namespace: request.namespace }))
        }
        const askOne = (conn: ConnImpl) => {
          const ns = conn.nsMap.get(request.namespace)
          if (ns === undefined) return Effect.fail(new Errors.BadNamespace({ namespace: request.namespace }))
          return ns.askIn(request.room ?? "", request.event, request.body ?? "", timeout) as Effect.Effect<
            Message.Message,
            Errors.AskError
          >
        }
        // several connections may share an id: the first reply wins, as in neffos
        return conns.length === 1 ? askOne(conns[0]) : Effect.raceAll(conns.map(askOne))
      })

    const send = (id: string, input: Server.Outgoing) =>
      Effect.flatMap(connectionsWithId(id, input.namespace ?? ""), (conns) => {
        const message = msg.make({ ...input, wait: "" })
        const local = Effect.flatMap(Ref.get(state), (s) => deliver(s, message, id, -1, undefined, false))
        if (bridge === undefined) {
          return conns.length === 0
            ? Effect.fail(new Errors.ConnectionNotFound({ id, namespace: message.namespace }))
            : Effect.asVoid(local)
        }
        if (conns.length === 0) return bridge.send(id, message)
        // found here: the other instances are a bonus, not a condition, so nobody needs to confirm
        return Effect.zipRight(local, bridge.publish(message, { to: id, except: {} }))
      })

    const ask = (request: Server.AskRequest, opts?: Conn.RequestOptions) =>
      Effect.suspend(() => {
        const found = bridge === undefined || countLocal(request.to, request.namespace) > 0
        if (found || bridge === undefined) return localAsk(request, opts?.timeout)
        return bridge.ask(request, opts?.timeout ?? askTimeout)
      })

    const countLocal = (id: string, namespace?: string): number => {
      const members = Option.getOrUndefined(HashMap.get(Effect.runSync(Ref.get(state)).byId, id))
      if (members === undefined) return 0
      if (namespace === undefined) return HashMap.size(members)
      let count = 0
      for (const conn of HashMap.values(members)) if (conn.nsMap.has(namespace)) count++
      return count
    }

    const closeLocal = (id: string, code: number, reason: string): number => {
      const members = Option.getOrUndefined(HashMap.get(Effect.runSync(Ref.get(state)).byId, id))
      if (members === undefined) return 0
      const conns = Array.from(HashMap.values(members))
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

    const topics = (): ReadonlyArray<StackExchange.Topic> => {
      const s = Effect.runSync(Ref.get(state))
      const out: Array<StackExchange.Topic> = []
      for (const id of HashMap.keys(s.byId)) out.push({ _tag: "Connection", id })
      for (const [namespace, index] of s.namespaces) {
        if (!HashMap.isEmpty(index.conns)) out.push({ _tag: "Namespace", namespace })
        for (const room of HashMap.keys(index.rooms)) out.push({ _tag: "Room", namespace, room })
      }
      return out
    }

    const localServer: StackExchange.LocalServer = {
      instanceId,
      topics,
      deliver: (message, { except, to }) =>
        Effect.runSync(
          Effect.flatMap(Ref.get(state), (s) =>
            deliver(
              s,
              message,
              to,
              except.connection !== undefined && except.connection.instance === instanceId ? except.connection.key : -1,
              except.id,
              false
            ))
        ),
      ask: (request, timeout) => localAsk(request, timeout),
      count: countLocal,
      connectionCount: () => HashMap.size(Effect.runSync(Ref.get(state)).all),
      close: closeLocal,
      reportStatus: (status) =>
        publish(status._tag === "Up" ? { _tag: "StackExchangeUp" } : { _tag: "StackExchangeDown", error: status.error })
    }

    /**
     * Handshakes in progress are refused with 1001 at once; every connection closes
     * with 1001 as soon as its outbox is drained. At `shutdownTimeout` the rest are
     * closed too — dropped (1006) when their socket is backed up — and sockets whose
     * close handshake is not over `closeGrace` later are dropped. Every wait is
     * interruptible, so the deadlines hold also in a finalizer.
     */
    const shutdown = Effect.suspend(() => {
      if (!accepting) return Deferred.await(shutdownDone)
      accepting = false
      const refused = Array.from(handshaking)
      for (const conn of refused) conn.unsafeClose(1001, "server shutdown", false)
      const conns = Array.from(HashMap.values(Effect.runSync(Ref.get(state)).all))
      const drained = Effect.async<void>((resume) => {
        let left = conns.length
        if (left === 0) return resume(Effect.void)
        for (const conn of conns) {
          conn.outbox.onEmpty(() => {
            conn.unsafeClose(1001, "server shutdown")
            if (--left === 0) resume(Effect.void)
          })
        }
      })
      const closing = [...refused, ...conns]
      const socketsClosed = Effect.async<void>((resume) => {
        let left = closing.length
        if (left === 0) return resume(Effect.void)
        for (const conn of closing) conn.whenSocketClosed(() => --left === 0 && resume(Effect.void))
      })
      return Effect.gen(function*() {
        yield* Effect.interruptible(drained).pipe(Effect.timeoutOption(shutdownTimeout))
        let dropped = 0
        for (const conn of conns) {
          if (conn.closed) continue
          if (conn.socket.bufferedAmount() > conn.outbox.highWaterMark) {
            dropped++
            conn.unsafeTerminate(1006, "shutdown timeout")
          } else {
            conn.unsafeClose(1001, "server shutdown")
          }
        }
        yield* Effect.interruptible(socketsClosed).pipe(Effect.timeoutOption(defaults.closeGrace))
        for (const conn of closing) conn.socket.terminate()
        yield* Effect.forEach(conns, (conn) => conn.awaitClose, { discard: true }).pipe(
          Effect.interruptible,
          Effect.timeoutOption(defaults.closeGrace)
        )
        yield* dropped === 0 ? Effect.void : Effect.logInfo(
          `effect-neffos: shutdown dropped ${dropped} of ${conns.length} connections whose sockets were backed up at shutdownTimeout`
        )
      }).pipe(Effect.ensuring(Deferred.done(shutdownDone, Exit.void)))
    })

    const server: Server.Server = {
      instanceId,
      broadcast,
      send,
      ask,
      disconnect,
      do: <E2, R2>(
        f: (conn: Conn.Conn) => Effect.Effect<unknown, E2, R2>,
        opts?: { readonly concurrency?: number | "unbounded" | undefined }
      ) =>
        Effect.flatMap(
          Ref.get(state),
          (s) =>
            Effect.forEach(
              Array.from(HashMap.values(s.all)) as unknown as ReadonlyArray<Conn.Conn>,
              f,
              { concurrency: opts?.concurrency ?? 16, discard: true }
            )
        ),
      connectionCount: Effect.map(Ref.get(state), (s) => HashMap.size(s.all)),
      clusterConnectionCount: Effect.suspend(() =>
        bridge === undefined ? Effect.succeed(localServer.connectionCount()) : bridge.connectionCount
      ),
      connections: Effect.map(
        Ref.get(state),
        (s) => Array.from(HashMap.values(s.all)) as unknown as ReadonlyArray<Conn.Conn>
      ),
      connection: (id: string) =>
        Effect.flatMap(connectionsWithId(id), (conns) =>
          conns.length === 0
            ? Effect.fail(new Errors.ConnectionNotFound({ id }))
            : Effect.succeed(conns[0] as unknown as Conn.Conn)),
      connectionsById: (id: string) => connectionsWithId(id) as unknown as Effect.Effect<ReadonlyArray<Conn.Conn>>,
      members: (namespace: string, room?: string) =>
        Effect.map(Ref.get(state), (s) => {
          const members = targets(s, msg.make({ namespace, room: room ?? "" }), undefined)
          return members === undefined ? [] : Array.from(HashMap.values(members)) as unknown as ReadonlyArray<Conn.Conn>
        }),
      memberCount: (namespace: string, room?: string) =>
        Effect.map(Ref.get(state), (s) => {
          const members = targets(s, msg.make({ namespace, room: room ?? "" }), undefined)
          return members === undefined ? 0 : HashMap.size(members)
        }),
      lifecycle: Stream.fromPubSub(lifecycle),
      subscribe: PubSub.subscribe(lifecycle),
      maxMessageSize: options.maxMessageSize ?? defaults.maxMessageSize,
      unsafeAccept,
      unsafeIsAccepting: () => accepting,
      shutdown
    }

    runtime = Runtime.make({
      context: Context.add(baseRuntime.context, ServerTag, server),
      fiberRefs: baseRuntime.fiberRefs,
      runtimeFlags: baseRuntime.runtimeFlags
    })

    yield* Effect.addFinalizer(() => shutdown)
    const exchange = yield* Effect.serviceOption(StackExchangeTag)
    if (Option.isSome(exchange)) {
      bridge = yield* exchange.value.attach(localServer)
      // finalizers run last-first: shut down (the last broadcasts still cross) before detaching
      yield* Effect.addFinalizer(() => shutdown)
    }
    return server
  })

const headerPrefix = "x-websocket-header-"

/**
 * Browsers cannot set WebSocket headers, so neffos.js sends them as
 * `X-Websocket-Header-<Name>` query parameters; they become headers here, before
 * the id generator and `onConnect` see the request.
 */
const withQueryHeaders = (request: Conn.Request): Conn.Request => {
  const q = request.url.indexOf("?")
  if (q === -1 || request.url.toLowerCase().indexOf(headerPrefix, q) === -1) return request
  const headers: Record<string, string> = { ...request.headers }
  for (const [key, value] of new URLSearchParams(request.url.slice(q + 1))) {
    if (key.length > headerPrefix.length && key.toLowerCase().startsWith(headerPrefix)) {
      const name = key.slice(headerPrefix.length).toLowerCase()
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
    }
  }
  return { ...request, headers }
}
