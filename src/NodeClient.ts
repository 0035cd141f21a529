/**
 * The client transport for Node: `ws`, with real request headers and corked
 * batched writes.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Http from "node:http"
import WebSocket from "ws"
import * as Client from "./Client.js"
import * as Errors from "./Errors.js"
import * as nodeSocket from "./internal/nodeSocket.js"

/**
 * @since 0.1.0
 * @category transport
 */
export const layer: Layer.Layer<Client.ClientTransport> = Layer.succeed(Client.ClientTransport, {
  open: (url, options) =>
    Effect.async((resume) => {
      const ws = new WebSocket(url, options.protocols as Array<string> | undefined, {
        headers: options.headers,
        perMessageDeflate: false
      })
      const settle = () => {
        ws.off("error", onError)
        ws.off("open", onOpen)
        ws.off("unexpected-response", onResponse)
      }
      const onError = (cause: Error) => {
        settle()
        resume(Effect.fail(new Errors.HandshakeError({ reason: "Open", description: cause.message, cause })))
      }
      // the server answered the upgrade with something else than 101: keep its status
      const onResponse = (_request: unknown, response: Http.IncomingMessage) => {
        settle()
        ws.on("error", () => {})
        const status = response.statusCode ?? 0
        const text = response.statusMessage === undefined || response.statusMessage === ""
          ? ""
          : ` ${response.statusMessage}`
        ws.terminate()
        resume(Effect.fail(
          new Errors.HandshakeError({
            reason: "Open",
            status,
            description: `the server answered the upgrade with ${status}${text}`
          })
        ))
      }
      const onOpen = () => {
        settle()
        ws.on("error", () => {})
        resume(Effect.succeed({
          socket: nodeSocket.fromWebSocket(ws, "client"),
          listen: (handlers) => nodeSocket.listen(ws, handlers)
        }))
      }
      ws.once("error", onError)
      ws.once("open", onOpen)
      ws.once("unexpected-response", onResponse)
      return Effect.sync(() => ws.terminate())
    })
})
