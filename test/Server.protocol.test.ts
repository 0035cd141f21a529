/**
 * Frame-exact conversations of PROTOCOL.md 1.7, played by a raw WebSocket client
 * against the server over real sockets.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import * as Conn from "../src/Conn.js"
import * as Events from "../src/Events.js"
import * as Reply from "../src/Reply.js"
import { captureEvents, Refused } from "./fixtures.js"
import { handshaken, rawClient, startServer } from "./utils.js"

const utf8 = (s: string) => new TextEncoder().encode(s)

/** Connects `default` and consumes the reply and the welcome emit. */
const connectDefault = (client: { send: (f: string) => Effect.Effect<void>; nextText: Effect.Effect<string> }) =>
  Effect.gen(function*() {
    yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
    assert.strictEqual(yield* client.nextText, "$c;;;;;;")
    assert.strictEqual(yield* client.nextText, ";default;;chat;0;0;welcome")
  })

describe("Server protocol (PROTOCOL.md 1.7)", () => {
  describe("(a) handshake", () => {
    it.scopedLive("answers M with A<id> from the id generator", () =>
      Effect.gen(function*() {
        let n = 0
        const { url } = yield* startServer({ events: captureEvents, idGenerator: () => `conn-${++n}` })
        const client = yield* rawClient(url)
        yield* client.send("M")
        assert.strictEqual(yield* client.nextText, "Aconn-1")
      }))

    it.scopedLive("defaults to UUID ids", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { id } = yield* handshaken(url)
        assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      }))

    it.scopedLive("refuses with H<reason> and closes with 1008 when onConnect fails", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({
          events: captureEvents,
          onConnect: () => Effect.fail(new Refused({ message: "not allowed; go away" }))
        })
        const client = yield* rawClient(url)
        yield* client.send("M")
        assert.strictEqual(yield* client.nextText, "Hnot allowed; go away")
        const closed = yield* client.closed
        assert.strictEqual(closed.code, 1008)
        assert.strictEqual(closed.reason, "not allowed; go away")
      }))

    it.scopedLive("writes nothing before A<id>, even what onConnect emits", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({
          events: captureEvents,
          idGenerator: () => "first",
          onConnect: (conn) => Effect.asVoid(conn.connect("default"))
        })
        const client = yield* rawClient(url)
        assert.strictEqual(yield* client.pending, 0)
        yield* client.send("M")
        assert.strictEqual(yield* client.nextText, "Afirst")
      }))

    it.scopedLive("accepts only M: A<id> before M is a protocol error and cannot pick the id", () =>
      Effect.gen(function*() {
        const { server, url } = yield* startServer({ events: captureEvents })
        const client = yield* rawClient(url)
        yield* client.send("Ahacker")
        const closed = yield* client.closed
        assert.strictEqual(closed.code, 1002)
        assert.strictEqual(yield* server.connectionCount, 0)
        assert.strictEqual((yield* server.connectionsById("hacker")).length, 0)
      }))

    it.scopedLive("H<reason> or a message before M is a protocol error too", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        for (const frame of ["Hbye", "$x1;default;;_OnNamespaceConnect;0;0;"]) {
          const client = yield* rawClient(url)
          yield* client.send(frame)
          assert.strictEqual((yield* client.closed).code, 1002)
        }
      }))
  })

  describe("(b) client-initiated namespace connect", () => {
    it.scopedLive("connects, replies, then emits from _OnNamespaceConnected", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* client.send("$654000000000495264162;default;;_OnNamespaceConnect;0;0;")
        assert.strictEqual(yield* client.nextText, "$654000000000495264162;;;;;;")
        assert.strictEqual(yield* client.nextText, ";default;;chat;0;0;welcome")
      }))

    it.scopedLive("answers bad namespace, a veto, already connected, and ignores isNoOp", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* client.send("$654000000000808148448;onlyclient;;_OnNamespaceConnect;0;0;")
        assert.strictEqual(
          yield* client.nextText,
          "$654000000000808148448;onlyclient;;_OnNamespaceConnect;1;0;bad namespace"
        )
        yield* client.send("$654000000000809227851;refuse;;_OnNamespaceConnect;0;0;")
        assert.strictEqual(
          yield* client.nextText,
          "$654000000000809227851;refuse;;_OnNamespaceConnect;1;0;refused by server"
        )
        yield* connectDefault(client)
        yield* client.send("$again;default;;_OnNamespaceConnect;0;0;")
        assert.strictEqual(yield* client.nextText, "$again;;;;;;")
        // an isNoOp request gets no answer: the next frame is the reply to the following ask
        yield* client.send("$noop;second;;_OnNamespaceConnect;0;1;")
        yield* client.send("$after;default;;echo;0;0;x")
        assert.strictEqual(yield* client.nextText, "$after;default;;echo;0;0;echo:x")
      }))
  })

  describe("(c) server-initiated namespace connect", () => {
    it.scopedLive("from onConnect: A<id>, then the request, then what _OnNamespaceConnected emits", () =>
      Effect.gen(function*() {
        const connected = yield* Queue.unbounded<string>()
        const { url } = yield* startServer({
          events: captureEvents,
          idGenerator: () => "srv",
          onConnect: (conn) =>
            conn.connect("default").pipe(
              Effect.flatMap((ns) => Queue.offer(connected, ns.namespace)),
              Effect.forkDaemon,
              Effect.asVoid
            )
        })
        const client = yield* rawClient(url)
        yield* client.send("M")
        assert.strictEqual(yield* client.nextText, "Asrv")
        const request = yield* client.nextText
        const match = /^(\d+);default;;_OnNamespaceConnect;0;0;$/.exec(request)
        assert.isNotNull(match, request)
        yield* client.send(`${match![1]};;;;;;`)
        assert.strictEqual(yield* client.nextText, ";default;;hello;0;0;forced")
        assert.strictEqual(yield* Queue.take(connected), "default")
      }))

    it.scopedLive("awaited inside onConnect: the connect commits the handshake", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({
          events: captureEvents,
          idGenerator: () => "inline",
          onConnect: (conn) => Effect.asVoid(conn.connect("default"))
        })
        const client = yield* rawClient(url)
        yield* client.send("M")
        assert.strictEqual(yield* client.nextText, "Ainline")
        const request = yield* client.nextText
        const token = request.slice(0, request.indexOf(";"))
        assert.strictEqual(request, `${token};default;;_OnNamespaceConnect;0;0;`)
        yield* client.send(`${token};;;;;;`)
        assert.strictEqual(yield* client.nextText, ";default;;hello;0;0;forced")
      }))

    it.scopedLive("a client's refusal is a RemoteError", () =>
      Effect.gen(function*() {
        const result = yield* Queue.unbounded<string>()
        const { url } = yield* startServer({
          events: captureEvents,
          onConnect: (conn) =>
            conn.connect("default").pipe(
              Effect.matchEffect({
                onFailure: (e) => Queue.offer(result, `${e._tag}:${e.message}`),
                onSuccess: () => Queue.offer(result, "connected")
              }),
              Effect.forkDaemon,
              Effect.asVoid
            )
        })
        const { client } = yield* handshaken(url)
        const request = yield* client.nextText
        const token = request.slice(0, request.indexOf(";"))
        yield* client.send(`${token};default;;_OnNamespaceConnect;1;0;not here`)
        assert.strictEqual(yield* Queue.take(result), "RemoteError:not here")
      }))
  })

  describe("(d) namespace disconnect", () => {
    it.scopedLive("accepts, refuses by veto, answers an unknown namespace", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        yield* client.send("$d1;default;;_OnNamespaceDisconnect;0;0;")
        assert.strictEqual(yield* client.nextText, "$d1;;;;;;")
        // no longer connected: an ask there is answered with bad namespace
        yield* client.send("$d2;default;;echo;0;0;x")
        assert.strictEqual(yield* client.nextText, "$d2;default;;echo;1;0;bad namespace")
        yield* client.send("$s;semi@%!semicolon@%!ns;;_OnNamespaceConnect;0;0;")
        assert.strictEqual(yield* client.nextText, "$s;;;;;;")
        yield* client.send("$65500000000018108122;semi@%!semicolon@%!ns;;_OnNamespaceDisconnect;0;0;")
        assert.strictEqual(
          yield* client.nextText,
          "$65500000000018108122;semi@%!semicolon@%!ns;;_OnNamespaceDisconnect;1;0;you cannot leave semi;ns"
        )
        yield* client.send("$d3;nowhere;;_OnNamespaceDisconnect;0;0;")
        assert.strictEqual(yield* client.nextText, "$d3;;;;;;")
      }))

    it.scopedLive("server-initiated: the request, then the handle is gone", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        yield* client.send(";default;;kickme;0;0;")
        const request = yield* client.nextText
        const token = request.slice(0, request.indexOf(";"))
        assert.strictEqual(request, `${token};default;;_OnNamespaceDisconnect;0;0;`)
        assert.notStrictEqual(token.charAt(0), "$")
        yield* client.send(`${token};;;;;;`)
        yield* client.send("$e;default;;echo;0;0;x")
        assert.strictEqual(yield* client.nextText, "$e;default;;echo;1;0;bad namespace")
      }))
  })

  describe("(e) rooms", () => {
    it.scopedLive("join ok, vetoed, already joined; leave ok and not joined", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        yield* client.send("$654000000000810289260;default;room1;_OnRoomJoin;0;0;")
        assert.strictEqual(yield* client.nextText, "$654000000000810289260;;;;;;")
        yield* client.send("$654000000000914217872;default;forbidden;_OnRoomJoin;0;0;")
        assert.strictEqual(
          yield* client.nextText,
          "$654000000000914217872;default;forbidden;_OnRoomJoin;1;0;room is forbidden"
        )
        yield* client.send("$j;default;room1;_OnRoomJoin;0;0;")
        assert.strictEqual(yield* client.nextText, "$j;;;;;;")
        yield* client.send(";default;room1;chat;0;0;in room")
        assert.strictEqual(yield* client.nextText, ";default;room1;chat;0;0;in room")
        yield* client.send("$654000000000912670604;default;room1;_OnRoomLeave;0;0;")
        assert.strictEqual(yield* client.nextText, "$654000000000912670604;;;;;;")
        yield* client.send("$l;default;room1;_OnRoomLeave;0;0;")
        assert.strictEqual(yield* client.nextText, "$l;;;;;;")
        // emits to a room the connection has not joined are refused
        yield* client.send(";default;room1;chat;0;0;sneaky")
        yield* client.send("$a;default;room1;echo;0;0;x")
        assert.strictEqual(yield* client.nextText, "$a;default;room1;echo;1;0;bad room")
      }))

    it.scopedLive("server-initiated join and leave", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        yield* client.send(";default;;joinme;0;0;srvroom")
        const join = yield* client.nextText
        const joinToken = join.slice(0, join.indexOf(";"))
        assert.strictEqual(join, `${joinToken};default;srvroom;_OnRoomJoin;0;0;`)
        yield* client.send(`${joinToken};;;;;;`)
        assert.strictEqual(yield* client.nextText, ";default;srvroom;roomev;0;0;from server in room")
        yield* client.send(";default;;leaveme;0;0;srvroom")
        const leave = yield* client.nextText
        const leaveToken = leave.slice(0, leave.indexOf(";"))
        assert.strictEqual(leave, `${leaveToken};default;srvroom;_OnRoomLeave;0;0;`)
        yield* client.send(`${leaveToken};;;;;;`)
        yield* client.send("$a;default;srvroom;echo;0;0;x")
        assert.strictEqual(yield* client.nextText, "$a;default;srvroom;echo;1;0;bad room")
      }))

    it.scopedLive("neffos.js leaveAll's _OnRoomLeft ask is taken as the leave it means", () =>
      Effect.gen(function*() {
        const left = yield* Queue.unbounded<string>()
        const events = Events.namespaces({
          default: {
            _OnRoomLeave: (_ns, msg) => Effect.asVoid(Queue.offer(left, `leave:${msg.room}`)),
            _OnRoomLeft: (_ns, msg) => Effect.asVoid(Queue.offer(left, `left:${msg.room}`))
          }
        })
        const { server, url } = yield* startServer({ events })
        const { client } = yield* handshaken(url)
        yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
        assert.strictEqual(yield* client.nextText, "$c;;;;;;")
        yield* client.send("$j;default;r1;_OnRoomJoin;0;0;")
        assert.strictEqual(yield* client.nextText, "$j;;;;;;")
        yield* client.send("$756000000000768911619;default;r1;_OnRoomLeft;0;0;")
        assert.strictEqual(yield* client.nextText, "$756000000000768911619;;;;;;")
        assert.strictEqual(yield* Queue.take(left), "leave:r1")
        assert.strictEqual(yield* Queue.take(left), "left:r1")
        assert.strictEqual(yield* server.memberCount("default", "r1"), 0)
      }))

    it.scopedLive("local-only events from the wire run no handler", () =>
      Effect.gen(function*() {
        const seen = yield* Queue.unbounded<string>()
        const events = Events.namespaces({
          default: {
            _OnNamespaceConnected: (_ns, msg) => Effect.asVoid(Queue.offer(seen, msg.event)),
            _OnRoomJoined: (_ns, msg) => Effect.asVoid(Queue.offer(seen, msg.event)),
            echo: () => Effect.succeed(Reply.text("e"))
          }
        })
        const { url } = yield* startServer({ events })
        const { client } = yield* handshaken(url)
        yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
        assert.strictEqual(yield* client.nextText, "$c;;;;;;")
        assert.strictEqual(yield* Queue.take(seen), "_OnNamespaceConnected")
        yield* client.send(";default;;_OnNamespaceConnected;0;0;")
        yield* client.send(";default;r1;_OnRoomJoined;0;0;")
        yield* client.send("$e;default;;echo;0;0;")
        assert.strictEqual(yield* client.nextText, "$e;default;;echo;0;0;e")
        assert.strictEqual(yield* Queue.size(seen), 0)
      }))
  })

  describe("(f) emit", () => {
    it.scopedLive("broadcast echo and an error reply to a plain emit", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        yield* client.send(";default;;chat;0;0;hello;world")
        assert.strictEqual(yield* client.nextText, ";default;;chat;0;0;hello;world")
        yield* client.send(";default;;emitfail;0;0;x")
        assert.strictEqual(yield* client.nextText, ";default;;emitfail;1;0;emit failed")
      }))

    it.scopedLive("a Reply to a plain emit goes back as the same event", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        yield* client.send(";default;;echo;0;0;q")
        assert.strictEqual(yield* client.nextText, ";default;;echo;0;0;echo:q")
      }))

    it.scopedLive("an error message from the peer is never answered with an error", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        yield* client.send(";default;;emitfail;1;0;client error")
        yield* client.send("$p;default;;echo;0;0;next")
        assert.strictEqual(yield* client.nextText, "$p;default;;echo;0;0;echo:next")
      }))
  })

  describe("(g) ask and reply", () => {
    it.scopedLive("client asks answered by a reply and by an error", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        yield* client.send("$654000000000705036461;default;;echo;0;0;q1")
        assert.strictEqual(yield* client.nextText, "$654000000000705036461;default;;echo;0;0;echo:q1")
        yield* client.send("$654000000000706288591;default;;fail;0;0;q2")
        assert.strictEqual(yield* client.nextText, "$654000000000706288591;default;;fail;1;0;boom;with;semicolons")
      }))

    it.scopedLive("server asks answered by a reply and by an error", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        yield* client.send(";default;;askme;0;0;srvask")
        const ask = yield* client.nextText
        const token = ask.slice(0, ask.indexOf(";"))
        assert.strictEqual(ask, `${token};default;;srvask;0;0;question?`)
        assert.match(token, /^\d+$/)
        yield* client.send(`${token};default;;srvask;0;0;js-answer`)
        assert.strictEqual(yield* client.nextText, ";default;;answer;0;0;js-answer")
        yield* client.send(";default;;askme;0;0;srvaskerr")
        const ask2 = yield* client.nextText
        const token2 = ask2.slice(0, ask2.indexOf(";"))
        yield* client.send(`${token2};default;;srvaskerr;1;0;js says no`)
        assert.strictEqual(yield* client.nextText, ";default;;answer;0;0;RemoteError:js says no")
      }))

    it.scopedLive("an ask on a namespace the connection never connected gets bad namespace", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* client.send("$x2;other;;ping;0;0;")
        assert.strictEqual(yield* client.nextText, "$x2;other;;ping;1;0;bad namespace")
        yield* client.send("$x3;second;;ping;0;0;")
        assert.strictEqual(yield* client.nextText, "$x3;second;;ping;1;0;bad namespace")
      }))

    it.scopedLive("asks without a handler or without a Reply still get an answer", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        yield* client.send("$u;default;;nosuchevent;0;0;")
        assert.strictEqual(yield* client.nextText, "$u;default;;nosuchevent;1;0;unknown event")
        yield* client.send("$v;default;;chat;0;0;hi")
        assert.strictEqual(yield* client.nextText, ";default;;chat;0;0;hi")
        assert.strictEqual(yield* client.nextText, "$v;;;;;;")
      }))

    it.scopedLive("a late reply to a timed-out server ask is dropped and the connection keeps working", () =>
      Effect.gen(function*() {
        const { server, url } = yield* startServer({ events: captureEvents, idGenerator: () => "late" })
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        const asking = yield* Effect.fork(
          server.ask({ to: "late", namespace: "default", event: "srvask", body: "q" }, { timeout: "200 millis" })
        )
        const ask = yield* client.nextText
        const token = ask.slice(0, ask.indexOf(";"))
        const result = yield* Effect.flip(Fiber.join(asking))
        assert.strictEqual(result._tag, "AskTimeout")
        // the reply arrives after the deadline: dropped, not dispatched as an event
        yield* client.send(`${token};default;;echo;0;0;late answer`)
        yield* client.send("$ok;default;;echo;0;0;still alive")
        assert.strictEqual(yield* client.nextText, "$ok;default;;echo;0;0;echo:still alive")
        assert.strictEqual(yield* client.pending, 0)
      }))
  })

  describe("(h) binary", () => {
    it.scopedLive("a binary frame with ; in its body comes back as a binary frame", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        const frame = new Uint8Array([...utf8(";default;;bin;0;0;"), 1, 2, 59, 3])
        yield* client.send(frame)
        assert.deepStrictEqual(yield* client.next, frame)
      }))
  })

  describe("(i) escaping", () => {
    it.scopedLive("escaped namespace and event names", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ events: captureEvents })
        const { client } = yield* handshaken(url)
        yield* client.send("$s;semi@%!semicolon@%!ns;;_OnNamespaceConnect;0;0;")
        assert.strictEqual(yield* client.nextText, "$s;;;;;;")
        yield* client.send("$65500000000017358233;semi@%!semicolon@%!ns;;ev@%!semicolon@%!1;0;0;body;x")
        assert.strictEqual(
          yield* client.nextText,
          "$65500000000017358233;semi@%!semicolon@%!ns;;ev@%!semicolon@%!1;0;0;ok;"
        )
        yield* client.send(";semi@%!semicolon@%!ns;;tag;0;0;")
        assert.strictEqual(yield* client.nextText, ";semi@%!semicolon@%!ns;;tagged@%!semicolon@%!event;0;0;x;y")
      }))
  })

  describe("(j) native messages", () => {
    it.scopedLive("native-only mode: no handshake, every frame is native", () =>
      Effect.gen(function*() {
        const events = Events.namespaces({
          "": { _OnNativeMessage: (_ns, msg) => Effect.succeed(Reply.text("echo:" + String(msg.body))) }
        })
        const { url } = yield* startServer({ events })
        const client = yield* rawClient(url)
        yield* client.send("plain;text;with;semis;a;b;c;d")
        assert.strictEqual(yield* client.nextText, "echo:plain;text;with;semis;a;b;c;d")
        yield* client.send("M")
        assert.strictEqual(yield* client.nextText, "echo:M")
      }))

    it.scopedLive("mixed mode: headerless frames reach _OnNativeMessage of namespace \"\" once connected", () =>
      Effect.gen(function*() {
        const events = Events.namespaces({
          "": {
            _OnNativeMessage: (_ns, msg) => Effect.succeed(Reply.text("native:" + String(msg.body))),
            echo: () => Effect.succeed(Reply.text("event"))
          }
        })
        const { url } = yield* startServer({ events })
        const { client } = yield* handshaken(url)
        yield* client.send("$c;;;_OnNamespaceConnect;0;0;")
        assert.strictEqual(yield* client.nextText, "$c;;;;;;")
        yield* client.send("raw frame")
        assert.strictEqual(yield* client.nextText, "native:raw frame")
        yield* client.send("$e;;;echo;0;0;")
        assert.strictEqual(yield* client.nextText, "$e;;;echo;0;0;event")
      }))
  })

  describe("(k) close", () => {
    it.scopedLive("a client close fires the forced leave/disconnect events, then onDisconnect", () =>
      Effect.gen(function*() {
        const log = yield* Queue.unbounded<string>()
        const record = (_ns: Conn.NSConn, msg: { event: string; room: string; isForced: boolean; isLocal: boolean }) =>
          Effect.asVoid(Queue.offer(log, `${msg.event}:${msg.room}:${msg.isForced}:${msg.isLocal}`))
        const events = Events.namespaces({
          default: { _OnRoomLeave: record, _OnRoomLeft: record, _OnNamespaceDisconnect: record }
        })
        const { url } = yield* startServer({
          events,
          onDisconnect: (conn) => Queue.offer(log, `disconnect:${conn.id}`),
          idGenerator: () => "leaving"
        })
        const { client } = yield* handshaken(url)
        yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
        assert.strictEqual(yield* client.nextText, "$c;;;;;;")
        yield* client.send("$j;default;r1;_OnRoomJoin;0;0;")
        assert.strictEqual(yield* client.nextText, "$j;;;;;;")
        client.ws.close(1000)
        const entries: Array<string> = []
        for (let i = 0; i < 4; i++) entries.push(yield* Queue.take(log))
        assert.deepStrictEqual(entries, [
          "_OnRoomLeave:r1:true:true",
          "_OnRoomLeft:r1:true:true",
          "_OnNamespaceDisconnect::true:true",
          "disconnect:leaving"
        ])
      }))

    it.scopedLive("the lifecycle stream reports connect, namespace, room and disconnect", () =>
      Effect.gen(function*() {
        const { server, url } = yield* startServer({ events: captureEvents, idGenerator: () => "watched" })
        const events = yield* server.subscribe
        const { client } = yield* handshaken(url)
        yield* connectDefault(client)
        yield* client.send("$j;default;r1;_OnRoomJoin;0;0;")
        assert.strictEqual(yield* client.nextText, "$j;;;;;;")
        client.ws.close()
        const tags: Array<string> = []
        for (let i = 0; i < 6; i++) {
          const event = yield* Queue.take(events)
          tags.push(event._tag)
        }
        assert.deepStrictEqual(tags, [
          "Connected",
          "NamespaceConnected",
          "RoomJoined",
          "RoomLeft",
          "NamespaceDisconnected",
          "Disconnected"
        ])
        assert.strictEqual(yield* server.connectionCount, 0)
        const after = yield* Stream.runCollect(Stream.take(server.lifecycle, 0))
        assert.strictEqual(after.length, 0)
      }))
  })
})
