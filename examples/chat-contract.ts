/**
 * The chat's contract: every event the chat server (examples/chat.ts) and its
 * clients (examples/chat-client.ts, neffos.js pages) exchange, with the schema
 * of each payload, answer and error. Shared by both sides.
 *
 * On the wire a body is the JSON of the payload (neffos.js sends
 * `JSON.stringify({ text: "hi" })` for `chat`), so any neffos client takes part.
 */
import { Contract } from "effect-neffos"
import * as Schema from "effect/Schema"

/** `workday` was asked with something that is not a date. */
export class InvalidDate extends Schema.TaggedError<InvalidDate>()("InvalidDate", { input: Schema.String }) {
  override get message() {
    return `not a date: ${this.input}`
  }
}

/** Room names: lower-case letters, digits and dashes; the server refuses a join with any other. */
export const RoomName = Schema.String.pipe(Schema.pattern(/^[a-z0-9-]{1,32}$/), Schema.brand("RoomName"))
export type RoomName = typeof RoomName.Type

export const Chat = Contract.make({
  default: Contract.namespace({
    /** a line from a client, to the others in its room (or in the whole namespace) */
    chat: Contract.emit({ text: Schema.String }),
    /** a line relayed by the server */
    message: Contract.push({ from: Schema.String, text: Schema.String }),
    /** from the server: the welcome, who joined or left a room, the periodic notice */
    notice: Contract.push(Schema.String),
    /** is this date (YYYY-MM-DD) a workday? */
    workday: Contract.ask({ payload: Schema.String, success: Schema.Boolean, error: InvalidDate })
  }, { room: RoomName })
})
