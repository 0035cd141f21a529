import * as NatsStackExchange from "effect-neffos/NatsStackExchange"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Layer from "effect/Layer"
import { inject } from "vitest"
import { broker } from "./StackExchange.kit.js"
import { suite } from "./StackExchange.suite.js"

// the run's own NATS (test/services.ts)
const natsServers = inject("natsServers")

suite({
  name: "NATS",
  exchange: (prefix, port, options) =>
    NatsStackExchange.layer({
      servers: port === undefined ? natsServers : `127.0.0.1:${port}`,
      prefix,
      requestTimeout: "300 millis",
      nats: { reconnectTimeWait: 50 },
      ...options
    }),
  fromConfig: (prefix) =>
    NatsStackExchange.layerConfig({
      servers: Config.array(Config.string(), "NATS_SERVERS"),
      prefix: Config.string("NEFFOS_PREFIX"),
      requestTimeout: Config.duration("NEFFOS_REQUEST_TIMEOUT")
    }).pipe(
      Layer.provide(Layer.setConfigProvider(
        ConfigProvider.fromMap(
          new Map([["NATS_SERVERS", natsServers], ["NEFFOS_PREFIX", prefix], [
            "NEFFOS_REQUEST_TIMEOUT",
            "300 millis"
          ]])
        )
      ))
    ),
  ownBroker: broker(inject("natsServer"), (port) => ["-a", "127.0.0.1", "-p", String(port)], /Server is ready/)
})
