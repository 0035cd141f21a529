import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import * as NatsStackExchange from "effect-neffos/NatsStackExchange"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { inject } from "vitest"
import { segment } from "../src/internal/envelope.js"
import { suite } from "./History.suite.js"
import { broker } from "./StackExchange.kit.js"

// the run's own NATS, with JetStream (test/services.ts)
const natsServers = inject("natsServers")

const exchange = (storage: "file" | "memory") => (prefix: string, port?: number) =>
  NatsStackExchange.layer({
    servers: port === undefined ? natsServers : `127.0.0.1:${port}`,
    prefix,
    requestTimeout: "300 millis",
    nats: { reconnectTimeWait: 50 },
    history: { size: 2000, storage }
  })

const dir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-neffos-history-nats-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const natsServer = Effect.flatMap(dir, (data) =>
  broker(
    inject("natsServer"),
    (port) => ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", data],
    /Server is ready/
  ))

suite({
  name: "NATS",
  exchange: exchange("file"),
  // one stream keeps `history.size` messages of every room; a room's own `size` bounds what it replays
  bound: () => 2000,
  // JetStream on disk keeps the stream across a restart; in memory it is lost
  brokers: { persistent: natsServer, volatile: natsServer, volatileExchange: exchange("memory") },
  stored: (prefix, namespace, room) =>
    Effect.acquireRelease(
      Effect.promise(() => connect({ servers: natsServers })),
      (nc) => Effect.promise(() => nc.close())
    ).pipe(Effect.flatMap((nc) =>
      Effect.promise(async () => {
        const subject = `${prefix}.hist.${segment(namespace)}.${segment(room)}`
        const info = await (await jetstreamManager(nc)).streams.info(`neffos-history-${prefix.replaceAll(".", "_")}`, {
          subjects_filter: subject
        })
        return info.state.subjects?.[subject] ?? 0
      })
    ))
})
