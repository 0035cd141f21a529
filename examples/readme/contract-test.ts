// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import * as TestServer from "effect-neffos/TestServer"
import { Chat, InvalidDate } from "./chat-contract.js"

export const program = Effect.gen(function*() {
  const alice = yield* TestServer.connectContract(Chat, { id: "alice" })
  const ns = yield* alice.connect("default")
  yield* alice.expectPush(Chat.default.notice, { payload: "welcome, alice" })
  assert.isTrue(yield* ns.ask(Chat.default.workday, "2026-11-25"))
  assert.instanceOf(yield* Effect.flip(ns.ask(Chat.default.workday, "someday")), InvalidDate)
})
