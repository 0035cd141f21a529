/**
 * The three wire protocols the load generator speaks, each written against its spec:
 * raw text for `ws`, engine.io v4 / socket.io v5 for Socket.IO, and neffos (PROTOCOL.md §1.3-1.5).
 */
import { echoBody, echoEvent, echoJsonBody, joinEvent, namespace, rawJoinPrefix } from "../lib/wire.js"
import type { Session, Wire } from "./session.js"

const raw: Wire = {
  name: "ws",
  query: "",
  isBroadcast: (frame) => frame.charCodeAt(0) === 98, // "b", the first byte of the broadcast body
  keepAlive: () => false,
  handshake: () => Promise.resolve(),
  join: (session, room) => session.request(rawJoinPrefix + room, (reply) => reply === rawJoinPrefix),
  echo: (session) => session.request(echoBody, (reply) => reply === echoBody)
}

// socket.io ack ids only need to be unique per client; one counter for all clients is simplest
let ackId = 0

const socketIo: Wire = {
  name: "socket.io",
  query: "?EIO=4&transport=websocket",
  isBroadcast: (frame) => frame.startsWith("42"),
  keepAlive: (frame, session) => {
    if (frame !== "2") return false
    session.ws.send("3")
    return true
  },
  handshake: async (session) => {
    const open = await session.next()
    if (!open.startsWith("0{")) throw new Error(`socket.io: expected an open packet, got ${open.slice(0, 80)}`)
    await session.request("40", (reply) => reply.startsWith("40"))
  },
  join: (session, room) => {
    const id = ackId++
    return session.request(`42${id}${JSON.stringify([joinEvent, room])}`, (reply) => reply.startsWith(`43${id}[`))
  },
  echo: (session) => {
    const id = ackId++
    const expected = `43${id}${JSON.stringify([echoBody])}`
    return session.request(`42${id}${JSON.stringify([echoEvent, echoBody])}`, (reply) => reply === expected)
  }
}

// neffos client tokens start with `$`; uniqueness per client is all the protocol asks for
let token = 0

const ask = (session: Session, room: string, event: string, body: string, reply: (wait: string) => string) => {
  const wait = `$${token++}`
  const expected = reply(wait)
  return session.request(`${wait};${namespace};${room};${event};0;0;${body}`, (frame) => frame === expected)
}

// server events carry no wait token; the benchmark servers emit nothing but broadcasts
const broadcastPrefix = `;${namespace};`

const emptyReply = (wait: string) => `${wait};;;;;;`

const neffos: Wire = {
  name: "neffos",
  query: "",
  isBroadcast: (frame) => frame.startsWith(broadcastPrefix),
  keepAlive: () => false,
  handshake: async (session) => {
    await session.request("M", (reply) => reply.startsWith("A"))
    await ask(session, "", "_OnNamespaceConnect", "", emptyReply)
  },
  join: (session, room) => ask(session, room, "_OnRoomJoin", "", emptyReply),
  echo: (session) =>
    ask(session, "", echoEvent, echoJsonBody, (wait) => `${wait};${namespace};;${echoEvent};0;0;${echoJsonBody}`)
}

/**
 * neffos as this package's client speaks it: it asks for positions (the header, as a browser sends it),
 * so a recoverable room's broadcasts carry one (`!<offset>:<prev>:<epoch>` in the wait field) and a
 * join's reply carries the room's position in its body.
 */
const neffosRecovery: Wire = {
  ...neffos,
  name: "neffos",
  query: "?X-Websocket-Header-X-Neffos-Recovery=1",
  isBroadcast: (frame) => frame.charCodeAt(0) === 33 || frame.startsWith(broadcastPrefix),
  join: (session, room) => {
    const wait = `$${token++}`
    return session.request(`${wait};${namespace};${room};_OnRoomJoin;0;0;`, (frame) => frame.startsWith(`${wait};`))
  }
}

export const wires = { raw, socketIo, neffos, neffosRecovery } as const

export type WireName = keyof typeof wires
