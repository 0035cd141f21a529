// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Effect, Layer } from "effect"
import { Contract, Server } from "effect-neffos"
import * as NodeServer from "effect-neffos/NodeServer"
import { Calendar } from "./calendar.js" // the application's own service
import { Chat, InvalidDate } from "./chat-contract.js" // the contract above

const events = Contract.handlers(Chat, {
  default: {
    chat: (ns, { text }, { room }) => ns.broadcastOthers(Chat.default.message, { from: ns.conn.id, text }, { room }),
    workday: (_ns, date) =>
      Effect.gen(function*() {
        const calendar = yield* Calendar // requirements become Server.layer's, as with Events
        const day = new Date(`${date}T12:00:00Z`)
        if (Number.isNaN(day.getTime())) return yield* new InvalidDate({ input: date }) // only declared errors compile
        return calendar.isWorkday(day)
      }),
    _OnNamespaceConnected: (ns) => ns.emit(Chat.default.notice, `welcome, ${ns.conn.id}`) // lifecycle events too
  }
})
export const Main = NodeServer.layer({ port: 8080 }).pipe(Layer.provide(Server.layer({ events })))
