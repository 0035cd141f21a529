/**
 * The welcome check (check.mjs) with neffos.js on Node, in a process of its own:
 * `node test/neffosjs/node.mjs <url> <connections> <ask|no-ask> <wait ms>` dials
 * all connections at once and prints the result as one line of JSON.
 */
import * as neffos from "neffos.js"
import { checkWelcome } from "./check.mjs"

const [url, connections, mode, wait] = process.argv.slice(2)
const result = await checkWelcome(neffos, url, {
  connections: Number(connections),
  parallel: Number(connections),
  ask: mode === "ask",
  wait: Number(wait)
})
process.stdout.write(JSON.stringify(result) + "\n")
process.exit(0)
