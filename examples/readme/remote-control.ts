// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Effect } from "effect"
import { Cluster, Server } from "effect-neffos"

export const program = Effect.gen(function*() {
  const server = yield* Server.Server
  const moved = yield* server.joinRoom({ namespace: "default", room: "lobby" }, "game-7", { timeout: "3 seconds" })
  yield* server.broadcast({ namespace: "default", room: "game-7", event: "start" }) // reaches every one just joined
  const info = yield* server.connectionsInfo({ id: "alice" }) // [{ ref, id, instance, namespaces: [{ namespace, rooms }], metadata }]
  yield* server.leaveRoom({ namespace: "default", id: "alice" }, "vip").pipe(Cluster.requireComplete("leaveRoom"))
  return { moved, info }
})
