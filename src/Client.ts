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
import * as Conn from "./Conn.js"
import * as Errors from "./Errors.js"
import type * as Events from "./Events.js"
import type * as History from "./History.js"
import * as internal from "./internal/client.js"
import type { Frame, RawSocket, SocketHandlers } from "./Transport.js"

/**
 * What a client connection goes through. `Reconnecting` counts attempts from 1
 * (0 right after the loss).
 *
 * @since 0.1.0
 * @category models
 */
export type ConnectionState = Conn.ConnectionState

/**
 * A client connection. The same object keeps working across reconnects: its
 * namespace and room handles are restored, `id` is the current connection id.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientConn extends Conn.ClientConn {}

/**
 * A client's membership of a namespace (no broadcast: that is the server's).
 * While the connection reconnects, what it sends fails with `Reconnecting`, or
 * waits in the offline queue (see `DialOptions.offline`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientNSConn extends Conn.ClientNSConn {}

/**
 * A client's membership of a room.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientRoom extends Conn.ClientRoom {}

/**
 * Client-side handlers (they receive a `ClientNSConn`).
 *
 * @since 0.1.0
 * @category models
 */
export type ClientEvents<E = never, R = never> = Events.Events<ClientNSConn, E, R>

/**
 * How a client reconnects, when a bare `Schedule` is not enough.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReconnectOptions {
  /** when to try again; its input is the failure of the last attempt; default `reconnectSchedule` */
  readonly schedule?: Schedule.Schedule<unknown, Errors.HandshakeRejected | Errors.HandshakeError> | undefined
  /**
   * Which failures are worth another attempt; default `isRetryable`. `HandshakeRejected`
   * and a `HandshakeError` with reason `Protocol` are never retried.
   */
  readonly while?: ((error: Errors.HandshakeError) => boolean) | undefined
}

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
   * Reconnect after an unexpected close: `true` for `reconnectSchedule` (exponential
   * from 250 ms with full jitter, waits capped at 10 s, 10 attempts), your own
   * `Schedule` (its input is the last attempt's failure), or `ReconnectOptions`.
   * What `isRetryable` refuses is not retried: an upgrade refused with a 4xx status
   * other than 408 and 429; a refused handshake (`H`) never is.
   */
  readonly reconnect?:
    | boolean
    | Schedule.Schedule<unknown, Errors.HandshakeRejected | Errors.HandshakeError>
    | ReconnectOptions
    | undefined
  /**
   * With `reconnect`: the first dial follows the same schedule too, so a client
   * started before its server connects once the server is up; `dial` fails with
   * the last attempt's error when the schedule gives up. Default false: the first
   * dial fails at once.
   */
  readonly retryFirstDial?: boolean | undefined
  /**
   * `head` (default): before each new attempt, wait for `HEAD` on the endpoint to
   * answer, like neffos.js (through the `HttpClient` in the context if there is one,
   * otherwise `fetch`); `direct`: just dial
   */
  readonly reconnectProbe?: "head" | "direct" | undefined
  /**
   * With `reconnect`: what is sent while reconnecting (emits, asks, connects, joins,
   * leaves, disconnects) waits in a bounded queue instead of failing with
   * `Reconnecting`. Once every namespace and room is restored, the queued operations
   * go out in the order they were made, before anything made later. Each one's
   * Effect completes when it completes: an emit once written, an ask with its reply
   * (within its timeout, counted from when it was made). When the queue is full,
   * `dropping` (default) fails the new operation, `sliding` the oldest, with
   * `OfflineQueueFull`; when the connection closes instead, they fail with
   * `ConnectionClosed`.
   */
  readonly offline?: {
    /** at least 1 */
    readonly capacity: number
    readonly strategy?: "dropping" | "sliding" | undefined
  } | undefined
  readonly outbox?: {
    readonly capacity?: number | undefined
    readonly maxBytes?: number | undefined
    readonly strategy?: "sliding" | "dropping" | "disconnect" | undefined
    readonly highWaterMark?: number | undefined
  } | undefined
  /**
   * Time asks in `effect_neffos_client_ask_duration_seconds` (see the `Metrics`
   * module); default true.
   */
  readonly metrics?: boolean | undefined
  /**
   * Send the caller's span with every emit and ask, so that the server's handler
   * span continues the caller's trace (the W3C `traceparent` fields after a `~` in
   * the message's `wait` token: `$<token>~00-<trace>-<span>-01` for an ask,
   * `~00-…` alone for an emit). Default false. Only for effect-neffos servers of this
   * version or later: neffos.js and Go peers never send it, and a Go neffos server
   * (or an older effect-neffos) drops an emit that carries it — an ask still works,
   * its token is echoed as it is.
   */
  readonly propagateTrace?: boolean | undefined
  /**
   * Recoverable rooms (on by default; see the `History` module): the client asks the
   * server for positions (header `X-Neffos-Recovery: 1`), remembers the last one it
   * saw in every recoverable room, and resumes from it when it rejoins after a
   * reconnect — the missed messages arrive, in order, before live ones. When a room
   * cannot be recovered, `onNotRecovered` runs (and `History.events` has it).
   * `false` turns it off.
   */
  readonly recovery?:
    | boolean
    | { readonly onNotRecovered?: ((event: History.NotRecovered) => Effect.Effect<void, never, R>) | undefined }
    | undefined
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
 * The default reconnect schedule: exponential from 250 ms, each wait capped at
 * 10 s and then drawn at random between 0 and that cap (full jitter, from Effect's
 * `Random`, so `TestRandom` decides it in tests), at most 10 attempts.
 *
 * @since 0.1.0
 * @category reconnect
 */
export const reconnectSchedule: Schedule.Schedule<unknown, unknown> = internal.reconnectSchedule

/**
 * The default of `ReconnectOptions.while`: every failure to open or complete the
 * handshake is worth another attempt, except an upgrade the server refused with a
 * 4xx status other than 408 (timeout) and 429 (too many requests). Browsers cannot
 * read the status of a refused upgrade, so there every failure is retried.
 *
 * @since 0.1.0
 * @category reconnect
 */
export const isRetryable: (error: Errors.HandshakeError) => boolean = internal.isRetryable

/**
 * Opens a connection: sends `M`, waits for `A<id>`. Fails with `HandshakeRejected`
 * on `H<reason>`, with `HandshakeError` when the socket cannot be opened (`status`:
 * the HTTP status of a refused upgrade, where the transport knows it), closes, or
 * does not answer within the handshake timeout. With `retryFirstDial`, only when
 * the reconnect schedule gives up. Closing the scope closes the connection.
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
 * as `X-Websocket-Header-*` query parameters, as browsers cannot set them. Browsers
 * do not tell why an upgrade failed either: a refused upgrade is a `HandshakeError`
 * without `status`, which the default reconnect policy retries.
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
