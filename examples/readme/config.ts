// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Layer } from "effect"
import { Server } from "effect-neffos"
import * as NodeServer from "effect-neffos/NodeServer"
import { events } from "./handlers.js"

export const Main = NodeServer.layerConfig().pipe(Layer.provide(Server.layerConfig({ events })))
// PORT=9000 NEFFOS_PING_INTERVAL="10 seconds" NEFFOS_OUTBOX_STRATEGY=dropping node main.js
