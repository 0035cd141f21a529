/**
 * Room histories in Redis: a stream per room (entry id = the message's offset,
 * trimmed with `MAXLEN ~`) and a small hash (`e`: the epoch, `s`: the last
 * offset). One Lua script per broadcast assigns the offset, appends the entry and
 * publishes the envelope with its position in one atomic step, so every instance
 * sees the same positions in the same order. The stream key expires `ttl` after
 * the room's last message, the hash (kept longer, `metaTtl`) keeps the epoch and
 * offset of an idle room; when the hash is gone (expired, or lost with a Redis
 * that restarted without persistence) the next write starts a new epoch.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Redis } from "ioredis"
import * as Errors from "../Errors.js"
import type * as StackExchange from "../StackExchange.js"
import { segment } from "./envelope.js"
import { newEpoch } from "./historyStore.js"

/** Marks a published payload that carries its position before the envelope (envelopes start with 1). */
const STORED = 2

const appendScript = String.raw`
local e = redis.call('HGET', KEYS[2], 'e')
if not e then
  e = ARGV[6]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', e, 's', 0)
end
local offset = redis.call('HINCRBY', KEYS[2], 's', 1)
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], offset .. '-0', 'd', ARGV[2], 't', ms)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return redis.call('PUBLISH', ARGV[1], '\2' .. offset .. ':' .. (offset - 1) .. ':' .. ms .. ':' .. e .. '\n' .. ARGV[2])
`

const readScript = String.raw`
local e = redis.call('HGET', KEYS[2], 'e')
if not e then
  e = ARGV[3]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', e, 's', 0)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
local s = redis.call('HGET', KEYS[2], 's')
local entries = {}
if ARGV[1] ~= '' and ARGV[5] == e then
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
elseif ARGV[1] == '' and tonumber(ARGV[2]) > 0 then
  entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[2])
end
return {e, s, entries}
`

/** Entries read per Redis call. */
const PAGE = 500

interface Commands {
  neffosAppend(...args: Array<string | Buffer | number>): Promise<number>
  neffosReadBuffer(...args: Array<string | number>): Promise<[Buffer, Buffer, Array<RawEntry>]>
}

type RawEntry = [Buffer, Array<Buffer>]

/** The keys of a room's history. @internal */
export const keys = (prefix: string, namespace: string, room: string): readonly [string, string] => {
  // one hash tag: both keys live in the same slot of a Redis Cluster
  const base = `${prefix}.hist.{${segment(namespace)}.${segment(room)}}`
  return [base, `${base}.meta`]
}

/** Teaches a connection the two scripts (EVALSHA, with EVAL when Redis does not know them yet). @internal */
export const define = (redis: Redis): void => {
  redis.defineCommand("neffosAppend", { numberOfKeys: 2, lua: appendScript })
  redis.defineCommand("neffosRead", { numberOfKeys: 2, lua: readScript })
}

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000))

/** The arguments of the append script for one publication. @internal */
export const appendArgs = (
  prefix: string,
  metaTtl: Duration.Duration,
  publication: StackExchange.Publication & { readonly history: NonNullable<StackExchange.Publication["history"]> },
  payload: Buffer
): Array<string | Buffer | number> => {
  const { namespace, room, size, ttl } = publication.history
  const [stream, meta] = keys(prefix, namespace, room)
  return [
    stream,
    meta,
    publication.channel,
    payload,
    Math.max(1, size),
    Math.max(1, Math.ceil(ttl)),
    Math.max(seconds(ttl) + 1, seconds(Duration.toMillis(metaTtl))),
    newEpoch()
  ]
}

/** Runs the append script on a pipeline (a connection is also one). @internal */
export const append = (target: unknown, args: Array<string | Buffer | number>): Promise<number> =>
  (target as Commands).neffosAppend(...args)

/**
 * A published payload that carries its position: the position and the envelope;
 * `undefined` for any other payload.
 *
 * @internal
 */
export const parseStored = (
  message: Buffer
): { readonly stored: StackExchange.Stored; readonly payload: Buffer } | undefined => {
  if (message.length === 0 || message[0] !== STORED) return undefined
  const end = message.indexOf(10)
  if (end === -1) return undefined
  const [offset, prev, time, epoch] = message.toString("latin1", 1, end).split(":")
  if (epoch === undefined) return undefined
  return {
    stored: { epoch, offset: Number(offset), prev: Number(prev), time: Number(time) },
    payload: message.subarray(end + 1)
  }
}

const fieldOf = (fields: Array<Buffer>, name: string): Buffer | undefined => {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i].toString("latin1") === name) return fields[i + 1]
  }
  return undefined
}

/** The history as the exchange reads it, on the publishing connection. @internal */
export const history = (
  redis: Redis,
  prefix: string,
  metaTtl: Duration.Duration
): StackExchange.TransportHistory => {
  const command = <A>(f: () => Promise<A>) =>
    Effect.tryPromise({
      try: f,
      catch: (cause) => new Errors.StackExchangeError({ operation: "history", reason: "Broker", cause })
    })
  const toEntry = ([id, fields]: RawEntry, epoch: string) => {
    const offset = Number(id.toString("latin1").split("-")[0])
    return {
      stored: { epoch, offset, prev: offset - 1, time: Number(fieldOf(fields, "t")?.toString("latin1") ?? 0) },
      payload: new Uint8Array(fieldOf(fields, "d") ?? Buffer.alloc(0))
    }
  }
  return {
    read: (namespace, room, settings, since, limit) =>
      Effect.gen(function*() {
        const [stream, meta] = keys(prefix, namespace, room)
        const wanted = limit + 1
        const [rawEpoch, rawTop, first] = yield* command(() =>
          (redis as unknown as Commands).neffosReadBuffer(
            stream,
            meta,
            since === undefined ? "" : String(since.offset),
            // without since: the latest `limit`, newest first
            since === undefined ? limit : Math.min(PAGE, wanted),
            newEpoch(),
            Math.max(seconds(settings.ttl) + 1, seconds(Duration.toMillis(metaTtl))),
            since?.epoch ?? ""
          )
        )
        const epoch = rawEpoch.toString("latin1")
        const top = Number(rawTop.toString("latin1"))
        const position = { epoch, offset: top }
        if (since === undefined) {
          return {
            position,
            entries: first.map((raw) => toEntry(raw, epoch)).reverse(),
            covered: true,
            count: undefined
          }
        }
        if (since.epoch !== epoch || since.offset >= top) {
          return { position, entries: [], covered: since.epoch === epoch, count: undefined }
        }
        const entries = first.map((raw) => toEntry(raw, epoch))
        let page = first
        // later pages: everything after the last entry read, until `limit + 1` or the end
        while (page.length === PAGE && entries.length < wanted) {
          const after = entries[entries.length - 1].stored.offset
          page = (yield* command(() =>
            redis.xrangeBuffer(stream, `(${after}-0`, "+", "COUNT", Math.min(PAGE, wanted - entries.length))
          )) as unknown as Array<RawEntry>
          for (const raw of page) {
            entries.push(toEntry(raw, epoch))
          }
        }
        const count = top - since.offset
        // contiguous from since + 1, as far as the top (or the limit) reaches
        let covered = entries.length >= Math.min(count, wanted)
        for (let i = 0; covered && i < entries.length; i++) {
          if (entries[i].stored.offset !== since.offset + 1 + i) {
            covered = false
          }
        }
        return { position, entries, covered, count }
      })
  }
}
