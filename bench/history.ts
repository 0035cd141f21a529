/**
 * Memory per recoverable room: a server (the compiled package) with no connections keeps the history
 * of `rooms` rooms, each filled with `messages` broadcasts of `size` bytes, in memory. The heap after
 * a full GC, minus the same server before, divided by the rooms (and by the messages). Runs in a
 * worker of its own, started with `--expose-gc`.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { serve } from "./lib/ipc.js"
import { nextTurn } from "./lib/time.js"
import { broadcastBody, broadcastEvent, namespace } from "./lib/wire.js"
const { Events, Server } = (await import("../dist/index.js" as string)) as typeof import("../src/index.js")

export interface HistoryMemory {
  readonly rooms: number
  readonly messages: number
  readonly size: number
  /** heap bytes per room holding `messages` messages */
  readonly perRoom: number
  /** heap bytes per stored message */
  readonly perMessage: number
  /** heap bytes per room record without messages (its epoch and offset) */
  readonly perEmptyRoom: number
}

const heap = async () => {
  globalThis.gc!()
  await nextTurn()
  globalThis.gc!()
  return process.memoryUsage().heapUsed
}

const measure = async (
  { messages, rooms, size }: { readonly rooms: number; readonly messages: number; readonly size: number }
): Promise<HistoryMemory> => {
  const scope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(Scope.extend(
    Server.make({
      events: Events.namespaces({ [namespace]: {} }),
      history: { rooms: [{ namespace, room: /^h/, size: messages, ttl: "1 hour" }], maxBytes: 2 ** 31 }
    }),
    scope
  ))
  const fill = (count: number, prefix: string) =>
    Effect.runPromise(Effect.forEach(
      Array.from({ length: rooms * count }, (_, i) => i),
      (i) =>
        server.broadcast({
          namespace,
          room: `${prefix}${i % rooms}`,
          event: broadcastEvent,
          body: broadcastBody(size, i)
        }),
      { discard: true }
    ))
  const before = await heap()
  // a room record alone: its position read, nothing stored
  await Effect.runPromise(Effect.forEach(
    Array.from({ length: rooms }, (_, i) => i),
    (i) => Effect.ignore(server.history(namespace, `he${i}`, { limit: 0 })),
    { discard: true }
  ))
  const empty = await heap()
  await fill(messages, "h")
  const full = await heap()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  return {
    rooms,
    messages,
    size,
    perRoom: (full - empty) / rooms,
    perMessage: (full - empty) / (rooms * messages),
    perEmptyRoom: (empty - before) / rooms
  }
}

serve({ measure })
