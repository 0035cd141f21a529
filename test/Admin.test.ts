/**
 * The dashboard of examples/observability.ts over HTTP, and in Debian's Chromium:
 * the page loads, a connection appears, a room's count changes, the charts move,
 * and the page fetches nothing from anywhere else. The test writes the README's
 * screenshot, docs/dashboard.png, when run with UPDATE_SCREENSHOT=1 (docs/dashboard.last.png otherwise).
 */
import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import * as Admin from "effect-neffos/Admin"
import * as Server from "effect-neffos/Server"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as path from "node:path"
import { ObservabilityServer } from "../examples/observability.js"
import { browser } from "./chromium.js"
import { client } from "./StackExchange.kit.js"

/** The README's screenshot is rewritten with UPDATE_SCREENSHOT=1; a normal run writes beside it, untracked. */
const screenshot = path.join(
  import.meta.dirname,
  "..",
  "docs",
  process.env.UPDATE_SCREENSHOT === "1" ? "dashboard.png" : "dashboard.last.png"
)

/** The example on a free port, sampled every 200 ms. */
const started = Effect.gen(function*() {
  const context = yield* Layer.build(ObservabilityServer({ port: 0, admin: { interval: "200 millis" } }))
  const address = Context.get(context, HttpServer.HttpServer).address
  const port = address._tag === "TcpAddress" ? address.port : 0
  return {
    server: Context.get(context, Server.Server),
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/echo`
  }
})

const get = (url: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) })
    return { status: response.status, type: response.headers.get("content-type"), text: await response.text() }
  })

describe("Admin dashboard", () => {
  it.scopedLive("serves the page, the state as JSON and the metrics; behind the application's own check", () =>
    Effect.gen(function*() {
      const { http, ws } = yield* started
      const c = yield* client(ws)
      yield* c.connect("default")
      yield* c.join("default", "lobby")

      const forbidden = yield* get(`${http}/admin/`)
      assert.strictEqual(forbidden.status, 403)
      const page = yield* get(`${http}/admin/?token=let-me-in`)
      assert.strictEqual(page.status, 200)
      assert.match(page.type ?? "", /^text\/html/)
      assert.notMatch(page.text, /(src|href)="https?:/, "no external asset")

      const state = JSON.parse((yield* get(`${http}/admin/state?token=let-me-in`)).text) as Admin.State
      assert.strictEqual(state.instances.length, 1)
      assert.strictEqual(state.instances[0].instance, state.self)
      assert.isAtLeast(state.history.length, 1)
      const metrics = yield* get(`${http}/metrics`)
      assert.strictEqual(metrics.type, "text/plain; version=0.0.4; charset=utf-8")
      assert.include(metrics.text, "# TYPE effect_neffos_connections gauge")
      assert.strictEqual((yield* get(`${http}/admin/state?token=let-me-in`, { method: "POST" })).status, 405)
    }))

  it.scopedLive("in Chromium: a connection appears, a room's count changes, the charts update", () =>
    Effect.gen(function*() {
      const { http, server, ws } = yield* started
      const instance = yield* browser
      const tab = yield* Effect.promise(() => instance.newPage({ viewport: { width: 1280, height: 640 } }))
      const requested: Array<string> = []
      tab.on("request", (request) => requested.push(request.url()))
      // functions, not strings: the page's Content-Security-Policy forbids eval
      const waitFor = <A>(what: string, check: (arg: A) => boolean, arg: A) =>
        Effect.tryPromise(() => tab.waitForFunction(check as (arg: unknown) => boolean, arg, { timeout: 5000 })).pipe(
          Effect.mapError(() => new Error(`the page never showed ${what}`)),
          Effect.orDie
        )
      const points = Effect.promise(() =>
        tab.evaluate(() => Number(document.getElementById("chart-connections")!.dataset.points))
      )

      yield* Effect.promise(() => tab.goto(`${http}/admin/?token=let-me-in`))
      const shows = (id: string, expected: string) =>
        waitFor(
          `${id} ${expected}`,
          ([id, expected]) => document.getElementById(id)?.textContent === expected,
          [id, expected] as const
        )
      yield* shows("status-text", "live")
      yield* shows("connections", "0")
      const before = yield* points

      const alice = yield* client(ws, "alice")
      yield* alice.connect("default")
      yield* shows("connections", "1")
      yield* alice.join("default", "lobby")
      const lobby = (members: string) =>
        waitFor(
          `the lobby with ${members} members`,
          (members) => document.querySelector("[data-room=\"default/lobby\"]")?.textContent === members,
          members
        )
      yield* lobby("1")
      const bob = yield* client(ws, "bob")
      yield* bob.connect("default")
      yield* bob.join("default", "lobby")
      yield* lobby("2")
      yield* waitFor(
        "a chart that moved",
        (before) => Number(document.getElementById("chart-connections")!.dataset.points) > before,
        before
      )
      assert.isAbove(yield* points, before)

      // some traffic for the screenshot: chats, asks the server makes, another room
      const carol = yield* client(ws, "carol")
      yield* carol.connect("default")
      yield* carol.join("default", "team-1")
      for (let i = 0; i < 20; i++) {
        yield* alice.emit({
          namespace: "default",
          room: "lobby",
          event: "chat",
          body: JSON.stringify({ text: `hi ${i}` })
        })
        yield* Effect.forEach(
          [alice, bob, carol],
          (c) => server.ask({ to: c.id, namespace: "default", event: "ping", body: String(i) }).pipe(Effect.orDie)
        )
        yield* Effect.sleep("100 millis")
      }
      yield* waitFor(
        "messages out on the chart",
        () => /L/.test(document.querySelectorAll("#chart-messages path")[1]?.getAttribute("d") ?? ""),
        undefined
      )
      Fs.mkdirSync(path.dirname(screenshot), { recursive: true })
      yield* Effect.promise(() => tab.screenshot({ path: screenshot, fullPage: true }))
      assert.isAbove(Fs.statSync(screenshot).size, 10_000)

      const origin = new URL(http).origin
      assert.deepStrictEqual(requested.filter((url) => new URL(url).origin !== origin), [], "nothing from elsewhere")
    }))
})
