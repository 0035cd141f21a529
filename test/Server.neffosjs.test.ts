/**
 * The published neffos.js 0.1.34 as the client: the "must match" conversations of
 * PROTOCOL.md section 4, and neffos's own Go tests re-expressed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as neffos from "neffos.js"
import type * as Conn from "../src/Conn.js"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as Reply from "../src/Reply.js"
import { captureEvents, Refused } from "./fixtures.js"
import { neffosClient, startServer } from "./utils.js"

const promise = (f: () => Promise<any>): Effect.Effect<any> => Effect.promise(f)
const attempt = <A>(f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (e) => (e instanceof Error ? e.message : String(e)) })

describe("Server with neffos.js 0.1.34", () => {
  it.scopedLive("handshake: dial resolves with the server's id", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents, idGenerator: () => "conn-1" })
      const { conn } = yield* neffosClient(url, ["default"])
      assert.strictEqual(conn.ID, "conn-1")
    }))

  it.scopedLive("handshake refused: dial rejects with the reason", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({
        events: captureEvents,
        onConnect: () => Effect.fail(new Refused({ message: "not allowed; go away" }))
      })
      const error = yield* Effect.flip(attempt(() => neffos.dial(url, { default: {} })))
      assert.strictEqual(error, "not allowed; go away")
    }))

  it.scopedLive("connect: ok with the welcome emit, unknown namespace, veto", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents })
      const { conn, next } = yield* neffosClient(url, ["default", "onlyclient", "refuse"])
      yield* promise(() => conn.connect("default"))
      const welcome = yield* next
      assert.deepStrictEqual([welcome.event, welcome.body], ["chat", "welcome"])
      assert.strictEqual(yield* Effect.flip(attempt(() => conn.connect("onlyclient"))), "bad namespace")
      assert.strictEqual(yield* Effect.flip(attempt(() => conn.connect("refuse"))), "refused by server")
    }))

  it.scopedLive("server-initiated connect from onConnect", () =>
    Effect.gen(function*() {
      const connected = yield* Deferred.make<string>()
      const { url } = yield* startServer({
        events: captureEvents,
        onConnect: (conn) => Effect.asVoid(Effect.forkDaemon(conn.connect("default")))
      })
      const { next } = yield* neffosClient(url, ["default"], {
        handlers: {
          default: {
            _OnNamespaceConnected: (_ns: any, msg: any) => {
              Deferred.unsafeDone(connected, Effect.succeed(`${msg.Namespace}:${msg.IsLocal}`))
            }
          }
        }
      })
      assert.strictEqual(yield* Deferred.await(connected), "default:false")
      const hello = yield* next
      assert.deepStrictEqual([hello.event, hello.body], ["hello", "forced"])
    }))

  it.scopedLive("disconnect: ok, vetoed (neffos.js resolves with the Error), server-initiated", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents })
      const disconnected = yield* Deferred.make<string>()
      const { conn } = yield* neffosClient(url, ["default", "semi;ns"], {
        handlers: {
          default: {
            _OnNamespaceDisconnect: (_ns: any, msg: any) => {
              if (!msg.IsLocal) Deferred.unsafeDone(disconnected, Effect.succeed(msg.Namespace))
            }
          }
        }
      })
      const semi: any = yield* promise(() => conn.connect("semi;ns"))
      const veto: any = yield* promise(() => semi.disconnect())
      assert.strictEqual(veto.message, "you cannot leave semi;ns")
      const ns: any = yield* promise(() => conn.connect("default"))
      ns.emit("kickme", "")
      assert.strictEqual(yield* Deferred.await(disconnected), "default")
      assert.isUndefined(conn.namespace("default"))
      const again: any = yield* promise(() => conn.connect("default"))
      assert.notInstanceOf(yield* promise(() => again.disconnect()), Error)
    }))

  it.scopedLive("rooms: join ok, vetoed, already joined; leave ok; room emit comes back", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events: captureEvents })
      const { conn, next } = yield* neffosClient(url, ["default"])
      const ns = yield* promise(() => conn.connect("default"))
      yield* next // welcome
      const room = yield* promise(() => ns.joinRoom("room1"))
      assert.strictEqual(room.name, "room1")
      assert.strictEqual(yield* server.memberCount("default", "room1"), 1)
      assert.strictEqual(yield* Effect.flip(attempt(() => ns.joinRoom("forbidden"))), "room is forbidden")
      assert.strictEqual(yield* promise(() => ns.joinRoom("room1")), room)
      room.emit("chat", "in room")
      const echoed = yield* next
      assert.deepStrictEqual([echoed.room, echoed.event, echoed.body], ["room1", "chat", "in room"])
      assert.isNull(yield* promise(() => room.leave()))
      assert.strictEqual(yield* server.memberCount("default", "room1"), 0)
    }))

  it.scopedLive("rooms: neffos.js leaveAll works against this server", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events: captureEvents })
      const { conn } = yield* neffosClient(url, ["default"])
      const ns = yield* promise(() => conn.connect("default"))
      yield* promise(() => ns.joinRoom("r1"))
      yield* promise(() => ns.joinRoom("r2"))
      const events = yield* server.subscribe
      yield* promise(() => ns.leaveAll())
      const seen = new Set<string>()
      while (seen.size < 2) {
        const event = yield* Queue.take(events)
        if (event._tag === "RoomLeft") seen.add(event.room)
      }
      assert.deepStrictEqual([...seen].sort(), ["r1", "r2"])
      assert.strictEqual(yield* server.memberCount("default", "r1"), 0)
    }))

  it.scopedLive("server-initiated join and leave", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents })
      const joined = yield* Queue.unbounded<string>()
      const { conn, next } = yield* neffosClient(url, ["default"], {
        handlers: {
          default: {
            _OnRoomJoined: (_ns: any, msg: any) => {
              joined.unsafeOffer(`joined:${msg.Room}`)
            },
            _OnRoomLeft: (_ns: any, msg: any) => {
              joined.unsafeOffer(`left:${msg.Room}`)
            }
          }
        }
      })
      const ns = yield* promise(() => conn.connect("default"))
      yield* next // welcome
      ns.emit("joinme", "srvroom")
      assert.strictEqual(yield* Queue.take(joined), "joined:srvroom")
      const roomev = yield* next
      assert.deepStrictEqual([roomev.room, roomev.event, roomev.body], ["srvroom", "roomev", "from server in room"])
      ns.emit("leaveme", "srvroom")
      assert.strictEqual(yield* Queue.take(joined), "left:srvroom")
      assert.isUndefined(ns.room("srvroom"))
    }))

  it.scopedLive("client asks answered by a reply and by an error", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents })
      const { conn } = yield* neffosClient(url, ["default"])
      const ns = yield* promise(() => conn.connect("default"))
      const reply: any = yield* promise(() => ns.ask("echo", "q1"))
      assert.deepStrictEqual([reply.Namespace, reply.Event, reply.Body], ["default", "echo", "echo:q1"])
      assert.strictEqual(yield* Effect.flip(attempt(() => ns.ask("fail", "q2"))), "boom;with;semicolons")
    }))

  it.scopedLive("server asks answered by neffos.reply and by a returned Error", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents })
      const { conn, next } = yield* neffosClient(url, ["default"], {
        handlers: {
          default: {
            srvask: () => neffos.reply("js-answer"),
            srvaskerr: () => new Error("js says no")
          }
        }
      })
      const ns = yield* promise(() => conn.connect("default"))
      yield* next // welcome
      ns.emit("askme", "srvask")
      assert.strictEqual((yield* next).body, "js-answer")
      ns.emit("askme", "srvaskerr")
      assert.strictEqual((yield* next).body, "RemoteError:js says no")
    }))

  it.scopedLive("binary echo keeps the ; inside the body", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents })
      const { conn, next } = yield* neffosClient(url, ["default"])
      const ns = yield* promise(() => conn.connect("default"))
      yield* next // welcome
      ns.emitBinary("bin", new Uint8Array([1, 2, 59, 3]))
      const echoed = yield* next
      assert.strictEqual(echoed.event, "bin")
      assert.deepStrictEqual([...new Uint8Array(echoed.body as ArrayBuffer)], [1, 2, 59, 3])
    }))

  it.scopedLive("escaped namespace and event names", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents })
      const { conn, next } = yield* neffosClient(url, ["semi;ns"])
      const ns = yield* promise(() => conn.connect("semi;ns"))
      const reply: any = yield* promise(() => ns.ask("ev;1", "body;x"))
      assert.strictEqual(reply.Body, "ok;")
      ns.emit("tag", "")
      const tagged = yield* next
      assert.deepStrictEqual([tagged.namespace, tagged.event, tagged.body], ["semi;ns", "tagged;event", "x;y"])
    }))

  it.scopedLive("an error returned for a plain emit reaches the client's handler of that event", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents })
      const { conn, next } = yield* neffosClient(url, ["default"])
      const ns = yield* promise(() => conn.connect("default"))
      yield* next // welcome
      ns.emit("emitfail", "x")
      const failed = yield* next
      assert.deepStrictEqual([failed.event, failed.err], ["emitfail", "emit failed"])
    }))

  it.scopedLive("reconnect: HEAD probe answered, new connection carries X-Websocket-Reconnect", () =>
    Effect.gen(function*() {
      let n = 0
      const { server, url } = yield* startServer({ events: captureEvents, idGenerator: () => `c${++n}` })
      const events = yield* server.subscribe
      // neffos.js hands the reconnected Conn only to handlers: keep it to close it at the end
      const latest = yield* Queue.unbounded<any>()
      const { conn } = yield* neffosClient(url, ["default"], {
        dialOptions: { reconnect: 20 },
        handlers: { default: { _OnNamespaceConnected: (ns: any) => void latest.unsafeOffer(ns.conn) } }
      })
      yield* promise(() => conn.connect("default"))
      yield* Queue.take(latest)
      yield* server.disconnect("c1", { code: 1001, reason: "bye" })
      const reconnected = yield* Queue.take(latest)
      yield* Effect.addFinalizer(() => Effect.sync(() => reconnected.close()))
      assert.notStrictEqual(reconnected, conn)
      assert.strictEqual(reconnected.ID, "c2")
      const tags: Array<string> = []
      let connected: Conn.Conn | undefined
      while (tags.length < 6) {
        const event = yield* Queue.take(events)
        tags.push(event._tag)
        if (event._tag === "Connected" && event.conn.id === "c2") connected = event.conn
      }
      assert.deepStrictEqual(tags, [
        "Connected",
        "NamespaceConnected",
        "NamespaceDisconnected",
        "Disconnected",
        "Connected",
        "NamespaceConnected"
      ])
      assert.strictEqual(connected!.reconnectTries, 1)
      assert.isTrue(connected!.wasReconnected)
      assert.strictEqual(connected!.request.headers["x-websocket-reconnect"], "1")
    }))
})

describe("neffos's Go tests, re-expressed (PROTOCOL.md section 4)", () => {
  it.scopedLive("TestConnect: namespace \"\", missing on the client, missing on the server, server veto", () =>
    Effect.gen(function*() {
      const events = Events.namespaces({
        "": {},
        default: {},
        vetoed: { _OnNamespaceConnect: () => Effect.fail(new Refused({ message: "bad namespace" })) }
      })
      const { url } = yield* startServer({ events })
      const { conn } = yield* neffosClient(url, ["", "default", "notonserver", "vetoed"])
      const empty = yield* promise(() => conn.connect(""))
      assert.strictEqual(empty.namespace, "")
      assert.strictEqual(yield* Effect.flip(attempt(() => conn.connect("notonclient"))), "bad namespace")
      assert.strictEqual(yield* Effect.flip(attempt(() => conn.connect("notonserver"))), "bad namespace")
      assert.strictEqual(yield* Effect.flip(attempt(() => conn.connect("vetoed"))), "bad namespace")
    }))

  it.scopedLive("TestAsk: sequential asks keep namespace and event, body replaced", () =>
    Effect.gen(function*() {
      const events = Events.namespaces({ default: { ask: () => Effect.succeed(Reply.text("pong")) } })
      const { url } = yield* startServer({ events })
      const { conn } = yield* neffosClient(url, ["default"])
      const ns = yield* promise(() => conn.connect("default"))
      for (let i = 0; i < 6; i++) {
        const reply: any = yield* promise(() => ns.ask("ask", `ping${i}`))
        assert.deepStrictEqual([reply.Namespace, reply.Event, reply.Body], ["default", "ask", "pong"])
      }
    }))

  it.scopedLive("TestOnAnyEvent: catches unregistered events, its Reply answers emits and asks", () =>
    Effect.gen(function*() {
      const events = Events.namespaces({
        default: {
          _OnAnyEvent: (_ns, msg) =>
            Message.isSystemEvent(msg.event)
              ? Effect.void
              : Effect.succeed(Reply.text(`any:${msg.event}:${Message.bodyText(msg)}`))
        }
      })
      const { url } = yield* startServer({ events })
      const { conn, next } = yield* neffosClient(url, ["default"])
      const ns = yield* promise(() => conn.connect("default"))
      ns.emit("whatever", "x")
      const back = yield* next
      assert.deepStrictEqual([back.event, back.body], ["whatever", "any:whatever:x"])
      const reply: any = yield* promise(() => ns.ask("other", "y"))
      assert.strictEqual(reply.Body, "any:other:y")
    }))

  it.scopedLive("TestOnNativeMessageAndMessageError: native frames after connecting \"\", error to an emit", () =>
    Effect.gen(function*() {
      const natives = yield* Queue.unbounded<Message.Message>()
      const events = Events.namespaces({
        "": {
          _OnNativeMessage: (_ns, msg) => Effect.asVoid(Queue.offer(natives, msg)),
          failing: () => Effect.fail(new Refused({ message: "native error" }))
        }
      })
      const { url } = yield* startServer({ events })
      const { conn, next } = yield* neffosClient(url, [""])
      yield* promise(() => conn.connect(""))
      conn.conn.send("a native message")
      const native = yield* Queue.take(natives)
      assert.deepStrictEqual([native.event, native.body, native.native], ["_OnNativeMessage", "a native message", true])
      conn.namespace("").emit("failing", "x")
      const failed = yield* next
      assert.deepStrictEqual([failed.event, failed.err], ["failing", "native error"])
    }))

  it.scopedLive("TestJoinAndLeaveRoom: room emit comes back with its room; leaving inside a handler", () =>
    Effect.gen(function*() {
      const left = yield* Deferred.make<string>()
      const events = Events.namespaces({ default: { roomev: (ns, msg) => ns.broadcast(msg) } })
      const { url } = yield* startServer({ events })
      const { conn } = yield* neffosClient(url, ["default"], {
        handlers: {
          default: {
            roomev: (ns: any, msg: any) => {
              if (msg.Room === "room1" && ns.room("room1") !== undefined) ns.room("room1").leave()
            },
            _OnRoomLeft: (_ns: any, msg: any) => {
              Deferred.unsafeDone(left, Effect.succeed(msg.Room))
            }
          }
        }
      })
      const ns = yield* promise(() => conn.connect("default"))
      const room = yield* promise(() => ns.joinRoom("room1"))
      room.emit("roomev", "hello")
      assert.strictEqual(yield* Deferred.await(left), "room1")
    }))

  it.scopedLive("TestJoinAndLeaveRoomInsideHandler: the server joins the client from a handler and emits", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents })
      const { conn, next } = yield* neffosClient(url, ["default"])
      const ns = yield* promise(() => conn.connect("default"))
      yield* next // welcome
      ns.emit("joinme", "inside")
      const roomev = yield* next
      assert.deepStrictEqual([roomev.room, roomev.body], ["inside", "from server in room"])
      assert.isDefined(ns.room("inside"))
    }))

  it.scopedLive("TestServerBroadcastTo: a message with `to` reaches only that connection, not the sender", () =>
    Effect.gen(function*() {
      let n = 0
      const events = Events.namespaces({
        default: {
          to: (ns, msg) => ns.broadcastOthers({ event: "private", body: Message.bodyText(msg), to: "conn_2" })
        }
      })
      const { server, url } = yield* startServer({ events, idGenerator: () => `conn_${++n}` })
      const a = yield* neffosClient(url, ["default"])
      const b = yield* neffosClient(url, ["default"])
      const c = yield* neffosClient(url, ["default"])
      const nsA = yield* promise(() => a.conn.connect("default"))
      yield* promise(() => b.conn.connect("default"))
      yield* promise(() => c.conn.connect("default"))
      yield* server.broadcast({ namespace: "default", event: "private", body: "server to 2", to: "conn_2" })
      nsA.emit("to", "a to 2")
      assert.strictEqual((yield* b.next).body, "server to 2")
      assert.strictEqual((yield* b.next).body, "a to 2")
      yield* server.broadcast({ namespace: "default", event: "marker", body: "end" })
      assert.strictEqual((yield* a.next).event, "marker")
      assert.strictEqual((yield* c.next).event, "marker")
    }))

  it.scopedLive("TestServerAsk: server.ask with `to` returns the client's reply", () =>
    Effect.gen(function*() {
      const events = Events.namespaces({ default: {} })
      const { server, url } = yield* startServer({ events, idGenerator: () => "asked" })
      const { conn } = yield* neffosClient(url, ["default"], {
        handlers: { default: { question: (_ns: any, msg: any) => neffos.reply(`answer to ${msg.Body}`) } }
      })
      yield* promise(() => conn.connect("default"))
      const reply = yield* server.ask({ to: "asked", namespace: "default", event: "question", body: "life" })
      assert.strictEqual(reply.body, "answer to life")
    }))
})
