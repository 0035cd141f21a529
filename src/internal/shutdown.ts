/**
 * A graceful shutdown's close of every connection, bounded whatever the clients
 * do: each connection closes with 1001 as soon as its outbox is drained; at
 * `timeout` the rest close too — dropped (1006) when their socket is backed up —
 * and sockets whose close handshake is not over `grace` later are dropped. Every
 * wait is interruptible, so the deadlines hold in a layer's finalizer too.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Outbox } from "./outbox.js"
import type { RawSocket } from "./transport.js"

/** What closing needs of a connection. @internal */
export interface Closable {
  readonly closed: boolean
  readonly socket: RawSocket
  readonly outbox: Outbox
  readonly awaitClose: Effect.Effect<void>
  unsafeClose(code: number, reason: string, drain?: boolean): void
  unsafeTerminate(code: number, reason: string): void
  whenSocketClosed(f: () => void): void
}

/** Completes once `f` has called back for every item (at once for none). */
const all = <A>(items: ReadonlyArray<A>, f: (item: A, done: () => void) => void): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    let left = items.length
    if (left === 0) return resume(Effect.void)
    for (const item of items) f(item, () => --left === 0 && resume(Effect.void))
  })

/**
 * Closes `conns` (and waits for `refused`, already closed, to finish closing);
 * returns how many connections were dropped at `timeout`.
 *
 * @internal
 */
export const closeAll = <C extends Closable>(
  refused: ReadonlyArray<C>,
  conns: ReadonlyArray<C>,
  timeout: Duration.Duration,
  grace: Duration.Duration
): Effect.Effect<number> =>
  Effect.gen(function*() {
    const drained = all(conns, (conn, done) => {
      // what a flush window holds leaves at the end of this turn, not when the window elapses
      conn.outbox.expedite()
      conn.outbox.onEmpty(() => {
        conn.unsafeClose(1001, "server shutdown")
        done()
      })
    })
    yield* Effect.interruptible(drained).pipe(Effect.timeoutOption(timeout))
    let dropped = 0
    for (const conn of conns) {
      if (conn.closed) continue
      if (conn.socket.bufferedAmount() > conn.outbox.highWaterMark) {
        dropped++
        conn.unsafeTerminate(1006, "shutdown timeout")
      } else {
        conn.unsafeClose(1001, "server shutdown")
      }
    }
    const closing = [...refused, ...conns]
    const socketsClosed = all(closing, (conn, done) => conn.whenSocketClosed(done))
    yield* Effect.interruptible(socketsClosed).pipe(Effect.timeoutOption(grace))
    for (const conn of closing) conn.socket.terminate()
    yield* Effect.forEach(conns, (conn) => conn.awaitClose, { discard: true }).pipe(
      Effect.interruptible,
      Effect.timeoutOption(grace)
    )
    return dropped
  })
