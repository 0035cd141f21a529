/**
 * The handlers of the Go server the conversations of PROTOCOL.md 1.7 were captured
 * against, re-expressed as effect-neffos events.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as Reply from "../src/Reply.js"

export class Refused extends Data.TaggedError("Refused")<{ readonly message: string }> {}

export const captureEvents = Events.namespaces({
  default: {
    _OnNamespaceConnected: (ns, msg) => msg.isLocal ? ns.emit("hello", "forced") : ns.emit("chat", "welcome"),
    _OnRoomJoin: (_ns, msg) =>
      msg.room === "forbidden" ? Effect.fail(new Refused({ message: "room is forbidden" })) : Effect.void,
    chat: (ns, msg) => ns.broadcast(msg),
    echo: (_ns, msg) => Effect.succeed(Reply.text("echo:" + Message.bodyText(msg))),
    fail: () => Effect.fail(new Refused({ message: "boom;with;semicolons" })),
    emitfail: () => Effect.fail(new Refused({ message: "emit failed" })),
    bin: (_ns, msg) => Effect.succeed(Reply.binary(Message.bodyBytes(msg))),
    // the server asks the client back and reports what it answered
    askme: (ns, msg) =>
      ns.ask(Message.bodyText(msg), "question?").pipe(
        Effect.flatMap((reply) => ns.emit("answer", Message.bodyText(reply))),
        Effect.catchAll((error) => ns.emit("answer", `${error._tag}:${error.message}`))
      ),
    joinme: (ns, msg) =>
      Effect.asVoid(
        Effect.flatMap(ns.joinRoom(Message.bodyText(msg)), (room) => room.emit("roomev", "from server in room"))
      ),
    leaveme: (ns, msg) => Effect.flatMap(ns.room(Message.bodyText(msg)), (room) => room.leave()),
    kickme: (ns) => ns.disconnect()
  },
  refuse: {
    _OnNamespaceConnect: () => Effect.fail(new Refused({ message: "refused by server" }))
  },
  second: {
    ping: () => Effect.succeed(Reply.text("pong"))
  },
  "semi;ns": {
    _OnNamespaceDisconnect: () => Effect.fail(new Refused({ message: "you cannot leave semi;ns" })),
    "ev;1": () => Effect.succeed(Reply.text("ok;")),
    tag: (ns) => ns.emit("tagged;event", "x;y")
  }
})
