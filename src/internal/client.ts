/** @internal */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as FiberSet from "effect/FiberSet"
import { globalValue } from "effect/GlobalValue"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type * as Client from "../Client.js"
import * as Errors from "../Errors.js"
import type * as Message from "../Message.js"
import { type Ack, ClientConn, type ClientConnConfig, type ConnectionState } from "./clientConn.js"
import type { EventTable, Gate } from "./connConfig.js"
import { protocol } from "./dispatch.js"
import { logsDebug } from "./failure.js"
import * as Metrics from "./metrics.js"
import * as Observe from "./observe.js"
import { ClientRecovery, header as recoveryHeader } from "./recoveryClient.js"
import type { RawSocket, SocketHandlers } from "./transport.js"

/** @internal */
export interface OpenedSocket {
  readonly socket: RawSocket
  readonly listen: (handlers: SocketHandlers) => void
}

/** @internal */
export const TransportTag = Context.GenericTag<Client.ClientTransport>("effect-neffos/ClientTransport")

/** @internal */
export const reconnectSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("250 millis").pipe(
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.seconds(10))),
  // full jitter: a wait anywhere between 0 and the capped delay, drawn from Effect's `Random`
  Schedule.jitteredWith({ min: 0, max: 1 }),
  Schedule.intersect(Schedule.recurs(9))
)

/** @internal */
export const isRetryable = (error: Errors.HandshakeError): boolean => {
  const status = error.status
  return status === undefined || status < 400 || status > 499 || status === 408 || status === 429
}

type DialError = Errors.HandshakeRejected | Errors.HandshakeError

interface Policy {
  readonly schedule: Schedule.Schedule<unknown, DialError>
  readonly retryable: (error: DialError) => boolean
}

const policyOf = (reconnect: Client.DialOptions<unknown, unknown>["reconnect"]): Policy | undefined => {
  if (reconnect === undefined || reconnect === false) return undefined
  const { schedule, while: accept } = reconnect === true
    ? { schedule: undefined, while: undefined }
    : Schedule.isSchedule(reconnect)
    ? { schedule: reconnect as Schedule.Schedule<unknown, DialError>, while: undefined }
    : (reconnect as Client.ReconnectOptions)
  const test = accept ?? isRetryable
  return {
    schedule: schedule ?? reconnectSchedule,
    // H<reason> and a peer that does not speak neffos are final: the connection is closed by then
    retryable: (error) => error._tag === "HandshakeError" && error.reason !== "Protocol" && test(error)
  }
}

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

/**
 * `HEAD` on the endpoint: any answer means the server is up. Through the
 * application's `HttpClient` when it provides one (its agent, proxy, tracing,
 * or a stub in tests), otherwise the global `fetch`.
 */
const probe = (url: string): Effect.Effect<void, Errors.HandshakeError> => {
  const target = probeUrl(url)
  const unreachable = (cause: unknown) =>
    new Errors.HandshakeError({ reason: "Open", description: `${url} is not reachable`, cause })
  return Effect.flatMap(
    Effect.serviceOption(HttpClient.HttpClient),
    (client): Effect.Effect<void, Errors.HandshakeError> =>
      Option.isNone(client)
        ? Effect.tryPromise({
          try: (signal) => fetch(target, { method: "HEAD", mode: "no-cors", redirect: "manual", signal }),
          catch: unreachable
        }).pipe(Effect.asVoid)
        : client.value.head(target).pipe(
          // a browser's fetch would refuse a cross-origin answer without these
          Effect.provideServiceEffect(
            FetchHttpClient.RequestInit,
            Effect.map(Effect.serviceOption(FetchHttpClient.RequestInit), (init) => ({
              ...Option.getOrUndefined(init),
              mode: "no-cors" as const,
              redirect: "manual" as const
            }))
          ),
          Effect.mapError(unreachable),
          Effect.asVoid
        )
  )
}

const ackResult = (
  ack: Ack
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

/** Set on the fiber that restores namespaces and rooms: what its handlers send goes out at once. */
const restoring = globalValue(Symbol.for("effect-neffos/Client/restoring"), () => FiberRef.unsafeMake(false))

/**
 * What was sent while reconnecting, in order. Each operation waits in its own
 * fiber; `flush` starts them all, in order, once the connection is back: each
 * writes its frame before the next starts, as requests are written by the fiber
 * that makes them.
 */
class OfflineQueue {
  private entries: Array<{
    readonly start: () => void
    readonly fail: (error: Errors.OfflineQueueFull | Errors.ConnectionClosed) => void
  }> = []

  constructor(
    private readonly capacity: number,
    private readonly strategy: "dropping" | "sliding",
    private readonly full: () => Errors.OfflineQueueFull
  ) {}

  hold<A, E>(operation: Effect.Effect<A, E>): Effect.Effect<A, E | Errors.OfflineQueueFull | Errors.ConnectionClosed> {
    return Effect.flatMap(
      Effect.runtime<never>(),
      (runtime) =>
        Effect.async<A, E | Errors.OfflineQueueFull | Errors.ConnectionClosed>((resume) => {
          let fiber: Fiber.RuntimeFiber<A, E> | undefined
          const entry = {
            start: () => {
              fiber = Runtime.runFork(runtime)(operation)
              fiber.addObserver(resume)
            },
            fail: (error: Errors.OfflineQueueFull | Errors.ConnectionClosed) => resume(Effect.fail(error))
          }
          if (this.entries.length >= this.capacity) {
            if (this.strategy === "dropping") return resume(Effect.fail(this.full()))
            this.entries.shift()!.fail(this.full())
          }
          this.entries.push(entry)
          return Effect.suspend(() => {
            const index = this.entries.indexOf(entry)
            if (index !== -1) this.entries.splice(index, 1)
            return fiber === undefined ? Effect.void : Fiber.interrupt(fiber)
          })
        })
    )
  }

  flush(): void {
    const entries = this.entries
    this.entries = []
    for (const entry of entries) entry.start()
  }

  failAll(error: Errors.ConnectionClosed): void {
    const entries = this.entries
    this.entries = []
    for (const entry of entries) entry.fail(error)
  }
}

/** @internal */
export const dial = <E, R>(
  url: string,
  options?: Client.DialOptions<E, R>,
  internal?: {
    /** the test kit: sees the messages with a position the client handles (their frames are not what it gets) */
    readonly observePositioned?: ((message: Message.Message) => void) | undefined
  }
): Effect.Effect<
  Client.ClientConn,
  Errors.HandshakeRejected | Errors.HandshakeError,
  Client.ClientTransport | Scope.Scope | R
> =>
  Effect.gen(function*() {
    const transport = yield* TransportTag
    // the connection's fibers end with the dial's scope
    const fork = (yield* FiberSet.runtime(yield* FiberSet.make<unknown, unknown>())<R>()) as <A, E>(
      effect: Effect.Effect<A, E>,
      options?: Runtime.RunForkOptions
    ) => Fiber.RuntimeFiber<A, E>
    const state = yield* SubscriptionRef.make<ConnectionState>({ _tag: "Connecting" })
    const recoveryOption = options?.recovery ?? true
    const recovery = recoveryOption === false
      ? undefined
      : new ClientRecovery(
        recoveryOption === true ? undefined : recoveryOption.onNotRecovered,
        internal?.observePositioned
      )
    // asks the server for positions in recoverable rooms (a neffos server ignores it)
    const headers = recovery === undefined ? options?.headers ?? {} : { ...options?.headers, [recoveryHeader]: "1" }
    const handshakeTimeout = Duration.decode(options?.handshakeTimeout ?? Duration.seconds(10))
    const policy = policyOf(options?.reconnect)
    const probeFirst = options?.reconnectProbe !== "direct"
    const retryFirstDial = policy !== undefined && options?.retryFirstDial === true
    const setState = (next: ConnectionState) => Effect.runSync(SubscriptionRef.set(state, next))
    const table = (options?.events?.table ?? new Map()) as EventTable
    const observer = yield* Observe.make({
      side: "client",
      metrics: options?.metrics ?? true,
      namespaces: table.keys(),
      propagate: options?.propagateTrace ?? false
    })
    let conn: ClientConn | undefined
    /** the first handshake completed */
    let established = false
    let reconnecting = false
    let reconnector: Fiber.RuntimeFiber<void> | undefined
    /** counts losses: a reconnect whose socket was lost again leaves the flush to the next one */
    let losses = 0
    /** the attempt under way */
    let attempt = 0

    const capacity = Math.max(1, Math.floor(options?.offline?.capacity ?? 1))
    const offline = policy === undefined || options?.offline === undefined ? undefined : new OfflineQueue(
      capacity,
      options.offline.strategy ?? "dropping",
      () => new Errors.OfflineQueueFull({ id: conn!.id, capacity })
    )
    const gate: Gate = {
      error: () => new Errors.Reconnecting({ id: conn!.id, attempt }),
      hold: <A, E>(operation: Effect.Effect<A, E>) =>
        offline === undefined
          ? Effect.fail(gate.error())
          : Effect.flatMap(FiberRef.get(restoring), (now) => now ? operation : offline.hold(operation))
    }

    const open = (extraHeaders: Readonly<Record<string, string>>) =>
      transport.open(url, {
        protocols: options?.protocols,
        headers: { ...headers, ...extraHeaders }
      })

    const config: ClientConnConfig = {
      side: "client",
      protocol: recovery === undefined ? protocol : recovery.wrap(protocol),
      recovery,
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
      observe: observer.active ? observer : undefined,
      state,
      closed: (conn) =>
        Effect.sync(() => {
          conn.gate = undefined
          offline?.failAll(conn.closedError)
          setState({ _tag: "Closed", code: conn.closeCode, reason: conn.closeReason })
        }),
      lost: (conn, code, reason) => {
        if (policy === undefined) return false
        // the first dial has nothing to restore: its own attempts follow the schedule, or it fails
        if (!established) return retryFirstDial
        conn.gate = gate
        losses++
        if (!reconnecting) {
          reconnecting = true
          attempt = 0
          setState({ _tag: "Reconnecting", attempt: 0, code, reason })
          // started after the connection has finished dropping the lost socket's state
          reconnector = fork(reconnect(conn, code, reason), { immediate: false })
        }
        return true
      }
    }

    const makeConn = (socket: RawSocket): ClientConn =>
      new ClientConn(
        "",
        socket,
        config,
        {
          capacity: options?.outbox?.capacity ?? 1024,
          strategy: options?.outbox?.strategy ?? "sliding",
          highWaterMark: options?.outbox?.highWaterMark ?? 64 * 1024,
          maxBytes: options?.outbox?.maxBytes ?? 4 * 1024 * 1024
        },
        { url, headers, remoteAddress: undefined },
        0
      )

    /** One attempt: probe (maybe), open a socket for the connection, send M and wait for A<id>. */
    const attemptOnce = (extraHeaders: Readonly<Record<string, string>>, probeNow: boolean) =>
      Effect.gen(function*() {
        if (probeNow) yield* probe(url)
        const opened = yield* open(extraHeaders)
        if (conn === undefined) conn = makeConn(opened.socket)
        else conn.attach(opened.socket)
        const current = conn
        opened.listen(current.handlersFor(opened.socket))
        const ack = yield* current.handshake().pipe(
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

    const retrying = (once: Effect.Effect<string, DialError>): Effect.Effect<string, DialError> =>
      policy === undefined ? once : Effect.retry(once, { schedule: policy.schedule, while: policy.retryable })

    const reconnect = (conn: ClientConn, code: number, reason: string): Effect.Effect<void> =>
      Effect.gen(function*() {
        const once = Effect.suspend(() => {
          attempt++
          Metrics.clientReconnectAttempts.unsafeUpdate(1, [])
          setState({ _tag: "Reconnecting", attempt, code, reason })
          return attemptOnce({ "X-Websocket-Reconnect": String(attempt) }, probeFirst)
        })
        const result = yield* Effect.either(retrying(once))
        reconnecting = false
        Metrics.clientReconnects.unsafeUpdate(1, Metrics.label("outcome", result._tag === "Left" ? "gave_up" : "ok"))
        if (result._tag === "Left") {
          yield* conn.close({ code: 1000, reason: result.left.message })
          return
        }
        conn.reconnectTries = attempt
        if (offline === undefined) conn.gate = undefined
        setState({ _tag: "Open", id: result.right })
        const restored = losses
        yield* Effect.locally(conn.restore(), restoring, true)
        // lost again while restoring: the next reconnect flushes
        if (offline !== undefined && losses === restored && conn.isOpen) {
          conn.gate = undefined
          offline.flush()
        }
      })

    const first = Effect.suspend(() => {
      attempt++
      return attemptOnce({}, attempt > 1 && probeFirst)
    })
    const id = yield* (retryFirstDial ? retrying(first) : first).pipe(
      Effect.onError(() => conn === undefined ? Effect.void : conn.close())
    )
    const opened = conn!
    established = true
    attempt = 0
    setState({ _tag: "Open", id })
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        if (reconnector !== undefined) yield* Fiber.interrupt(reconnector)
        yield* opened.close()
        yield* opened.awaitClose
      })
    )
    return opened
  })
