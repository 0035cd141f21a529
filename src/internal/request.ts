/**
 * The request a connection sees: neffos.js in browsers cannot set WebSocket
 * headers, so it sends them as `X-Websocket-Header-<Name>` query parameters.
 *
 * @internal
 */
import type * as Conn from "../Conn.js"

const headerPrefix = "x-websocket-header-"

/**
 * The request with its `X-Websocket-Header-<Name>` query parameters turned into
 * (lower-case) headers; a parameter and a real header of the same name are joined
 * with ", ", as Node joins repeated headers.
 *
 * @internal
 */
export const withQueryHeaders = (request: Conn.Request): Conn.Request => {
  const q = request.url.indexOf("?")
  if (q === -1 || request.url.toLowerCase().indexOf(headerPrefix, q) === -1) return request
  const headers: Record<string, string> = { ...request.headers }
  for (const [key, value] of new URLSearchParams(request.url.slice(q + 1))) {
    if (key.length > headerPrefix.length && key.toLowerCase().startsWith(headerPrefix)) {
      const name = key.slice(headerPrefix.length).toLowerCase()
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
    }
  }
  return { ...request, headers }
}
