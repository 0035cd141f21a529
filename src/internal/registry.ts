/**
 * The server's index of its connections: every connection, by id, and the
 * members of every namespace and room. It is a value of persistent maps, so a
 * read is a consistent snapshot that a commit never changes under a reader; a
 * commit replaces it synchronously, in the socket's read callback when a connect
 * or join reply arrives (see README, "Design"), so the next frame already sees it.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import type * as StackExchange from "../StackExchange.js"

/** What the index keeps of a connection. @internal */
export interface Member {
  /** unique in the process */
  readonly key: number
  /** not unique */
  readonly id: string
}

/** @internal */
export type Members<C extends Member> = HashMap.HashMap<number, C>

/** @internal */
export interface NamespaceIndex<C extends Member> {
  readonly conns: Members<C>
  readonly rooms: HashMap.HashMap<string, Members<C>>
}

/** @internal */
export interface Snapshot<C extends Member> {
  readonly all: Members<C>
  /** the connection with an id, or the members when several share it (ids are usually unique) */
  readonly byId: HashMap.HashMap<string, ById<C>>
  readonly namespaces: HashMap.HashMap<string, NamespaceIndex<C>>
}

/** @internal */
export type ById<C extends Member> = C | Members<C>

const byIdMembers = <C extends Member>(entry: ById<C>): Members<C> =>
  HashMap.isHashMap(entry) ? entry as Members<C> : HashMap.make([(entry as C).key, entry as C])

const byIdSize = <C extends Member>(entry: Option.Option<ById<C>>): number =>
  Option.isNone(entry) ? 0 : HashMap.isHashMap(entry.value) ? HashMap.size(entry.value as Members<C>) : 1

const addTo = <C extends Member>(members: Members<C> | undefined, conn: C): Members<C> =>
  HashMap.set(members ?? HashMap.empty(), conn.key, conn)

const removeFrom = <C extends Member>(members: Members<C>, conn: C): Option.Option<Members<C>> => {
  const next = HashMap.remove(members, conn.key)
  return HashMap.isEmpty(next) ? Option.none() : Option.some(next)
}

const sizeOf = <C extends Member>(members: Option.Option<Members<C>>): number =>
  Option.match(members, { onNone: () => 0, onSome: HashMap.size })

/** @internal */
export class Registry<C extends Member> {
  private current: Snapshot<C> = { all: HashMap.empty(), byId: HashMap.empty(), namespaces: HashMap.empty() }

  /** The index now, as an Effect: every read is a consistent snapshot. */
  readonly get: Effect.Effect<Snapshot<C>> = Effect.sync(() => this.current)

  /** The index now. */
  get snapshot(): Snapshot<C> {
    return this.current
  }

  /** Adds an accepted connection; returns how many connections have its id now. */
  add(conn: C): number {
    const s = this.current
    this.current = {
      ...s,
      all: addTo(s.all, conn),
      byId: HashMap.modifyAt(
        s.byId,
        conn.id,
        (entry): Option.Option<ById<C>> =>
          Option.some(Option.isNone(entry) ? conn : addTo(byIdMembers(entry.value), conn))
      )
    }
    return byIdSize(HashMap.get(this.current.byId, conn.id))
  }

  /** Removes a connection; returns how many connections have its id now. */
  remove(conn: C): number {
    const s = this.current
    this.current = {
      ...s,
      all: HashMap.remove(s.all, conn.key),
      byId: HashMap.modifyAt(s.byId, conn.id, (entry): Option.Option<ById<C>> => {
        if (Option.isNone(entry)) return entry
        if (!HashMap.isHashMap(entry.value)) return entry.value === conn ? Option.none() : entry
        const rest = removeFrom(entry.value as Members<C>, conn)
        // one left: stored as itself again
        return Option.map(rest, (m): ById<C> => (HashMap.size(m) === 1 ? HashMap.values(m).next().value! : m))
      })
    }
    return byIdSize(HashMap.get(this.current.byId, conn.id))
  }

  /** A connection joined (or left) a namespace; returns how many members it has now. */
  namespaceChanged(namespace: string, conn: C, added: boolean): number {
    const s = this.current
    this.current = {
      ...s,
      namespaces: HashMap.modifyAt(s.namespaces, namespace, (index) => {
        const current = Option.getOrElse(index, () => emptyNamespace as NamespaceIndex<C>)
        if (added) return Option.some({ ...current, conns: addTo(current.conns, conn) })
        const conns = HashMap.remove(current.conns, conn.key)
        return HashMap.isEmpty(conns) && HashMap.isEmpty(current.rooms)
          ? Option.none()
          : Option.some({ ...current, conns })
      })
    }
    return sizeOf(Option.map(HashMap.get(this.current.namespaces, namespace), (index) => index.conns))
  }

  /** A connection joined (or left) a room; returns how many members it has now. */
  roomChanged(namespace: string, room: string, conn: C, added: boolean): number {
    const s = this.current
    this.current = {
      ...s,
      namespaces: HashMap.modifyAt(s.namespaces, namespace, (index) => {
        const current = Option.getOrElse(index, () => emptyNamespace as NamespaceIndex<C>)
        const rooms = HashMap.modifyAt(
          current.rooms,
          room,
          (members) =>
            added
              ? Option.some(addTo(Option.getOrUndefined(members), conn))
              : Option.flatMap(members, (m) => removeFrom(m, conn))
        )
        return HashMap.isEmpty(current.conns) && HashMap.isEmpty(rooms)
          ? Option.none()
          : Option.some({ ...current, rooms })
      })
    }
    return sizeOf(
      Option.flatMap(HashMap.get(this.current.namespaces, namespace), (index) => HashMap.get(index.rooms, room))
    )
  }

  /** The topics with local members now (to resubscribe after a broker reconnect). */
  topics(): ReadonlyArray<StackExchange.Topic> {
    const s = this.current
    const out: Array<StackExchange.Topic> = []
    for (const id of HashMap.keys(s.byId)) out.push({ _tag: "Connection", id })
    for (const [namespace, index] of s.namespaces) {
      if (!HashMap.isEmpty(index.conns)) out.push({ _tag: "Namespace", namespace })
      for (const room of HashMap.keys(index.rooms)) out.push({ _tag: "Room", namespace, room })
    }
    return out
  }

  /** The connections with this id now. */
  withId(id: string): ReadonlyArray<C> {
    const entry = Option.getOrUndefined(HashMap.get(this.current.byId, id))
    if (entry === undefined) return []
    return HashMap.isHashMap(entry) ? Array.from(HashMap.values(entry as Members<C>)) : [entry as C]
  }
}

const emptyNamespace: NamespaceIndex<never> = { conns: HashMap.empty(), rooms: HashMap.empty() }

/**
 * The members of a namespace, or of one of its rooms, narrowed to the connections
 * with id `to` when it is given.
 *
 * @internal
 */
export const targets = <C extends Member>(
  s: Snapshot<C>,
  namespace: string,
  room: string,
  to: string | undefined
): Members<C> | undefined => {
  const index = HashMap.get(s.namespaces, namespace)
  if (Option.isNone(index)) return undefined
  const members = room.length > 0 ? Option.getOrUndefined(HashMap.get(index.value.rooms, room)) : index.value.conns
  if (members === undefined || to === undefined) return members
  const byId = Option.getOrUndefined(HashMap.get(s.byId, to))
  if (byId === undefined) return undefined
  return HashMap.filter(byIdMembers(byId), (conn) => HashMap.has(members, conn.key))
}
