// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Schema } from "effect"
import { Contract } from "effect-neffos"

export class InvalidDate extends Schema.TaggedError<InvalidDate>()("InvalidDate", { input: Schema.String }) {
  override get message() {
    return `not a date: ${this.input}` // the text neffos.js and Go peers read
  }
}

export const Chat = Contract.make({
  default: Contract.namespace({
    chat: Contract.emit({ text: Schema.String }), // client → server
    message: Contract.push({ from: Schema.String, text: Schema.String }), // server → client
    notice: Contract.push(Schema.String),
    workday: Contract.ask({ payload: Schema.String, success: Schema.Boolean, error: InvalidDate }), // client asks
    confirm: Contract.ask({ payload: Schema.String, success: Schema.Boolean, direction: "toClient" }) // server asks
  }, { room: Schema.String.pipe(Schema.pattern(/^[a-z0-9-]{1,32}$/)) }) // optional: room names
})
