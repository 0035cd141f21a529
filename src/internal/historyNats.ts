/**
 * Room histories in JetStream (NATS 2.9 or later): one stream per exchange
 * prefix takes the subjects `<prefix>.hist.<namespace>.<room>` and keeps the
 * last `size` messages of each subject (`max_msgs_per_subject`, discard old) for
 * at most `maxAge`. A message's offset is its stream sequence. The stream
 * republishes every stored message to the room's exchange channel
 * (`<prefix>.room.<namespace>.<room>`) with `Nats-Sequence` and
 * `Nats-Last-Sequence` (the room's message before it), so every instance gets it
 * with its position and the room's chain, in the stream's order. The epoch is
 * derived from the stream's creation time: a stream that was lost (a NATS that
 * restarted without its store) and made again has a new one.
 *
 * A resume from offset X is complete when nothing of the room after X can have
 * been removed: per-subject trimming removes a room's oldest message only when it
 * holds `size`, and age removes a prefix of the stream, so it is enough that fewer
 * than `size` messages follow X and that either a message of the room at or
 * before X is still stored, or the stream still starts at or before X + 1, or
 * message X itself is still stored. Otherwise the room is reported trimmed — on
 * the safe side.
 *
 * @internal
 */
import type { Consumer, JetStreamClient, JetStreamManager, StreamInfo } from "@nats-io/jetstream"
import type { Msg, NatsConnection } from "@nats-io/transport-node"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import * as Errors from "../Errors.js"
import type * as NatsStackExchange from "../NatsStackExchange.js"
import type * as StackExchange from "../StackExchange.js"
import { segment } from "./envelope.js"

const defaults = {
  size: 1000,
  maxAge: Duration.days(1),
  publishTimeout: Duration.seconds(5)
}

/** Messages fetched per consumer pull. */
const PAGE = 256

/** @internal */
export interface NatsHistory {
  readonly subject: (namespace: string, room: string) => string
  /** appends one publication; JetStream republishes it to the room's channel with its position */
  readonly publish: (publication: StackExchange.Publication) => Promise<unknown>
  /** the position a republished copy carries; `undefined` for any other message */
  readonly storedOf: (message: Msg) => StackExchange.Stored | undefined
  /** whether the epoch is known (after a reconnect it is not until the stream is checked again) */
  readonly ready: () => boolean
  /** checks (or makes again) the stream after a reconnect */
  readonly ensure: () => Promise<void>
  readonly lost: () => void
  readonly history: StackExchange.TransportHistory
}

const failure = (operation: string, cause: unknown) =>
  new Errors.StackExchangeError({ operation, reason: "Broker", cause })

/** @internal */
export const make = (
  nc: NatsConnection,
  prefix: string,
  options: NonNullable<NatsStackExchange.Options["history"]>
): Effect.Effect<NatsHistory, Errors.StackExchangeError> =>
  Effect.gen(function*() {
    const js = yield* Effect.tryPromise({
      try: () => import("@nats-io/jetstream"),
      catch: (cause) =>
        new Errors.StackExchangeError({
          operation: "configure",
          reason: "Configuration",
          cause: new Error(`a NATS history needs @nats-io/jetstream (npm install @nats-io/jetstream@~3.3.1): ${cause}`)
        })
    })
    const name = options.stream ?? `neffos-history-${prefix.replaceAll(".", "_")}`
    const size = Math.max(1, options.size ?? defaults.size)
    const maxAge = Duration.decode(options.maxAge ?? defaults.maxAge)
    const publishTimeout = Duration.toMillis(defaults.publishTimeout)
    const config = {
      name,
      subjects: [`${prefix}.hist.>`],
      max_msgs_per_subject: size,
      max_age: Duration.isFinite(maxAge) ? Math.round(Duration.toMillis(maxAge) * 1e6) : 0,
      discard: js.DiscardPolicy.Old,
      allow_direct: true,
      storage: options.storage === "memory" ? js.StorageType.Memory : js.StorageType.File,
      num_replicas: options.replicas ?? 1,
      republish: { src: `${prefix}.hist.>`, dest: `${prefix}.room.>` }
    }
    const jsm: JetStreamManager = yield* Effect.tryPromise({
      try: () => js.jetstreamManager(nc),
      catch: (cause) => failure("history", cause)
    })
    const client: JetStreamClient = js.jetstream(nc)
    let epoch: string | undefined
    const epochOf = (info: StreamInfo) =>
      createHash("sha256").update(`${name}\u0000${info.created}`).digest("base64url").slice(0, 12)

    const ensure = async () => {
      let info: StreamInfo
      try {
        info = await jsm.streams.add(config)
      } catch (error) {
        // it exists with other limits: take these
        if (!String(error).includes("already in use")) throw error
        info = await jsm.streams.update(name, config)
      }
      epoch = epochOf(info)
    }
    yield* Effect.tryPromise({ try: ensure, catch: (cause) => failure("history", cause) })

    const subject = (namespace: string, room: string) => `${prefix}.hist.${segment(namespace)}.${segment(room)}`

    const read: StackExchange.TransportHistory["read"] = (namespace, room, _settings, since, limit) =>
      Effect.tryPromise({
        try: async () => {
          const subj = subject(namespace, room)
          const info = await jsm.streams.info(name, { subjects_filter: subj })
          const current = epochOf(info)
          epoch = current
          const state = info.state
          const stored = state.subjects?.[subj] ?? 0
          const last = stored > 0 ? (await jsm.direct.getMessage(name, { last_by_subj: subj }))?.seq ?? 0 : 0
          // without a message of the room, its position is the stream's: nothing of it comes before
          const top = stored > 0 ? last : state.last_seq
          /** the room's messages from `start` on, at most `max`, each with the one before it */
          const fetch = async (start: number, max: number, prev: number) => {
            const entries: Array<{ stored: StackExchange.Stored; payload: Uint8Array }> = []
            if (stored === 0 || last < start || max <= 0) return entries
            const consumer = await client.consumers.get(name, { filter_subjects: subj, opt_start_seq: start })
            try {
              await pages(consumer, entries, max, prev)
            } finally {
              // an ephemeral consumer would otherwise linger until its inactivity threshold
              await consumer.delete().catch(() => false)
            }
            return entries
          }
          /** pulls pages until `max`, the room's last message or the end */
          const pages = async (
            consumer: Consumer,
            entries: Array<{ stored: StackExchange.Stored; payload: Uint8Array }>,
            max: number,
            prev: number
          ) => {
            pull: while (entries.length < max) {
              const batch = await consumer.fetch({ max_messages: Math.min(PAGE, max - entries.length), expires: 2000 })
              let got = 0
              for await (const message of batch) {
                got++
                const time = Math.floor(message.info.timestampNanos / 1e6)
                entries.push({ stored: { epoch: current, offset: message.seq, prev, time }, payload: message.data })
                prev = message.seq
                if (message.seq >= last || message.info.pending === 0 || entries.length >= max) break pull
              }
              if (got === 0) break
            }
          }
          if (since === undefined) {
            // the latest `limit`: the room holds at most `size`
            const all = await fetch(state.first_seq, size, 0)
            const entries = all.slice(Math.max(0, all.length - limit))
            return { position: { epoch: current, offset: top }, entries, covered: true, count: undefined }
          }
          if (since.epoch !== current || since.offset > state.last_seq) {
            return { position: { epoch: current, offset: top }, entries: [], covered: false, count: undefined }
          }
          const x = since.offset
          const entries = await fetch(x + 1, limit + 1, x)
          // nothing after x removed: fewer than `size` follow it, and a prefix removal did not reach past it
          const kept = entries.length < size &&
            (stored > entries.length || state.first_seq <= x + 1 ||
              (x > 0 && (await jsm.direct.getMessage(name, { seq: x }).catch(() => null)) !== null))
          const position = { epoch: current, offset: Math.max(top, entries.length === 0 ? x : top) }
          return { position, entries, covered: kept, count: undefined }
        },
        catch: (cause) => failure("history", cause)
      })

    return {
      subject,
      publish: (publication) => {
        const history = publication.history!
        return client.publish(subject(history.namespace, history.room), publication.payload, {
          timeout: publishTimeout
        })
      },
      storedOf: (message) => {
        const headers = message.headers
        const sequence = headers?.get("Nats-Sequence")
        if (headers === undefined || sequence === undefined || sequence === "" || epoch === undefined) return undefined
        if (headers.get("Nats-Stream") !== name) return undefined
        return { epoch, offset: Number(sequence), prev: Number(headers.get("Nats-Last-Sequence")), time: Date.now() }
      },
      ready: () => epoch !== undefined,
      ensure,
      lost: () => {
        epoch = undefined
      },
      history: { read }
    }
  })
