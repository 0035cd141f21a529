/**
 * The chat page's script (bundled by examples/chat.ts): the same session as the
 * terminal client (examples/chat-session.ts), its lines from the page's form and
 * its output into the page, on effect-neffos's browser transport.
 */
import { Client } from "effect-neffos"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import { session } from "../chat-session.js"

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T

const log = element<HTMLDivElement>("log")
const status = element<HTMLParagraphElement>("status")
const line = element<HTMLInputElement>("line")
const sayButton = element<HTMLFormElement>("say").querySelector("button")!

const print = (text: string, mine = false) =>
  Effect.sync(() => {
    const row = document.createElement("div")
    row.textContent = text
    if (mine) row.className = "me"
    log.append(row)
    log.scrollTop = log.scrollHeight
  })

element<HTMLFormElement>("login").addEventListener("submit", (event) => {
  event.preventDefault()
  const name = element<HTMLInputElement>("name").value.trim()
  if (name === "") return
  element<HTMLFormElement>("login").hidden = true
  const lines = Effect.runSync(Queue.unbounded<string>())
  element<HTMLFormElement>("say").addEventListener("submit", (event) => {
    event.preventDefault()
    if (line.value.trim() === "") return
    Effect.runFork(Effect.zipRight(print(`> ${line.value}`, true), Queue.offer(lines, line.value)))
    line.value = ""
  })
  line.disabled = false
  sayButton.disabled = false
  status.textContent = `connected as ${name}: type a message, or /join lobby`
  line.focus()
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/echo`
  session({ name, url, lines: Stream.fromQueue(lines), print: (text) => print(text) }).pipe(
    Effect.catchAll((error) => print(`error: ${error.message}`)),
    Effect.ensuring(Effect.sync(() => {
      status.textContent = "disconnected"
      line.disabled = true
      sayButton.disabled = true
    })),
    Effect.scoped,
    Effect.provide(Client.layerBrowser),
    Effect.runFork
  )
})
