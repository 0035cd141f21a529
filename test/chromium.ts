/**
 * What the browser tests share: Debian's Chromium driven by playwright-core, and
 * pages served from a loopback origin (Chromium blocks about:blank from reaching
 * loopback).
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as path from "node:path"
import { chromium } from "playwright-core"
import { inject } from "vitest"

/** A headless Chromium for the lifetime of the scope (the flags this machine's closed network needs). */
export const browser = Effect.acquireRelease(
  Effect.promise(() =>
    chromium.launch({
      executablePath: inject("chromium"),
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync"
      ]
    })
  ),
  (browser) => Effect.promise(() => browser.close())
)

/** Serves `files` (path → content; `/` is the HTML page) on 127.0.0.1; returns the page's URL. */
export const serveFiles = (files: Readonly<Record<string, string>>) =>
  Effect.acquireRelease(
    Effect.async<Http.Server>((resume) => {
      const server = Http.createServer((req, res) => {
        const body = files[req.url ?? ""]
        if (body === undefined) return void res.writeHead(404).end()
        const type = req.url === "/" ? "text/html" : "text/javascript"
        res.writeHead(200, { "content-type": `${type}; charset=utf-8` }).end(body)
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.sync(() => server.close())
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as Net.AddressInfo).port}/`))

/** neffos.js 0.1.34's own ES module build, as published. */
export const neffosModule = Fs.readFileSync(
  path.join(import.meta.dirname, "..", "node_modules/neffos.js/dist/neffos.js"),
  "utf8"
)
