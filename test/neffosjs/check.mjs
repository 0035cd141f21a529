/**
 * The welcome check, run with the published neffos.js 0.1.34 in a Node process of
 * its own (node.mjs) and in Chromium (test/Welcome.neffosjs.test.ts serves this
 * file as it is): `connections` fresh connections dial the example chat server at
 * once (at most `parallel` at a time), each connects to `default` and must receive
 * the `welcome, <id>` notice that the server's `_OnNamespaceConnected` emits.
 *
 * - `ask: true`: the client asks `workday` right after `connect` resolved. The
 *   server emits the welcome before it handles that ask, so a reply without the
 *   welcome before it means that the welcome was lost.
 * - `ask: false`: the client sends nothing more and waits for the welcome, at
 *   most `wait` milliseconds after `connect` resolved.
 */

/**
 * @param {any} neffos the neffos.js module
 * @param {string} url
 * @param {{ readonly connections: number; readonly parallel: number; readonly ask: boolean; readonly wait: number }} options
 * @returns {Promise<{ connections: number; welcomed: number; errors: Array<string> }>}
 */
export const checkWelcome = async (neffos, url, { ask, connections, parallel, wait }) => {
  const conns = []
  const errors = []
  let welcomed = 0
  const one = async () => {
    let welcome
    let arrived
    const received = new Promise((resolve) => {
      arrived = resolve
    })
    const conn = await neffos.dial(url, {
      default: {
        // the example's contract: bodies are JSON (a notice is a JSON string)
        notice: (_ns, msg) => {
          const text = JSON.parse(msg.Body)
          if (welcome === undefined && text.startsWith("welcome, ")) {
            welcome = text
            arrived()
          }
        }
      }
    })
    conns.push(conn)
    const ns = await conn.connect("default")
    if (ask) {
      const reply = await ns.ask("workday", JSON.stringify("2026-11-25"))
      if (reply.Body !== "true") throw new Error(`unexpected reply: ${reply.Body}`)
    } else {
      let timer
      await Promise.race([received, new Promise((resolve) => timer = setTimeout(resolve, wait))])
      clearTimeout(timer)
    }
    if (welcome === `welcome, ${conn.ID}`) welcomed++
    else if (welcome !== undefined) throw new Error(`unexpected welcome: ${welcome}`)
  }
  let started = 0
  const worker = async () => {
    while (started < connections) {
      started++
      await one().catch((error) => {
        errors.push(String(error?.message ?? error))
      })
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, connections) }, worker))
  for (const conn of conns) conn.close()
  return { connections, welcomed, errors }
}
