/**
 * The typed failures of effect-neffos. Every operation that can fail says which
 * of these it fails with; none of them is thrown.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"

/**
 * No connection with this id is connected (to the namespace, when one is given).
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionNotFound extends Data.TaggedError("ConnectionNotFound")<{
  readonly id: string
  readonly namespace?: string | undefined
}> {
  override get message() {
    return this.namespace === undefined
      ? `no connection with id ${JSON.stringify(this.id)}`
      : `no connection with id ${JSON.stringify(this.id)} in namespace ${JSON.stringify(this.namespace)}`
  }
}

/**
 * The connection is closed (or closed while the operation was waiting).
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionClosed extends Data.TaggedError("ConnectionClosed")<{
  readonly id: string
}> {
  override get message() {
    return `connection ${JSON.stringify(this.id)} is closed`
  }
}

/**
 * A namespace this operation cannot use, and why:
 *
 * - `NotDeclared`: this side's events do not declare it (so it cannot be connected);
 * - `NotConnected`: the connection is not (or no longer) connected to it;
 * - `RefusedByPeer`: the peer answered `bad namespace` (neffos's text when it does
 *   not declare the namespace, or the connection is not connected to it there).
 *
 * @since 0.1.0
 * @category errors
 */
export class BadNamespace extends Data.TaggedError("BadNamespace")<{
  readonly namespace: string
  readonly reason: "NotDeclared" | "NotConnected" | "RefusedByPeer"
}> {
  override get message() {
    const name = JSON.stringify(this.namespace)
    switch (this.reason) {
      case "NotDeclared":
        return `bad namespace ${name}: not declared in this side's events`
      case "NotConnected":
        return `bad namespace ${name}: not connected`
      case "RefusedByPeer":
        return `bad namespace ${name}: refused by the peer`
    }
  }
}

/**
 * The connection has not joined the room. Its wire text is `bad room`.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadRoom extends Data.TaggedError("BadRoom")<{
  readonly namespace: string
  readonly room: string
}> {
  override get message() {
    return "bad room"
  }
}

/**
 * No reply arrived within the ask's timeout. A reply that arrives later is dropped.
 *
 * @since 0.1.0
 * @category errors
 */
export class AskTimeout extends Data.TaggedError("AskTimeout")<{
  readonly namespace: string
  readonly event: string
  readonly timeout: Duration.Duration
}> {
  override get message() {
    return `no reply to ${JSON.stringify(this.event)} in namespace ${JSON.stringify(this.namespace)} within the timeout`
  }
}

/**
 * The peer answered with an error (an `isError=1` frame); `text` is its error text.
 *
 * @since 0.1.0
 * @category errors
 */
export class RemoteError extends Data.TaggedError("RemoteError")<{
  readonly text: string
  readonly namespace: string
  readonly room: string
  readonly event: string
}> {
  override get message() {
    return this.text
  }
}

/**
 * A local lifecycle handler (for example `_OnRoomJoin`) refused an operation this
 * side started; nothing was sent.
 *
 * @since 0.1.0
 * @category errors
 */
export class Vetoed extends Data.TaggedError("Vetoed")<{
  readonly event: string
  readonly namespace: string
  readonly room: string
  readonly text: string
  readonly cause?: unknown
}> {
  override get message() {
    return this.text
  }
}

/**
 * The server refused the WebSocket handshake with `H<reason>`.
 *
 * @since 0.1.0
 * @category errors
 */
export class HandshakeRejected extends Data.TaggedError("HandshakeRejected")<{
  readonly reason: string
}> {
  override get message() {
    return `handshake rejected: ${this.reason}`
  }
}

/**
 * The WebSocket could not be opened, or the handshake did not complete in time,
 * or the socket closed before it did.
 *
 * `status` is the HTTP status of an upgrade the server refused (`reason: "Open"`),
 * when the transport can know it: the Node transport can, browsers cannot.
 *
 * @since 0.1.0
 * @category errors
 */
export class HandshakeError extends Data.TaggedError("HandshakeError")<{
  readonly reason: "Timeout" | "Closed" | "Open" | "Protocol"
  readonly description: string
  readonly status?: number | undefined
  readonly cause?: unknown
}> {
  override get message() {
    const status = this.status === undefined ? "" : `, HTTP ${this.status}`
    return `handshake failed (${this.reason}${status}): ${this.description}`
  }
}

/**
 * A client connection is reconnecting: what needs the socket cannot be sent now.
 * `attempt` is the reconnect attempt under way (0 right after the loss).
 *
 * @since 0.1.0
 * @category errors
 */
export class Reconnecting extends Data.TaggedError("Reconnecting")<{
  readonly id: string
  readonly attempt: number
}> {
  override get message() {
    return `connection ${JSON.stringify(this.id)} is reconnecting (attempt ${this.attempt})`
  }
}

/**
 * The client's offline queue was full: this operation, made while reconnecting,
 * was dropped (the newest with the `dropping` strategy, the oldest with `sliding`).
 *
 * @since 0.1.0
 * @category errors
 */
export class OfflineQueueFull extends Data.TaggedError("OfflineQueueFull")<{
  readonly id: string
  readonly capacity: number
}> {
  override get message() {
    return `the offline queue of connection ${JSON.stringify(this.id)} is full (${this.capacity})`
  }
}

/**
 * What a client operation that sends something adds to its errors while the
 * connection reconnects: `Reconnecting` without an offline queue, `OfflineQueueFull`
 * when it was dropped from one.
 *
 * @since 0.1.0
 * @category errors
 */
export type Offline = Reconnecting | OfflineQueueFull

/**
 * The errors an ask can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type AskError = AskTimeout | RemoteError | ConnectionClosed | BadNamespace | BadRoom

/**
 * The errors a namespace connect or room join/leave can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type RequestError = AskTimeout | RemoteError | ConnectionClosed | BadNamespace | BadRoom | Vetoed

/**
 * Why a stack exchange operation failed:
 *
 * - `Down`: the broker is known to be down (connection lost, or not answering
 *   within `brokerTimeout`); the operation failed at once without trying;
 * - `Timeout`: the broker did not answer in time (a confirmation, a request, a
 *   connection attempt);
 * - `Overloaded`: too many publishes were already waiting for the broker
 *   (`maxPendingPublishes` / `maxPendingBytes`); this one was dropped;
 * - `Detached`: the server detached from the exchange, or the exchange closed;
 * - `Broker`: the broker or its client refused or lost the operation (`cause` says why);
 * - `Configuration`: the exchange's options are invalid.
 *
 * @since 0.1.0
 * @category errors
 */
export type StackExchangeErrorReason = "Down" | "Timeout" | "Overloaded" | "Detached" | "Broker" | "Configuration"

/**
 * The broker of a `StackExchange` failed, is unreachable, or is too slow: what
 * was to cross instances did not (or is not known to have). Local delivery is
 * not affected.
 *
 * @since 0.1.0
 * @category errors
 */
export class StackExchangeError extends Data.TaggedError("StackExchangeError")<{
  readonly operation: string
  readonly reason: StackExchangeErrorReason
  readonly cause?: unknown
}> {
  override get message() {
    return `stack exchange ${this.operation} failed (${this.reason})${
      this.cause instanceof Error ? `: ${this.cause.message}` : ""
    }`
  }
}

/**
 * A room's history cannot be read: the room is not recoverable (no `history`
 * rule of the server matches it), or its shared store (Redis, JetStream) is down.
 *
 * @since 0.1.0
 * @category errors
 */
export class HistoryUnavailable extends Data.TaggedError("HistoryUnavailable")<{
  readonly namespace: string
  readonly room: string
  readonly reason: "NotRecoverable" | "StoreDown"
  readonly cause?: unknown
}> {
  override get message() {
    return this.reason === "NotRecoverable"
      ? `room ${JSON.stringify(this.room)} of namespace ${JSON.stringify(this.namespace)} keeps no history`
      : `the history of room ${JSON.stringify(this.room)} cannot be read: its store is down`
  }
}
