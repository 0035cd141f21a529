// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Console, Effect, Stream } from "effect"
import { Server } from "effect-neffos"

export const program = Effect.gen(function*() {
  const server = yield* Server.Server
  const online = yield* server.presence.count("default") // { connections: 1204, ids: 873 }
  const lobby = yield* server.presence.members("default", "lobby") // [{ ref, id, instance, namespace, room, joinedAt, metadata }]
  const users = yield* server.presence.byId("default", "lobby") // [{ id, members }]: one user, several tabs
  yield* server.presence.changes.pipe(Stream.runForEach(Console.log), Effect.fork) // Join | Leave | Update
  const view = server.presence.watch("default", "lobby") // State, then that room's changes
  return { online, lobby, users, view }
})
