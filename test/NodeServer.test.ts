import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import WebSocket from "ws"
import * as Events from "../src/Events.js"
import * as NodeServer from "../src/NodeServer.js"
import * as Server from "../src/Server.js"
import { handshaken, startServer } from "./utils.js"

const events = Events.namespaces({ default: {} })

const request = (url: string, init: RequestInit) =>
  Effect.promise(() =>
    fetch(url, { ...init, redirect: "manual" }).then(async (response) => ({
      status: response.status,
      headers: response.headers,
      body: await response.text()
    }))
  )

/** The status of a refused WebSocket upgrade. */
const upgradeStatus = (url: string, headers?: Record<string, string>) =>
  Effect.async<number>((resume) => {
    const ws = new WebSocket(url, headers === undefined ? {} : { headers })
    ws.on("unexpected-response", (_req, res) => {
      resume(Effect.succeed(res.statusCode ?? 0))
      ws.terminate()
    })
    ws.on("open", () => {
      resume(Effect.succeed(101))
      ws.terminate()
    })
    ws.on("error", () => {})
  })

describe("NodeServer", () => {
  describe("layer (standalone)", () => {
    it.scopedLive("answers HEAD with 302 (the neffos.js reconnect probe) and other methods with 405", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events })
        const http = url.replace("ws://", "http://")
        assert.strictEqual((yield* request(http, { method: "HEAD" })).status, 302)
        const post = yield* request(http, { method: "POST", body: "x" })
        assert.strictEqual(post.status, 405)
        assert.strictEqual(post.headers.get("allow"), "GET")
        assert.strictEqual(post.body, "Method Not Allowed")
        assert.strictEqual((yield* request(http, { method: "GET" })).status, 426)
        assert.strictEqual((yield* request(http.replace("/echo", "/other"), { method: "GET" })).status, 404)
        assert.strictEqual(yield* upgradeStatus(url.replace("/echo", "/other")), 404)
      }))

    it.scopedLive("serves the path it is given", () =>
      Effect.gen(function*() {
        const context = yield* Layer.build(
          NodeServer.layer({ port: 0, path: "/ws" }).pipe(Layer.provideMerge(Server.layer({ events })))
        )
        const node = yield* Effect.provide(NodeServer.NodeServer, context)
        assert.match(node.url, /^ws:\/\/127\.0\.0\.1:\d+\/ws$/)
        const { id } = yield* handshaken(node.url)
        assert.isString(id)
      }))
  })

  describe("endpoint on an HttpRouter", () => {
    const authenticated = Effect.gen(function*() {
      const req = yield* HttpServerRequest.HttpServerRequest
      const auth = req.headers["authorization"]
      if (req.method === "GET" && auth === undefined) return HttpServerResponse.empty({ status: 401 })
      if (auth !== undefined && auth !== "Bearer alice") return HttpServerResponse.empty({ status: 403 })
      return yield* NodeServer.endpointWith({ id: auth === undefined ? undefined : "alice" })
    })

    const serve = Effect.gen(function*() {
      const router = HttpRouter.empty.pipe(
        HttpRouter.all("/ws", authenticated),
        HttpRouter.get("/health", HttpServerResponse.text("ok"))
      )
      const context = yield* Layer.build(
        HttpServer.serve(router).pipe(
          Layer.provideMerge(NodeServer.layerHttpServer({ port: 0 })),
          Layer.provideMerge(Server.layer({ events }))
        )
      )
      const http = yield* Effect.provide(HttpServer.HttpServer, context)
      const address = http.address as HttpServer.TcpAddress
      return `127.0.0.1:${address.port}`
    })

    it.scopedLive("refuses an unauthenticated upgrade with the application's status, without upgrading", () =>
      Effect.gen(function*() {
        const host = yield* serve
        assert.strictEqual(yield* upgradeStatus(`ws://${host}/ws`), 401)
        assert.strictEqual(yield* upgradeStatus(`ws://${host}/ws`, { Authorization: "Bearer mallory" }), 403)
        assert.strictEqual((yield* request(`http://${host}/health`, { method: "GET" })).body, "ok")
      }))

    it.scopedLive("upgrades an authenticated request with the id the application chose", () =>
      Effect.gen(function*() {
        const host = yield* serve
        const { client, id } = yield* handshaken(`ws://${host}/ws`, { headers: { Authorization: "Bearer alice" } })
        assert.strictEqual(id, "alice")
        yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
        assert.strictEqual(yield* client.nextText, "$c;;;;;;")
      }))

    it.scopedLive("answers HEAD with 302 and POST with 405 on the route", () =>
      Effect.gen(function*() {
        const host = yield* serve
        assert.strictEqual((yield* request(`http://${host}/ws`, { method: "HEAD" })).status, 302)
        assert.strictEqual(
          (yield* request(`http://${host}/ws`, {
            method: "POST",
            body: "",
            headers: { authorization: "Bearer alice" }
          }))
            .status,
          405
        )
      }))
  })
})
