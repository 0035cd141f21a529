/**
 * What a server observes of its connections' lives: handshakes and closes (the
 * counters, the `effect-neffos.handshake` and `effect-neffos.connection` spans),
 * namespace membership gauges, a once-a-second sample (counters flushed, the
 * outbox high-water mark), and the view the admin dashboard reads.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HashMap from "effect/HashMap"
import type * as Tracer from "effect/Tracer"
import * as metrics from "./metrics.js"
import type * as observe from "./observe.js"
import type { Registry } from "./registry.js"
import type { ServerConn } from "./serverConn.js"
import * as trace from "./trace.js"

/** How a handshake ended. @internal */
export type HandshakeOutcome = "accepted" | "refused" | "timeout" | "failed"

/** The largest outbox, and the connections whose outboxes hold the most. @internal */
export interface OutboxSample {
  readonly highWater: number
  readonly fullest: ReadonlyArray<{ readonly id: string; readonly frames: number; readonly bytes: number }>
}

/**
 * What the admin dashboard reads of a server: its observer, its index, and the
 * stack exchange's side channel between the instances' dashboards.
 *
 * @internal
 */
export interface ServerView {
  readonly instanceId: string
  readonly startedAt: number
  readonly observer: observe.Observer
  readonly registry: Registry<ServerConn>
  /** the largest outboxes now */
  readonly measure: () => OutboxSample
  /** publishes this instance's summary to the other instances (nothing without a stack exchange) */
  readonly publishInfo: (payload: Uint8Array) => void
  /** who receives the other instances' summaries */
  readonly infoListeners: Set<(origin: string, payload: Uint8Array) => void>
}

/** The view of every server, by its service value. @internal */
export const views = new WeakMap<object, ServerView>()

const SAMPLE_EVERY = Duration.seconds(1)
const FULLEST = 5

/** @internal */
export class ServerObserver {
  private readonly handshakeSpans = new WeakMap<ServerConn, Tracer.Span>()
  private readonly connectionSpans = new WeakMap<ServerConn, Tracer.Span>()

  constructor(readonly observer: observe.Observer, private readonly registry: Registry<ServerConn>) {}

  /** A socket was upgraded: its handshake begins. */
  upgraded(conn: ServerConn): void {
    const { clock, tracer } = this.observer
    if (tracer === undefined) return
    const attributes: Record<string, unknown> = { "neffos.instance_id": this.observer.instanceId }
    const address = conn.request.remoteAddress
    if (address !== undefined) attributes["neffos.remote_address"] = address
    this.handshakeSpans.set(
      conn,
      trace.startSpan(tracer, clock, "effect-neffos.handshake", undefined, "server", attributes)
    )
  }

  /** The handshake ended; `accepted` starts the connection's span. */
  handshakeEnded(conn: ServerConn, outcome: HandshakeOutcome): void {
    metrics.handshakes.unsafeUpdate(1, metrics.label("outcome", outcome))
    const { clock, tracer } = this.observer
    if (outcome === "accepted") {
      this.observer.accepted++
      metrics.connections.unsafeModify(1, [])
    }
    if (tracer === undefined) return
    const span = this.handshakeSpans.get(conn)
    this.handshakeSpans.delete(conn)
    const now = clock.unsafeCurrentTimeNanos()
    if (span !== undefined) {
      span.attribute("neffos.outcome", outcome)
      span.attribute("neffos.connection_id", conn.id)
      span.end(now, outcome === "accepted" ? Exit.void : Exit.fail(outcome))
    }
    if (outcome !== "accepted") return
    const attributes = { "neffos.connection_id": conn.id, "neffos.instance_id": this.observer.instanceId }
    this.connectionSpans.set(
      conn,
      trace.startSpan(tracer, clock, "effect-neffos.connection", undefined, "server", attributes)
    )
  }

  /** An accepted connection closed. */
  closed(conn: ServerConn): Effect.Effect<void> {
    const code = conn.closeCode
    metrics.connections.unsafeModify(-1, [])
    metrics.disconnects.unsafeUpdate(1, metrics.label("code", String(code)))
    const slow = code === 1008 && conn.closeReason === "slow consumer"
    if (slow) {
      this.observer.slowConsumers++
      metrics.slowConsumerDisconnects.unsafeUpdate(1, [])
    }
    const span = this.connectionSpans.get(conn)
    if (span !== undefined) {
      this.connectionSpans.delete(conn)
      span.attribute("neffos.close_code", code)
      span.attribute("neffos.close_reason", conn.closeReason)
      span.end(this.observer.clock.unsafeCurrentTimeNanos(), Exit.void)
    }
    return slow
      ? Effect.logDebug("effect-neffos: a slow consumer was disconnected").pipe(
        Effect.annotateLogs({ connection: conn.id, code, reason: conn.closeReason })
      )
      : Effect.void
  }

  /** A connection joined (`added`) or left a namespace. */
  namespaceChanged(namespace: string, added: boolean): void {
    metrics.namespaceConnections.unsafeModify(added ? 1 : -1, metrics.label("namespace", namespace))
  }

  /** Once a second: the counters flushed, the outboxes measured. */
  get sampler(): Effect.Effect<never> {
    return Effect.forever(Effect.zipRight(
      Effect.sleep(SAMPLE_EVERY),
      Effect.sync(() => {
        this.observer.flush()
        this.measure()
      })
    ))
  }

  /** The largest outboxes now (O(connections), once a second). */
  measure(): OutboxSample {
    let highWater = 0
    let fullest: Array<{ id: string; frames: number; bytes: number }> = []
    let smallest = 0
    for (const conn of HashMap.values(this.registry.snapshot.all)) {
      const frames = conn.outbox.length
      if (frames > highWater) highWater = frames
      if (frames === 0 || (fullest.length === FULLEST && frames <= smallest)) continue
      fullest.push({ id: conn.id, frames, bytes: conn.outbox.bytes })
      if (fullest.length > FULLEST) {
        fullest.sort((a, b) => b.frames - a.frames)
        fullest = fullest.slice(0, FULLEST)
      }
      smallest = fullest.length === FULLEST ? Math.min(...fullest.map((f) => f.frames)) : 0
    }
    fullest.sort((a, b) => b.frames - a.frames)
    metrics.outboxHighWater.unsafeUpdate(highWater, [])
    return { highWater, fullest }
  }
}
