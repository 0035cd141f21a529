import { assert, describe, it } from "@effect/vitest"
import * as Message from "effect-neffos/Message"
import * as fc from "effect/FastCheck"

const bytes = (...xs: ReadonlyArray<number>) => new Uint8Array(xs)
const utf8 = (s: string) => new TextEncoder().encode(s)

const decodeOk = (frame: string | Uint8Array, options?: Message.DecodeOptions): Message.Message => {
  const decoded = Message.decode(frame, options)
  if (!Message.isMessage(decoded)) {
    throw new Error(`expected a message, got ${decoded.reason}`)
  }
  return decoded
}

const fields = (m: Message.Message) => ({
  namespace: m.namespace,
  room: m.room,
  event: m.event,
  body: m.body,
  error: m.error,
  binary: m.binary,
  wait: m.wait,
  isNoOp: m.isNoOp,
  native: m.native
})

// golden vectors of PROTOCOL.md 1.4 (neffos message_test.go)
const golden: ReadonlyArray<readonly [Message.MessageInit, string]> = [
  [
    { wait: "0", namespace: "default", room: "room1", event: "_OnNamespaceConnect" },
    "0;default;room1;_OnNamespaceConnect;0;0;"
  ],
  [
    { namespace: "default", event: "_OnNamespaceConnect", body: "some id" },
    ";default;;_OnNamespaceConnect;0;0;some id"
  ],
  [{ namespace: "default", event: "_OnNamespaceDisconnect" }, ";default;;_OnNamespaceDisconnect;0;0;"],
  [{ namespace: "default", event: "chat", body: "text" }, ";default;;chat;0;0;text"],
  [{ namespace: "default", event: "chat", error: "error message" }, ";default;;chat;1;0;error message"],
  [
    { namespace: "default", event: "chat", body: "a body with many ; delimeters; like that;" },
    ";default;;chat;0;0;a body with many ; delimeters; like that;"
  ],
  [
    { namespace: "", event: "chat", error: "an error message with many ; delimeters; like that;" },
    ";;;chat;1;0;an error message with many ; delimeters; like that;"
  ],
  [{ wait: "1", namespace: "default", event: "chat", body: "body", isNoOp: true }, "1;default;;chat;0;1;body"],
  [
    { namespace: "contains;semi", room: ";this;for sure;", event: "thatdoesnot" },
    ";contains@%!semicolon@%!semi;@%!semicolon@%!this@%!semicolon@%!for sure@%!semicolon@%!;thatdoesnot;0;0;"
  ]
]

// every captured frame of PROTOCOL.md 1.7 that is a plain message, with its decoded fields
const captured: ReadonlyArray<readonly [string, Message.MessageInit]> = [
  ["$654000000000495264162;default;;_OnNamespaceConnect;0;0;", {
    wait: "$654000000000495264162",
    namespace: "default",
    event: "_OnNamespaceConnect"
  }],
  [";default;;chat;0;0;welcome", { namespace: "default", event: "chat", body: "welcome" }],
  ["$654000000000808148448;onlyclient;;_OnNamespaceConnect;0;0;", {
    wait: "$654000000000808148448",
    namespace: "onlyclient",
    event: "_OnNamespaceConnect"
  }],
  ["$654000000000808148448;onlyclient;;_OnNamespaceConnect;1;0;bad namespace", {
    wait: "$654000000000808148448",
    namespace: "onlyclient",
    event: "_OnNamespaceConnect",
    error: "bad namespace"
  }],
  ["$654000000000809227851;refuse;;_OnNamespaceConnect;1;0;refused by server", {
    wait: "$654000000000809227851",
    namespace: "refuse",
    event: "_OnNamespaceConnect",
    error: "refused by server"
  }],
  ["1795608483082572335;default;;_OnNamespaceConnect;0;0;", {
    wait: "1795608483082572335",
    namespace: "default",
    event: "_OnNamespaceConnect"
  }],
  [";default;;hello;0;0;forced", { namespace: "default", event: "hello", body: "forced" }],
  ["$1795608326166387343;default;;_OnNamespaceDisconnect;0;0;", {
    wait: "$1795608326166387343",
    namespace: "default",
    event: "_OnNamespaceDisconnect"
  }],
  ["$65500000000018108122;semi@%!semicolon@%!ns;;_OnNamespaceDisconnect;0;0;", {
    wait: "$65500000000018108122",
    namespace: "semi;ns",
    event: "_OnNamespaceDisconnect"
  }],
  ["$65500000000018108122;semi@%!semicolon@%!ns;;_OnNamespaceDisconnect;1;0;you cannot leave semi;ns", {
    wait: "$65500000000018108122",
    namespace: "semi;ns",
    event: "_OnNamespaceDisconnect",
    error: "you cannot leave semi;ns"
  }],
  ["1795608349914938277;second;;_OnNamespaceDisconnect;0;0;", {
    wait: "1795608349914938277",
    namespace: "second",
    event: "_OnNamespaceDisconnect"
  }],
  ["$654000000000810289260;default;room1;_OnRoomJoin;0;0;", {
    wait: "$654000000000810289260",
    namespace: "default",
    room: "room1",
    event: "_OnRoomJoin"
  }],
  ["$654000000000914217872;default;forbidden;_OnRoomJoin;1;0;room is forbidden", {
    wait: "$654000000000914217872",
    namespace: "default",
    room: "forbidden",
    event: "_OnRoomJoin",
    error: "room is forbidden"
  }],
  ["$654000000000912670604;default;room1;_OnRoomLeave;0;0;", {
    wait: "$654000000000912670604",
    namespace: "default",
    room: "room1",
    event: "_OnRoomLeave"
  }],
  ["1795608349912666518;default;srvroom;_OnRoomJoin;0;0;", {
    wait: "1795608349912666518",
    namespace: "default",
    room: "srvroom",
    event: "_OnRoomJoin"
  }],
  [";default;srvroom;roomev;0;0;from server in room", {
    namespace: "default",
    room: "srvroom",
    event: "roomev",
    body: "from server in room"
  }],
  ["1795608349913370671;default;srvroom;_OnRoomLeave;0;0;", {
    wait: "1795608349913370671",
    namespace: "default",
    room: "srvroom",
    event: "_OnRoomLeave"
  }],
  ["$756000000000768911619;default;r1;_OnRoomLeft;0;0;", {
    wait: "$756000000000768911619",
    namespace: "default",
    room: "r1",
    event: "_OnRoomLeft"
  }],
  [";default;;chat;0;0;hello;world", { namespace: "default", event: "chat", body: "hello;world" }],
  [";default;room1;chat;0;0;in room", { namespace: "default", room: "room1", event: "chat", body: "in room" }],
  [";default;;emitfail;0;0;x", { namespace: "default", event: "emitfail", body: "x" }],
  [";default;;emitfail;1;0;emit failed", { namespace: "default", event: "emitfail", error: "emit failed" }],
  ["$654000000000705036461;default;;echo;0;0;q1", {
    wait: "$654000000000705036461",
    namespace: "default",
    event: "echo",
    body: "q1"
  }],
  ["$654000000000705036461;default;;echo;0;0;echo:q1", {
    wait: "$654000000000705036461",
    namespace: "default",
    event: "echo",
    body: "echo:q1"
  }],
  ["$654000000000706288591;default;;fail;1;0;boom;with;semicolons", {
    wait: "$654000000000706288591",
    namespace: "default",
    event: "fail",
    error: "boom;with;semicolons"
  }],
  ["1795608349911383620;default;;srvask;0;0;question?", {
    wait: "1795608349911383620",
    namespace: "default",
    event: "srvask",
    body: "question?"
  }],
  ["1795608349911383620;default;;srvask;0;0;js-answer", {
    wait: "1795608349911383620",
    namespace: "default",
    event: "srvask",
    body: "js-answer"
  }],
  ["1795608349912262684;default;;srvaskerr;1;0;js says no", {
    wait: "1795608349912262684",
    namespace: "default",
    event: "srvaskerr",
    error: "js says no"
  }],
  ["1795608324665354046;default;;srvaskerr;1;0;bad room", {
    wait: "1795608324665354046",
    namespace: "default",
    event: "srvaskerr",
    error: "bad room"
  }],
  ["$65500000000017358233;semi@%!semicolon@%!ns;;ev@%!semicolon@%!1;0;0;body;x", {
    wait: "$65500000000017358233",
    namespace: "semi;ns",
    event: "ev;1",
    body: "body;x"
  }],
  ["$65500000000017358233;semi@%!semicolon@%!ns;;ev@%!semicolon@%!1;0;0;ok;", {
    wait: "$65500000000017358233",
    namespace: "semi;ns",
    event: "ev;1",
    body: "ok;"
  }],
  [";default;;tagged@%!semicolon@%!event;0;0;x;y", { namespace: "default", event: "tagged;event", body: "x;y" }]
]

describe("Message", () => {
  describe("golden vectors (PROTOCOL.md 1.4)", () => {
    for (const [init, wire] of golden) {
      it(`encodes and decodes ${JSON.stringify(wire)}`, () => {
        const message = Message.make(init)
        assert.strictEqual(Message.encode(message), wire)
        assert.deepStrictEqual(fields(decodeOk(wire)), fields(message))
      })
    }

    it("rejects a frame with too few separators", () => {
      const decoded = Message.decode("default;chat;")
      assert.isTrue(Message.isInvalidFrame(decoded))
      assert.strictEqual((decoded as Message.InvalidFrame).reason, "TooFewSeparators")
    })

    it("rejects a frame with exactly five separators, as Go does", () => {
      const decoded = Message.decode("$x6;default;;ping;0;0")
      assert.isTrue(Message.isInvalidFrame(decoded))
    })

    it("rejects an empty frame", () => {
      assert.strictEqual((Message.decode("") as Message.InvalidFrame).reason, "Empty")
      assert.strictEqual((Message.decode(new Uint8Array(0)) as Message.InvalidFrame).reason, "Empty")
    })

    it("encodes the empty reply", () => {
      assert.strictEqual(Message.emptyReply("W"), "W;;;;;;")
      const reply = decodeOk("W;;;;;;")
      assert.deepStrictEqual(fields(reply), fields(Message.make({ wait: "W" })))
    })
  })

  describe("captured frames (PROTOCOL.md 1.7)", () => {
    for (const [wire, init] of captured) {
      it(`round-trips ${JSON.stringify(wire)}`, () => {
        const decoded = decodeOk(wire)
        assert.deepStrictEqual(fields(decoded), fields(Message.make(init)))
        assert.strictEqual(Message.encode(decoded), wire)
      })
    }

    it("round-trips the binary frame of 1.7(h) byte-exactly", () => {
      const wire = new Uint8Array([...utf8(";default;;bin;0;0;"), 1, 2, 59, 3])
      const decoded = decodeOk(wire)
      assert.isTrue(decoded.binary)
      assert.strictEqual(decoded.namespace, "default")
      assert.strictEqual(decoded.event, "bin")
      assert.deepStrictEqual(decoded.body, bytes(1, 2, 59, 3))
      assert.deepStrictEqual(Message.encode(decoded), wire)
      const made = Message.make({ namespace: "default", event: "bin", body: bytes(1, 2, 59, 3) })
      assert.deepStrictEqual(Message.encode(made), wire)
    })
  })

  describe("flags", () => {
    it("treats only `1` as true", () => {
      const m = decodeOk(";default;;chat;true;01;x")
      assert.isUndefined(m.error)
      assert.isFalse(m.isNoOp)
      assert.strictEqual(m.body, "x")
      const e = decodeOk(";default;;chat;1;1;x")
      assert.strictEqual(e.error, "x")
      assert.isTrue(e.isNoOp)
    })

    it("keeps an error flag with an empty text as an empty error", () => {
      const m = decodeOk(";default;;chat;1;0;")
      assert.strictEqual(m.error, "")
      assert.strictEqual(Message.encode(m), ";default;;chat;1;0;")
    })

    it("sends errors as text even when the message was binary", () => {
      const m = Message.make({ namespace: "n", event: "e", body: bytes(1), error: "no" })
      assert.strictEqual(Message.encode(m), ";n;;e;1;0;no")
      const fromBinary = decodeOk(utf8(";n;;e;1;0;no"))
      assert.strictEqual(fromBinary.error, "no")
      assert.isFalse(fromBinary.binary)
    })

    it("encodes a text message with a byte body as UTF-8 text", () => {
      const m = Message.make({ event: "e", body: utf8("héllo"), binary: false })
      assert.strictEqual(Message.encode(m), ";;;e;0;0;héllo")
    })
  })

  describe("native messages (PROTOCOL.md 1.4, 1.7(j))", () => {
    const raw = "plain;text;with;semis;a;b;c;d"

    it("makes every frame native in native-only mode", () => {
      const m = decodeOk(raw, { native: "only" })
      assert.isTrue(m.native)
      assert.strictEqual(m.namespace, "")
      assert.strictEqual(m.event, Message.OnNativeMessage)
      assert.strictEqual(m.body, raw)
      assert.isTrue(decodeOk("M", { native: "only" }).native)
    })

    it("makes only headerless frames native in fallback mode", () => {
      assert.isTrue(decodeOk("not a message", { native: "fallback" }).native)
      assert.isFalse(decodeOk(raw, { native: "fallback" }).native)
      assert.isTrue(Message.isInvalidFrame(Message.decode("not a message")))
    })

    it("encodes a native message as its body alone", () => {
      const m = Message.make({ event: Message.OnNativeMessage, body: "echo:" + raw, native: true })
      assert.strictEqual(Message.encode(m), "echo:" + raw)
    })

    it("keeps a binary native frame as bytes", () => {
      const m = decodeOk(bytes(1, 2, 3), { native: "only" })
      assert.isTrue(m.binary)
      assert.deepStrictEqual(m.body, bytes(1, 2, 3))
    })
  })

  describe("binary frames", () => {
    it("rejects a binary frame whose header is not UTF-8", () => {
      const decoded = Message.decode(new Uint8Array([0xff, 59, 59, 59, 59, 59, 59, 1]))
      assert.strictEqual((decoded as Message.InvalidFrame).reason, "InvalidUtf8")
    })

    it("does not copy the body of a decoded binary frame", () => {
      const wire = new Uint8Array([...utf8(";n;;e;0;0;"), 7, 8])
      const decoded = decodeOk(wire)
      assert.strictEqual((decoded.body as Uint8Array).buffer, wire.buffer)
    })

    it("decodes a header with multi-byte names", () => {
      const wire = new Uint8Array([...utf8(";名前;部屋;événement;0;0;"), 59])
      const decoded = decodeOk(wire)
      assert.strictEqual(decoded.namespace, "名前")
      assert.strictEqual(decoded.room, "部屋")
      assert.strictEqual(decoded.event, "événement")
      assert.deepStrictEqual(decoded.body, bytes(59))
    })
  })

  describe("handshake", () => {
    it("classifies frames by their first character", () => {
      assert.deepStrictEqual(Message.decodeHandshake(Message.ackRequest), { _tag: "Ack" })
      assert.deepStrictEqual(Message.decodeHandshake(Message.ackId("conn-1")), { _tag: "Id", id: "conn-1" })
      assert.deepStrictEqual(Message.decodeHandshake(Message.ackRejected("not allowed; go away")), {
        _tag: "Rejected",
        reason: "not allowed; go away"
      })
      assert.deepStrictEqual(Message.decodeHandshake("$1;default;;x;0;0;"), { _tag: "Other" })
      assert.deepStrictEqual(Message.decodeHandshake(bytes(77)), { _tag: "Other" })
      assert.deepStrictEqual(Message.decodeHandshake(""), { _tag: "Other" })
    })
  })

  describe("events", () => {
    it("knows the system events", () => {
      for (
        const e of [
          "_OnNamespaceConnect",
          "_OnNamespaceConnected",
          "_OnNamespaceDisconnect",
          "_OnRoomJoin",
          "_OnRoomJoined",
          "_OnRoomLeave",
          "_OnRoomLeft"
        ]
      ) {
        assert.isTrue(Message.isSystemEvent(e), e)
      }
      assert.isFalse(Message.isSystemEvent(Message.OnAnyEvent))
      assert.isFalse(Message.isSystemEvent(Message.OnNativeMessage))
      assert.isFalse(Message.isSystemEvent("chat"))
    })
  })

  describe("tokens", () => {
    it("classifies tokens as PROTOCOL.md 1.5 does", () => {
      assert.strictEqual(Message.tokenOrigin(""), "none")
      assert.strictEqual(Message.tokenOrigin("$654000000000495264162"), "client")
      assert.strictEqual(Message.tokenOrigin("$5234.700000047684"), "client")
      assert.strictEqual(Message.tokenOrigin("#1"), "confirmation")
      assert.strictEqual(Message.tokenOrigin("1795608349911383620"), "server")
      assert.strictEqual(Message.tokenOrigin("R795608349911383620"), "server")
    })

    it("generates 10,000 unique tokens of each kind that classify correctly", () => {
      const client = new Set<string>()
      const server = new Set<string>()
      for (let i = 0; i < 10_000; i++) {
        const c = Message.clientToken()
        const s = Message.serverToken()
        assert.strictEqual(Message.tokenOrigin(c), "client")
        assert.strictEqual(Message.tokenOrigin(s), "server")
        assert.isTrue(s.charCodeAt(0) >= 48 && s.charCodeAt(0) <= 57, s)
        assert.strictEqual(c.indexOf(";"), -1)
        assert.strictEqual(s.indexOf(";"), -1)
        client.add(c)
        server.add(s)
      }
      assert.strictEqual(client.size, 10_000)
      assert.strictEqual(server.size, 10_000)
    })
  })

  describe("properties", () => {
    // escaping is not injective: a name that contains the escape sequence itself comes back as `;`
    const name = fc.string({ unit: fc.constantFrom("a", "b", ";", "@", "%", "!", "é", "名", "😀", " ") }).filter(
      (s) => !s.includes("@%!semicolon@%!")
    )
    const anyName = fc.oneof(name, fc.string({ unit: "grapheme" }).filter((s) => !s.includes("@%!semicolon@%!")))
    const token = fc.oneof(fc.constant(""), fc.constant("$1"), fc.stringMatching(/^[$#0-9A-Za-z.]{1,24}$/))
    const textBody = fc.oneof(fc.string({ unit: "grapheme" }), fc.string({ unit: fc.constantFrom(";", "a", "@") }))
    const binaryBody = fc.uint8Array({ maxLength: 64 }).map((b) => b.map((x) => (x % 3 === 0 ? 59 : x)))

    const message = fc.record({
      namespace: anyName,
      room: anyName,
      event: anyName,
      wait: token,
      isNoOp: fc.boolean(),
      payload: fc.oneof(
        textBody.map((body) => ({ body })),
        binaryBody.map((body) => ({ body })),
        textBody.map((error) => ({ error }))
      )
    }).map(({ payload, ...rest }) => Message.make({ ...rest, ...payload }))

    it("decode(encode(m)) = m", () => {
      fc.assert(
        fc.property(message, (m) => {
          assert.deepStrictEqual(fields(decodeOk(Message.encode(m))), fields(m))
        }),
        { numRuns: 2000 }
      )
    })

    it("decode never throws on arbitrary strings", () => {
      fc.assert(
        fc.property(fc.string({ unit: fc.constantFrom(";", "a", "1", "0", "$", "@%!semicolon@%!", "é") }), (s) => {
          const decoded = Message.decode(s)
          assert.isTrue(Message.isMessage(decoded) || Message.isInvalidFrame(decoded))
          Message.decode(s, { native: "fallback" })
          Message.decode(s, { native: "only" })
        }),
        { numRuns: 2000 }
      )
      fc.assert(
        fc.property(fc.string({ unit: "binary" }), (s) => {
          const decoded = Message.decode(s)
          assert.isTrue(Message.isMessage(decoded) || Message.isInvalidFrame(decoded))
        }),
        { numRuns: 2000 }
      )
    })

    it("decode never throws on arbitrary byte arrays", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 64 }).map((b) => b.map((x) => (x % 4 === 0 ? 59 : x))), (b) => {
          const decoded = Message.decode(b)
          assert.isTrue(Message.isMessage(decoded) || Message.isInvalidFrame(decoded))
          Message.decode(b, { native: "fallback" })
        }),
        { numRuns: 2000 }
      )
    })
  })
})
