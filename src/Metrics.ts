/**
 * The package's Effect metrics, and the Prometheus text of the whole metric
 * registry. Every name starts with `effect_neffos_`; labels are bounded (a
 * namespace the server declares, a close code, a policy, an outcome) — never a
 * room, a connection id or an event. Counters are monotonic (`incremental`), so an
 * OpenTelemetry exporter (`@effect/opentelemetry`) exports them as sums; durations
 * are histograms in seconds.
 *
 * Messages and bytes are added to plain numbers where they happen and handed to
 * their counters once a second, and whenever {@link flush}, {@link snapshot} or
 * {@link prometheus} (so `/metrics` and the dashboard) read them.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as MetricKeyType from "effect/MetricKeyType"
import type * as MetricPair from "effect/MetricPair"
import * as contract from "./internal/contract.js"
import * as metrics from "./internal/metrics.js"
import * as observe from "./internal/observe.js"
import * as prometheusText from "./internal/prometheus.js"

type Histogram = Metric.Metric<MetricKeyType.MetricKeyType.Histogram, number, unknown>

/**
 * Open connections (the handshake completed), every server of the process: a gauge.
 *
 * @since 0.1.0
 * @category server
 */
export const connections: Metric.Metric.Gauge<number> = metrics.connections

/**
 * Connections connected to each namespace: a gauge labelled `namespace`.
 *
 * @since 0.1.0
 * @category server
 */
export const namespaceConnections: Metric.Metric.Gauge<number> = metrics.namespaceConnections

/**
 * Handshakes by `outcome`: `accepted`, `refused` (`onConnect` failed: `H<reason>`),
 * `timeout` (no `M` within `handshakeTimeout`), `failed` (closed or a protocol
 * error before `A<id>`).
 *
 * @since 0.1.0
 * @category server
 */
export const handshakes: Metric.Metric.Counter<number> = metrics.handshakes

/**
 * Closed connections by close `code` (1000, 1001, 1006, 1008…).
 *
 * @since 0.1.0
 * @category server
 */
export const disconnects: Metric.Metric.Counter<number> = metrics.disconnects

/**
 * Messages the server's connections read, by `namespace` (namespaces the server
 * does not declare share the value `(undeclared)`).
 *
 * @since 0.1.0
 * @category server
 */
export const messagesReceived: Metric.Metric.Counter<number> = metrics.messagesReceived

/**
 * Bytes of the messages the server's connections read, by `namespace` (a text
 * frame counted by its length in characters).
 *
 * @since 0.1.0
 * @category server
 */
export const bytesReceived: Metric.Metric.Counter<number> = metrics.bytesReceived

/**
 * Messages the server sent, by `namespace`: a broadcast counts once per receiver
 * (counted once per broadcast, as receivers × frame), a reply, error, emit or ask
 * once. Empty acknowledgements (`<wait>;;;;;;`) name no namespace and are not counted.
 *
 * @since 0.1.0
 * @category server
 */
export const messagesSent: Metric.Metric.Counter<number> = metrics.messagesSent

/**
 * Bytes of the messages the server sent, by `namespace`.
 *
 * @since 0.1.0
 * @category server
 */
export const bytesSent: Metric.Metric.Counter<number> = metrics.bytesSent

/**
 * How long server handlers ran, in seconds, by `namespace` and `outcome` (`ok`,
 * `error`, `defect`, `interrupted`).
 *
 * @since 0.1.0
 * @category server
 */
export const handlerDuration: Histogram = metrics.handlerDuration

/**
 * Server asks to a client (`ns.ask`, `server.ask`), in seconds until the reply, by
 * `namespace` and `outcome` (`ok`, `error`, `timeout`, `closed`).
 *
 * @since 0.1.0
 * @category server
 */
export const askDuration: Histogram = metrics.askDuration

/**
 * Frames dropped by outbox overflow policies, by `policy` (`sliding`, `dropping`,
 * `disconnect`).
 *
 * @since 0.1.0
 * @category server
 */
export const droppedFrames: Metric.Metric.Counter<number> = metrics.droppedFrames

/**
 * The largest outbox among a server's connections, in frames, sampled every second.
 *
 * @since 0.1.0
 * @category server
 */
export const outboxHighWater: Metric.Metric.Gauge<number> = metrics.outboxHighWater

/**
 * Receivers a strict broadcast had to wait for (their outbox was full).
 *
 * @since 0.1.0
 * @category server
 */
export const strictWaits: Metric.Metric.Counter<number> = metrics.strictWaits

/**
 * Connections closed as slow consumers (the `disconnect` policy, or a strict
 * broadcast's `writeTimeout`).
 *
 * @since 0.1.0
 * @category server
 */
export const slowConsumerDisconnects: Metric.Metric.Counter<number> = metrics.slowConsumerDisconnects

/**
 * 1 while the stack exchange's broker is up, 0 while it is down.
 *
 * @since 0.1.0
 * @category stack exchange
 */
export const brokerUp: Metric.Metric.Gauge<number> = metrics.brokerUp

/**
 * Operations that failed because of the broker (publishes, requests, subscription
 * changes, and every loss of the connection).
 *
 * @since 0.1.0
 * @category stack exchange
 */
export const brokerFailures: Metric.Metric.Counter<number> = metrics.failures

/**
 * Publishes to the broker that failed: refused while the broker was down, or a
 * batch the broker did not take.
 *
 * @since 0.1.0
 * @category stack exchange
 */
export const publishFailures: Metric.Metric.Counter<number> = metrics.publishFailures

/**
 * Publishes dropped because `maxPendingPublishes` or `maxPendingBytes` were waiting.
 *
 * @since 0.1.0
 * @category stack exchange
 */
export const droppedPublishes: Metric.Metric.Counter<number> = metrics.droppedPublishes

/**
 * Payloads of a typed contract that did not decode, by `part`.
 *
 * @since 0.1.0
 * @category contract
 */
export const decodeFailures: Metric.Metric.Counter<number> = contract.metrics.decodeFailures

/**
 * Client asks to the server, in seconds until the reply, by `namespace` and `outcome`.
 *
 * @since 0.1.0
 * @category client
 */
export const clientAskDuration: Histogram = metrics.clientAskDuration

/**
 * Client reconnects by `outcome`: `ok`, or `gave_up` (the schedule ended).
 *
 * @since 0.1.0
 * @category client
 */
export const clientReconnects: Metric.Metric.Counter<number> = metrics.clientReconnects

/**
 * Client reconnect attempts.
 *
 * @since 0.1.0
 * @category client
 */
export const clientReconnectAttempts: Metric.Metric.Counter<number> = metrics.clientReconnectAttempts

/**
 * Hands what the servers of the process counted since the last second to their counters.
 *
 * @since 0.1.0
 * @category reading
 */
export const flush: Effect.Effect<void> = Effect.sync(observe.flushAll)

/**
 * Every metric of the Effect registry (the application's too), flushed first.
 *
 * @since 0.1.0
 * @category reading
 */
export const snapshot: Effect.Effect<Array<MetricPair.MetricPair.Untyped>> = Effect.zipRight(flush, Metric.snapshot)

/**
 * The Prometheus text (format 0.0.4) of metric pairs.
 *
 * @since 0.1.0
 * @category reading
 */
export const render: (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>) => string = prometheusText.render

/**
 * The Prometheus text of every metric of the registry, flushed first.
 *
 * @since 0.1.0
 * @category reading
 */
export const prometheus: Effect.Effect<string> = Effect.map(snapshot, render)

/**
 * The content type of {@link prometheus}: `text/plain; version=0.0.4; charset=utf-8`.
 *
 * @since 0.1.0
 * @category reading
 */
export const contentType: string = prometheusText.contentType
