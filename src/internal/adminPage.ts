/**
 * The dashboard's page: one self-contained HTML document (inline style and
 * script, no external asset) that reads `events` (server-sent events: the state,
 * then an update every sample) relative to its own URL, with its own query string,
 * and draws three SVG charts.
 * User data (room names, connection ids) only ever goes through `textContent`.
 *
 * @internal
 */

/** @internal */
export const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>effect-neffos dashboard</title>
<style>
  :root { --bg: #f5f6f8; --card: #fff; --ink: #1d2330; --muted: #6b7385; --line: #e3e6ec;
    --blue: #2f6fed; --green: #17a673; --orange: #e8862a; --red: #d64545; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
  header { display: flex; align-items: center; gap: 16px; padding: 12px 20px; background: #1d2330; color: #fff; }
  header h1 { font-size: 16px; margin: 0; font-weight: 600; }
  header .muted { color: #aab1c2; }
  #status { margin-left: auto; display: flex; align-items: center; gap: 6px; }
  #status .dot { width: 9px; height: 9px; border-radius: 50%; background: var(--orange); }
  #status.live .dot { background: var(--green); }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(128px, 1fr)); gap: 10px; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
  .card .label { color: var(--muted); font-size: 12px; white-space: nowrap; }
  .card .value { font-size: 21px; font-weight: 600; margin-top: 2px; font-variant-numeric: tabular-nums; white-space: nowrap; }
  .card .value.bad { color: var(--red); }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(330px, 1fr)); gap: 12px; }
  .panel { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; min-width: 0; overflow-x: auto; }
  .panel h2 { font-size: 13px; margin: 0 0 6px; font-weight: 600; }
  .legend { display: flex; gap: 12px; font-size: 12px; color: var(--muted); margin-bottom: 4px; }
  .legend i { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
  svg { width: 100%; height: auto; display: block; }
  .tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; }
  table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 220px; }
  th { color: var(--muted); font-weight: 500; font-size: 12px; }
  td.n, th.n { text-align: right; }
  .empty { color: var(--muted); font-style: italic; }
  .tag { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; background: var(--line); }
  .tag.up { background: #d7f3e8; color: #0e6b49; } .tag.down { background: #fadcdc; color: #8f2222; }
</style>
</head>
<body>
<header>
  <h1>effect-neffos</h1>
  <span class="muted" id="self"></span>
  <div id="status"><span class="dot"></span><span id="status-text">connecting…</span></div>
</header>
<main>
  <section class="cards">
    <div class="card"><div class="label">Connections</div><div class="value" id="connections">–</div></div>
    <div class="card"><div class="label">Instances</div><div class="value" id="instances">–</div></div>
    <div class="card"><div class="label">Messages in /s</div><div class="value" id="rate-in">–</div></div>
    <div class="card"><div class="label">Messages out /s</div><div class="value" id="rate-out">–</div></div>
    <div class="card"><div class="label">Ask p50 / p99 (ms)</div><div class="value" id="ask">–</div></div>
    <div class="card"><div class="label">Handler p99 (ms)</div><div class="value" id="handler">–</div></div>
    <div class="card"><div class="label">Outbox drops</div><div class="value" id="dropped">–</div></div>
    <div class="card"><div class="label">Slow consumers</div><div class="value" id="slow">–</div></div>
    <div class="card"><div class="label">Broker</div><div class="value" id="broker">–</div></div>
  </section>
  <section class="charts">
    <div class="panel"><h2>Connections</h2>
      <div class="legend"><span><i style="background:var(--blue)"></i>all instances</span></div>
      <svg id="chart-connections" viewBox="0 0 400 150" data-points="0"></svg></div>
    <div class="panel"><h2>Messages per second</h2>
      <div class="legend"><span><i style="background:var(--green)"></i>in</span><span><i style="background:var(--orange)"></i>out</span></div>
      <svg id="chart-messages" viewBox="0 0 400 150" data-points="0"></svg></div>
    <div class="panel"><h2>Server ask latency (ms)</h2>
      <div class="legend"><span><i style="background:var(--blue)"></i>p50</span><span><i style="background:var(--red)"></i>p99</span></div>
      <svg id="chart-latency" viewBox="0 0 400 150" data-points="0"></svg></div>
  </section>
  <section class="tables">
    <div class="panel"><h2>Instances</h2><table id="table-instances"><thead><tr>
      <th>instance</th><th class="n">conns</th><th class="n">in/s</th><th class="n">out/s</th><th class="n">ask p99</th><th class="n">drops</th><th class="n">outbox max</th><th>broker</th>
    </tr></thead><tbody></tbody></table></div>
    <div class="panel"><h2>Namespaces</h2><table id="table-namespaces"><thead><tr>
      <th>namespace</th><th class="n">connections</th><th class="n">rooms</th>
    </tr></thead><tbody></tbody></table></div>
    <div class="panel"><h2>Largest rooms</h2><table id="table-rooms"><thead><tr>
      <th>namespace</th><th>room</th><th class="n">members</th>
    </tr></thead><tbody></tbody></table></div>
    <div class="panel"><h2>Fullest outboxes</h2><table id="table-slow"><thead><tr>
      <th>connection</th><th>instance</th><th class="n">frames</th><th class="n">bytes</th>
    </tr></thead><tbody></tbody></table></div>
  </section>
</main>
<script>
(() => {
  "use strict"
  const base = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/"
  const keep = 600
  let state = { self: "", interval: 1000, instances: [], history: [] }
  const $ = (id) => document.getElementById(id)
  const fmt = (n) => n === null || n === undefined ? "–" : n >= 10000 ? (n / 1000).toFixed(1) + "k" : String(n)
  const ms = (n) => n === null || n === undefined ? "–" : n < 1 ? n.toFixed(2) : n < 10 ? n.toFixed(1) : String(Math.round(n))
  const short = (id) => id.length > 8 ? id.slice(0, 8) : id

  const rows = (table, items, cells) => {
    const body = $(table).tBodies[0]
    body.replaceChildren()
    if (items.length === 0) {
      const tr = body.insertRow(); const td = tr.insertCell()
      td.colSpan = $(table).tHead.rows[0].cells.length; td.className = "empty"; td.textContent = "none"
      return
    }
    for (const item of items) {
      const tr = body.insertRow()
      for (const [text, numeric, attrs] of cells(item)) {
        const td = tr.insertCell(); td.textContent = text
        if (numeric) td.className = "n"
        if (attrs) for (const k in attrs) td.setAttribute(k, attrs[k])
      }
    }
  }

  const chart = (id, series) => {
    const svg = $(id)
    const w = 400, h = 150, left = 34, top = 8, bottom = 18
    const n = Math.max(...series.map((s) => s.values.length), 0)
    let max = 0
    for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v
    const step = max <= 5 ? 1 : Math.pow(10, Math.floor(Math.log10(max)))
    const top_ = Math.max(step, Math.ceil((max * 1.1) / step) * step)
    const x = (i) => left + (n <= 1 ? 0 : (i * (w - left - 4)) / (n - 1))
    const y = (v) => top + (h - top - bottom) * (1 - v / top_)
    let out = ""
    for (const f of [0, 0.5, 1]) {
      const v = top_ * f, yy = y(v).toFixed(1)
      out += '<line x1="' + left + '" x2="' + w + '" y1="' + yy + '" y2="' + yy + '" stroke="#e3e6ec"/>'
      out += '<text x="' + (left - 4) + '" y="' + (Number(yy) + 4) + '" font-size="11" text-anchor="end" fill="#6b7385">' + fmt(Math.round(v * 100) / 100) + '</text>'
    }
    const span = n > 1 ? Math.round(((n - 1) * state.interval) / 1000) : 0
    out += '<text x="' + left + '" y="' + (h - 4) + '" font-size="11" fill="#6b7385">-' + span + ' s</text>'
    out += '<text x="' + w + '" y="' + (h - 4) + '" font-size="11" text-anchor="end" fill="#6b7385">now</text>'
    for (const s of series) {
      let d = "", pen = false
      s.values.forEach((v, i) => {
        if (v === null) { pen = false; return }
        d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1); pen = true
      })
      out += '<path d="' + d + '" fill="none" stroke="' + s.color + '" stroke-width="2" stroke-linejoin="round"/>'
    }
    svg.innerHTML = out
    svg.dataset.points = String(n)
  }

  const render = () => {
    const all = state.instances
    const sum = (f) => all.reduce((n, i) => n + f(i), 0)
    const me = all.find((i) => i.instance === state.self)
    $("self").textContent = "instance " + short(state.self)
    $("connections").textContent = fmt(sum((i) => i.connections))
    $("instances").textContent = String(all.length)
    $("rate-in").textContent = fmt(sum((i) => i.receivedRate))
    $("rate-out").textContent = fmt(sum((i) => i.sentRate))
    $("ask").textContent = me ? ms(me.asks.p50) + " / " + ms(me.asks.p99) : "–"
    $("handler").textContent = me ? ms(me.handlers.p99) : "–"
    $("dropped").textContent = fmt(sum((i) => i.dropped))
    $("dropped").classList.toggle("bad", sum((i) => i.dropped) > 0)
    $("slow").textContent = fmt(sum((i) => i.slowConsumers))
    const brokers = new Set(all.map((i) => i.broker))
    $("broker").textContent = brokers.has("down") ? "down" : brokers.has("up") ? "up" : "none"
    $("broker").classList.toggle("bad", brokers.has("down"))

    rows("table-instances", all, (i) => [
      [short(i.instance) + (i.instance === state.self ? " (this)" : ""), false],
      [fmt(i.connections), true], [fmt(i.receivedRate), true], [fmt(i.sentRate), true],
      [ms(i.asks.p99), true], [fmt(i.dropped), true], [fmt(i.outboxHighWater), true], [i.broker, false]
    ])
    const namespaces = new Map()
    for (const i of all) for (const ns of i.namespaces) {
      const seen = namespaces.get(ns.name) ?? { name: ns.name, connections: 0, rooms: 0 }
      seen.connections += ns.connections; seen.rooms += ns.rooms; namespaces.set(ns.name, seen)
    }
    rows("table-namespaces", [...namespaces.values()], (ns) => [
      [ns.name === "" ? '""' : ns.name, false, { "data-namespace": ns.name }], [fmt(ns.connections), true], [fmt(ns.rooms), true]
    ])
    const rooms = new Map()
    for (const i of all) for (const r of i.rooms) {
      const key = JSON.stringify([r.namespace, r.room])
      const seen = rooms.get(key) ?? { namespace: r.namespace, room: r.room, members: 0 }
      seen.members += r.members; rooms.set(key, seen)
    }
    const largest = [...rooms.values()].sort((a, b) => b.members - a.members).slice(0, 10)
    rows("table-rooms", largest, (r) => [
      [r.namespace, false], [r.room, false], [String(r.members), true, { "data-room": r.namespace + "/" + r.room }]
    ])
    const fullest = []
    for (const i of all) for (const f of i.fullestOutboxes) fullest.push({ ...f, instance: i.instance })
    fullest.sort((a, b) => b.frames - a.frames)
    rows("table-slow", fullest.slice(0, 10), (f) => [
      [f.id, false], [short(f.instance), false], [fmt(f.frames), true], [fmt(f.bytes), true]
    ])

    const h = state.history
    chart("chart-connections", [{ color: "#2f6fed", values: h.map((p) => p.connections) }])
    chart("chart-messages", [
      { color: "#17a673", values: h.map((p) => p.receivedRate) },
      { color: "#e8862a", values: h.map((p) => p.sentRate) }
    ])
    chart("chart-latency", [
      { color: "#2f6fed", values: h.map((p) => p.askP50) },
      { color: "#d64545", values: h.map((p) => p.askP99) }
    ])
  }

  const live = (on, text) => {
    $("status").classList.toggle("live", on)
    $("status-text").textContent = text
  }
  // the page's own query (a token, say) goes along: auth in front of the page covers its stream too
  const source = new EventSource(base + "events" + location.search)
  source.addEventListener("state", (e) => { state = JSON.parse(e.data); live(true, "live"); render() })
  source.addEventListener("update", (e) => {
    const update = JSON.parse(e.data)
    state.history.push(update.point)
    if (state.history.length > keep) state.history.splice(0, state.history.length - keep)
    state.instances = update.instances
    render()
  })
  source.onerror = () => live(false, "reconnecting…")
})()
</script>
</body>
</html>
`
