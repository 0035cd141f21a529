/**
 * effect-neffos through its public API: namespace `default` with an `echo` event that replies with
 * the request's body, served by `NodeServer`. The first argument picks the broadcast policy:
 * `default` (bounded sliding outboxes), `strict` (lossless, waits for room) or `history` (the
 * default policy with the fan-out room recoverable, its last 1,000 messages kept in memory). The
 * second, the observability: `metrics` (the default: metrics on, no tracer), `bare` (`metrics:
 * false`, no tracer) or `noop-tracer` (metrics on, and a tracer installed whose spans do nothing, so
 * every span is made and ended but goes nowhere). `flush-<n>ms` as the first argument is the default
 * policy with a write coalescing window of n milliseconds (`outbox.flushInterval`). The third, where
 * the endpoint is: `standalone` (the default, `NodeServer.layer`) or `router` (`NodeServer.endpoint`
 * mounted with `HttpRouter.all` on a router served by `NodeServer.layerHttpServer`, as an application
 * that authenticates the upgrade does). `--dist=<directory>` anywhere runs another build.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import type * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
// the compiled package, as users run it (bench/index.ts builds it first); typed by the sources.
// `--dist=<directory>` runs another build of it instead (`npm run bench -- --baseline=<checkout>`).
const dist = process.argv.find((arg) => arg.startsWith("--dist="))?.slice("--dist=".length)
const distUrl = (file: string) => dist === undefined ? `../../dist/${file}` : pathToFileURL(path.join(dist, file)).href
const { Events, Reply, Server } = (await import(distUrl("index.js"))) as typeof import("../../src/index.js")
const NodeServer = (await import(distUrl("NodeServer.js"))) as typeof import("../../src/NodeServer.js")
import { host } from "../lib/host.js"
import { broadcastEvent, echoEvent, namespace, room } from "../lib/wire.js"

const strict = process.argv[2] === "strict"
const flushWindow = /^flush-(\d+)ms$/.exec(process.argv[2] ?? "")
const outbox = flushWindow === null ? undefined : { flushInterval: `${Number(flushWindow[1])} millis` as const }
const variant = process.argv[3] ?? "metrics"
const routed = process.argv[4] === "router"
const endpointPath = "/echo"

/**
 * A tracer whose spans record nothing: what making and ending spans costs the server, apart from
 * exporting them. Its methods live on the prototype, as a real tracer's would (a closure per span
 * would measure tsx's function naming, not the server).
 */
class NoopSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly spanId = "0000000000000001"
  readonly traceId: string
  readonly sampled = false
  readonly attributes = new Map<string, unknown>()
  readonly status: Tracer.SpanStatus
  constructor(
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Context.Context<never>,
    readonly links: ReadonlyArray<Tracer.SpanLink>,
    startTime: bigint,
    readonly kind: Tracer.SpanKind
  ) {
    this.traceId = parent._tag === "Some" ? parent.value.traceId : "00000000000000000000000000000001"
    this.status = { _tag: "Started", startTime }
  }
  attribute(): void {}
  event(): void {}
  addLinks(): void {}
  end(): void {}
}

const noopTracer = Tracer.make({
  span: (name, parent, context, links, startTime, kind) => new NoopSpan(name, parent, context, links, startTime, kind),
  context: (f) => f()
})
const history = process.argv[2] === "history"
  ? { rooms: [{ namespace, room, size: 1000, ttl: "1 minute" as const }] }
  : undefined

const events = Events.namespaces({
  [namespace]: {
    [echoEvent]: (_ns, message) => Effect.succeed(Reply.make(message.body))
  }
})

const serverLayer = Server.layer({ events, strict, history, outbox, metrics: variant !== "bare" })
const standalone = NodeServer.layer({ port: 0, host: "127.0.0.1", path: endpointPath }).pipe(
  Layer.provideMerge(serverLayer)
)
const mounted = HttpRouter.empty.pipe(
  HttpRouter.all(endpointPath, NodeServer.endpoint),
  HttpServer.serve(),
  Layer.provideMerge(NodeServer.layerHttpServer({ port: 0, host: "127.0.0.1" })),
  Layer.provideMerge(serverLayer)
)
const withTracer = <A, E>(layer: Layer.Layer<A, E>): Layer.Layer<A, E> =>
  variant === "noop-tracer" ? layer.pipe(Layer.provide(Layer.setTracer(noopTracer))) : layer

/** Starts the server and reads the port the endpoint listens on, whichever way it is served. */
const start = () => {
  if (routed) {
    const runtime = ManagedRuntime.make(withTracer(mounted))
    return runtime.runPromise(
      Effect.all([
        Server.Server,
        Effect.map(HttpServer.HttpServer, (http) => (http.address as HttpServer.TcpAddress).port)
      ])
    )
  }
  const runtime = ManagedRuntime.make(withTracer(standalone))
  return runtime.runPromise(Effect.all([Server.Server, Effect.map(NodeServer.NodeServer, (node) => node.port)]))
}

host(async () => {
  const [server, port] = await start()
  return {
    port,
    path: endpointPath,
    // what a caller outside an Effect fiber does; a strict broadcast may wait for room
    broadcast: (room, body) => Effect.runPromise(server.broadcast({ namespace, room, event: broadcastEvent, body })),
    connections: () => Effect.runSync(server.connectionCount)
  }
})
