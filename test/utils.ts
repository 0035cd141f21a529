import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as neffos from "neffos.js"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import WebSocket from "ws"
import * as NodeServer from "../src/NodeServer.js"
import * as Server from "../src/Server.js"

/** A server on 127.0.0.1 (on a free port, unless one is given), for the lifetime of the scope. */
export const startServer = <E, R>(
  options: Server.Options<E, R>,
  port = 0
): Effect.Effect<
  { readonly server: Server.Server; readonly url: string },
  never,
  Scope.Scope | Exclude<R, Server.Server>
> =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      NodeServer.layer({ port }).pipe(Layer.provideMerge(Server.layer(options)))
    )
    const server = yield* Effect.provide(Server.Server, context)
    const node = yield* Effect.provide(NodeServer.NodeServer, context)
    return { server, url: node.url }
  })

export interface Closed {
  readonly code: number
  readonly reason: string
}

/** A WebSocket client that records every frame, for frame-exact conversations. */
export interface RawClient {
  readonly ws: WebSocket
  readonly send: (frame: string | Uint8Array) => Effect.Effect<void>
  /** the next frame received (text as string, binary as Uint8Array); fails after 5 s */
  readonly next: Effect.Effect<string | Uint8Array>
  /** the next frame, which must be text */
  readonly nextText: Effect.Effect<string>
  /** whether a frame is waiting right now */
  readonly pending: Effect.Effect<number>
  readonly closed: Effect.Effect<Closed>
}

export const rawClient = (
  url: string,
  options?: { readonly headers?: Record<string, string> }
): Effect.Effect<RawClient, never, Scope.Scope> =>
  Effect.gen(function*() {
    const frames = yield* Queue.unbounded<string | Uint8Array>()
    let closeResolve: ((closed: Closed) => void) | undefined
    const closedPromise = new Promise<Closed>((resolve) => {
      closeResolve = resolve
    })
    const ws = yield* Effect.acquireRelease(
      Effect.async<WebSocket>((resume) => {
        const ws = new WebSocket(url, options?.headers === undefined ? {} : { headers: options.headers })
        ws.on("message", (data, isBinary) => {
          frames.unsafeOffer(isBinary ? new Uint8Array(data as Buffer) : (data as Buffer).toString("utf8"))
        })
        ws.on("close", (code, reason) => closeResolve!({ code, reason: reason.toString() }))
        ws.on("error", () => {})
        ws.once("open", () => resume(Effect.succeed(ws)))
      }),
      (ws) => Effect.sync(() => ws.terminate())
    )
    // a broken behaviour fails in about a second, not at the runner's 30 s timeout
    const next = Queue.take(frames).pipe(
      Effect.timeoutFail({ duration: Duration.seconds(2), onTimeout: () => new Error("no frame within 2 s") }),
      Effect.orDie
    )
    return {
      ws,
      send: (frame) =>
        Effect.async<void>((resume) => {
          ws.send(frame, { binary: typeof frame !== "string" }, () => resume(Effect.void))
        }),
      next,
      nextText: Effect.flatMap(next, (frame) =>
        typeof frame === "string" ? Effect.succeed(frame) : Effect.die(new Error("expected a text frame"))),
      pending: Queue.size(frames),
      closed: Effect.promise(() =>
        closedPromise
      ).pipe(
        Effect.timeoutFail({ duration: Duration.seconds(5), onTimeout: () => new Error("no close within 5 s") }),
        Effect.orDie
      )
    }
  })

/** Opens a raw client and completes the handshake; returns the client and its id. */
export const handshaken = (url: string, options?: { readonly headers?: Record<string, string> }) =>
  Effect.gen(function*() {
    const client = yield* rawClient(url, options)
    yield* client.send("M")
    const ack = yield* client.nextText
    if (!ack.startsWith("A")) return yield* Effect.die(new Error(`expected A<id>, got ${ack}`))
    return { client, id: ack.slice(1) }
  })

/** A neffos.js 0.1.34 client whose incoming messages land in a queue, closed with the scope. */
export const neffosClient = (
  url: string,
  namespaces: ReadonlyArray<string>,
  options?: {
    readonly handlers?: Record<string, Record<string, (ns: any, msg: any) => any>>
    readonly dialOptions?: Record<string, unknown>
  }
) =>
  Effect.gen(function*() {
    const received = yield* Queue.unbounded<{ namespace: string; room: string; event: string; body: any; err: any }>()
    const handlers: Record<string, Record<string, (ns: any, msg: any) => any>> = {}
    for (const ns of namespaces) {
      handlers[ns] = {
        _OnAnyEvent: (_ns: any, msg: any) => {
          // lifecycle events fire locally through _OnAnyEvent too; tests that want them register handlers
          if (neffos.isSystemEvent(msg.Event)) return
          received.unsafeOffer({
            namespace: msg.Namespace,
            room: msg.Room,
            event: msg.Event,
            body: msg.Body,
            err: msg.Err === undefined ? undefined : String(msg.Err.message ?? msg.Err)
          })
        },
        ...options?.handlers?.[ns]
      }
    }
    const conn: any = yield* Effect.acquireRelease(
      Effect.promise(() => neffos.dial(url, handlers as any, options?.dialOptions as any)),
      (conn: any) => Effect.sync(() => conn.close())
    )
    const next = Queue.take(received).pipe(
      Effect.timeoutFail({ duration: Duration.seconds(2), onTimeout: () => new Error("no message within 2 s") }),
      Effect.orDie
    )
    return { conn, received, next }
  })

/**
 * A full garbage collection, when V8 lets us have one: `--expose-gc` turned on at
 * run time gives a fresh context its `gc`. Undefined when that does not work.
 */
export const exposeGc = (): (() => void) | undefined => {
  try {
    v8.setFlagsFromString("--expose-gc")
    const gc = vm.runInNewContext("gc") as unknown
    return typeof gc === "function" ? (gc as () => void) : undefined
  } catch {
    return undefined
  }
}
