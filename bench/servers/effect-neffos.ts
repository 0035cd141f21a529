/**
 * effect-neffos through its public API: namespace `default` with an `echo` event that replies with
 * the request's body, served by `NodeServer`. The first argument picks the broadcast policy:
 * `default` (bounded sliding outboxes), `strict` (lossless, waits for room) or `history` (the
 * default policy with the fan-out room recoverable, its last 1,000 messages kept in memory). The
 * second, the observability: `metrics` (the default: metrics on, no tracer), `bare` (`metrics:
 * false`, no tracer) or `noop-tracer` (metrics on, and a tracer installed whose spans do nothing, so
 * every span is made and ended but goes nowhere). `flush-<n>ms` as the first argument is the default
 * policy with a write coalescing window of n milliseconds (`outbox.flushInterval`).
 */
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

const served = NodeServer.layer({ port: 0, host: "127.0.0.1" }).pipe(
  Layer.provideMerge(Server.layer({ events, strict, history, outbox, metrics: variant !== "bare" }))
)
const live = variant === "noop-tracer" ? served.pipe(Layer.provide(Layer.setTracer(noopTracer))) : served

host(async () => {
  const runtime = ManagedRuntime.make(live)
  const [server, node] = await runtime.runPromise(Effect.all([Server.Server, NodeServer.NodeServer]))
  return {
    port: node.port,
    path: node.path,
    // what a caller outside an Effect fiber does; a strict broadcast may wait for room
    broadcast: (room, body) => Effect.runPromise(server.broadcast({ namespace, room, event: broadcastEvent, body })),
    connections: () => Effect.runSync(server.connectionCount)
  }
})
