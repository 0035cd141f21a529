/**
 * Codec throughput: encode and decode of a 100-byte chat message, next to
 * JSON.stringify / JSON.parse of the same fields, measured in the same run.
 */
import * as Message from "../src/Message.js"

const body = "x".repeat(100 - ";default;lobby;chat;0;0;".length)
const message = Message.make({ namespace: "default", room: "lobby", event: "chat", body })
const frame = Message.encode(message) as string
const json = JSON.stringify({ namespace: "default", room: "lobby", event: "chat", body })

let sink = 0

const measure = (name: string, run: () => number, durationMs: number) => {
  // warm up, then count whole batches until the time is up
  for (let i = 0; i < 50_000; i++) sink += run()
  const batch = 10_000
  let ops = 0
  const start = process.hrtime.bigint()
  const deadline = start + BigInt(durationMs) * 1_000_000n
  let now = start
  while (now < deadline) {
    for (let i = 0; i < batch; i++) sink += run()
    ops += batch
    now = process.hrtime.bigint()
  }
  return { name, opsPerSec: ops / (Number(now - start) / 1e9) }
}

export interface CodecResult {
  readonly name: string
  readonly opsPerSec: number
}

export const runCodec = (options: { readonly durationMs: number; readonly trials: number }) => {
  const cases: ReadonlyArray<readonly [string, () => number]> = [
    [
      "neffos encode",
      () =>
        (Message.encode(Message.make({ namespace: "default", room: "lobby", event: "chat", body })) as string).length
    ],
    ["JSON.stringify", () => JSON.stringify({ namespace: "default", room: "lobby", event: "chat", body }).length],
    ["neffos decode", () => (Message.decode(frame) as Message.Message).body.length],
    ["JSON.parse", () => (JSON.parse(json) as { body: string }).body.length]
  ]
  const samples = new Map<string, Array<number>>()
  for (let t = 0; t < options.trials; t++) {
    for (const [name, run] of cases) {
      const r = measure(name, run, options.durationMs)
      samples.set(name, [...(samples.get(name) ?? []), r.opsPerSec])
    }
  }
  const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const results = [...samples].map(([name, xs]) => ({ name, opsPerSec: median(xs) }))
  const get = (name: string) => results.find((r) => r.name === name)!.opsPerSec
  return {
    results,
    ratios: {
      encodeVsStringify: get("neffos encode") / get("JSON.stringify"),
      decodeVsParse: get("neffos decode") / get("JSON.parse")
    },
    sink
  }
}

export const printCodec = (r: ReturnType<typeof runCodec>) => {
  console.log(`\nCodec: 100-byte chat message (${frame.length} bytes on the wire), median of trials`)
  for (const { name, opsPerSec } of r.results) {
    console.log(`  ${name.padEnd(16)} ${(opsPerSec / 1e6).toFixed(2).padStart(7)} M msg/s`)
  }
  console.log(`  encode / JSON.stringify: ${r.ratios.encodeVsStringify.toFixed(2)}x`)
  console.log(`  decode / JSON.parse:     ${r.ratios.decodeVsParse.toFixed(2)}x`)
}
