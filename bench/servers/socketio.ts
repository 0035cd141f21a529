/**
 * Socket.IO 4 with the websocket transport only: `io.emit` / `io.to(room).emit` broadcasts, a `join`
 * event that joins a room, and an ack-based echo.
 */
import * as http from "node:http"
import { Server } from "socket.io"
import { host, listen } from "../lib/host.js"
import { broadcastEvent, echoEvent, joinEvent } from "../lib/wire.js"

host(async () => {
  const httpServer = http.createServer()
  const io = new Server(httpServer, { transports: ["websocket"], serveClient: false })

  io.on("connection", (socket) => {
    socket.on(joinEvent, async (name: string, ack: () => void) => {
      await socket.join(name)
      ack()
    })
    socket.on(echoEvent, (body: string, ack: (body: string) => void) => ack(body))
  })

  return {
    port: await listen(httpServer),
    path: "/socket.io/",
    broadcast: (room, body) => {
      if (room === "") io.emit(broadcastEvent, body)
      else io.to(room).emit(broadcastEvent, body)
    },
    connections: () => io.engine.clientsCount
  }
})
