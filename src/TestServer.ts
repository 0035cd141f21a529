/**
 * A test kit: the `Server` with virtual clients connected in memory, for testing
 * handlers with `@effect/vitest` and `TestClock`.
 *
 * Virtual clients go through the same protocol code path as real ones — the real
 * server encodes and decodes every frame, and `connect` uses the real `Client` —
 * but no socket is opened: their in-memory WebSockets deliver frames in order a
 * microtask later, answer pings, and can stop reading (a slow consumer) or stop
 * answering pings (a dead peer). Handshake, ping, ask, strict-write and shutdown
 * timeouts run on the Effect `Clock`, so `TestClock.adjust` drives them.
 *
 * @example
 * ```ts
 * import { assert, it } from "@effect/vitest"
 * import { Effect, TestClock } from "effect"
 * import { Events, Message } from "effect-neffos"
 * import * as TestServer from "effect-neffos/TestServer"
 *
 * const events = Events.namespaces({ default: { chat: (ns, msg) => ns.broadcastOthers(msg) } })
 *
 * it.effect("chat reaches the others", () =>
 *   Effect.gen(function*() {
 *     const alice = yield* TestServer.connect({ id: "alice" })
 *     const bob = yield* TestServer.connect({ id: "bob" })
 *     const ns = yield* alice.connect("default")
 *     yield* bob.connect("default")
 *     yield* ns.emit("chat", "hi")
 *     const msg = yield* bob.expect({ event: "chat", body: "hi" })
 *     assert.strictEqual(Message.bodyText(msg), "hi")
 *     yield* alice.expectNone
 *     yield* TestClock.adjust("1 minute") // pings are answered: nobody is dropped
 *     assert.isFalse(yield* bob.isClosed)
 *   }).pipe(Effect.provide(TestServer.layer({ events }))))
 * ```
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Client from "./Client.js"
import type * as Conn from "./Conn.js"
import type * as Contract from "./Contract.js"
import type * as Errors from "./Errors.js"
import type * as Events from "./Events.js"
import * as internalContract from "./internal/contractTest.js"
import * as internal from "./internal/testServer.js"
import type * as Message from "./Message.js"
import * as Server from "./Server.js"

/**
 * How a virtual client's WebSocket was closed, as the client saw it: `1006` when
 * the connection was dropped without a close frame (a terminated socket, or a close
 * frame the client never read).
 *
 * @since 0.1.0
 * @category models
 */
export interface CloseEvent {
  readonly code: number
  readonly reason: string
}

/**
 * What a received message must look like: an event name, or the fields to compare
 * (a string body is compared as text, bytes byte for byte; `error` is the error
 * text of an error message).
 *
 * @since 0.1.0
 * @category models
 */
export type Expected = string | {
  readonly namespace?: string | undefined
  readonly room?: string | undefined
  readonly event?: string | undefined
  readonly body?: string | Uint8Array | undefined
  readonly error?: string | undefined
}

/**
 * The client end of an in-memory WebSocket.
 *
 * @since 0.1.0
 * @category models
 */
export interface VirtualSocket {
  /**
   * Stops reading: nothing more reaches the client, and its socket accepts nothing
   * (as a socket whose buffer is past the high-water mark), so the server keeps
   * what it sends in the connection's outbox, whose policy applies. Pings are not
   * answered either while paused.
   */
  readonly pause: Effect.Effect<void>
  /** reads again: what was held arrives, in order */
  readonly resume: Effect.Effect<void>
  /** a silent client does not answer pings (a dead peer) */
  readonly setSilent: (silent: boolean) => Effect.Effect<void>
  /**
   * Whether either side has closed or begun closing the connection, now: true from
   * the moment the server closes it, before the close reaches the client.
   */
  readonly isClosed: Effect.Effect<boolean>
  /** waits until the client's socket is closed */
  readonly closed: Effect.Effect<CloseEvent>
  /** the client closes the connection (default 1000) */
  readonly close: (options?: { readonly code?: number; readonly reason?: string }) => Effect.Effect<void>
  /** the network drops the connection: no close frame, both sides see 1006 */
  readonly terminate: Effect.Effect<void>
}

/**
 * A virtual client driven by the real `Client`: its namespaces, rooms, emits and
 * asks are the client's own (`connect` returns a `Client.ClientNSConn`), and
 * every message the server sends it is recorded, in order.
 *
 * `received`, `next`, `expect` and friends see what the server sent to this client
 * — events, broadcasts, error messages, the server's asks — but not the replies to
 * the client's own asks and requests (their Effects return them) nor the protocol's
 * system events.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestClient extends VirtualSocket {
  /** the connection id the server gave */
  readonly id: string
  /** the real client connection */
  readonly client: Client.ClientConn
  /** the server's side of this connection */
  readonly conn: Conn.Conn
  /** the server side's outbox size, drops and frames written (`conn.stats`) */
  readonly stats: Effect.Effect<Conn.Stats>
  /** connects a namespace of the server (any namespace: the virtual client declares them all) */
  readonly connect: (
    namespace: string,
    options?: Conn.RequestOptions
  ) => Effect.Effect<Client.ClientNSConn, Errors.RequestError>
  /** connects the namespace (if needed) and joins the room */
  readonly join: (
    namespace: string,
    room: string,
    options?: Conn.RequestOptions
  ) => Effect.Effect<Client.ClientRoom, Errors.RequestError>
  /** the next message received (waits for it) */
  readonly next: Effect.Effect<Message.Message, Errors.ConnectionClosed>
  /** the next message received, which must match */
  readonly expect: (expected: Expected) => Effect.Effect<Message.Message, UnexpectedMessage | Errors.ConnectionClosed>
  /** skips messages until one matches (for example a broadcast among other traffic) */
  readonly awaitMessage: (expected: Expected) => Effect.Effect<Message.Message, Errors.ConnectionClosed>
  /** `sync`, then fails if any message was received and not taken */
  readonly expectNone: Effect.Effect<void, UnexpectedMessage | Errors.ConnectionClosed>
  /**
   * A round trip through the server: once it completes, every message this client
   * sent before has been handled (its handler returned), and everything the server
   * had queued for this client by then has been received. It adds one frame to each
   * direction; on a paused client it waits until it resumes.
   */
  readonly sync: Effect.Effect<void, Errors.ConnectionClosed>
  /** every message received and not yet taken (does not wait) */
  readonly takeAll: Effect.Effect<ReadonlyArray<Message.Message>>
  /** the messages as they are received; ends when the connection closes */
  readonly received: Stream.Stream<Message.Message>
}

/**
 * A raw virtual WebSocket: it sends the frames it is told to (the handshake `M`
 * included, or not) and records every frame it receives.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestSocket extends VirtualSocket {
  /** sends a frame: a string as a text frame, bytes as a binary frame */
  readonly send: (frame: string | Uint8Array) => Effect.Effect<void>
  /** the next frame received (waits for it) */
  readonly next: Effect.Effect<string | Uint8Array, Errors.ConnectionClosed>
  /** every frame received and not yet taken (does not wait) */
  readonly takeAll: Effect.Effect<ReadonlyArray<string | Uint8Array>>
  /** the server's side of this connection, once the handshake is done */
  readonly conn: Effect.Effect<Conn.Conn, Cause.NoSuchElementException>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ConnectOptions<E, R> {
  /** the connection id, as `NodeServer.endpointWith({ id })` sets it; default: the server's `idGenerator` */
  readonly id?: string | undefined
  /** request headers (`conn.request.headers`, where names are lower case) */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** the request URL the server sees, path and query; default `/` */
  readonly url?: string | undefined
  /** the client's handlers, for example to answer the server's asks */
  readonly events?: Events.Events<Client.ClientNSConn, E, R> | undefined
  /** the client's default ask timeout; default 30 s */
  readonly askTimeout?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface OpenOptions {
  readonly id?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly url?: string | undefined
}

/**
 * The test kit's service. Virtual clients belong to it: they are closed when it is
 * released, before the server shuts down.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestServer {
  readonly server: Server.Server
  /** connects a virtual client with the real `Client`; the handshake is done when it returns */
  readonly connect: <E = never, R = never>(
    options?: ConnectOptions<E, R>
  ) => Effect.Effect<TestClient, Errors.HandshakeRejected | Errors.HandshakeError, R>
  /** opens a raw virtual socket; nothing is sent */
  readonly open: (options?: OpenOptions) => Effect.Effect<TestSocket>
  /** a `Client.ClientTransport` that dials this server in memory, for code that calls `Client.dial` itself */
  readonly clientTransport: Client.ClientTransport
}

/**
 * @since 0.1.0
 * @category tags
 */
export const TestServer: Context.Tag<TestServer, TestServer> = internal.TestServerTag

/**
 * A received message did not match what was expected.
 *
 * @since 0.1.0
 * @category errors
 */
export interface UnexpectedMessage extends Cause.YieldableError {
  readonly _tag: "UnexpectedMessage"
  /** what was expected, described */
  readonly expected: string
  readonly received: Message.Message
}

/**
 * @since 0.1.0
 * @category errors
 */
export const UnexpectedMessage: new(
  args: { readonly expected: string; readonly received: Message.Message }
) => UnexpectedMessage = internal.UnexpectedMessage

/**
 * The test kit for the `Server` in the context. Its virtual clients are closed
 * when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<TestServer, never, Server.Server | Scope.Scope> = internal.make

/**
 * The test kit alone, for a `Server` layer the application already builds:
 * `TestServer.layerTransport.pipe(Layer.provideMerge(AppServerLayer))`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTransport: Layer.Layer<TestServer, never, Server.Server> = Layer.scoped(TestServer, make)

/**
 * The server built from `options`, and the test kit connected to it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E, R>(
  options: Server.Options<E, R>
): Layer.Layer<Server.Server | TestServer, never, Exclude<R, Server.Server>> =>
  layerTransport.pipe(Layer.provideMerge(Server.layer(options)))

/**
 * Connects a virtual client with the real `Client`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const connect = <E = never, R = never>(
  options?: ConnectOptions<E, R>
): Effect.Effect<TestClient, Errors.HandshakeRejected | Errors.HandshakeError, TestServer | R> =>
  Effect.flatMap(TestServer, (testServer) => testServer.connect(options))

/**
 * Opens a raw virtual socket.
 *
 * @since 0.1.0
 * @category accessors
 */
export const open = (options?: OpenOptions): Effect.Effect<TestSocket, never, TestServer> =>
  Effect.flatMap(TestServer, (testServer) => testServer.open(options))

// -----------------------------------------------------------------------------
// typed contracts
// -----------------------------------------------------------------------------

/**
 * The handlers a typed virtual client may have: any of the contract's client
 * handlers (a server ask without one is recorded like any other message).
 *
 * @since 0.1.0
 * @category models
 */
export type ContractHandlers<C> = {
  readonly [NS in Contract.NamespaceName<C>]?: Partial<Contract.ClientNamespaceHandlers<C, NS>>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ContractConnectOptions<C, H> extends Omit<ConnectOptions<never, never>, "events"> {
  /** the client's handlers of the contract (all optional here) */
  readonly handlers?: (H & Contract.Exact<H, ContractHandlers<C>>) | undefined
}

/**
 * A virtual client typed by a contract: the client's own handles are the
 * contract's (`connect` returns a `Contract.ClientNamespace`, so emits and asks are
 * typed), and what the server pushes can be taken decoded, in order, with
 * `expectPush` / `awaitPush` — next to the untyped `next` / `expect` of
 * {@link TestClient}, which see the same messages. Every frame is encoded and
 * decoded as in production: a value that does not survive JSON fails here too.
 *
 * @since 0.1.0
 * @category models
 */
export interface ContractTestClient<C> extends Omit<TestClient, "connect" | "join"> {
  /** the typed view of the client connection (`subscribe`, `pushes`) */
  readonly typed: Contract.ContractClient<C>
  readonly connect: <NS extends Contract.NamespaceName<C>>(
    namespace: NS,
    options?: Conn.RequestOptions
  ) => Effect.Effect<Contract.ClientNamespace<C, NS>, Errors.RequestError>
  /** connects the namespace (if needed) and joins the room */
  readonly join: <NS extends Contract.NamespaceName<C>>(
    namespace: NS,
    room: Contract.RoomOf<C, NS>,
    options?: Conn.RequestOptions
  ) => Effect.Effect<Contract.ClientRoom<C, NS>, Errors.RequestError>
  /**
   * The next message received, which must be a push of `event` (in `room`, with a
   * payload equivalent to `payload` by the event's schema) whose payload decodes;
   * returns the decoded payload.
   */
  readonly expectPush: <Ev extends Contract.PushOf<C>>(
    event: Ev,
    expected?: {
      readonly room?: Schema.Schema.Type<Ev["room"]> | undefined
      readonly payload?: Contract.Payload<Ev> | undefined
    }
  ) => Effect.Effect<Contract.Payload<Ev>, UnexpectedMessage | Errors.ConnectionClosed>
  /** skips messages until a push of `event` matches, and returns its decoded payload */
  readonly awaitPush: <Ev extends Contract.PushOf<C>>(
    event: Ev,
    expected?: {
      readonly room?: Schema.Schema.Type<Ev["room"]> | undefined
      readonly payload?: Contract.Payload<Ev> | undefined
    }
  ) => Effect.Effect<Contract.Payload<Ev>, Errors.ConnectionClosed>
}

/**
 * Connects a virtual client typed by a contract.
 *
 * @example
 * ```ts
 * const alice = yield* TestServer.connectContract(Chat, { id: "alice" })
 * const ns = yield* alice.connect("default")
 * yield* ns.emit(Chat.default.chat, { text: "hi" })
 * const answer = yield* ns.ask(Chat.default.workday, "2026-11-25")
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const connectContract: {
  <C extends Contract.Any, const H extends ContractHandlers<C>>(
    contract: C,
    options: ContractConnectOptions<C, H> & { readonly handlers: H & Contract.Exact<H, ContractHandlers<C>> }
  ): Effect.Effect<
    ContractTestClient<C>,
    Errors.HandshakeRejected | Errors.HandshakeError,
    TestServer | Contract.HandlersContext<H>
  >
  <C extends Contract.Any>(
    contract: C,
    options?: ContractConnectOptions<C, never>
  ): Effect.Effect<ContractTestClient<C>, Errors.HandshakeRejected | Errors.HandshakeError, TestServer>
} = (contract: Contract.Any, options?: ContractConnectOptions<any, any>) =>
  Effect.flatMap(TestServer, (testServer) => internalContract.connect(testServer, contract, options)) as any
