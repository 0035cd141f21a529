/**
 * The chat server of examples/chat.ts, observed: its spans printed by a small
 * console tracer, the live dashboard on /admin (behind a token, as yours would be
 * behind your own authentication) and Prometheus metrics on /metrics.
 *
 *   npx tsx examples/observability.ts
 *   # ws://127.0.0.1:8080/echo                      the chat (npx tsx examples/chat-client.ts alice)
 *   # http://127.0.0.1:8080/admin/?token=let-me-in  the dashboard
 *   # http://127.0.0.1:8080/metrics                 Prometheus text
 *
 * QUIET=1 leaves the spans out of the output.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Admin, Server } from "effect-neffos"
import * as NodeServer from "effect-neffos/NodeServer"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { CalendarLive, Notices, options } from "./chat.js"

/** A tracer that prints every span when it ends: name, duration, outcome, ids and attributes. */
export const consoleTracer = (print: (line: string) => void = console.log): Tracer.Tracer => {
  let next = 0
  const id = (length: number) => (++next).toString(16).padStart(length, "0")
  return Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: id(16),
        traceId: Option.match(parent, { onNone: () => id(32), onSome: (p) => p.traceId }),
        parent,
        context,
        links,
        sampled: true,
        kind,
        attributes,
        status: { _tag: "Started", startTime },
        attribute: (key, value) => void attributes.set(key, value),
        event: () => {},
        addLinks: () => {},
        end: (endTime, exit) => {
          ;(span as { status: Tracer.SpanStatus }).status = { _tag: "Ended", startTime, endTime, exit }
          // only the package's own spans (the HTTP server's would drown them)
          if (!name.startsWith("effect-neffos.")) return
          const ms = (Number(endTime - startTime) / 1e6).toFixed(2)
          const parentId = Option.match(parent, { onNone: () => "root", onSome: (p) => `in ${p.spanId.slice(-4)}` })
          const fields = Array.from(attributes, ([k, v]) => `${k.replace(/^neffos\./, "")}=${String(v)}`).join(" ")
          print(
            `[span] ${name} ${ms} ms ${Exit.isSuccess(exit) ? "ok" : "failed"} ` +
              `trace ${span.traceId.slice(-4)} span ${span.spanId.slice(-4)} (${parentId}) ${fields}`
          )
        }
      }
      return span
    },
    context: (f) => f()
  })
}

/** Your own authentication; here, a fixed token in the query string. */
const operatorOnly = <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    // the page sends its query string with its own requests
    new URL(request.url, "http://x").searchParams.get("token") === "let-me-in"
      ? app
      : Effect.succeed(HttpServerResponse.text("forbidden", { status: 403 })))

/** The observed chat on `port` (0 picks a free one); `tracer` receives the spans (none: not traced). */
export const ObservabilityServer = (options_: {
  readonly port: number
  readonly tracer?: Tracer.Tracer | undefined
  readonly admin?: Admin.Options | undefined
}) => {
  const app = HttpRouter.empty.pipe(
    HttpRouter.all("/echo", NodeServer.endpoint),
    HttpRouter.mountApp("/admin", operatorOnly(Admin.dashboard)),
    HttpRouter.get("/metrics", Admin.metrics)
  )
  const live = app.pipe(
    HttpServer.serve(),
    Layer.provideMerge(Notices),
    Layer.provide(Admin.layer(options_.admin)),
    Layer.provideMerge(NodeServer.layerHttpServer({ port: options_.port })),
    Layer.provideMerge(Server.layer(options).pipe(Layer.provide(CalendarLive)))
  )
  return options_.tracer === undefined ? live : live.pipe(Layer.provide(Layer.setTracer(options_.tracer)))
}

const Banner = Layer.effectDiscard(
  Effect.gen(function*() {
    const address = (yield* HttpServer.HttpServer).address
    const base = address._tag === "TcpAddress" ? `127.0.0.1:${address.port}` : "?"
    yield* Effect.log(`chat on ws://${base}/echo`)
    yield* Effect.log(`dashboard on http://${base}/admin/?token=let-me-in, metrics on http://${base}/metrics`)
  })
)

if (import.meta.url === `file://${process.argv[1]}`) {
  const tracer = process.env.QUIET === "1" ? undefined : consoleTracer()
  NodeRuntime.runMain(
    Layer.launch(
      Banner.pipe(Layer.provideMerge(ObservabilityServer({ port: Number(process.env.PORT ?? 8080), tracer })))
    )
  )
}
