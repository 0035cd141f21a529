/**
 * Contracts on the client: typed pushes as queues and streams, the client's event
 * table, and `Contract.dial`.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Client from "../Client.js"
import type * as Contract from "../Contract.js"
import * as Events from "../Events.js"
import { buildTable, receivedOf, roomSchemaOf, type TypedHandler, type UntypedHandler, Views } from "./contract.js"
import { codecOf, countDecodeFailure, decodeBody, encodeRoom } from "./contractCodec.js"

// -----------------------------------------------------------------------------
// client
// -----------------------------------------------------------------------------

interface Subscriber {
  readonly room: string | undefined
  readonly queue: Queue.Queue<unknown>
}

/** Subscribers by namespace and event, per client connection. */
type Registry = Map<string, Map<string, Set<Subscriber>>>

const registries = new WeakMap<Client.ClientConn, Registry>()

const registryOf = (conn: Client.ClientConn): Registry => {
  let registry = registries.get(conn)
  if (registry === undefined) {
    registry = new Map()
    registries.set(conn, registry)
  }
  return registry
}

const subscribersOf = (conn: Client.ClientConn, event: Contract.Event): Set<Subscriber> | undefined =>
  registries.get(conn)?.get(event.namespace)?.get(event.name)

const pushHandler = (
  roomSchemaOfNs: (ns: string) => Contract.RoomSchema
) =>
(event: Contract.Push, handler: TypedHandler | undefined, views: Views): UntypedHandler => {
  const roomSchema = roomSchemaOfNs(event.namespace)
  return (nsConn: Client.ClientNSConn, message) => {
    if (message.error !== undefined) return Exit.void
    const subscribers = subscribersOf(nsConn.conn, event)
    if (handler === undefined && (subscribers === undefined || subscribers.size === 0)) return Exit.void
    const payload = decodeBody(codecOf(event.payload), message)
    const received = Either.isRight(payload) ? receivedOf(roomSchema, message) : undefined
    if (Either.isLeft(payload) || received === undefined || Either.isLeft(received)) {
      countDecodeFailure("push")
      const summary = Either.isLeft(payload) ? payload.left.summary : Either.isLeft(received!) ? received.left : ""
      return Effect.logWarning("effect-neffos/Contract: a push did not decode; skipped").pipe(
        Effect.annotateLogs({ namespace: message.namespace, room: message.room, event: message.event, summary })
      )
    }
    const value = payload.right
    const publish = subscribers === undefined || subscribers.size === 0
      ? Effect.void
      : Effect.forEach(
        Array.from(subscribers),
        (subscriber) =>
          subscriber.room === undefined || subscriber.room === message.room
            ? Queue.offer(subscriber.queue, value)
            : Effect.void,
        { discard: true }
      )
    return handler === undefined
      ? publish
      : Effect.zipRight(publish, handler(views.ns(nsConn), value, received.right) as Effect.Effect<void>)
  }
}

/** @internal */
export const clientEventsTable = (
  contract: Contract.Any,
  handlers: Record<string, Record<string, TypedHandler> | undefined>
): Record<string, Record<string, UntypedHandler>> =>
  buildTable(contract, handlers, "client", pushHandler((ns) => roomSchemaOf(contract, ns)))

/** @internal */
export const clientEvents = (
  contract: Contract.Any,
  handlers: Record<string, Record<string, TypedHandler> | undefined>
): Client.ClientEvents<never, unknown> => Events.client(clientEventsTable(contract, handlers)) as any

/** @internal */
export const makeClient = (conn: Client.ClientConn, contract: Contract.Any): Contract.ContractClient<any> => {
  const views = new Views(contract, "client")
  const subscribe = (
    event: Contract.Push,
    options?: Contract.SubscribeOptions<unknown>
  ): Effect.Effect<Queue.Dequeue<unknown>, never, Scope.Scope> =>
    Effect.acquireRelease(
      Effect.suspend(() => {
        const room = options?.room === undefined ? undefined : encodeRoom(event.room, options.room)
        return Effect.map(Queue.bounded<unknown>(options?.capacity ?? 1024), (queue) => {
          const registry = registryOf(conn)
          let byEvent = registry.get(event.namespace)
          if (byEvent === undefined) registry.set(event.namespace, byEvent = new Map())
          let subscribers = byEvent.get(event.name)
          if (subscribers === undefined) byEvent.set(event.name, subscribers = new Set())
          const subscriber = { room, queue }
          subscribers.add(subscriber)
          return subscriber
        })
      }),
      (subscriber) =>
        Effect.suspend(() => {
          subscribersOf(conn, event)?.delete(subscriber)
          return Queue.shutdown(subscriber.queue)
        })
    ).pipe(Effect.map((subscriber) => subscriber.queue))
  return {
    conn,
    contract,
    connect: (namespace, options) => Effect.map(conn.connect(namespace, options), (ns) => views.ns(ns)),
    namespace: (namespace) => Effect.map(conn.namespace(namespace), (ns) => views.ns(ns)),
    waitServerConnect: (namespace) => Effect.map(conn.waitServerConnect(namespace), (ns) => views.ns(ns)),
    subscribe: subscribe as any,
    pushes: ((event: Contract.Push, options?: Contract.SubscribeOptions<unknown>) =>
      Stream.unwrapScoped(
        Effect.map(subscribe(event, options), (queue) =>
          Stream.fromQueue(queue).pipe(Stream.interruptWhen(conn.awaitClose)))
      )) as any
  }
}

/** @internal */
export const client = dual(2, makeClient)

/** @internal */
export const dial = (
  contract: Contract.Any,
  url: string,
  options?: Omit<Client.DialOptions<never, never>, "events"> & {
    readonly handlers?: Record<string, Record<string, TypedHandler> | undefined> | undefined
  }
) => {
  const { handlers, ...rest } = options ?? {}
  return Effect.map(
    Client.dial(url, { ...rest, events: clientEvents(contract, handlers ?? {}) }),
    (conn) => makeClient(conn, contract)
  )
}
