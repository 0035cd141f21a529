/**
 * The HttpRouter recipe (examples/auth.ts): a token authenticates the upgrade
 * whether it comes as a real header (Node) or as neffos.js's
 * `X-Websocket-Header-Authorization` query parameter (browsers); none is 401, a
 * wrong one 403, and neither is upgraded.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import WebSocket from "ws"
import { events, UsersLive, websocket } from "../examples/auth.js"
import * as Conn from "../src/Conn.js"
import * as NodeServer from "../src/NodeServer.js"
import * as Server from "../src/Server.js"
import { browser, neffosModule, serveFiles } from "./chromium.js"

/** The recipe's app on a free port; `statuses` records what the route answered (101 once upgraded). */
const app = Effect.gen(function*() {
  const statuses: Array<number> = []
  const recorded = websocket.pipe(Effect.tap((response) => Effect.sync(() => statuses.push(response.status))))
  const context = yield* Layer.build(
    HttpRouter.empty.pipe(
      HttpRouter.all("/ws", recorded),
      HttpServer.serve(),
      Layer.provideMerge(NodeServer.layerHttpServer({ port: 0 })),
      Layer.provide(Server.layer({ events })),
      Layer.provide(UsersLive)
    )
  )
  const address = Context.get(context, HttpServer.HttpServer).address
  const port = address._tag === "TcpAddress" ? address.port : 0
  return { url: `ws://127.0.0.1:${port}/ws`, statuses }
})

/** Opens a Node `ws` client: the id it was given, or the HTTP status that refused it. */
const dial = (url: string, headers: Record<string, string> = {}) =>
  Effect.async<{ readonly id: string } | { readonly status: number }>((resume) => {
    const ws = new WebSocket(url, { headers })
    ws.on("unexpected-response", (_req, res) => {
      resume(Effect.succeed({ status: res.statusCode ?? 0 }))
      ws.terminate()
    })
    ws.on("error", () => {})
    ws.once("open", () => ws.send("M"))
    ws.once("message", (data) => {
      resume(Effect.succeed({ id: (data as Buffer).toString("utf8").slice(1) }))
      ws.close()
    })
  }).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("no answer within 5 s") }))

describe("Authenticating the upgrade on an HttpRouter", () => {
  it("Conn.withQueryHeaders turns X-Websocket-Header-* parameters into lower-case headers", () => {
    const request = Conn.withQueryHeaders({
      url: "/ws?X-Websocket-Header-Authorization=Bearer%20t&x-websocket-header-X-Trace=a&other=1",
      headers: { host: "h", "x-trace": "b" },
      remoteAddress: undefined
    })
    assert.deepStrictEqual(request.headers, { host: "h", authorization: "Bearer t", "x-trace": "b, a" })
  })

  it.scopedLive("from Node: a real header or the query parameter authenticates; none is 401, a wrong one 403", () =>
    Effect.gen(function*() {
      const { statuses, url } = yield* app
      assert.deepStrictEqual(yield* dial(url, { Authorization: "Bearer alice-token" }), { id: "alice" })
      assert.deepStrictEqual(yield* dial(`${url}?X-Websocket-Header-Authorization=Bearer%20bob-token`), { id: "bob" })
      assert.deepStrictEqual(yield* dial(url), { status: 401 })
      assert.deepStrictEqual(yield* dial(url, { Authorization: "Bearer nobody" }), { status: 403 })
      assert.deepStrictEqual(statuses, [101, 101, 401, 403])
    }))

  it.scopedLive("from Chromium with the published neffos.js: query token in, none 401, wrong 403", () =>
    Effect.gen(function*() {
      const { statuses, url } = yield* app
      const page = yield* serveFiles({
        "/": `<!doctype html><title>auth</title><script type="module">
import * as neffos from "/neffos.js"
window.tryDial = async (url, token) => {
  try {
    const options = token === undefined ? {} : { headers: { Authorization: "Bearer " + token } }
    const conn = await neffos.dial(url, { default: {} }, options)
    const ns = await conn.connect("default")
    const reply = await ns.ask("whoami", "")
    conn.close()
    return "as " + reply.Body
  } catch (error) {
    return "refused"
  }
}
</script>`,
        "/neffos.js": neffosModule
      })
      const instance = yield* browser
      const tab = yield* Effect.promise(() => instance.newPage())
      yield* Effect.promise(() => tab.goto(page))
      yield* Effect.promise(() =>
        tab.waitForFunction(() => (window as unknown as { tryDial?: unknown }).tryDial !== undefined, null, {
          timeout: 5000
        })
      )
      const tryDial = (token: string | undefined) =>
        Effect.promise(() =>
          tab.evaluate(
            ([url, token]) =>
              (window as unknown as { tryDial: (url: string, token: string | undefined) => Promise<string> })
                .tryDial(url, token),
            [url, token] as const
          )
        ).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the page's dial hung") }))
      assert.strictEqual(yield* tryDial("alice-token"), "as alice")
      assert.strictEqual(yield* tryDial(undefined), "refused")
      assert.strictEqual(yield* tryDial("wrong"), "refused")
      assert.deepStrictEqual(statuses, [101, 401, 403])
    }))
})
