/**
 * The package's Effect metrics: names prefixed `effect_neffos_`, monotonic
 * counters, histograms in seconds, and bounded labels (a declared namespace, a
 * close code, a policy, an outcome) as stable arrays, so that Effect's hook cache
 * finds a labelled series without building its key again.
 *
 * @internal
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"

/** Seconds, from 100 µs to 30 s: handler runs and asks. @internal */
export const durationBoundaries: ReadonlyArray<number> = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30
]

const seconds = MetricBoundaries.fromIterable(durationBoundaries)

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

/** @internal */
export const connections = Metric.gauge("effect_neffos_connections", {
  description: "open connections (the handshake completed), every server of the process"
})

/** @internal */
export const namespaceConnections = Metric.gauge("effect_neffos_namespace_connections", {
  description: "connections connected to a namespace"
})

/** @internal */
export const handshakes = counter(
  "effect_neffos_handshakes",
  "handshakes by outcome: accepted, refused (onConnect failed), timeout, failed (closed or protocol error before A<id>)"
)

/** @internal */
export const disconnects = counter("effect_neffos_disconnects", "closed connections, by close code")

/** @internal */
export const messagesReceived = counter(
  "effect_neffos_messages_received",
  "messages the server's connections read, by namespace"
)

/** @internal */
export const bytesReceived = counter(
  "effect_neffos_received_bytes",
  "bytes of the messages the server's connections read, by namespace (text counted in characters)"
)

/** @internal */
export const messagesSent = counter(
  "effect_neffos_messages_sent",
  "messages the server sent, by namespace: a broadcast counts once per receiver"
)

/** @internal */
export const bytesSent = counter(
  "effect_neffos_sent_bytes",
  "bytes of the messages the server sent, by namespace (text counted in characters)"
)

/** @internal */
export const handlerDuration = Metric.histogram(
  "effect_neffos_handler_duration_seconds",
  seconds,
  "how long a server handler ran, by namespace and outcome (ok, error, defect, interrupted)"
)

/** @internal */
export const askDuration = Metric.histogram(
  "effect_neffos_ask_duration_seconds",
  seconds,
  "server asks to a client until the reply, by namespace and outcome (ok, error, timeout, closed)"
)

/** @internal */
export const droppedFrames = counter(
  "effect_neffos_outbox_dropped_frames",
  "frames dropped by outbox overflow policies, by policy (sliding, dropping, disconnect)"
)

/** @internal */
export const outboxHighWater = Metric.gauge("effect_neffos_outbox_high_water_frames", {
  description: "the largest outbox among the server's connections, in frames, sampled every second"
})

/** @internal */
export const strictWaits = counter(
  "effect_neffos_strict_waits",
  "receivers a strict broadcast had to wait for (their outbox was full)"
)

/** @internal */
export const slowConsumerDisconnects = counter(
  "effect_neffos_slow_consumer_disconnects",
  "connections closed as slow consumers (disconnect policy, or strict writeTimeout)"
)

/** @internal */
export const brokerUp = Metric.gauge("effect_neffos_stack_exchange_up", {
  description: "1 while the stack exchange's broker is up, 0 while it is down"
})

/** @internal */
export const failures = counter(
  "effect_neffos_stack_exchange_failures",
  "stack exchange operations that failed because of the broker (publish, request, subscribe, connection)"
)

/** @internal */
export const droppedPublishes = counter(
  "effect_neffos_stack_exchange_dropped_publishes",
  "publishes dropped because too many were waiting for the broker (maxPendingPublishes, maxPendingBytes)"
)

/** @internal */
export const publishFailures = counter(
  "effect_neffos_stack_exchange_publish_failures",
  "publishes to the broker that failed (broker down, or the batch was refused)"
)

/** @internal */
export const clientAskDuration = Metric.histogram(
  "effect_neffos_client_ask_duration_seconds",
  seconds,
  "client asks to the server until the reply, by namespace and outcome (ok, error, timeout, closed)"
)

/** @internal */
export const clientReconnects = counter(
  "effect_neffos_client_reconnects",
  "client reconnects by outcome: ok, or gave_up (the schedule ended)"
)

/** @internal */
export const clientReconnectAttempts = counter(
  "effect_neffos_client_reconnect_attempts",
  "client reconnect attempts"
)

const labelCache = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()

/** One label as a stable array (Effect caches a metric's hook per label array). @internal */
export const label = (key: string, value: string): ReadonlyArray<MetricLabel.MetricLabel> => {
  const id = key + "\u0000" + value
  let labels = labelCache.get(id)
  if (labels === undefined) {
    labels = [MetricLabel.make(key, value)]
    labelCache.set(id, labels)
  }
  return labels
}

/** The label value of messages of a namespace the server does not declare (bounded cardinality). @internal */
export const undeclared = "(undeclared)"
