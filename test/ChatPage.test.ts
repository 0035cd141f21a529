/**
 * The page `npm start` serves next to the chat server (examples/chat.ts), in
 * Chromium: two tabs connect with effect-neffos's browser client, join a room,
 * chat with each other and ask `workday`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Page } from "playwright-core"
import { ChatServer } from "../examples/chat.js"
import * as NodeServer from "../src/NodeServer.js"
import { browser } from "./chromium.js"

/** Waits (at most 5 s) until the page's log shows a line containing `text`. */
const logShows = (page: Page, text: string) =>
  Effect.promise(() =>
    page.waitForFunction(
      (text) => Array.from(document.querySelectorAll("#log div")).some((row) => row.textContent?.includes(text)),
      text,
      { timeout: 5000 }
    )
  ).pipe(Effect.asVoid)

const type = (page: Page, line: string) =>
  Effect.promise(async () => {
    await page.fill("#line", line)
    await page.press("#line", "Enter")
  })

describe("The chat page", () => {
  it.scopedLive("two tabs connect, join a room, chat and ask workday", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(ChatServer(0, { page: true }))
      const node = Context.get(context, NodeServer.NodeServer)
      const instance = yield* browser
      const tab = (name: string) =>
        Effect.gen(function*() {
          const page = yield* Effect.promise(() => instance.newPage())
          yield* Effect.promise(() => page.goto(`http://${node.host}:${node.port}/`))
          yield* Effect.promise(async () => {
            await page.fill("#name", name)
            await page.press("#name", "Enter")
          })
          yield* logShows(page, `welcome, ${name}`)
          yield* type(page, "/join lobby")
          yield* logShows(page, "you are in lobby")
          return page
        })
      const alice = yield* tab("alice")
      const bob = yield* tab("bob")
      yield* logShows(alice, "bob joined")
      yield* type(alice, "hello bob")
      yield* logShows(bob, "[lobby] alice: hello bob")
      yield* type(bob, "hi alice")
      yield* logShows(alice, "[lobby] bob: hi alice")
      yield* type(alice, "/workday 2026-11-25")
      yield* logShows(alice, "2026-11-25 is a workday")
      yield* type(bob, "/workday someday")
      yield* logShows(bob, "not a date: someday")
      const status = yield* Effect.promise(() => alice.textContent("#status"))
      assert.include(status, "connected as alice")
    }))
})
