/**
 * The dashboard as an @effect/platform `HttpApp`: the page, `state` (JSON),
 * `events` (server-sent events) and `metrics` (Prometheus text), each found by the
 * last segment of the request's path, so the app works mounted anywhere
 * (`HttpRouter.mountApp("/admin", …)` or a `/admin/*` route).
 *
 * @internal
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import type * as Admin from "../Admin.js"
import { AdminTag } from "./admin.js"
import { page } from "./adminPage.js"
import { flushAll } from "./observe.js"
import * as prometheus from "./prometheus.js"

const encoder = new TextEncoder()

const noStore = { "cache-control": "no-store" }

const event = (e: Admin.Event): Uint8Array =>
  encoder.encode(
    e._tag === "State"
      ? `event: state\ndata: ${JSON.stringify(e.state)}\n\n`
      : `event: update\ndata: ${JSON.stringify(e.update)}\n\n`
  )

/** @internal */
export const metrics: Effect.Effect<HttpServerResponse.HttpServerResponse> = Effect.sync(() => {
  flushAll()
  return HttpServerResponse.text(prometheus.render(Metric.unsafeSnapshot()), {
    contentType: prometheus.contentType,
    headers: noStore
  })
})

const lastSegment = (url: string): string => {
  const query = url.indexOf("?")
  const path = query === -1 ? url : url.slice(0, query)
  return path.slice(path.lastIndexOf("/") + 1)
}

/** @internal */
export const dashboard: Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  never,
  Admin.Admin | HttpServerRequest.HttpServerRequest
> = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  if (request.method !== "GET" && request.method !== "HEAD") {
    return HttpServerResponse.empty({ status: 405, headers: { allow: "GET, HEAD" } })
  }
  const admin = yield* AdminTag
  switch (lastSegment(request.url)) {
    case "state":
      return yield* Effect.map(admin.state, (state) => HttpServerResponse.unsafeJson(state, { headers: noStore }))
    case "events":
      return HttpServerResponse.stream(Stream.map(admin.events, event), {
        contentType: "text/event-stream",
        headers: { ...noStore, "x-accel-buffering": "no" }
      })
    case "metrics":
      return yield* metrics
    default:
      return HttpServerResponse.text(page, {
        contentType: "text/html; charset=utf-8",
        headers: {
          ...noStore,
          "x-content-type-options": "nosniff",
          // everything is inline; nothing may be fetched from anywhere but here
          "content-security-policy":
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:"
        }
      })
  }
})
