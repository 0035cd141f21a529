import * as NatsStackExchange from "effect-neffos/NatsStackExchange"
import { inject } from "vitest"
import { suite } from "./Presence.suite.js"
import { broker } from "./StackExchange.kit.js"

// the run's own NATS (test/services.ts)
const natsServers = inject("natsServers")

suite({
  name: "NATS",
  exchange: (prefix, port) =>
    NatsStackExchange.layer({
      servers: port === undefined ? natsServers : `127.0.0.1:${port}`,
      prefix,
      requestTimeout: "300 millis",
      nats: { reconnectTimeWait: 50 }
    }),
  port: Number(natsServers.slice(natsServers.lastIndexOf(":") + 1)),
  ownBroker: broker(inject("natsServer"), (port) => ["-a", "127.0.0.1", "-p", String(port)], /Server is ready/),
  childArgs: ["nats", natsServers]
})
