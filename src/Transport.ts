/**
 * The seam between a connection and whatever carries its frames: a `ws` socket on
 * Node, a browser `WebSocket`, or the in-memory transport of the test kit. Write
 * your own transport against these types: hand a server side socket to
 * `Server.unsafeAccept`, or provide a `Client.ClientTransport`.
 *
 * @since 0.1.0
 */

/**
 * A text frame shared by the receivers of one broadcast: `text` for transports
 * that send strings, `bytes` (UTF-8, encoded once), and `framed`, a slot where a
 * transport may keep the whole encoded WebSocket frame.
 *
 * @since 0.1.0
 * @category models
 */
export interface SharedText {
  readonly text: string
  readonly bytes: Uint8Array
  framed: Uint8Array | undefined
}

/**
 * One WebSocket data frame: a string is a text frame, bytes a binary frame.
 *
 * @since 0.1.0
 * @category models
 */
export type Frame = string | Uint8Array | SharedText

/**
 * Where a connection's outbox writes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sink {
  /** writes frames synchronously, in order, as one batch */
  readonly write: (frames: ReadonlyArray<Frame>) => void
  /** bytes accepted by the socket but not yet handed to the OS */
  readonly bufferedAmount: () => number
  /** calls `f` once everything written so far has been flushed */
  readonly whenFlushed: (f: () => void) => void
}

/**
 * A socket as a connection uses it.
 *
 * @since 0.1.0
 * @category models
 */
export interface RawSocket extends Sink {
  readonly close: (code: number, reason: string) => void
  readonly terminate: () => void
  /** sends a WebSocket ping; false when the transport cannot ping (browsers) */
  readonly ping: () => boolean
  /** stops delivering frames until `resume` (inbound backpressure) */
  readonly pause: () => void
  readonly resume: () => void
}

/**
 * What a transport calls when something arrives on its socket.
 *
 * @since 0.1.0
 * @category models
 */
export interface SocketHandlers {
  readonly onFrame: (frame: Frame) => void
  readonly onPong: () => void
  readonly onClose: (code: number, reason: string) => void
}
