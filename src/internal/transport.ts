/**
 * The seam between a connection and whatever carries its frames: a `ws` socket
 * on Node, a browser `WebSocket`, or the in-memory transport of the test kit.
 *
 * @internal
 */
import type { Frame, Sink } from "./outbox.js"

const encoder = new TextEncoder()

/** @internal */
export interface RawSocket extends Sink {
  readonly close: (code: number, reason: string) => void
  readonly terminate: () => void
  /** sends a WebSocket ping; false when the transport cannot ping (browsers) */
  readonly ping: () => boolean
  /** stops delivering frames until `resume` (inbound backpressure) */
  readonly pause: () => void
  readonly resume: () => void
}

/** @internal */
export interface SocketHandlers {
  readonly onFrame: (frame: Frame) => void
  readonly onPong: () => void
  readonly onClose: (code: number, reason: string) => void
}

/**
 * A frame that is text on the wire, encoded to UTF-8 at most once however many
 * sockets it is written to.
 *
 * @internal
 */
export class SharedText {
  private bytes_: Uint8Array | undefined
  /** the whole unmasked WebSocket frame, built once by a transport that writes raw frames */
  framed: Uint8Array | undefined
  constructor(readonly text: string) {}
  get bytes(): Uint8Array {
    return this.bytes_ ??= encoder.encode(this.text)
  }
}
