/**
 * A server's view of its cluster: which instances are alive, the presence
 * replica kept in step with them, and the remote operations (remote.ts).
 *
 * - Liveness is per instance: every instance sends a heartbeat every
 *   `heartbeatInterval`; one not heard from for `instanceTtl` is dropped with all
 *   its members at once.
 * - Each instance owns its members. Its changes are gathered for `diffInterval`
 *   (10 ms) and leave as one numbered diff; the heartbeat carries the number of
 *   the last one. A receiver
 *   applies diffs in order; a gap (a diff lost while the broker was away, or
 *   dropped as overload) or an instance it does not know yet makes it ask that
 *   instance for a snapshot, and what arrives meanwhile is buffered until the
 *   snapshot is in. A starting instance, and one whose broker came back, asks
 *   every instance for its snapshot: a restarted broker is refilled by the live
 *   instances, not the other way round.
 * - An instance shutting down says goodbye, so it is dropped at once.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import type * as Cluster from "../Cluster.js"
import type * as Errors from "../Errors.js"
import type * as Presence from "../Presence.js"
import type * as StackExchange from "../StackExchange.js"
import * as wire from "./clusterWire.js"
import { nextTurn } from "./outbox.js"
import * as Replicas from "./presence.js"
import * as Push from "./presencePush.js"
import type { Registry } from "./registry.js"
import * as Remote from "./remote.js"
import type { ServerConn } from "./serverConn.js"

const defaults = {
  heartbeatInterval: Duration.seconds(1),
  instanceTtl: Duration.seconds(5),
  timeout: Duration.seconds(5),
  changesCapacity: 4096,
  diffInterval: Duration.millis(10),
  /** diffs kept for an instance whose snapshot is awaited */
  maxBuffered: 1024,
  /** instances that said goodbye, remembered so that a late message does not bring them back */
  maxGone: 1024
}

/** What the cluster needs of its exchange. @internal */
export interface Link {
  /** publishes to every instance (`to` undefined) or to one instance's inbox; completes at once */
  readonly publish: (payload: Uint8Array, to: string | undefined) => void
  /** publishes to every instance and waits (at most `timeout`) for the broker to take it */
  readonly request: (payload: Uint8Array, timeout: Duration.Duration) => Effect.Effect<void, Errors.StackExchangeError>
  readonly settled: Effect.Effect<void>
}

interface Peer {
  readonly instance: string
  lastSeen: number
  /** the last diff applied; undefined until its snapshot arrived, or after a gap */
  applied: number | undefined
  buffer: Array<Extract<wire.Wire, { k: "d" }>>
  requestedAt: number | undefined
  parts:
    | { readonly seq: number; readonly count: number; readonly got: Map<number, ReadonlyArray<wire.WireConn>> }
    | undefined
}

/** @internal */
export interface Agent {
  readonly presence: Presence.Presence
  readonly remote: Remote.Remote
  /** a connection joined or left a namespace (`room` "") or a room */
  readonly membershipChanged: (conn: ServerConn, namespace: string, room: string, added: boolean) => void
  readonly closed: (conn: ServerConn) => void
  /** starts heartbeats and sync over the exchange, for the lifetime of the scope */
  readonly attach: (link: Link) => Effect.Effect<void, never, Scope.Scope>
  readonly receive: (origin: string, payload: Uint8Array) => void
  readonly status: (status: StackExchange.Status) => void
}

/** @internal */
export const make = (
  self: string,
  registry: Registry<ServerConn>,
  presenceOptions: Presence.Options | undefined,
  clusterOptions: Cluster.Options | undefined
): Effect.Effect<Agent, never, Scope.Scope> =>
  Effect.gen(function*() {
    const enabled = presenceOptions !== undefined
    const heartbeatInterval = Duration.decode(clusterOptions?.heartbeatInterval ?? defaults.heartbeatInterval)
    const ttl = Duration.toMillis(Duration.decode(clusterOptions?.instanceTtl ?? defaults.instanceTtl))
    const diffInterval = Duration.toMillis(Duration.decode(presenceOptions?.diffInterval ?? defaults.diffInterval))
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const run = yield* FiberSet.makeRuntime<never>()
    const changes = yield* PubSub.sliding<Presence.Change>(
      Math.max(1, presenceOptions?.changesCapacity ?? defaults.changesCapacity)
    )

    let link: Link | undefined
    let up = true
    let attachedAt = 0
    const peers = new Map<string, Peer>()
    const gone = new Set<string>()
    /** local metadata by connection key */
    const metadata = new Map<number, Presence.Metadata>()
    /** local changes not yet sent, and the number of the last diff sent */
    let ops: Array<wire.Op> = []
    let seq = 0
    let flushScheduled = false

    let pusher: Push.Pusher | undefined
    const replica: Replicas.Replica = new Replicas.Replica((change) => {
      // unsafeOffer does not slide: when full, publishing (which completes at once) drops the oldest
      if (!changes.unsafeOffer(change)) Effect.runSync(PubSub.publish(changes, change))
      pusher?.onChange(change)
    })
    const push = presenceOptions?.push
    if (push !== undefined && push !== false) {
      pusher = yield* Push.make(
        {
          push: push === true ? () => true : push,
          event: presenceOptions?.pushEvent ?? Push.defaults.event,
          interval: Duration.decode(presenceOptions?.pushInterval ?? Push.defaults.interval),
          self
        },
        replica,
        registry
      )
      yield* Effect.forkScoped(pusher.run)
    }

    // -------------------------------------------------------------------------
    // sending
    // -------------------------------------------------------------------------

    const send = (message: wire.Wire, to?: string) => {
      if (link !== undefined && up) link.publish(wire.encode(message), to)
    }

    /** Numbers and sends the changes made so far (a number is used even when the broker is away: the gap shows). */
    const flush = () => {
      flushScheduled = false
      if (ops.length === 0) return
      const message: wire.Wire = { k: "d", s: ++seq, o: ops }
      ops = []
      send(message)
    }

    const queue = (op: wire.Op) => {
      if (link === undefined) return
      ops.push(op)
      if (flushScheduled) return
      flushScheduled = true
      if (diffInterval > 0) setTimeout(flush, diffInterval)
      else nextTurn(flush)
    }

    const sendSnapshot = (to: string) => {
      flush()
      const conns: Array<wire.WireConn> = []
      if (enabled) {
        for (const conn of replica.conns(self).values()) {
          conns.push([
            conn.key,
            conn.id,
            conn.metadata ?? null,
            Array.from(conn.entries.values(), (m) => [m.namespace, m.room, m.joinedAt] as const)
          ])
        }
      }
      for (const part of wire.snapshotParts(seq, conns)) {
        if (link !== undefined && up) link.publish(part, to)
      }
    }

    // -------------------------------------------------------------------------
    // receiving
    // -------------------------------------------------------------------------

    const requestSnapshot = (peer: Peer) => {
      if (!enabled) return
      const at = now()
      if (peer.requestedAt !== undefined && at - peer.requestedAt < 2 * Duration.toMillis(heartbeatInterval)) return
      peer.requestedAt = at
      send({ k: "q" }, peer.instance)
    }

    const touch = (origin: string): Peer => {
      let peer = peers.get(origin)
      if (peer === undefined) {
        peer = {
          instance: origin,
          lastSeen: now(),
          applied: undefined,
          buffer: [],
          requestedAt: undefined,
          parts: undefined
        }
        peers.set(origin, peer)
        requestSnapshot(peer)
      }
      peer.lastSeen = now()
      return peer
    }

    const applyOps = (instance: string, list: ReadonlyArray<wire.Op>) => {
      for (const op of list) {
        switch (op[0]) {
          case "j":
            replica.join(instance, op[1], op[2], op[3], op[4], op[5], op[6] ?? undefined)
            break
          case "l":
            replica.leave(instance, op[1], op[2], op[3], "Left")
            break
          case "u":
            replica.update(instance, op[1], op[2] ?? undefined)
            break
        }
      }
    }

    /** Applies the buffered diffs that follow the last applied one; a gap asks for a snapshot again. */
    const drain = (peer: Peer) => {
      peer.buffer.sort((a, b) => a.s - b.s)
      const rest: Array<Extract<wire.Wire, { k: "d" }>> = []
      for (const diff of peer.buffer) {
        if (peer.applied === undefined) {
          rest.push(diff)
        } else if (diff.s === peer.applied + 1) {
          applyOps(peer.instance, diff.o)
          peer.applied = diff.s
        } else if (diff.s > peer.applied + 1) {
          peer.applied = undefined
          rest.push(diff)
          requestSnapshot(peer)
        }
      }
      peer.buffer = rest
    }

    const onDiff = (peer: Peer, diff: Extract<wire.Wire, { k: "d" }>) => {
      if (peer.applied !== undefined && diff.s <= peer.applied) return
      if (peer.applied !== undefined && diff.s === peer.applied + 1) {
        applyOps(peer.instance, diff.o)
        peer.applied = diff.s
        return
      }
      if (peer.applied !== undefined) {
        peer.applied = undefined
        requestSnapshot(peer)
      }
      // a full buffer is let go: the snapshot supersedes it, and a gap after it asks again
      if (peer.buffer.length >= defaults.maxBuffered) peer.buffer = []
      peer.buffer.push(diff)
    }

    const onSnapshot = (peer: Peer, part: Extract<wire.Wire, { k: "s" }>) => {
      // older than what was applied: diffs sent after it already arrived
      if (peer.applied !== undefined && part.s < peer.applied) return
      if (peer.parts === undefined || peer.parts.seq !== part.s || peer.parts.count !== part.n) {
        peer.parts = { seq: part.s, count: part.n, got: new Map() }
      }
      peer.parts.got.set(part.p, part.c)
      if (peer.parts.got.size < part.n) return
      const conns = Array.from(peer.parts.got.values()).flat()
      peer.parts = undefined
      peer.requestedAt = undefined
      replica.replace(
        peer.instance,
        conns.map(([key, id, meta, entries]) => ({
          key,
          id,
          metadata: meta ?? undefined,
          entries: entries.map(([namespace, room, joinedAt]) => ({ namespace, room, joinedAt }))
        }))
      )
      peer.applied = part.s
      drain(peer)
    }

    const dropPeer = (instance: string) => {
      peers.delete(instance)
      replica.drop(instance, "InstanceDown")
    }

    const receive = (origin: string, payload: Uint8Array): void => {
      if (origin === self || gone.has(origin)) return
      const message = wire.decode(payload)
      if (message === undefined) return
      if (message.k === "b") {
        if (gone.size >= defaults.maxGone) gone.delete(gone.values().next().value as string)
        gone.add(origin)
        return dropPeer(origin)
      }
      if (message.k === "a") return remote.onAnswer(origin, message)
      const peer = touch(origin)
      switch (message.k) {
        case "h":
          if (enabled && peer.applied !== undefined && message.s > peer.applied) requestSnapshot(peer)
          return
        case "q":
          return sendSnapshot(origin)
        case "d":
          if (enabled) onDiff(peer, message)
          return
        case "s":
          if (enabled) onSnapshot(peer, message)
          return
        case "r":
          return remote.onRequest(origin, message)
      }
    }

    /** Sends a heartbeat, drops the instances not heard from within the TTL, asks again for late snapshots. */
    const tick = () => {
      if (link === undefined || !up) return
      flush()
      send({ k: "h", s: seq })
      const at = now()
      for (const peer of Array.from(peers.values())) {
        if (at - peer.lastSeen > ttl) dropPeer(peer.instance)
        else if (peer.applied === undefined) requestSnapshot(peer)
      }
    }

    const status = (status: StackExchange.Status): void => {
      if (status._tag === "Down") {
        up = false
        return
      }
      up = true
      // the others could not be heard while the broker was away: they get a TTL from now, and are asked for everything
      const at = now()
      for (const peer of peers.values()) {
        peer.lastSeen = at
        peer.requestedAt = at
      }
      send({ k: "q" })
      tick()
    }

    const attach = (attached: Link): Effect.Effect<void, never, Scope.Scope> =>
      Effect.gen(function*() {
        link = attached
        attachedAt = now()
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            flush()
            send({ k: "b" })
            link = undefined
          })
        )
        send({ k: "q" })
        send({ k: "h", s: seq })
        yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(heartbeatInterval), Effect.sync(tick))))
      })

    // -------------------------------------------------------------------------
    // local hooks
    // -------------------------------------------------------------------------

    const membershipChanged = (conn: ServerConn, namespace: string, room: string, added: boolean): void => {
      if (!enabled) return
      if (added) {
        const meta = metadata.get(conn.key)
        const at = now()
        replica.join(self, conn.key, conn.id, namespace, room, at, meta)
        queue(["j", conn.key, conn.id, namespace, room, at, meta ?? null])
      } else {
        replica.leave(self, conn.key, namespace, room, "Left")
        queue(["l", conn.key, namespace, room])
      }
    }

    const setMetadata = (conn: ServerConn, meta: Presence.Metadata | undefined): void => {
      if (conn.closed) return
      if (meta === undefined) metadata.delete(conn.key)
      else metadata.set(conn.key, meta)
      if (!replica.conns(self).has(conn.key)) return
      replica.update(self, conn.key, meta)
      queue(["u", conn.key, meta ?? null])
    }

    // -------------------------------------------------------------------------
    // the services
    // -------------------------------------------------------------------------

    const live = (): ReadonlyArray<string> => {
      const at = now()
      return Array.from(peers.values()).filter((peer) => at - peer.lastSeen <= ttl).map((peer) => peer.instance)
    }

    const remote = Remote.make({
      self,
      registry,
      metadata: (conn) => metadata.get(conn.key),
      live,
      // the others heartbeat within one interval of its start: until then the view is not complete
      warm: Effect.suspend(() => {
        const left = attachedAt + Duration.toMillis(heartbeatInterval) * 1.2 - now()
        return link === undefined || left <= 0 ? Effect.void : Effect.sleep(Duration.millis(left))
      }),
      request: (payload, timeout) => link === undefined ? Effect.void : link.request(payload, timeout),
      answer: (instance, payload) => {
        if (link !== undefined) link.publish(payload, instance)
      },
      settled: Effect.suspend(() => link === undefined ? Effect.void : link.settled),
      fork: (effect) => void run(effect),
      defaultTimeout: Duration.decode(clusterOptions?.timeout ?? defaults.timeout)
    })

    const presence = Replicas.service({
      enabled,
      replica,
      changes,
      setMetadata: (conn, meta) => setMetadata(conn as ServerConn, meta),
      metadata: (conn) => metadata.get((conn as ServerConn).key),
      instances: () => {
        const at = now()
        const list: Array<Presence.Instance> = [{
          instance: self,
          self: true,
          lastSeen: at,
          synced: true,
          connections: replica.conns(self).size
        }]
        for (const peer of peers.values()) {
          list.push({
            instance: peer.instance,
            self: false,
            lastSeen: peer.lastSeen,
            synced: peer.applied !== undefined,
            connections: replica.conns(peer.instance).size
          })
        }
        return list
      }
    })

    return {
      presence,
      remote,
      membershipChanged,
      closed: (conn) => void metadata.delete(conn.key),
      attach,
      receive,
      status
    }
  })
