/**
 * The client frame by frame against a scripted fake server that plays the Go
 * server's side of the captured conversations of PROTOCOL.md 1.7 (b)-(j).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Net from "node:net"
import { WebSocketServer } from "ws"
import * as Client from "../src/Client.js"
import * as Errors from "../src/Errors.js"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as NodeClient from "../src/NodeClient.js"
import * as Reply from "../src/Reply.js"
import { Refused } from "./fixtures.js"

interface Peer {
  /** the upgrade request's headers */
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  readonly send: (frame: string | Uint8Array) => Effect.Effect<void>
  readonly close: Effect.Effect<void>
  readonly next: Effect.Effect<string | Uint8Array>
  readonly nextText: Effect.Effect<string>
}

/** A WebSocket server that hands each connection to the test as a scripted peer. */
const fakeServer: Effect.Effect<{ readonly url: string; readonly peers: Queue.Queue<Peer> }, never, Scope.Scope> =
  Effect.gen(function*() {
    const peers = yield* Queue.unbounded<Peer>()
    const wss = yield* Effect.acquireRelease(
      Effect.async<WebSocketServer>((resume) => {
        const wss: WebSocketServer = new WebSocketServer(
          { port: 0, host: "127.0.0.1" },
          () => resume(Effect.succeed(wss))
        )
      }),
      (wss) =>
        Effect.async<void>((resume) => {
          for (const client of wss.clients) client.terminate()
          wss.close(() => resume(Effect.void))
        })
    )
    wss.on("connection", (ws, request) => {
      const frames = Effect.runSync(Queue.unbounded<string | Uint8Array>())
      ws.on("message", (data, isBinary) => {
        frames.unsafeOffer(isBinary ? new Uint8Array(data as Buffer) : (data as Buffer).toString("utf8"))
      })
      const next = Queue.take(frames).pipe(
        Effect.timeoutFail({ duration: Duration.seconds(5), onTimeout: () => new Error("no frame within 5 s") }),
        Effect.orDie
      )
      peers.unsafeOffer({
        headers: request.headers,
        send: (frame) => Effect.sync(() => ws.send(frame, { binary: typeof frame !== "string" })),
        close: Effect.sync(() => ws.close()),
        next,
        nextText: Effect.flatMap(next, (f) => typeof f === "string" ? Effect.succeed(f) : Effect.die("binary"))
      })
    })
    const port = (wss.address() as Net.AddressInfo).port
    return { url: `ws://127.0.0.1:${port}/echo`, peers }
  })

const tokenOf = (frame: string) => frame.slice(0, frame.indexOf(";"))

/** Dials the fake server and plays the handshake `M` -> `A<id>`. */
const dialFake = <E>(
  options: Client.DialOptions<E, never>
): Effect.Effect<{ readonly conn: Client.ClientConn; readonly peer: Peer }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { peers, url } = yield* fakeServer
    const fiber = yield* Effect.fork(Effect.provide(Client.dial(url, options), NodeClient.layer))
    const peer = yield* Queue.take(peers)
    assert.strictEqual(yield* peer.nextText, "M")
    yield* peer.send("Aconn-1")
    const conn = yield* fiber.await.pipe(Effect.flatten, Effect.orDie)
    return { conn, peer }
  })

/** Connects `default` the way a Go server answers: the empty reply, then the welcome emit. */
const connectDefault = (conn: Client.ClientConn, peer: Peer) =>
  Effect.gen(function*() {
    const connecting = yield* Effect.fork(conn.connect("default"))
    const request = yield* peer.nextText
    const token = tokenOf(request)
    assert.strictEqual(request, `${token};default;;_OnNamespaceConnect;0;0;`)
    assert.strictEqual(token.charAt(0), "$")
    yield* peer.send(`${token};;;;;;`)
    return yield* connecting.await.pipe(Effect.flatten)
  })

const events = (queue: Queue.Queue<string>) =>
  Events.client({
    default: {
      _OnAnyEvent: (_ns, msg) =>
        Message.isSystemEvent(msg.event)
          ? Effect.void
          : Effect.asVoid(Queue.offer(queue, `${msg.room}|${msg.event}|${msg.error ?? Message.bodyText(msg)}`)),
      srvask: () => Effect.succeed(Reply.text("js-answer")),
      srvaskerr: () => Effect.fail(new Refused({ message: "js says no" }))
    },
    "semi;ns": {},
    second: {},
    "": { _OnNativeMessage: (_ns, msg) => Effect.asVoid(Queue.offer(queue, `native|${Message.bodyText(msg)}`)) }
  })

describe("Client frames against a scripted Go server", () => {
  it.scopedLive("(a) the handshake: M, then A<id>; H<reason> is HandshakeRejected", () =>
    Effect.gen(function*() {
      const { conn } = yield* dialFake({})
      assert.strictEqual(conn.id, "conn-1")
      const { peers, url } = yield* fakeServer
      const refused = yield* Effect.fork(Effect.provide(Client.dial(url), NodeClient.layer))
      const peer = yield* Queue.take(peers)
      assert.strictEqual(yield* peer.nextText, "M")
      yield* peer.send("Hnot allowed; go away")
      const error = yield* Effect.flip(refused.await.pipe(Effect.flatten))
      assert.deepStrictEqual([error._tag, error.message], [
        "HandshakeRejected",
        "handshake rejected: not allowed; go away"
      ])
    }))

  it.scopedLive("(a) a first frame other than A or H is a protocol error (neffos.js takes it as the ack)", () =>
    Effect.gen(function*() {
      const { peers, url } = yield* fakeServer
      const dialing = yield* Effect.fork(Effect.provide(Client.dial(url), NodeClient.layer))
      const peer = yield* Queue.take(peers)
      yield* peer.nextText
      yield* peer.send(";default;;chat;0;0;too early")
      const error = yield* Effect.flip(dialing.await.pipe(Effect.flatten))
      assert.deepStrictEqual([error._tag, error._tag === "HandshakeError" && error.reason], [
        "HandshakeError",
        "Protocol"
      ])
    }))

  it.scopedLive("(a) a first dial whose handshake fails does not go on reconnecting in the background", () =>
    Effect.gen(function*() {
      const { peers, url } = yield* fakeServer
      const nextPeer = Queue.take(peers).pipe(
        Effect.timeoutFail({ duration: Duration.seconds(5), onTimeout: () => new Error("no connection within 5 s") }),
        Effect.orDie
      )
      const failing = yield* Effect.fork(
        Effect.provide(
          Client.dial(url, { reconnect: Schedule.spaced("10 millis"), reconnectProbe: "direct" }),
          NodeClient.layer
        )
      )
      const peer = yield* nextPeer
      assert.strictEqual(yield* peer.nextText, "M")
      yield* peer.close
      const error = yield* Effect.flip(failing.await.pipe(Effect.flatten))
      assert.deepStrictEqual([error._tag, error._tag === "HandshakeError" && error.reason], [
        "HandshakeError",
        "Closed"
      ])
      // the next connection is a new dial's, not a reconnect of the failed one
      yield* Effect.fork(Effect.provide(Client.dial(url), NodeClient.layer))
      assert.strictEqual((yield* nextPeer).headers["x-websocket-reconnect"], undefined)
    }))

  it.scopedLive("(a) no answer to M is a HandshakeError after the handshake timeout", () =>
    Effect.gen(function*() {
      const { url } = yield* fakeServer
      const error = yield* Effect.flip(
        Effect.provide(Client.dial(url, { handshakeTimeout: "50 millis" }), NodeClient.layer)
      )
      assert.deepStrictEqual([error._tag, error._tag === "HandshakeError" && error.reason], [
        "HandshakeError",
        "Timeout"
      ])
    }))

  it.scopedLive("(b) client-initiated connect, and the server's refusal", () =>
    Effect.gen(function*() {
      const received = yield* Queue.unbounded<string>()
      const { conn, peer } = yield* dialFake({ events: events(received) })
      yield* connectDefault(conn, peer)
      yield* peer.send(";default;;chat;0;0;welcome")
      assert.strictEqual(yield* Queue.take(received), "|chat|welcome")
      const refused = yield* Effect.fork(conn.connect("second"))
      const request = yield* peer.nextText
      yield* peer.send(`${tokenOf(request)};second;;_OnNamespaceConnect;1;0;bad namespace`)
      const error = yield* Effect.flip(refused.await.pipe(Effect.flatten))
      assert.deepStrictEqual(error, new Errors.BadNamespace({ namespace: "second", reason: "RefusedByPeer" }))
      assert.strictEqual(error.message, `bad namespace "second": refused by the peer`)
    }))

  it.scopedLive("(c) server-initiated connect is answered with the empty reply", () =>
    Effect.gen(function*() {
      const received = yield* Queue.unbounded<string>()
      const { conn, peer } = yield* dialFake({ events: events(received) })
      yield* peer.send("1795608483082572335;default;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* peer.nextText, "1795608483082572335;;;;;;")
      yield* peer.send(";default;;hello;0;0;forced")
      assert.strictEqual(yield* Queue.take(received), "|hello|forced")
      assert.strictEqual((yield* conn.waitServerConnect("default")).namespace, "default")
      // a namespace the client does not declare is refused
      yield* peer.send("17;nothere;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* peer.nextText, "17;nothere;;_OnNamespaceConnect;1;0;bad namespace")
    }))

  it.scopedLive("(d) disconnect: client-initiated, server-initiated, unknown namespace", () =>
    Effect.gen(function*() {
      const { conn, peer } = yield* dialFake({ events: events(yield* Queue.unbounded<string>()) })
      const ns = yield* connectDefault(conn, peer)
      const disconnecting = yield* Effect.fork(ns.disconnect())
      const request = yield* peer.nextText
      assert.strictEqual(request, `${tokenOf(request)};default;;_OnNamespaceDisconnect;0;0;`)
      yield* peer.send(`${tokenOf(request)};;;;;;`)
      yield* disconnecting.await.pipe(Effect.flatten)
      yield* peer.send("1795608349914938270;second;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* peer.nextText, "1795608349914938270;;;;;;")
      yield* peer.send("1795608349914938277;second;;_OnNamespaceDisconnect;0;0;")
      assert.strictEqual(yield* peer.nextText, "1795608349914938277;;;;;;")
      yield* peer.send("1795608349914938278;nowhere;;_OnNamespaceDisconnect;0;0;")
      assert.strictEqual(yield* peer.nextText, "1795608349914938278;;;;;;")
      assert.deepStrictEqual(yield* conn.namespaces, [])
    }))

  it.scopedLive("(e) rooms: join, refused join, leave, server-initiated join and leave", () =>
    Effect.gen(function*() {
      const received = yield* Queue.unbounded<string>()
      const { conn, peer } = yield* dialFake({ events: events(received) })
      const ns = yield* connectDefault(conn, peer)
      const joining = yield* Effect.fork(ns.joinRoom("room1"))
      const join = yield* peer.nextText
      assert.strictEqual(join, `${tokenOf(join)};default;room1;_OnRoomJoin;0;0;`)
      yield* peer.send(`${tokenOf(join)};;;;;;`)
      const room = yield* joining.await.pipe(Effect.flatten)
      const forbidden = yield* Effect.fork(ns.joinRoom("forbidden"))
      const refused = yield* peer.nextText
      yield* peer.send(`${tokenOf(refused)};default;forbidden;_OnRoomJoin;1;0;room is forbidden`)
      assert.strictEqual((yield* Effect.flip(forbidden.await.pipe(Effect.flatten))).message, "room is forbidden")
      const leaving = yield* Effect.fork(room.leave())
      const leave = yield* peer.nextText
      assert.strictEqual(leave, `${tokenOf(leave)};default;room1;_OnRoomLeave;0;0;`)
      yield* peer.send(`${tokenOf(leave)};;;;;;`)
      yield* leaving.await.pipe(Effect.flatten)
      yield* peer.send("1795608349912666518;default;srvroom;_OnRoomJoin;0;0;")
      assert.strictEqual(yield* peer.nextText, "1795608349912666518;;;;;;")
      yield* peer.send(";default;srvroom;roomev;0;0;from server in room")
      assert.strictEqual(yield* Queue.take(received), "srvroom|roomev|from server in room")
      yield* peer.send("1795608349913370671;default;srvroom;_OnRoomLeave;0;0;")
      assert.strictEqual(yield* peer.nextText, "1795608349913370671;;;;;;")
      assert.deepStrictEqual(yield* ns.rooms, [])
    }))

  it.scopedLive("(e) leaveAll sends one _OnRoomLeave request per room (not neffos.js's _OnRoomLeft)", () =>
    Effect.gen(function*() {
      const { conn, peer } = yield* dialFake({ events: events(yield* Queue.unbounded<string>()) })
      const ns = yield* connectDefault(conn, peer)
      for (const name of ["r1", "r2"]) {
        const joining = yield* Effect.fork(ns.joinRoom(name))
        const join = yield* peer.nextText
        yield* peer.send(`${tokenOf(join)};;;;;;`)
        yield* joining.await.pipe(Effect.flatten)
      }
      const leaving = yield* Effect.fork(ns.leaveAll())
      for (const name of ["r1", "r2"]) {
        const leave = yield* peer.nextText
        assert.strictEqual(leave, `${tokenOf(leave)};default;${name};_OnRoomLeave;0;0;`)
        yield* peer.send(`${tokenOf(leave)};;;;;;`)
      }
      yield* leaving.await.pipe(Effect.flatten)
    }))

  it.scopedLive("(f) emit, and an error message delivered to the same event", () =>
    Effect.gen(function*() {
      const received = yield* Queue.unbounded<string>()
      const { conn, peer } = yield* dialFake({ events: events(received) })
      const ns = yield* connectDefault(conn, peer)
      yield* ns.emit("chat", "hello;world")
      assert.strictEqual(yield* peer.nextText, ";default;;chat;0;0;hello;world")
      yield* peer.send(";default;;emitfail;1;0;emit failed")
      assert.strictEqual(yield* Queue.take(received), "|emitfail|emit failed")
    }))

  it.scopedLive("(g) client ask answered by a reply and by an error; server asks answered", () =>
    Effect.gen(function*() {
      const { conn, peer } = yield* dialFake({ events: events(yield* Queue.unbounded<string>()) })
      const ns = yield* connectDefault(conn, peer)
      const asking = yield* Effect.fork(ns.ask("echo", "q1"))
      const ask = yield* peer.nextText
      assert.strictEqual(ask, `${tokenOf(ask)};default;;echo;0;0;q1`)
      yield* peer.send(`${tokenOf(ask)};default;;echo;0;0;echo:q1`)
      assert.strictEqual(Message.bodyText(yield* asking.await.pipe(Effect.flatten)), "echo:q1")
      const failing = yield* Effect.fork(ns.ask("fail", "q2"))
      const ask2 = yield* peer.nextText
      yield* peer.send(`${tokenOf(ask2)};default;;fail;1;0;boom;with;semicolons`)
      assert.strictEqual((yield* Effect.flip(failing.await.pipe(Effect.flatten))).message, "boom;with;semicolons")
      yield* peer.send("1795608349911383620;default;;srvask;0;0;question?")
      assert.strictEqual(yield* peer.nextText, "1795608349911383620;default;;srvask;0;0;js-answer")
      yield* peer.send("1795608349912262684;default;;srvaskerr;0;0;question2?")
      assert.strictEqual(yield* peer.nextText, "1795608349912262684;default;;srvaskerr;1;0;js says no")
    }))

  it.scopedLive("(g) a late reply is dropped, not dispatched", () =>
    Effect.gen(function*() {
      const received = yield* Queue.unbounded<string>()
      const { conn, peer } = yield* dialFake({ events: events(received) })
      const ns = yield* connectDefault(conn, peer)
      const asking = yield* Effect.fork(ns.ask("echo", "q", { timeout: "50 millis" }))
      const ask = yield* peer.nextText
      assert.strictEqual((yield* Effect.flip(asking.await.pipe(Effect.flatten)))._tag, "AskTimeout")
      yield* peer.send(`${tokenOf(ask)};default;;echo;0;0;too late`)
      yield* peer.send(";default;;marker;0;0;after")
      assert.strictEqual(yield* Queue.take(received), "|marker|after")
    }))

  it.scopedLive("(h) binary frames keep their bytes", () =>
    Effect.gen(function*() {
      const received = yield* Queue.unbounded<string>()
      const { conn, peer } = yield* dialFake({ events: events(received) })
      const ns = yield* connectDefault(conn, peer)
      yield* ns.emitBinary("bin", new Uint8Array([1, 2, 59, 3]))
      const frame = yield* peer.next
      assert.deepStrictEqual(frame, new Uint8Array([...new TextEncoder().encode(";default;;bin;0;0;"), 1, 2, 59, 3]))
    }))

  it.scopedLive("(i) escaped namespace and event names", () =>
    Effect.gen(function*() {
      const { conn, peer } = yield* dialFake({ events: events(yield* Queue.unbounded<string>()) })
      const connecting = yield* Effect.fork(conn.connect("semi;ns"))
      const request = yield* peer.nextText
      assert.strictEqual(request, `${tokenOf(request)};semi@%!semicolon@%!ns;;_OnNamespaceConnect;0;0;`)
      yield* peer.send(`${tokenOf(request)};;;;;;`)
      const ns = yield* connecting.await.pipe(Effect.flatten)
      const asking = yield* Effect.fork(ns.ask("ev;1", "body;x"))
      const ask = yield* peer.nextText
      assert.strictEqual(ask, `${tokenOf(ask)};semi@%!semicolon@%!ns;;ev@%!semicolon@%!1;0;0;body;x`)
      yield* peer.send(`${tokenOf(ask)};semi@%!semicolon@%!ns;;ev@%!semicolon@%!1;0;0;ok;`)
      assert.strictEqual(Message.bodyText(yield* asking.await.pipe(Effect.flatten)), "ok;")
    }))

  it.scopedLive("(j) headerless frames reach _OnNativeMessage of namespace \"\" once connected", () =>
    Effect.gen(function*() {
      const received = yield* Queue.unbounded<string>()
      const { peer } = yield* dialFake({ events: events(received) })
      yield* peer.send("1;;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* peer.nextText, "1;;;;;;")
      // mixed mode, as Go: only a frame that does not parse as a message is native
      yield* peer.send("echo:plain;text;with;semis")
      assert.strictEqual(yield* Queue.take(received), "native|echo:plain;text;with;semis")
    }))
})
