/**
 * The shared text frame of broadcasts; the transport types are public (Transport.ts).
 *
 * @internal
 */
import type * as Transport from "../Transport.js"

/** @internal */
export type { RawSocket, SocketHandlers } from "../Transport.js"

const encoder = new TextEncoder()

/**
 * A frame that is text on the wire, encoded to UTF-8 at most once however many
 * sockets it is written to.
 *
 * @internal
 */
export class SharedText implements Transport.SharedText {
  private bytes_: Uint8Array | undefined
  /** the whole unmasked WebSocket frame, built once by a transport that writes raw frames */
  framed: Uint8Array | undefined
  constructor(readonly text: string) {}
  get bytes(): Uint8Array {
    return this.bytes_ ??= encoder.encode(this.text)
  }
}
