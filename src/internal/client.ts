/** @internal */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type * as Client from "../Client.js"
import * as Errors from "../Errors.js"
import { type ConnectionState, type ConnHooks, ConnImpl, type EventTable } from "./conn.js"
import { logsDebug } from "./failure.js"
import type { RawSocket, SocketHandlers } from "./transport.js"

/** @internal */
export interface OpenedSocket {
  readonly socket: RawSocket
  readonly listen: (handlers: SocketHandlers) => void
}

/** @internal */
export const TransportTag = Context.GenericTag<Client.ClientTransport>("effect-neffos/ClientTransport")

/** Exponential from 250 ms with full jitter, each wait capped at 10 s, at most 10 attempts. */
const defaultSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("250 millis").pipe(
  Schedule.modifyDelay((delay) => Duration.millis(Math.random() * Math.min(Duration.toMillis(delay), 10_000))),
  Schedule.intersect(Schedule.recurs(9))
)

/** @internal */
export const headersAsQuery = (url: string, headers: Readonly<Record<string, string>>): string => {
  const entries = Object.entries(headers)
  if (entries.length === 0) return url
  const hash = url.indexOf("#")
  const base = hash === -1 ? url : url.slice(0, hash)
  const params = entries.map(([key, value]) =>
    `${encodeURIComponent(`X-Websocket-Header-${key}`)}=${encodeURIComponent(value)}`
  ).join("&")
  return `${base}${base.includes("?") ? "&" : "?"}${params}${hash === -1 ? "" : url.slice(hash)}`
}

const probeUrl = (url: string): string => url.replace(/^ws(s?):\/\//, "http$1://")

const probe = (url: string): Effect.Effect<void, Errors.HandshakeError> =>
  Effect.tryPromise({
    try: (signal) => fetch(probeUrl(url), { method: "HEAD", mode: "no-cors", redirect: "manual", signal }),
    catch: (cause) => new Errors.HandshakeError({ reason: "Open", description: `${url} is not reachable`, cause })
  }).pipe(Effect.asVoid)

const ackResult = (
  ack: import("./conn.js").Ack
): Effect.Effect<string, Errors.HandshakeRejected | Errors.HandshakeError> => {
  switch (ack._tag) {
    case "Id":
      return Effect.succeed(ack.id)
    case "Rejected":
      return Effect.fail(new Errors.HandshakeRejected({ reason: ack.reason }))
    case "Closed":
      return Effect.fail(
        new Errors.HandshakeError({
          reason: "Closed",
          description: `the socket closed (${ack.code}${ack.reason === "" ? "" : ` ${ack.reason}`}) before A<id>`
        })
      )
    case "Protocol":
      return Effect.fail(
        new Errors.HandshakeError({ reason: "Protocol", description: `expected A<id> or H<reason>, got ${ack.frame}` })
      )
  }
}

/** @internal */
export const dial = <E, R>(
  url: string,
  options?: Client.DialOptions<E, R>
): Effect.Effect<
  Client.ClientConn,
  Errors.HandshakeRejected | Errors.HandshakeError,
  Client.ClientTransport | Scope.Scope | R
> =>
  Effect.gen(function*() {
    const transport = yield* TransportTag
    // the connection's fibers end with the dial's scope
    const fork = (yield* FiberSet.runtime(yield* FiberSet.make<unknown, unknown>())<R>()) as <A, E>(
      effect: Effect.Effect<A, E>
    ) => Fiber.RuntimeFiber<A, E>
    const state = yield* SubscriptionRef.make<ConnectionState>({ _tag: "Connecting" })
    const headers = options?.headers ?? {}
    const handshakeTimeout = Duration.decode(options?.handshakeTimeout ?? Duration.seconds(10))
    const schedule: Schedule.Schedule<unknown, unknown> | undefined = options?.reconnect === true
      ? defaultSchedule
      : options?.reconnect === false || options?.reconnect === undefined
      ? undefined
      : options.reconnect
    const setState = (next: ConnectionState) => Effect.runSync(SubscriptionRef.set(state, next))
    let reconnecting = false
    let reconnector: Fiber.RuntimeFiber<void> | undefined

    const open = (extraHeaders: Readonly<Record<string, string>>) =>
      transport.open(url, {
        protocols: options?.protocols,
        headers: { ...headers, ...extraHeaders }
      })

    /** Opens a socket on `conn`, sends M and waits for the answer. */
    const handshake = (conn: ConnImpl, opened: OpenedSocket) =>
      Effect.gen(function*() {
        opened.listen(conn.handlersFor(opened.socket))
        const ack = yield* conn.handshake().pipe(
          Effect.timeoutFail({
            duration: handshakeTimeout,
            onTimeout: () => {
              opened.socket.terminate()
              return new Errors.HandshakeError({
                reason: "Timeout",
                description: "no A<id> within the handshake timeout"
              })
            }
          })
        )
        return yield* ackResult(ack)
      })

    const reconnect = (conn: ConnImpl, code: number, reason: string): Effect.Effect<void> =>
      Effect.gen(function*() {
        let attempt = 0
        const once = Effect.gen(function*() {
          attempt++
          setState({ _tag: "Reconnecting", attempt, code, reason })
          if (options?.reconnectProbe !== "direct") yield* probe(url)
          const opened = yield* open({ "X-Websocket-Reconnect": String(attempt) })
          conn.attach(opened.socket)
          return yield* handshake(conn, opened)
        })
        const result = yield* Effect.either(
          Effect.retry(once, { schedule: schedule!, while: (error) => error._tag !== "HandshakeRejected" })
        )
        reconnecting = false
        if (result._tag === "Left") {
          yield* conn.close({ code: 1000, reason: result.left.message })
          return
        }
        conn.reconnectTries = attempt
        setState({ _tag: "Open", id: result.right })
        yield* conn.restore()
      })

    const hooks: ConnHooks = {
      namespaceChanged: () => {},
      roomChanged: () => {},
      handshake: () => {},
      accepted: () => {},
      closed: (conn) => Effect.sync(() => setState({ _tag: "Closed", code: conn.closeCode, reason: conn.closeReason })),
      broadcast: () => Effect.void,
      dropped: () => {},
      lost: (conn, code, reason) => {
        if (schedule === undefined) return false
        if (!reconnecting) {
          reconnecting = true
          setState({ _tag: "Reconnecting", attempt: 0, code, reason })
          reconnector = fork(reconnect(conn, code, reason))
        }
        return true
      }
    }

    const table = (options?.events?.table ?? new Map()) as EventTable
    const opened = yield* open({})
    const conn = new ConnImpl(
      "",
      opened.socket,
      {
        side: "client",
        events: table,
        fork,
        askTimeout: Duration.decode(options?.askTimeout ?? Duration.seconds(30)),
        inboundCapacity: 256,
        answerUnrepliedAsks: false,
        native: table.get("")?.has("_OnNativeMessage") === true ? "fallback" : "none",
        errorText: options?.errorText,
        logsDebug: logsDebug(yield* Effect.runtime<never>()),
        // a client trusts the server it chose to dial with its names and rooms
        maxNameLength: Infinity,
        maxRooms: Infinity,
        hooks
      },
      {
        capacity: options?.outbox?.capacity ?? 1024,
        strategy: options?.outbox?.strategy ?? "sliding",
        highWaterMark: options?.outbox?.highWaterMark ?? 64 * 1024,
        maxBytes: options?.outbox?.maxBytes ?? 4 * 1024 * 1024
      },
      { url, headers, remoteAddress: undefined },
      0
    )
    conn.clientState = state
    const id = yield* handshake(conn, opened)
    setState({ _tag: "Open", id })
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        if (reconnector !== undefined) yield* Fiber.interrupt(reconnector)
        yield* conn.close()
        yield* conn.awaitClose
      })
    )
    return conn as unknown as Client.ClientConn
  })
