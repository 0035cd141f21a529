/**
 * The Effect client: for Node services that talk to a neffos server, for tests,
 * and for browsers. It speaks the neffos protocol from the client side, so it
 * works against this project's server and against Go neffos servers.
 *
 * `dial` needs a `ClientTransport`: `NodeClient.layer` (with `ws`, real headers)
 * on Node, `Client.layerBrowser` (the global `WebSocket`, through @effect/platform's
 * `WebSocketConstructor`) in browsers. This module never imports `ws`.
 *
 * @since 0.1.0
 */
import * as Socket from "@effect/platform/Socket"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as Conn from "./Conn.js"
import * as Errors from "./Errors.js"
import type * as Events from "./Events.js"
import * as internal from "./internal/client.js"
import type { Frame, RawSocket, SocketHandlers } from "./Transport.js"

/**
 * What a client connection goes through. `Reconnecting` counts attempts from 1
 * (0 right after the loss).
 *
 * @since 0.1.0
 * @category models
 */
export type ConnectionState =
  | { readonly _tag: "Connecting" }
  | { readonly _tag: "Open"; readonly id: string }
  | { readonly _tag: "Reconnecting"; readonly attempt: number; readonly code: number; readonly reason: string }
  | { readonly _tag: "Closed"; readonly code: number; readonly reason: string }

/**
 * A client connection. The same object keeps working across reconnects: its
 * namespace and room handles are restored, `id` is the current connection id.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientConn {
  readonly [Conn.TypeId]: Conn.TypeId
  /** the id the server gave (changes after a reconnect) */
  readonly id: string
  /** how many attempts the last reconnect took (0 before any) */
  readonly reconnectTries: number
  readonly wasReconnected: boolean
  /** the current state, then every change */
  readonly state: Stream.Stream<ConnectionState>
  readonly currentState: Effect.Effect<ConnectionState>
  readonly isClosed: Effect.Effect<boolean>
  readonly stats: Effect.Effect<Conn.Stats>
  /** connects a namespace declared in the client's events; the server may refuse it */
  readonly connect: (
    namespace: string,
    options?: Conn.RequestOptions
  ) => Effect.Effect<ClientNSConn, Errors.RequestError>
  /** the namespace handle, once the server connected this client to it (no race, no polling) */
  readonly waitServerConnect: (namespace: string) => Effect.Effect<ClientNSConn, Errors.ConnectionClosed>
  readonly namespace: (name: string) => Effect.Effect<ClientNSConn, Errors.BadNamespace>
  readonly namespaces: Effect.Effect<ReadonlyArray<ClientNSConn>>
  readonly disconnectAll: (options?: Conn.RequestOptions) => Effect.Effect<void, Errors.RequestError>
  /** fires the forced local leave/disconnect events and closes with 1000 (no reconnect) */
  readonly close: (options?: { readonly code?: number; readonly reason?: string }) => Effect.Effect<void>
  readonly awaitClose: Effect.Effect<void>
  readonly get: <A>(key: Conn.StoreKey<A>) => Effect.Effect<A>
  readonly set: <A>(key: Conn.StoreKey<A>, value: A) => Effect.Effect<void>
  readonly modify: <A>(key: Conn.StoreKey<A>, f: (a: A) => A) => Effect.Effect<A>
}

/**
 * A client's membership of a namespace (no broadcast: that is the server's).
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientNSConn extends Conn.NamespaceHandle<ClientConn, ClientRoom> {}

/**
 * A client's membership of a room.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientRoom extends Conn.RoomHandle<ClientNSConn> {}

/**
 * Client-side handlers (they receive a `ClientNSConn`).
 *
 * @since 0.1.0
 * @category models
 */
export type ClientEvents<E = never, R = never> = Events.Events<ClientNSConn, E, R>

/**
 * @since 0.1.0
 * @category models
 */
export interface DialOptions<E, R> {
  /** the client's handlers; a namespace must be declared here to be connected */
  readonly events?: Events.Events<ClientNSConn, E, R> | undefined
  /** request headers (in browsers sent as `X-Websocket-Header-*` query parameters) */
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly protocols?: ReadonlyArray<string> | undefined
  /** maps a failed handler (answering a server's ask or request) to its error text; default `Events.defaultErrorText` */
  readonly errorText?: Events.ErrorText | undefined
  /** default timeout of asks and requests; default 30 s */
  readonly askTimeout?: Duration.DurationInput | undefined
  /** how long to wait for `A<id>`; default 10 s */
  readonly handshakeTimeout?: Duration.DurationInput | undefined
  /**
   * Reconnect after an unexpected close: `true` for the default schedule
   * (exponential from 250 ms with full jitter, waits capped at 10 s, 10 attempts),
   * or your own `Schedule`. A refused handshake (`H`) is never retried.
   */
  readonly reconnect?: boolean | Schedule.Schedule<unknown, unknown> | undefined
  /** `head` (default): wait for `HEAD` on the endpoint to answer before dialing, like neffos.js; `direct`: just dial */
  readonly reconnectProbe?: "head" | "direct" | undefined
  readonly outbox?: {
    readonly capacity?: number | undefined
    readonly maxBytes?: number | undefined
    readonly strategy?: "sliding" | "dropping" | "disconnect" | undefined
    readonly highWaterMark?: number | undefined
  } | undefined
}

/**
 * How a client opens WebSockets.
 *
 * @since 0.1.0
 * @category transport
 */
export interface ClientTransport {
  readonly open: (
    url: string,
    options: {
      readonly protocols?: ReadonlyArray<string> | undefined
      readonly headers: Readonly<Record<string, string>>
    }
  ) => Effect.Effect<
    {
      readonly socket: RawSocket
      readonly listen: (handlers: SocketHandlers) => void
    },
    Errors.HandshakeError
  >
}

/**
 * @since 0.1.0
 * @category transport
 */
export const ClientTransport: Context.Tag<ClientTransport, ClientTransport> = internal.TransportTag

/**
 * Opens a connection: sends `M`, waits for `A<id>`. Fails with `HandshakeRejected`
 * on `H<reason>`, with `HandshakeError` when the socket cannot be opened, closes,
 * or does not answer within the handshake timeout. Closing the scope closes the
 * connection.
 *
 * @since 0.1.0
 * @category constructors
 */
export const dial: <E = never, R = never>(
  url: string,
  options?: DialOptions<E, R>
) => Effect.Effect<ClientConn, Errors.HandshakeRejected | Errors.HandshakeError, ClientTransport | Scope.Scope | R> =
  internal.dial

// -----------------------------------------------------------------------------
// browsers
// -----------------------------------------------------------------------------

const textOf = (frame: Frame): string | Uint8Array =>
  typeof frame === "string" || frame instanceof Uint8Array ? frame : frame.text

const fromBrowserWebSocket = (ws: globalThis.WebSocket): RawSocket => ({
  write: (frames) => {
    for (let i = 0; i < frames.length; i++) ws.send(textOf(frames[i]) as string)
  },
  bufferedAmount: () => ws.bufferedAmount,
  // browsers have no drain event: look again shortly
  whenFlushed: (f) => {
    const check = () => (ws.bufferedAmount === 0 || ws.readyState > 1 ? f() : void setTimeout(check, 10))
    check()
  },
  close: (code, reason) => {
    try {
      ws.close(code === 1000 || (code >= 3000 && code < 5000) ? code : 1000, reason)
    } catch {
      ws.close()
    }
  },
  terminate: () => ws.close(),
  ping: () => false,
  pause: () => {},
  resume: () => {}
})

/**
 * A `ClientTransport` from @effect/platform's `WebSocketConstructor`; headers travel
 * as `X-Websocket-Header-*` query parameters, as browsers cannot set them.
 *
 * @since 0.1.0
 * @category transport
 */
export const layerWebSocketConstructor: Layer.Layer<ClientTransport, never, Socket.WebSocketConstructor> = Layer
  .effect(
    ClientTransport,
    Effect.map(Socket.WebSocketConstructor, (construct) => ({
      open: (url, options) =>
        Effect.async<
          {
            readonly socket: RawSocket
            readonly listen: (handlers: SocketHandlers) => void
          },
          Errors.HandshakeError
        >((resume) => {
          let ws: globalThis.WebSocket
          try {
            ws = construct(internal.headersAsQuery(url, options.headers), options.protocols as Array<string>)
          } catch (cause) {
            return resume(Effect.fail(new Errors.HandshakeError({ reason: "Open", description: String(cause), cause })))
          }
          ws.binaryType = "arraybuffer"
          ws.onopen = () => {
            ws.onerror = null
            ws.onclose = null
            resume(Effect.succeed({
              socket: fromBrowserWebSocket(ws),
              listen: (handlers) => {
                ws.onmessage = (event) =>
                  handlers.onFrame(typeof event.data === "string" ? event.data : new Uint8Array(event.data))
                ws.onclose = (event) => handlers.onClose(event.code, event.reason)
                ws.onerror = () => {}
              }
            }))
          }
          ws.onerror = () => {
            ws.onclose = null
            resume(Effect.fail(new Errors.HandshakeError({ reason: "Open", description: `cannot open ${url}` })))
          }
          ws.onclose = (event) =>
            resume(Effect.fail(new Errors.HandshakeError({ reason: "Open", description: `closed ${event.code}` })))
          return Effect.sync(() => ws.close())
        })
    }))
  )

/**
 * The browser transport: the global `WebSocket`.
 *
 * @since 0.1.0
 * @category transport
 */
export const layerBrowser: Layer.Layer<ClientTransport> = layerWebSocketConstructor.pipe(
  Layer.provide(Socket.layerWebSocketConstructorGlobal)
)
