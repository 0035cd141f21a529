/**
 * The presence replica: the members of every known instance, indexed by
 * namespace and room with their counts kept as they change (a count is a map
 * size, never a listing), and every change reported synchronously, numbered by
 * `version`; and the `Presence` service that reads it. What fills it — the local
 * hooks, the other instances' diffs and snapshots, their expiry — is in
 * cluster.ts.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import type * as Conn from "../Conn.js"
import type * as Presence from "../Presence.js"

/** One connection of an instance with its members. @internal */
export interface ConnRecord {
  readonly key: number
  readonly id: string
  metadata: Presence.Metadata | undefined
  /** by `entryKey(namespace, room)` */
  readonly entries: Map<string, Presence.Member>
}

/** A connection as a snapshot carries it. @internal */
export interface SnapshotConn {
  readonly key: number
  readonly id: string
  readonly metadata: Presence.Metadata | undefined
  readonly entries: ReadonlyArray<{ readonly namespace: string; readonly room: string; readonly joinedAt: number }>
}

/** The members of one namespace or room, and how many connections each id has there. @internal */
export class Group {
  readonly members = new Map<string, Presence.Member>()
  readonly ids = new Map<string, number>()

  add(member: Presence.Member): void {
    this.members.set(member.ref, member)
    this.ids.set(member.id, (this.ids.get(member.id) ?? 0) + 1)
  }

  remove(member: Presence.Member): void {
    if (!this.members.delete(member.ref)) return
    const n = this.ids.get(member.id) ?? 0
    if (n <= 1) this.ids.delete(member.id)
    else this.ids.set(member.id, n - 1)
  }
}

interface NamespaceGroups {
  readonly self: Group
  readonly rooms: Map<string, Group>
}

/** Unambiguous for any two strings. @internal */
export const entryKey = (namespace: string, room: string): string => `${namespace.length}:${namespace}${room}`

/** @internal */
export const refOf = (instance: string, key: number): string => `${instance}/${key}`

const sameMetadata = (a: Presence.Metadata | undefined, b: Presence.Metadata | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && JSON.stringify(a) === JSON.stringify(b))

const noCounts: Presence.Counts = { connections: 0, ids: 0 }

/** @internal */
export class Replica {
  private readonly instances = new Map<string, Map<number, ConnRecord>>()
  private readonly index = new Map<string, NamespaceGroups>()
  /** grows with every change */
  version = 0

  constructor(private readonly onChange: (change: Presence.Change) => void) {}

  // ---------------------------------------------------------------------------
  // reads
  // ---------------------------------------------------------------------------

  group(namespace: string, room: string): Group | undefined {
    const groups = this.index.get(namespace)
    if (groups === undefined) return undefined
    return room.length === 0 ? groups.self : groups.rooms.get(room)
  }

  members(namespace: string, room: string): ReadonlyArray<Presence.Member> {
    const group = this.group(namespace, room)
    return group === undefined ? [] : Array.from(group.members.values())
  }

  byId(namespace: string, room: string): ReadonlyArray<Presence.Group> {
    const byId = new Map<string, Array<Presence.Member>>()
    for (const member of this.members(namespace, room)) {
      const list = byId.get(member.id)
      if (list === undefined) byId.set(member.id, [member])
      else list.push(member)
    }
    return Array.from(byId, ([id, members]) => ({ id, members }))
  }

  count(namespace: string, room: string): Presence.Counts {
    const group = this.group(namespace, room)
    return group === undefined ? noCounts : { connections: group.members.size, ids: group.ids.size }
  }

  /** The connections of an instance that have members (empty when it is unknown). */
  conns(instance: string): ReadonlyMap<number, ConnRecord> {
    return this.instances.get(instance) ?? new Map()
  }

  // ---------------------------------------------------------------------------
  // changes
  // ---------------------------------------------------------------------------

  private groupFor(namespace: string, room: string): Group {
    let groups = this.index.get(namespace)
    if (groups === undefined) {
      groups = { self: new Group(), rooms: new Map() }
      this.index.set(namespace, groups)
    }
    if (room.length === 0) return groups.self
    let group = groups.rooms.get(room)
    if (group === undefined) {
      group = new Group()
      groups.rooms.set(room, group)
    }
    return group
  }

  private removeFromIndex(member: Presence.Member): void {
    const groups = this.index.get(member.namespace)
    if (groups === undefined) return
    if (member.room.length === 0) {
      groups.self.remove(member)
    } else {
      const group = groups.rooms.get(member.room)
      if (group === undefined) return
      group.remove(member)
      if (group.members.size === 0) groups.rooms.delete(member.room)
    }
    if (groups.self.members.size === 0 && groups.rooms.size === 0) this.index.delete(member.namespace)
  }

  join(
    instance: string,
    key: number,
    id: string,
    namespace: string,
    room: string,
    joinedAt: number,
    metadata: Presence.Metadata | undefined
  ): void {
    let conns = this.instances.get(instance)
    if (conns === undefined) {
      conns = new Map()
      this.instances.set(instance, conns)
    }
    let conn = conns.get(key)
    if (conn === undefined) {
      conn = { key, id, metadata, entries: new Map() }
      conns.set(key, conn)
    } else if (!sameMetadata(conn.metadata, metadata)) {
      this.update(instance, key, metadata)
    }
    const entry = entryKey(namespace, room)
    if (conn.entries.has(entry)) return
    const member: Presence.Member = {
      ref: refOf(instance, key),
      id: conn.id,
      instance,
      namespace,
      room,
      joinedAt,
      metadata: conn.metadata
    }
    conn.entries.set(entry, member)
    this.groupFor(namespace, room).add(member)
    this.onChange({ _tag: "Join", member, version: ++this.version })
  }

  leave(instance: string, key: number, namespace: string, room: string, reason: Presence.LeaveReason): void {
    const conns = this.instances.get(instance)
    const conn = conns?.get(key)
    if (conns === undefined || conn === undefined) return
    const entry = entryKey(namespace, room)
    const member = conn.entries.get(entry)
    if (member === undefined) return
    conn.entries.delete(entry)
    if (conn.entries.size === 0) conns.delete(key)
    if (conns.size === 0) this.instances.delete(instance)
    this.removeFromIndex(member)
    this.onChange({ _tag: "Leave", member, reason, version: ++this.version })
  }

  /** New metadata for every member of a connection (nothing when it has none). */
  update(instance: string, key: number, metadata: Presence.Metadata | undefined): void {
    const conn = this.instances.get(instance)?.get(key)
    if (conn === undefined || sameMetadata(conn.metadata, metadata)) return
    const previous = conn.metadata
    conn.metadata = metadata
    for (const [entry, old] of conn.entries) {
      const member: Presence.Member = { ...old, metadata }
      conn.entries.set(entry, member)
      const group = this.group(old.namespace, old.room)
      group?.members.set(member.ref, member)
      this.onChange({ _tag: "Update", member, previous, version: ++this.version })
    }
  }

  /** Every member of an instance leaves. */
  drop(instance: string, reason: Presence.LeaveReason): void {
    const conns = this.instances.get(instance)
    if (conns === undefined) return
    for (const conn of Array.from(conns.values())) {
      for (const member of Array.from(conn.entries.values())) {
        this.leave(instance, conn.key, member.namespace, member.room, reason)
      }
    }
  }

  /** An instance's members become those of its snapshot: only the differences change. */
  replace(instance: string, snapshot: ReadonlyArray<SnapshotConn>): void {
    const wanted = new Map<number, SnapshotConn>()
    for (const conn of snapshot) wanted.set(conn.key, conn)
    const current = this.instances.get(instance)
    if (current !== undefined) {
      for (const conn of Array.from(current.values())) {
        const next = wanted.get(conn.key)
        const keep = new Set(next?.entries.map((e) => entryKey(e.namespace, e.room)))
        for (const [entry, member] of Array.from(conn.entries)) {
          if (next === undefined || next.id !== conn.id || !keep.has(entry)) {
            this.leave(instance, conn.key, member.namespace, member.room, "Left")
          }
        }
      }
    }
    for (const conn of snapshot) {
      this.update(instance, conn.key, conn.metadata)
      for (const e of conn.entries) {
        this.join(instance, conn.key, conn.id, e.namespace, e.room, e.joinedAt, conn.metadata)
      }
    }
  }
}

const notEnabled = "presence is not enabled: pass `presence: true` (or presence options) to Server.layer"

/** The `Presence` service on a replica; every operation dies when presence is not enabled. @internal */
export const service = (options: {
  readonly enabled: boolean
  readonly replica: Replica
  /** every change of the replica, published as it happens */
  readonly changes: PubSub.PubSub<Presence.Change>
  readonly setMetadata: (conn: Conn.Conn, metadata: Presence.Metadata | undefined) => void
  readonly metadata: (conn: Conn.Conn) => Presence.Metadata | undefined
  readonly instances: () => ReadonlyArray<Presence.Instance>
}): Presence.Presence => {
  const { changes, enabled, replica } = options
  const read = <A>(f: () => A): Effect.Effect<A> => enabled ? Effect.sync(f) : Effect.dieMessage(notEnabled)
  return {
    members: (namespace, room) => read(() => replica.members(namespace, room ?? "")),
    byId: (namespace, room) => read(() => replica.byId(namespace, room ?? "")),
    count: (namespace, room) => read(() => replica.count(namespace, room ?? "")),
    changes: enabled ? Stream.fromPubSub(changes) : Stream.dieMessage(notEnabled),
    watch: (namespace, room = "") =>
      enabled
        // subscribed before the state is read, and changes are synchronous: the first change after it is next
        ? Stream.unwrapScoped(Effect.map(PubSub.subscribe(changes), (subscription) => {
          const state: Presence.State = {
            _tag: "State",
            namespace,
            room,
            members: replica.members(namespace, room),
            version: replica.version
          }
          return Stream.concat(
            Stream.succeed<Presence.State | Presence.Change>(state),
            Stream.fromQueue(subscription).pipe(Stream.filter((change) =>
              change.version > state.version && change.member.namespace === namespace && change.member.room === room
            ))
          )
        }))
        : Stream.dieMessage(notEnabled),
    setMetadata: (conn, metadata) => read(() => options.setMetadata(conn, metadata)),
    metadata: (conn) => read(() => options.metadata(conn)),
    instances: read(options.instances)
  }
}
