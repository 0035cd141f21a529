// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer } from "effect"
import { Events, Message, Reply, Server } from "effect-neffos"
import * as NodeServer from "effect-neffos/NodeServer"

const events = Events.namespaces({
  default: {
    chat: (ns, msg) => ns.broadcastOthers(msg), // to everyone else in the namespace (or the message's room)
    echo: (_ns, msg) => Effect.succeed(Reply.text(`echo:${Message.bodyText(msg)}`)) // answers an ask
  }
})

const Main = NodeServer.layer({ port: 8080, path: "/echo" }).pipe(Layer.provide(Server.layer({ events })))

NodeRuntime.runMain(Layer.launch(Main))
