/**
 * Serving the `Server` over WebSockets on Node, with `ws`.
 *
 * - `layer({ port, host, path })` listens on its own HTTP server.
 * - `endpoint` is an @effect/platform `HttpApp` to mount as a route of an
 *   `HttpRouter` served by `layerHttpServer`, so the application can authenticate
 *   the HTTP request (and choose the connection id) before the upgrade.
 *
 * Both answer `HEAD` with 302 (neffos.js probes with it before reconnecting) and
 * other methods but `GET` with 405, and enforce the server's `maxMessageSize`
 * before a frame is buffered (close 1009).
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import type * as Net from "node:net"
import { WebSocketServer } from "ws"
import * as Conn from "./Conn.js"
import * as nodeSocket from "./internal/nodeSocket.js"
import * as Server from "./Server.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** default 8080; 0 picks a free port */
  readonly port?: number | undefined
  /** default "127.0.0.1" */
  readonly host?: string | undefined
  /** the WebSocket endpoint; default "/echo" */
  readonly path?: string | undefined
}

/**
 * Options of {@link layer}: where to listen, and optionally an @effect/platform
 * `HttpApp` (an `HttpRouter`, say) that answers every HTTP request but the
 * endpoint's — a page, a health check — on the same port.
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions<E = never, R = never> extends Options {
  readonly app?: HttpApp.Default<E, R> | undefined
}

/**
 * Where a standalone server listens.
 *
 * @since 0.1.0
 * @category models
 */
export interface NodeServer {
  readonly host: string
  readonly port: number
  readonly path: string
  /** `ws://host:port/path` */
  readonly url: string
}

/**
 * @since 0.1.0
 * @category tags
 */
export const NodeServer: Context.Tag<NodeServer, NodeServer> = Context.GenericTag<NodeServer>(
  "effect-neffos/NodeServer"
)

const webSocketServers = new WeakMap<Server.Server, WebSocketServer>()

const webSocketServerFor = (server: Server.Server): WebSocketServer => {
  let wss = webSocketServers.get(server)
  if (wss === undefined) {
    wss = new WebSocketServer({
      noServer: true,
      maxPayload: server.maxMessageSize,
      perMessageDeflate: false,
      clientTracking: false
    })
    webSocketServers.set(server, wss)
  }
  return wss
}

const upgrade = (
  server: Server.Server,
  req: Http.IncomingMessage,
  socket: Net.Socket,
  head: Buffer,
  id?: string
) => {
  if (!server.unsafeIsAccepting()) {
    socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    return
  }
  webSocketServerFor(server).handleUpgrade(req, socket, head, (ws) => {
    nodeSocket.listen(
      ws,
      server.unsafeAccept(
        nodeSocket.fromWebSocket(ws, "server"),
        nodeSocket.requestOf(req),
        id === undefined ? undefined : { id }
      )
    )
  })
}

const writeStatus = (res: Http.ServerResponse, method: string | undefined): void => {
  if (method === "HEAD") {
    res.writeHead(302).end()
  } else if (method !== "GET") {
    res.writeHead(405, { Allow: "GET", "X-Content-Type-Options": "nosniff" }).end("Method Not Allowed")
  } else {
    res.writeHead(426, { Upgrade: "websocket" }).end("Upgrade Required")
  }
}

const pathOf = (url: string | undefined): string => {
  const q = (url ?? "/").indexOf("?")
  return q === -1 ? url ?? "/" : url!.slice(0, q)
}

/**
 * A standalone HTTP server whose `path` is the WebSocket endpoint of `Server`.
 * Releasing the layer shuts the server down gracefully.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E = never, R = never>(
  options?: LayerOptions<E, R>
): Layer.Layer<NodeServer, never, Server.Server | Exclude<R, HttpServerRequest.HttpServerRequest | Scope.Scope>> =>
  Layer.scoped(
    NodeServer,
    Effect.gen(function*() {
      const server = yield* Server.Server
      const path = options?.path ?? "/echo"
      const app = options?.app === undefined ? undefined : yield* NodeHttpServer.makeHandler(options.app)
      const http = Http.createServer((req, res) => {
        if (pathOf(req.url) === path) writeStatus(res, req.method)
        else if (app !== undefined) app(req, res)
        else res.writeHead(404).end()
      })
      http.on("upgrade", (req: Http.IncomingMessage, socket: Net.Socket, head: Buffer) => {
        socket.on("error", () => {})
        if (pathOf(req.url) !== path) {
          socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
          return
        }
        upgrade(server, req, socket, head)
      })
      const address = yield* listen(http, options?.port ?? 8080, options?.host ?? "127.0.0.1", server.shutdown)
      return {
        host: address.address,
        port: address.port,
        path,
        url: `ws://${address.address}:${address.port}${path}`
      }
    })
  )

/**
 * Where to listen, from `Config`: `PORT` (default 8080; 0 picks a free port), `HOST`
 * (default `127.0.0.1`) and `WS_PATH` (default `/echo`).
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  port: Config.integer("PORT").pipe(
    Config.validate({ message: "a TCP port from 0 (any free port) to 65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(8080)
  ),
  host: Config.withDefault(Config.string("HOST"), "127.0.0.1"),
  path: Config.withDefault(Config.string("WS_PATH"), "/echo")
})

/**
 * Like {@link layer}, with the options read from `Config` (by default
 * {@link config}: `PORT`, `HOST`, `WS_PATH`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options> = config
): Layer.Layer<NodeServer, ConfigError.ConfigError, Server.Server> => Layer.unwrapEffect(Effect.map(options, layer))

/**
 * Listens until the scope closes. Then it stops listening at once, runs
 * `beforeClose` (the server's graceful shutdown, which closes the upgraded sockets
 * Node's server does not track) and closes what is left of the HTTP connections.
 */
const listen = (http: Http.Server, port: number, host: string, beforeClose: Effect.Effect<void> = Effect.void) =>
  Effect.acquireRelease(
    Effect.async<Net.AddressInfo>((resume) => {
      http.once("error", (error) => resume(Effect.die(error)))
      http.listen(port, host, () => resume(Effect.succeed(http.address() as Net.AddressInfo)))
    }),
    () =>
      Effect.sync(() => http.close()).pipe(
        Effect.zipRight(beforeClose),
        Effect.zipRight(Effect.sync(() => http.closeAllConnections()))
      )
  )

// -----------------------------------------------------------------------------
// mounting on an @effect/platform HttpRouter
// -----------------------------------------------------------------------------

interface PendingUpgrade {
  readonly socket: Net.Socket
  readonly head: Buffer
  readonly response: Http.ServerResponse
}

const pendingUpgrades = new WeakMap<Http.IncomingMessage, PendingUpgrade>()

/**
 * An @effect/platform `HttpServer` on Node that hands WebSocket upgrade requests to
 * the application's `HttpApp` like any other request, so that `endpoint` can
 * upgrade them after the application's own checks. Use it instead of
 * `NodeHttpServer.layer` when mounting `endpoint`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerHttpServer = (options: {
  readonly port?: number | undefined
  readonly host?: string | undefined
}): Layer.Layer<HttpServer.HttpServer> =>
  Layer.scoped(
    HttpServer.HttpServer,
    Effect.gen(function*() {
      const http = Http.createServer()
      const address = yield* listen(http, options.port ?? 8080, options.host ?? "127.0.0.1")
      return HttpServer.make({
        address: { _tag: "TcpAddress", hostname: address.address, port: address.port },
        serve: (httpApp, middleware) =>
          Effect.gen(function*() {
            const handler = yield* NodeHttpServer.makeHandler(httpApp, middleware!)
            const onUpgrade = (req: Http.IncomingMessage, socket: Net.Socket, head: Buffer) => {
              socket.on("error", () => {})
              // the response of an application that refuses the upgrade goes to the raw socket
              const response = new Http.ServerResponse(req)
              response.assignSocket(socket)
              response.on("finish", () => socket.end())
              pendingUpgrades.set(req, { socket, head, response })
              handler(req, response)
            }
            http.on("request", handler)
            http.on("upgrade", onUpgrade)
            yield* Effect.addFinalizer(() =>
              Effect.sync(() => {
                http.off("request", handler)
                http.off("upgrade", onUpgrade)
              })
            )
          })
      })
    })
  )

/**
 * The headers of the request being handled, as the server will see them once it
 * is upgraded: names in lower case, and the `X-Websocket-Header-<Name>` query
 * parameters that neffos.js sends from browsers (which cannot set WebSocket
 * headers) included. Authenticate with these before reaching {@link endpoint}, so
 * that a browser's token is seen like a Node client's real header.
 *
 * @since 0.1.0
 * @category http
 */
export const requestHeaders: Effect.Effect<
  Readonly<Record<string, string>>,
  never,
  HttpServerRequest.HttpServerRequest
> = Effect.map(
  HttpServerRequest.HttpServerRequest,
  (request) => Conn.withQueryHeaders({ url: request.url, headers: request.headers, remoteAddress: undefined }).headers
)

/**
 * The WebSocket endpoint as an `HttpApp`: mount it with `HttpRouter.all(path, ...)`
 * (so that `HEAD` reaches it) on a router served by {@link layerHttpServer}. Return
 * your own response (401, 403, ...) before reaching it to refuse an upgrade.
 *
 * @since 0.1.0
 * @category http
 */
export const endpoint: Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  never,
  HttpServerRequest.HttpServerRequest | Server.Server
> = Effect.suspend(() => endpointWith())

/**
 * Like {@link endpoint}, with the connection id chosen by the application (for
 * example from the authenticated user) instead of the server's `idGenerator`.
 *
 * @since 0.1.0
 * @category http
 */
export const endpointWith = (options?: { readonly id?: string | undefined }): Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  never,
  HttpServerRequest.HttpServerRequest | Server.Server
> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const server = yield* Server.Server
    const req = NodeHttpServerRequest.toIncomingMessage(request)
    const pending = pendingUpgrades.get(req)
    if (request.method === "HEAD") return HttpServerResponse.empty({ status: 302 })
    if (request.method !== "GET") {
      return HttpServerResponse.text("Method Not Allowed", {
        status: 405,
        headers: { allow: "GET", "x-content-type-options": "nosniff" }
      })
    }
    if (pending === undefined) {
      if (req.headers.upgrade?.toLowerCase() === "websocket") {
        yield* Effect.logError(
          "effect-neffos: NodeServer.endpoint needs NodeServer.layerHttpServer to upgrade (NodeHttpServer.layer does not expose the raw socket)"
        )
        return HttpServerResponse.text("WebSocket upgrade is not available", { status: 500 })
      }
      return HttpServerResponse.text("Upgrade Required", { status: 426, headers: { upgrade: "websocket" } })
    }
    pendingUpgrades.delete(req)
    // the socket now belongs to the WebSocket: whatever the platform writes to this response goes nowhere
    pending.response.detachSocket(pending.socket)
    upgrade(server, req, pending.socket, pending.head, options?.id)
    return HttpServerResponse.empty({ status: 101 })
  })
