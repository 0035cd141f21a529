import * as os from "node:os"
import { printCodec, runCodec } from "./codec.js"

const cpus = os.cpus()
console.log(`effect-neffos benchmarks — node ${process.version}, ${cpus.length} x ${cpus[0]?.model ?? "cpu"}`)
printCodec(runCodec({ durationMs: 300, trials: 3 }))
