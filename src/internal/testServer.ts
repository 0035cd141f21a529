/** @internal */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Mailbox from "effect/Mailbox"
import * as Scope from "effect/Scope"
import * as Client from "../Client.js"
import type * as Conn from "../Conn.js"
import * as Errors from "../Errors.js"
import * as Events from "../Events.js"
import * as Message from "../Message.js"
import * as Server from "../Server.js"
import type * as TestServer from "../TestServer.js"
import { dial } from "./client.js"
import type { ClientConn } from "./clientConn.js"
import type { AnyHandler } from "./connConfig.js"
import { type CloseEvent, MemorySocket } from "./memorySocket.js"
import * as msg from "./message.js"
import type { ServerConn } from "./serverConn.js"

/** @internal */
export const TestServerTag = Context.GenericTag<TestServer.TestServer>("effect-neffos/TestServer")

/** @internal */
export class UnexpectedMessage extends Data.TaggedError("UnexpectedMessage")<{
  readonly expected: string
  readonly received: Message.Message
}> {
  override get message() {
    return `expected ${this.expected}, received ${describeMessage(this.received)}`
  }
}

const describeMessage = (m: Message.Message): string => {
  const where = m.room.length > 0 ? `${m.namespace}/${m.room}` : m.namespace
  const what = m.error !== undefined ? `error ${JSON.stringify(m.error)}` : JSON.stringify(Message.bodyText(m))
  return m.native ? `native ${what}` : `${where} ${m.event} ${what}`
}

const describeExpected = (expected: TestServer.Expected): string => {
  if (typeof expected === "string") return `event ${expected}`
  const parts: Array<string> = []
  if (expected.namespace !== undefined) parts.push(`namespace ${JSON.stringify(expected.namespace)}`)
  if (expected.room !== undefined) parts.push(`room ${JSON.stringify(expected.room)}`)
  if (expected.event !== undefined) parts.push(`event ${expected.event}`)
  if (expected.body !== undefined) {
    parts.push(
      `body ${typeof expected.body === "string" ? JSON.stringify(expected.body) : `${expected.body.length} bytes`}`
    )
  }
  if (expected.error !== undefined) parts.push(`error ${JSON.stringify(expected.error)}`)
  return parts.length === 0 ? "any message" : parts.join(", ")
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

const matches = (m: Message.Message, expected: TestServer.Expected): boolean => {
  if (typeof expected === "string") return m.event === expected
  if (expected.namespace !== undefined && m.namespace !== expected.namespace) return false
  if (expected.room !== undefined && m.room !== expected.room) return false
  if (expected.event !== undefined && m.event !== expected.event) return false
  if (expected.error !== undefined && m.error !== expected.error) return false
  const body = expected.body
  if (body === undefined) return true
  return typeof body === "string" ? Message.bodyText(m) === body : sameBytes(Message.bodyBytes(m), body)
}

/**
 * What the server sent that the test sees: not the handshake, the replies to the
 * client's own requests (their Effects return them) or the system events.
 */
const receivedMessage = (frame: string | Uint8Array): Message.Message | undefined => {
  const decoded = Message.decode(frame, { native: "fallback" })
  if (!Message.isMessage(decoded)) return undefined
  const origin = Message.tokenOrigin(decoded.wait)
  if (origin === "client" || origin === "confirmation") return undefined
  if (!decoded.native && Message.isSystemEvent(decoded.event)) return undefined
  return decoded
}

const noHandlers: ReadonlyMap<string, AnyHandler> = new Map()

/** A client that declares every namespace, so it can connect (and be connected to) any of the server's. */
class AnyNamespace extends Map<string, ReadonlyMap<string, AnyHandler>> {
  override has(_namespace: string): boolean {
    return true
  }
  override get(namespace: string): ReadonlyMap<string, AnyHandler> {
    return super.get(namespace) ?? noHandlers
  }
}

const clientEvents = <E, R>(
  events: Events.Events<Client.ClientNSConn, E, R> | undefined
): Events.Events<Client.ClientNSConn, E, R> => {
  const base = events ?? (Events.client({}) as unknown as Events.Events<Client.ClientNSConn, E, R>)
  return { ...base, table: new AnyNamespace(base.table as ReadonlyMap<string, ReadonlyMap<string, AnyHandler>>) } as any
}

const requestOf = (url: string, headers: Readonly<Record<string, string>> | undefined): Conn.Request => {
  const lower: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers ?? {})) lower[name.toLowerCase()] = value
  let path = url
  const scheme = url.indexOf("://")
  if (scheme !== -1) {
    const slash = url.indexOf("/", scheme + 3)
    path = slash === -1 ? "/" : url.slice(slash)
  }
  const hash = path.indexOf("#")
  return { url: hash === -1 ? path : path.slice(0, hash), headers: lower, remoteAddress: undefined }
}

/** The request a virtual client's handshake sees, as the part after the host of this URL. */
const origin = "ws://effect-neffos.test"

/** A namespace no server declares: an ask on it is answered in order with `bad namespace`. */
const syncNamespace = "effect-neffos/TestServer.sync"

/** A virtual client never reconnects: nothing it sends fails with `Errors.Offline`. */
const online = <A>(
  effect: Effect.Effect<A, Errors.RequestError | Errors.Offline>
): Effect.Effect<A, Errors.RequestError> =>
  Effect.catchTags(effect, { Reconnecting: Effect.die, OfflineQueueFull: Effect.die })

/**
 * How long a wait of the kit (`next`, `expect`, `sync`, `closed`) may take in real
 * time. In memory everything arrives within microtasks, and virtual time does not
 * pass while a test waits, so a wait this long means the awaited thing never comes:
 * the test fails at once with what it waited for, instead of hanging until the
 * test runner's timeout.
 */
const realTimeLimitMs = 2000

const withinRealTime = <A, E>(what: string, self: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.raceFirst(
    self,
    Effect.async<never>((resume) => {
      const timer = setTimeout(
        () =>
          resume(
            Effect.dieMessage(
              `effect-neffos/TestServer: ${what} did not come within ${realTimeLimitMs} ms of real time`
            )
          ),
        realTimeLimitMs
      )
      return Effect.sync(() => clearTimeout(timer))
    })
  )

const closedError = (id: () => string) => (): Errors.ConnectionClosed => new Errors.ConnectionClosed({ id: id() })

/** @internal */
export const make: Effect.Effect<TestServer.TestServer, never, Server.Server | Scope.Scope> = Effect.gen(function*() {
  const server = yield* Server.Server
  const scope = yield* Effect.scope

  /** A socket pair whose server end the server accepted; returns the client end. */
  const openSocket = (request: Conn.Request, id: string | undefined): MemorySocket => {
    const [client, serverEnd] = MemorySocket.pair({ maxPayload: [Infinity, server.maxMessageSize] })
    serverEnd.listen(server.unsafeAccept(serverEnd, request, id === undefined ? undefined : { id }))
    return client
  }

  const transport = (
    id: string | undefined,
    onOpen: (socket: MemorySocket) => void
  ): Client.ClientTransport => ({
    open: (url, options) =>
      Effect.sync(() => {
        const socket = openSocket(requestOf(url, options.headers), id)
        onOpen(socket)
        return { socket, listen: (handlers) => socket.listen(handlers) }
      })
  })

  const findConn = (socket: MemorySocket): Effect.Effect<Conn.Conn, Cause.NoSuchElementException> =>
    Effect.flatMap(server.connections, (conns) => {
      const conn = conns.find((conn) => (conn as ServerConn).socket === socket.peer)
      return conn === undefined ? Effect.fail(new Cause.NoSuchElementException()) : Effect.succeed(conn)
    })

  const socketControls = (socket: MemorySocket): Omit<TestServer.VirtualSocket, "close"> => ({
    pause: Effect.sync(() => socket.setStalled(true)),
    resume: Effect.sync(() => socket.setStalled(false)),
    setSilent: (silent) =>
      Effect.sync(() => {
        socket.silent = silent
      }),
    isClosed: Effect.sync(() => socket.isClosing),
    closed: withinRealTime(
      "the close",
      Effect.async<CloseEvent>((resume) => socket.onClose((event) => resume(Effect.succeed(event))))
    ),
    terminate: Effect.sync(() => socket.terminate())
  })

  const connect = <E, R>(
    options?: TestServer.ConnectOptions<E, R>
  ): Effect.Effect<TestServer.TestClient, Errors.HandshakeRejected | Errors.HandshakeError, R> =>
    Effect.gen(function*() {
      const childScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      const received = yield* Mailbox.make<Message.Message>()
      let socket: MemorySocket | undefined
      const clientTransport = transport(options?.id, (opened) => {
        socket = opened
        let handshaken = false
        opened.tap = (frame) => {
          if (!handshaken) {
            handshaken = true
            return
          }
          // a message with its position (History) is recorded as the client handles it: once, without it
          if (typeof frame === "string" ? frame.charCodeAt(0) === 33 : frame[0] === 33) return
          const m = receivedMessage(frame)
          if (m !== undefined) received.unsafeOffer(m)
        }
        opened.onClose(() => received.unsafeDone(Exit.void))
      })
      const client = yield* dial(`${origin}${options?.url ?? "/"}`, {
        events: clientEvents(options?.events),
        headers: options?.headers,
        askTimeout: options?.askTimeout
      }, { observePositioned: (m) => received.unsafeOffer(m) }).pipe(
        Effect.provideService(Client.ClientTransport, clientTransport),
        Scope.extend(childScope),
        Effect.onError(() => Scope.close(childScope, Exit.void))
      )
      const opened = socket!
      // a paused client must not hold up its own close
      yield* Scope.addFinalizer(childScope, Effect.sync(() => opened.setStalled(false)))
      const conn = yield* Effect.orDieWith(
        findConn(opened),
        () => new Error("effect-neffos/TestServer: the server closed the connection as it opened")
      )
      const impl = client as ClientConn
      const closed = closedError(() => client.id)
      const next = withinRealTime("a message", Effect.mapError(received.take, closed))
      const sync = withinRealTime(
        "the sync round trip",
        Effect.suspend(() =>
          impl.sendRequest(
            msg.unsafeMake(syncNamespace, "", "sync", "", undefined, false, impl.newToken(), false, false),
            Duration.infinity
          )
        ).pipe(
          Effect.asVoid,
          // a virtual client never reconnects
          Effect.catchTags({
            RemoteError: () => Effect.void,
            BadNamespace: () => Effect.void,
            AskTimeout: Effect.die,
            Reconnecting: Effect.die
          })
        )
      )
      const expect = (expected: TestServer.Expected) =>
        Effect.flatMap(next, (m) =>
          matches(m, expected)
            ? Effect.succeed(m)
            : Effect.fail(new UnexpectedMessage({ expected: describeExpected(expected), received: m })))
      const awaitMessage = (expected: TestServer.Expected) =>
        Effect.flatMap(next, function loop(m): Effect.Effect<Message.Message, Errors.ConnectionClosed> {
          return matches(m, expected) ? Effect.succeed(m) : Effect.flatMap(next, loop)
        })
      const takeAll = Effect.map(received.clear, Chunk.toReadonlyArray)
      const testClient: TestServer.TestClient = {
        ...socketControls(opened),
        id: client.id,
        client,
        conn,
        stats: conn.stats,
        connect: (namespace, options) => online(client.connect(namespace, options)),
        join: (namespace, room, options) =>
          online(Effect.flatMap(client.connect(namespace, options), (ns) => ns.joinRoom(room, options))),
        next,
        expect,
        awaitMessage,
        expectNone: Effect.zipRight(
          sync,
          Effect.flatMap(received.clear, (messages) =>
            Chunk.isNonEmpty(messages)
              ? Effect.fail(new UnexpectedMessage({ expected: "no message", received: Chunk.headNonEmpty(messages) }))
              : Effect.void)
        ),
        sync,
        takeAll,
        received: Mailbox.toStream(received),
        close: (options) => Effect.zipRight(client.close(options), Scope.close(childScope, Exit.void))
      }
      return testClient
    })

  const open = (options?: TestServer.OpenOptions): Effect.Effect<TestServer.TestSocket> =>
    Effect.gen(function*() {
      const childScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      const frames = yield* Mailbox.make<string | Uint8Array>()
      let id = options?.id ?? ""
      const socket = openSocket(requestOf(options?.url ?? "/", options?.headers), options?.id)
      socket.listen({
        onFrame: (frame) => {
          if (id === "" && typeof frame === "string" && frame.startsWith("A")) id = frame.slice(1)
          frames.unsafeOffer(frame as string | Uint8Array)
        },
        onPong: () => {},
        onClose: () => frames.unsafeDone(Exit.void)
      })
      yield* Scope.addFinalizer(childScope, Effect.sync(() => socket.terminate()))
      const testSocket: TestServer.TestSocket = {
        ...socketControls(socket),
        send: (frame) => Effect.sync(() => socket.write([frame])),
        next: withinRealTime("a frame", Effect.mapError(frames.take, closedError(() => id))),
        takeAll: Effect.map(frames.clear, Chunk.toReadonlyArray),
        conn: findConn(socket),
        close: (options) => Effect.sync(() => socket.close(options?.code ?? 1000, options?.reason ?? ""))
      }
      return testSocket
    })

  return {
    server,
    connect,
    open,
    clientTransport: transport(undefined, () => {})
  }
})
