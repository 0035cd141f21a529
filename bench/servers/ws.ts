/**
 * Baseline: a bare `ws` server. A broadcast sends the same pre-serialized string to each open client;
 * rooms are plain sets; every other frame is echoed back.
 */
import * as http from "node:http"
import { WebSocket, WebSocketServer } from "ws"
import { host, listen } from "../lib/host.js"
import { rawJoinPrefix } from "../lib/wire.js"

const joinByte = rawJoinPrefix.charCodeAt(0)

host(async () => {
  const httpServer = http.createServer()
  const wss = new WebSocketServer({ server: httpServer })
  const rooms = new Map<string, Set<WebSocket>>()

  wss.on("connection", (ws) => {
    const joined: Array<Set<WebSocket>> = []
    ws.on("message", (data: Buffer, isBinary) => {
      if (data[0] !== joinByte) return ws.send(data, { binary: isBinary })
      const name = data.toString("utf8", 1)
      const members = rooms.get(name) ?? new Set()
      rooms.set(name, members.add(ws))
      joined.push(members)
      ws.send(rawJoinPrefix)
    })
    ws.on("close", () => {
      for (const members of joined) members.delete(ws)
    })
  })

  const sendAll = (clients: Iterable<WebSocket>, body: string) => {
    for (const client of clients) {
      if (client.readyState === WebSocket.OPEN) client.send(body)
    }
  }

  return {
    port: await listen(httpServer),
    path: "/",
    broadcast: (room, body) => sendAll(room === "" ? wss.clients : rooms.get(room) ?? [], body),
    connections: () => wss.clients.size
  }
})
