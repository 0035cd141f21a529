/**
 * The client transport for Node: `ws`, with real request headers and corked
 * batched writes.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
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
      const onError = (cause: Error) => {
        ws.off("open", onOpen)
        resume(Effect.fail(new Errors.HandshakeError({ reason: "Open", description: cause.message, cause })))
      }
      const onOpen = () => {
        ws.off("error", onError)
        ws.on("error", () => {})
        resume(Effect.succeed({
          socket: nodeSocket.fromWebSocket(ws, "client"),
          listen: (handlers) => nodeSocket.listen(ws, handlers)
        }))
      }
      ws.once("error", onError)
      ws.once("open", onOpen)
      return Effect.sync(() => ws.terminate())
    })
})
