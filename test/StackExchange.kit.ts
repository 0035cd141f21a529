/**
 * What the cross-instance tests share: server instances on real sockets, raw
 * protocol clients, and brokers the tests own.
 */
import type * as Conn from "effect-neffos/Conn"
import * as Events from "effect-neffos/Events"
import * as Message from "effect-neffos/Message"
import * as NodeServer from "effect-neffos/NodeServer"
import * as Reply from "effect-neffos/Reply"
import * as Server from "effect-neffos/Server"
import * as StackExchange from "effect-neffos/StackExchange"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import WebSocket from "ws"

/** Names that break naive channel and subject naming. */
export const oddNamespace = "a;b.c*d e?[x]>ü✓"
export const oddRoom = "r;1.2*3 ?[]>ß"

const handlers = {
  echo: (_ns: Conn.NSConn, message: Message.Message) => Effect.succeed(Reply.make(message.body)),
  chat: (ns: Conn.NSConn, message: Message.Message) =>
    ns.broadcastOthers({ room: message.room, event: "chat", body: message.body })
}

export const events = Events.namespaces({
  default: handlers,
  [oddNamespace]: handlers,
  "": handlers,
  // tells the others when a connection leaves, also when its server shuts down
  presence: {
    _OnNamespaceDisconnect: (ns) => ns.broadcastOthers({ event: "left", body: ns.conn.id })
  }
})

export interface Instance {
  readonly name: string
  readonly server: Server.Server
  readonly url: string
  readonly exchange: StackExchange.StackExchange
  /** lifecycle events since the instance started */
  readonly lifecycle: Queue.Dequeue<Server.ServerEvent>
}

/** A server instance with its own exchange, on 127.0.0.1 port 0; client ids come from `?id=`. */
export const instance = (
  name: string,
  exchange: Layer.Layer<StackExchange.StackExchange, unknown>,
  options?: { readonly outbox?: Server.OutboxOptions | undefined }
): Effect.Effect<Instance, never, Scope.Scope> =>
  Effect.gen(function*() {
    const serverLayer = Server.layer({
      events,
      askTimeout: "2 seconds",
      // the tests count every lifecycle event of thousands of connections
      lifecycleCapacity: 16_384,
      outbox: options?.outbox,
      idGenerator: (request) => new URL(request.url, "http://x").searchParams.get("id") ?? crypto.randomUUID()
    })
    const context = yield* Layer.build(
      NodeServer.layer({ port: 0 }).pipe(Layer.provideMerge(serverLayer), Layer.provideMerge(exchange))
    ).pipe(Effect.orDie)
    const server = Context.get(context, Server.Server)
    return {
      name,
      server,
      url: Context.get(context, NodeServer.NodeServer).url,
      exchange: Context.get(context, StackExchange.StackExchange),
      lifecycle: yield* server.subscribe
    }
  })

/** Waits for a lifecycle event of this tag (bounded). */
export const awaitEvent = <T extends Server.ServerEvent["_tag"]>(
  instance: Instance,
  tag: T,
  timeout: Duration.DurationInput = "10 seconds"
): Effect.Effect<Extract<Server.ServerEvent, { _tag: T }>> =>
  Queue.take(instance.lifecycle).pipe(
    Effect.repeat({ until: (event) => event._tag === tag }),
    Effect.map((event) => event as Extract<Server.ServerEvent, { _tag: T }>),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`${instance.name}: no ${tag} event`) }),
    Effect.orDie
  )

// -----------------------------------------------------------------------------
// a raw protocol client
// -----------------------------------------------------------------------------

export interface Client {
  readonly id: string
  /** every event frame received (replies to this client's requests excluded), in order */
  readonly received: Array<Message.Message>
  readonly connect: (namespace: string) => Effect.Effect<void>
  readonly join: (namespace: string, room: string) => Effect.Effect<void>
  readonly leave: (namespace: string, room: string) => Effect.Effect<void>
  readonly disconnect: (namespace: string) => Effect.Effect<void>
  readonly emit: (message: Message.MessageInit) => Effect.Effect<void>
  /** the next received event, waiting for it (bounded) */
  readonly next: Effect.Effect<Message.Message>
  /** waits until `count` events have been received (bounded) */
  readonly awaitCount: (count: number, timeout?: Duration.DurationInput) => Effect.Effect<void>
  readonly close: Effect.Effect<void>
}

let tokens = 0

/**
 * Connects with the neffos handshake (`M`, then `A<id>`). Server asks are
 * answered by event: `ping` with `pong:<body>`, `refuse` with the error
 * `refused`, `bytes` with the same binary body; `silent` is never answered.
 */
export const client = (url: string, id?: string): Effect.Effect<Client, never, Scope.Scope> =>
  Effect.gen(function*() {
    const inbox = yield* Queue.unbounded<Message.Message>()
    const received: Array<Message.Message> = []
    const waiting = new Map<string, Deferred.Deferred<Message.Message>>()
    const handshake = yield* Deferred.make<string>()
    const closed = yield* Deferred.make<void>()
    const ws = yield* Effect.acquireRelease(
      Effect.sync(() => new WebSocket(id === undefined ? url : `${url}?id=${encodeURIComponent(id)}`)),
      (ws) =>
        Effect.suspend(() => {
          if (ws.readyState === WebSocket.CLOSED) return Effect.void
          ws.close()
          return Effect.ignore(Effect.timeout(Deferred.await(closed), "2 seconds"))
        })
    )
    const watchers = new Set<{ readonly count: number; readonly reached: Deferred.Deferred<void> }>()
    let handshakeDone = false
    const send = (frame: string | Uint8Array) => ws.send(frame)
    ws.on("open", () => ws.send(Message.ackRequest))
    ws.on("close", () => Deferred.unsafeDone(closed, Effect.void))
    ws.on("error", () => {})
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      const frame = isBinary ? new Uint8Array(data) : data.toString("utf8")
      if (typeof frame === "string" && frame.startsWith("A") && !handshakeDone) {
        handshakeDone = true
        return Deferred.unsafeDone(handshake, Effect.succeed(frame.slice(1)))
      }
      const message = Message.decode(frame)
      if (!Message.isMessage(message)) return
      if (message.wait.startsWith("$")) {
        const pending = waiting.get(message.wait)
        waiting.delete(message.wait)
        if (pending !== undefined) Deferred.unsafeDone(pending, Effect.succeed(message))
        return
      }
      if (message.wait !== "") return answer(message)
      received.push(message)
      inbox.unsafeOffer(message)
      for (const watcher of watchers) {
        if (received.length >= watcher.count) {
          watchers.delete(watcher)
          Deferred.unsafeDone(watcher.reached, Effect.void)
        }
      }
    })
    const answer = (ask: Message.Message) => {
      const base = { namespace: ask.namespace, room: ask.room, event: ask.event, wait: ask.wait }
      if (ask.event === "ping") send(Message.encode(Message.make({ ...base, body: `pong:${Message.bodyText(ask)}` })))
      else if (ask.event === "refuse") send(Message.encode(Message.make({ ...base, error: "refused" })))
      else if (ask.event === "bytes") send(Message.encode(Message.make({ ...base, body: Message.bodyBytes(ask) })))
    }
    const request = (init: Message.MessageInit) =>
      Effect.gen(function*() {
        const wait = `$t${++tokens}`
        const reply = yield* Deferred.make<Message.Message>()
        waiting.set(wait, reply)
        send(Message.encode(Message.make({ ...init, wait })))
        const message = yield* Deferred.await(reply).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`no reply to ${init.event}`) })
        )
        if (message.error !== undefined) return yield* Effect.fail(new Error(message.error))
      }).pipe(Effect.orDie)
    const assignedId = yield* Deferred.await(handshake).pipe(
      Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("no handshake") }),
      Effect.orDie
    )
    const self: Client = {
      id: assignedId,
      received,
      connect: (namespace) => request({ namespace, event: Message.OnNamespaceConnect }),
      disconnect: (namespace) => request({ namespace, event: Message.OnNamespaceDisconnect }),
      join: (namespace, room) => request({ namespace, room, event: Message.OnRoomJoin }),
      leave: (namespace, room) => request({ namespace, room, event: Message.OnRoomLeave }),
      emit: (message) => Effect.sync(() => send(Message.encode(Message.make(message)))),
      next: Queue.take(inbox).pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("no message") }),
        Effect.orDie
      ),
      awaitCount: (count, timeout = "10 seconds") =>
        Effect.suspend(() => {
          if (received.length >= count) return Effect.void
          const reached = Deferred.unsafeMake<void>(FiberId.none)
          watchers.add({ count, reached })
          return Deferred.await(reached)
        }).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => new Error(`received ${received.length} of ${count}`)
          }),
          Effect.orDie
        ),
      close: Effect.suspend(() => {
        ws.close()
        return Deferred.await(closed)
      })
    }
    return self
  })

// -----------------------------------------------------------------------------
// brokers the tests own
// -----------------------------------------------------------------------------

/** A port that was free a moment ago. */
export const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

export interface Broker {
  readonly port: number
  readonly stop: Effect.Effect<void>
  readonly start: Effect.Effect<void>
  /**
   * Stops the process with SIGSTOP and waits until the kernel reports every one of
   * its threads stopped: its connections stay open and it answers nothing until
   * `thaw` (SIGCONT), which also runs when the scope of the freeze closes, before
   * what was acquired earlier in that scope is released.
   */
  readonly freeze: Effect.Effect<void, never, Scope.Scope>
  readonly thaw: Effect.Effect<void>
}

/**
 * A broker process of our own on a spare port, started now, restartable, and
 * killed with the scope (continued first if it is frozen).
 */
export const broker = (
  command: string,
  args: (port: number) => ReadonlyArray<string>,
  ready: RegExp
): Effect.Effect<Broker, never, Scope.Scope> =>
  Effect.gen(function*() {
    const port = yield* freePort
    let child: ChildProcess.ChildProcess | undefined
    let frozen = false
    const signal = (name: NodeJS.Signals) => {
      if (child?.pid !== undefined && child.exitCode === null) process.kill(child.pid, name)
    }
    const thaw = Effect.sync(() => {
      if (!frozen) return
      frozen = false
      signal("SIGCONT")
    })
    // SIGSTOP takes effect asynchronously: the broker may still run for a moment after `kill` returns
    const stopped = Effect.sync(() => {
      const pid = child?.pid
      if (pid === undefined) return true
      return Fs.readdirSync(`/proc/${pid}/task`).every((task) =>
        Fs.readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8").replace(/^.*\) /s, "").startsWith("T")
      )
    })
    const freeze = Effect.addFinalizer(() => thaw).pipe(
      Effect.zipRight(Effect.sync(() => {
        frozen = true
        signal("SIGSTOP")
      })),
      Effect.zipRight(
        stopped.pipe(
          Effect.repeat({ until: (done) => done, schedule: Schedule.spaced("1 millis") }),
          Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error(`${command} did not stop`) }),
          Effect.orDie
        )
      )
    )
    const stop = Effect.zipRight(
      thaw,
      Effect.suspend(() => {
        const running = child
        child = undefined
        if (running === undefined || running.exitCode !== null) return Effect.void
        return Effect.async<void>((resume) => {
          running.once("exit", () => resume(Effect.void))
          running.kill("SIGTERM")
        })
      })
    )
    // the broker is ready when its log says so
    const start = Effect.async<void, Error>((resume) => {
      const spawned = ChildProcess.spawn(command, [...args(port)], { stdio: ["ignore", "pipe", "pipe"] })
      child = spawned
      let log = ""
      let started = false
      const onData = (chunk: Buffer) => {
        if (started) return
        log += chunk.toString("utf8")
        if (ready.test(log)) {
          started = true
          resume(Effect.void)
        }
      }
      spawned.stdout.on("data", onData)
      spawned.stderr.on("data", onData)
      spawned.once("exit", (code) => {
        if (!started) resume(Effect.fail(new Error(`${command} exited with ${code}: ${log}`)))
      })
    }).pipe(
      Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error(`${command} did not start`) }),
      Effect.orDie
    )
    yield* Effect.addFinalizer(() => stop)
    yield* start
    return { port, stop, start, freeze, thaw }
  })
