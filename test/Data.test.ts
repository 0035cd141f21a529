/**
 * The package's data types behave like Effect's own: pipeable, inspectable, and
 * combinators in data-first and data-last form.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { format } from "effect/Inspectable"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as Reply from "../src/Reply.js"

describe("Data types", () => {
  it("Events.merge is dual, and events pipe", () => {
    const chat = Events.namespaces({ default: { chat: () => Effect.void, shared: () => Effect.void } })
    const admin = Events.namespaces({ default: { shared: () => Effect.succeed(Reply.text("admin")) }, admin: {} })
    const first = Events.merge(chat, admin)
    const last = chat.pipe(Events.merge(admin))
    for (const merged of [first, last]) {
      assert.deepStrictEqual(Array.from(merged.table.keys()), ["default", "admin"])
      assert.deepStrictEqual(Array.from(merged.table.get("default")!.keys()), ["chat", "shared"])
      assert.strictEqual(merged.table.get("default")!.get("shared"), admin.table.get("default")!.get("shared"))
    }
    assert.deepStrictEqual(first.toJSON(), { _id: "Events", namespaces: { default: ["chat", "shared"], admin: [] } })
  })

  it("a Message and an InvalidFrame show their fields; they pipe", () => {
    const message = Message.make({ namespace: "default", room: "lobby", event: "chat", body: "hi", wait: "$1" })
    assert.deepStrictEqual(message.toJSON(), {
      _id: "Message",
      namespace: "default",
      room: "lobby",
      event: "chat",
      body: "hi",
      wait: "$1"
    })
    assert.include(String(message), `"event": "chat"`)
    assert.strictEqual(message.pipe(Message.bodyText), "hi")
    const invalid = Message.decode(";;")
    assert.isTrue(Message.isInvalidFrame(invalid))
    assert.deepStrictEqual((invalid as Message.InvalidFrame).toJSON(), {
      _id: "InvalidFrame",
      reason: "TooFewSeparators",
      frame: ";;"
    })
  })

  it("a Reply shows its body and pipes", () => {
    const reply = Reply.text("ok")
    assert.deepStrictEqual(reply.toJSON(), { _id: "Reply", body: "ok" })
    assert.strictEqual(format(reply), format({ _id: "Reply", body: "ok" }))
    assert.strictEqual(reply.pipe((r) => r.body), "ok")
  })
})
