/**
 * Room histories: what a store keeps of a broadcast into a recoverable room (its
 * position, time and exclusion by id), what a read of a room's history returns,
 * and the in-memory store of one instance — a ring per room, bounded by count and
 * age per room and in bytes and rooms in total. The shared stores (Redis Streams,
 * JetStream) are in historyRedis.ts and historyNats.ts; the server side of
 * recovery, which uses them, in recovery.ts.
 *
 * @internal
 */
import type * as Message from "../Message.js"

/** A room's place in its history: `offset` grows with every message, `epoch` changes when the history is lost. */
export interface Position {
  readonly epoch: string
  readonly offset: number
}

/**
 * A stored message's position, the offset of the message before it in its room
 * (`prev`: `offset - 1` where offsets are contiguous, the previous stream sequence
 * of the room on JetStream) and when it was stored (ms).
 *
 * @internal
 */
export interface Stored {
  readonly epoch: string
  readonly offset: number
  readonly prev: number
  readonly time: number
}

/** A message of a room's history. @internal */
export interface StoredMessage {
  readonly stored: Stored
  readonly message: Message.Message
  /** the broadcast skipped the connections with this id; a replay skips them too */
  readonly exceptId: string | undefined
}

/** How much of a room's history is kept: messages, and how long (ms). @internal */
export interface Settings {
  readonly size: number
  readonly ttl: number
}

/**
 * What a store read of one room returns: its position now, and the messages after
 * `since` (oldest first, at most `limit + 1`) when `since` has the room's epoch.
 *
 * @internal
 */
export interface Read {
  readonly position: Position
  readonly entries: ReadonlyArray<StoredMessage>
  /**
   * The store vouches that `entries` are every message of the room after `since`
   * (up to the position, or the first `limit + 1` of them): nothing between was
   * trimmed or lost.
   */
  readonly covered: boolean
  /** how many messages follow `since`, when the store knows it (contiguous offsets) */
  readonly count: number | undefined
}

/** A message for one connection: a stored message and the connection it skips on this instance (its key). @internal */
export interface Pending {
  readonly entry: StoredMessage
  readonly skipKey: number
}

/**
 * Where a recovering connection (one that asked for positions) is in one
 * recoverable room: the last position written to it (later duplicates are
 * dropped), and while its join is answered, what arrived for it meanwhile
 * (`pending`, written from `index` on, after the replay).
 *
 * @internal
 */
export interface Cursor {
  epoch: string
  last: number
  pending: Array<Pending> | undefined
  index: number
  /** messages `pending` may hold before the connection is closed as a slow consumer */
  readonly limit: number
}

/** The key of a room in maps: namespace and room, which cannot contain NUL in a neffos header. @internal */
export const roomKey = (namespace: string, room: string): string => namespace + "\u0000" + room

/** A new epoch: 12 characters of [A-Za-z0-9_-], never a `:`. @internal */
export const newEpoch = (): string => crypto.randomUUID().replaceAll("-", "").slice(0, 12)

/** What the in-memory store counts for a message: its body and names plus a fixed overhead. */
const bytesOf = (message: Message.Message): number => {
  const body = message.body
  return 160 + message.namespace.length + message.room.length + message.event.length +
    (message.error?.length ?? 0) + (typeof body === "string" ? body.length : body.byteLength)
}

/** The fixed cost of a room's record, counted with the messages against `maxBytes`. */
const roomBytes = 200

class Node {
  /** the global list, oldest first: eviction by bytes takes its head */
  older: Node | undefined = undefined
  newer: Node | undefined = undefined
  constructor(readonly entry: StoredMessage, readonly bytes: number, readonly room: Room) {}
}

class Room {
  /** a ring of at most `size` messages, oldest at `head` */
  ring: Array<Node | undefined> = []
  head = 0
  count = 0
  top = 0
  constructor(readonly key: string, readonly epoch: string) {}

  at(i: number): Node {
    return this.ring[(this.head + i) % this.ring.length]!
  }
}

/** @internal */
export interface MemoryStoreOptions {
  /** messages and room records, in bytes, across rooms */
  readonly maxBytes: number
  /** room records kept (the least recently written is dropped first) */
  readonly maxRooms: number
}

/**
 * The history of one instance, in memory. Every room has a ring of its last
 * `size` messages, each kept at most `ttl`; across rooms the store holds at most
 * `maxBytes` (the oldest messages of any room go first) and `maxRooms` room
 * records (the least recently written goes first, with its epoch: a client that
 * resumes in it later is told the epoch changed). A room whose messages all
 * expired keeps its epoch and offset, so its idle clients still recover.
 *
 * @internal
 */
export class MemoryStore {
  private readonly rooms = new Map<string, Room>()
  private oldest: Node | undefined = undefined
  private newest: Node | undefined = undefined
  private bytes_ = 0

  constructor(private readonly options: MemoryStoreOptions, private readonly now: () => number) {}

  /** Bytes counted against `maxBytes` now. */
  get bytes(): number {
    return this.bytes_
  }

  /** Messages held now, across rooms. */
  get size(): number {
    let n = 0
    for (const room of this.rooms.values()) n += room.count
    return n
  }

  get roomCount(): number {
    return this.rooms.size
  }

  /** Messages held for one room now. */
  roomSize(namespace: string, room: string): number {
    return this.rooms.get(roomKey(namespace, room))?.count ?? 0
  }

  private room(key: string): Room {
    let room = this.rooms.get(key)
    if (room === undefined) {
      room = new Room(key, newEpoch())
      this.rooms.set(key, room)
      this.bytes_ += roomBytes
      if (this.rooms.size > this.options.maxRooms) this.dropRoom(this.rooms.values().next().value!)
      this.evict()
    }
    return room
  }

  /** Stores a message of a room; returns it with its position. */
  append(namespace: string, roomName: string, settings: Settings, message: Message.Message, exceptId?: string) {
    const key = roomKey(namespace, roomName)
    const room = this.room(key)
    // the most recently written room is the last to be dropped
    this.rooms.delete(key)
    this.rooms.set(key, room)
    const time = this.now()
    const offset = room.top + 1
    const entry: StoredMessage = {
      stored: { epoch: room.epoch, offset, prev: room.top, time },
      message,
      exceptId
    }
    room.top = offset
    const size = Math.max(1, settings.size)
    this.expire(room, time - settings.ttl)
    while (room.count >= size) this.shift(room)
    if (room.ring.length < size && room.count === room.ring.length) {
      // grow the ring (up to `size`), keeping its order
      const grown: Array<Node | undefined> = []
      for (let i = 0; i < room.count; i++) grown.push(room.at(i))
      grown.length = Math.min(size, Math.max(4, room.count * 2))
      room.ring = grown
      room.head = 0
    }
    const node = new Node(entry, bytesOf(message), room)
    room.ring[(room.head + room.count) % room.ring.length] = node
    room.count++
    node.older = this.newest
    if (this.newest !== undefined) this.newest.newer = node
    else this.oldest = node
    this.newest = node
    this.bytes_ += node.bytes
    this.evict()
    return entry
  }

  /** The room's position now (a room without history gets one, with a new epoch). */
  position(namespace: string, roomName: string): Position {
    const room = this.room(roomKey(namespace, roomName))
    return { epoch: room.epoch, offset: room.top }
  }

  /**
   * The room's position and, when `since` has its epoch, the messages after it that
   * are younger than `ttl`, at most `limit + 1`; without `since`, the latest `limit`.
   */
  read(namespace: string, roomName: string, settings: Settings, since: Position | undefined, limit: number): Read {
    const room = this.room(roomKey(namespace, roomName))
    this.expire(room, this.now() - settings.ttl)
    const position = { epoch: room.epoch, offset: room.top }
    if (since === undefined) {
      const entries: Array<StoredMessage> = []
      for (let i = Math.max(0, room.count - limit); i < room.count; i++) entries.push(room.at(i).entry)
      return { position, entries, covered: true, count: undefined }
    }
    if (since.epoch !== room.epoch || since.offset >= room.top || since.offset < 0) {
      return { position, entries: [], covered: since.epoch === room.epoch, count: undefined }
    }
    const count = room.top - since.offset
    const first = room.count === 0 ? room.top + 1 : room.at(0).entry.stored.offset
    const entries: Array<StoredMessage> = []
    for (let i = Math.max(0, since.offset + 1 - first); i < room.count && entries.length <= limit; i++) {
      entries.push(room.at(i).entry)
    }
    return { position, entries, covered: since.offset + 1 >= first, count }
  }

  /** Drops the room's messages older than `before`. */
  private expire(room: Room, before: number): void {
    while (room.count > 0 && room.at(0).entry.stored.time < before) this.shift(room)
  }

  /** Drops the room's oldest message. */
  private shift(room: Room): void {
    const node = room.ring[room.head]!
    room.ring[room.head] = undefined
    room.head = (room.head + 1) % room.ring.length
    room.count--
    this.unlink(node)
  }

  private unlink(node: Node): void {
    if (node.older !== undefined) node.older.newer = node.newer
    else this.oldest = node.newer
    if (node.newer !== undefined) node.newer.older = node.older
    else this.newest = node.older
    node.older = node.newer = undefined
    this.bytes_ -= node.bytes
  }

  private dropRoom(room: Room): void {
    while (room.count > 0) this.shift(room)
    this.rooms.delete(room.key)
    this.bytes_ -= roomBytes
  }

  /** Within `maxBytes`: the oldest messages of any room go first, then the least recently written rooms. */
  private evict(): void {
    while (this.bytes_ > this.options.maxBytes) {
      const oldest = this.oldest
      if (oldest !== undefined) {
        // the oldest message overall is the oldest of its room
        this.shift(oldest.room)
      } else {
        const room = this.rooms.values().next().value
        if (room === undefined) return
        this.dropRoom(room)
      }
    }
  }
}
