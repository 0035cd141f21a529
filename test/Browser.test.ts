/**
 * The client bundle in headless Chromium (Debian's chromium, driven by
 * playwright-core) against the example chat server.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as esbuild from "esbuild"
import * as path from "node:path"
import { ChatServer } from "../examples/chat.js"
import * as NodeServer from "../src/NodeServer.js"
import { browser, serveFiles } from "./chromium.js"

const bundle = Effect.promise(() =>
  esbuild.build({
    entryPoints: [path.join(import.meta.dirname, "browser", "entry.ts")],
    bundle: true,
    platform: "browser",
    format: "iife",
    write: false,
    metafile: true,
    logLevel: "silent"
  })
)

describe("Client in a browser", () => {
  it.scopedLive("the bundle never includes ws or Node built-ins", () =>
    Effect.gen(function*() {
      const result = yield* bundle
      const inputs = Object.keys(result.metafile.inputs)
      assert.isFalse(inputs.some((input) => input.includes("node_modules/ws/")), inputs.join("\n"))
      assert.isTrue(inputs.some((input) => input.endsWith("src/Client.ts")))
    }))

  it.scopedLive("connects to the example server, typed by its contract: asks, and receives a relayed chat", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(ChatServer(0))
      const node = yield* Effect.provide(NodeServer.NodeServer, context)
      const script = (yield* bundle).outputFiles[0].text
      const instance = yield* browser
      const tab = yield* Effect.promise(() => instance.newPage())
      // a page of a loopback origin: Chromium blocks about:blank from reaching loopback
      const page = yield* serveFiles({ "/": `<!doctype html><title>check</title><script>${script}</script>` })
      yield* Effect.promise(() => tab.goto(page))
      const checked = yield* Effect.promise(() => tab.evaluate((url) => window.runCheck(url), node.url))
      assert.match(checked.id, /^[0-9a-f-]{36}$/)
      assert.strictEqual(checked.welcome, `welcome, ${checked.id}`)
      assert.isTrue(checked.workday)
      // headers travel as X-Websocket-Header-* query parameters from browsers
      assert.strictEqual(checked.otherId, "other-tab")
      assert.deepStrictEqual(checked.broadcast, { from: "other-tab", text: "hello from the other tab" })
    }))
})
