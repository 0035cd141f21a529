// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { Data, Effect } from "effect"
import { Events, Message, Reply } from "effect-neffos"
import { Calendar } from "./calendar.js"

class NotAllowed extends Data.TaggedError("NotAllowed")<{ readonly message: string }> {}

const events = Events.namespaces({
  default: {
    workday: (_ns, msg) =>
      Effect.gen(function*() {
        const calendar = yield* Calendar // your service: Server.layer now requires Calendar
        return Reply.text(yield* calendar.describe(Message.bodyText(msg)))
      }),
    admin: (ns) => ns.conn.id === "root" ? Effect.void : Effect.fail(new NotAllowed({ message: "admins only" }))
  }
})

export { events, NotAllowed }

/** A connection's display name (the application's own rule). */
export const displayName = (conn: { readonly id: string }): string => conn.id

/** The application's own check before the admin dashboard. */
export const requireOperator = Effect.void
