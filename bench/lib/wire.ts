/**
 * What every server and the load generator agree on: the 100-byte payloads, the event names and the
 * small text protocol of the raw `ws` server.
 */

/**
 * The body of broadcast number `seq`, `size` bytes; its first byte also marks a raw `ws` broadcast
 * frame. Each broadcast gets its own string, as a real server serializes each message: a server that
 * queues frames for a slow client then holds distinct strings, not references to one.
 */
export const broadcastBody = (size: number, seq = 0) => `b${seq}`.padEnd(size, "x")

/**
 * A broadcast body that also carries when the server was asked to send it (`monoMs`, which compares
 * across processes): `b<seq>@<ms>`, padded to `size` bytes. The load generator measures delivery
 * latency from it.
 */
export const stampedBody = (size: number, seq: number, sentMs: number) =>
  `b${seq}${stampMark}${sentMs.toFixed(3)}`.padEnd(size, "x")

const stampMark = "@"

/** The send time in a frame carrying a `stampedBody`, or NaN. */
export const stampOf = (frame: string): number => {
  const at = frame.indexOf(stampMark)
  return at < 0 ? NaN : Number.parseFloat(frame.slice(at + 1, at + 24))
}

/** The body of every echo request. */
export const echoBody = "e" + "y".repeat(99)

/**
 * The body of every echo request to the neffos servers: 100 bytes of JSON, a small struct the
 * contract server decodes and encodes (`{ id, user, text }`) and the untyped one echoes as it is.
 */
export const echoJsonBody = JSON.stringify({ id: 42, user: "bench", text: "y".repeat(66) })

/** Event name of broadcasts (Socket.IO and neffos). */
export const broadcastEvent = "bench"

/** Event name of the request/reply round trip (Socket.IO and neffos). */
export const echoEvent = "echo"

/** Event name a Socket.IO client emits, with an ack, to join a room. */
export const joinEvent = "join"

/** The neffos namespace all benchmark clients connect to. */
export const namespace = "default"

/** The room every fan-out client joins. */
export const room = "r"

/** Raw `ws` protocol: `j<room>` joins a room and is answered with `j`; any other frame is echoed. */
export const rawJoinPrefix = "j"
