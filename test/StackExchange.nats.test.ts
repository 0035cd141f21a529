import * as NatsStackExchange from "effect-neffos/NatsStackExchange"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Layer from "effect/Layer"
import { broker } from "./StackExchange.kit.js"
import { suite } from "./StackExchange.suite.js"

suite({
  name: "NATS",
  exchange: (prefix, port, options) =>
    NatsStackExchange.layer({
      servers: `127.0.0.1:${port ?? 4222}`,
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
          new Map([["NATS_SERVERS", "127.0.0.1:4222"], ["NEFFOS_PREFIX", prefix], [
            "NEFFOS_REQUEST_TIMEOUT",
            "300 millis"
          ]])
        )
      ))
    ),
  ownBroker: broker("nats-server", (port) => ["-a", "127.0.0.1", "-p", String(port)], /Server is ready/)
})
