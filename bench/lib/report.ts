/**
 * Collects per-trial samples and turns them into medians and paired ratios, printed as tables and
 * written as JSON.
 */
import { median } from "./time.js"

export type Unit = "rate" | "us" | "pct" | "bytes" | "ratio"

export interface Metric {
  readonly key: string
  readonly label: string
  readonly unit: Unit
  /** Whether paired ratios against the reference servers mean something for this metric. */
  readonly paired: boolean
}

export interface Scenario {
  readonly id: string
  readonly title: string
  readonly metrics: ReadonlyArray<Metric>
}

export interface Sample {
  readonly server: string
  readonly trial: number
  readonly values: Readonly<Record<string, number>>
}

/**
 * The servers every other one is compared with, trial by trial ("neffos": the contract server's
 * baseline; "neffos bare": without metrics or tracer, the baseline of observability's cost).
 */
export const references = ["ws", "socket.io", "neffos", "neffos bare", "neffos baseline"] as const

export class Results {
  private readonly scenarios = new Map<string, { readonly scenario: Scenario; readonly samples: Array<Sample> }>()

  record(scenario: Scenario, sample: Sample) {
    const entry = this.scenarios.get(scenario.id) ?? { scenario, samples: [] }
    this.scenarios.set(scenario.id, entry)
    entry.samples.push(sample)
  }

  /** Medians over trials, and the medians of the per-trial ratios to each reference server. */
  summary(servers: ReadonlyArray<string>) {
    return [...this.scenarios.values()].map(({ samples, scenario }) => {
      const of = (server: string) => samples.filter((s) => s.server === server)
      const rows = servers.filter((server) => of(server).length > 0).map((server) => {
        const own = of(server)
        const metrics = Object.fromEntries(scenario.metrics.map((metric) => {
          const ratios = Object.fromEntries(references.map((reference) => {
            const pairs = own.flatMap((s) => {
              const ref = of(reference).find((r) => r.trial === s.trial)
              return ref ? [s.values[metric.key] / ref.values[metric.key]] : []
            })
            return [reference, median(pairs)]
          }))
          return [metric.key, { median: median(own.map((s) => s.values[metric.key])), ratios }]
        }))
        return { server, trials: own.length, metrics }
      })
      return { ...scenario, rows, samples }
    })
  }
}

export type Summary = ReturnType<Results["summary"]>

const si = (value: number) =>
  value >= 1e6 ? `${(value / 1e6).toFixed(2)}M` : value >= 1e3 ? `${(value / 1e3).toFixed(1)}k` : value.toFixed(0)

const format = (unit: Unit, value: number): string => {
  if (!Number.isFinite(value)) return "-"
  switch (unit) {
    case "rate":
      return `${si(value)}/s`
    case "us":
      return value >= 100 ? value.toFixed(0) : value.toFixed(2)
    case "pct":
      return `${(value * 100).toFixed(1)}%`
    case "bytes":
      return Math.abs(value) >= 1e6 ? `${(value / 1e6).toFixed(1)} MB` : `${(value / 1e3).toFixed(1)} kB`
    case "ratio":
      return `${value.toFixed(2)}x`
  }
}

const ratio = (value: number | undefined) =>
  value === undefined || !Number.isFinite(value) ? "-" : `${value.toFixed(2)}`

const valueWidth = 11
const ratioWidth = 6
const nameWidth = 19

export const printSummary = (summary: Summary) => {
  for (const scenario of summary) {
    console.log(`\n${scenario.title}`)
    const head = scenario.metrics.map((m) =>
      m.paired
        ? m.label.padStart(valueWidth) + "×ws".padStart(ratioWidth) + "×sio".padStart(ratioWidth)
        : m.label.padStart(valueWidth)
    )
    console.log(`  ${"".padEnd(nameWidth)}${head.join("  ")}`)
    for (const row of scenario.rows) {
      const cells = scenario.metrics.map((m) => {
        const cell = row.metrics[m.key]
        const value = format(m.unit, cell.median).padStart(Math.max(valueWidth, m.label.length))
        if (!m.paired) return value
        return value + ratio(cell.ratios.ws).padStart(ratioWidth) + ratio(cell.ratios["socket.io"]).padStart(ratioWidth)
      })
      console.log(`  ${row.server.padEnd(nameWidth)}${cells.join("  ")}`)
    }
  }
}

/**
 * This checkout against another (`--baseline=<checkout>`): every scenario's paired metrics of
 * `neffos` over `neffos baseline`, measured in the same interleaved trials.
 */
export const printBaseline = (summary: Summary) => {
  const lines = summary.flatMap((scenario) => {
    const row = scenario.rows.find((r) => r.server === "neffos")
    if (row === undefined || !scenario.rows.some((r) => r.server === "neffos baseline")) return []
    const cells = scenario.metrics.filter((m) => m.paired).map((m) =>
      `${m.label} ${ratio(row.metrics[m.key].ratios["neffos baseline"])}x`
    )
    return [`  ${scenario.title}\n    ${cells.join(", ")}`]
  })
  if (lines.length === 0) return
  console.log("\nThis checkout vs the baseline (neffos / neffos baseline, medians of per-trial ratios):")
  for (const line of lines) console.log(line)
}

/** What a typed contract costs: the contract server against the untyped one, per scenario it ran. */
/** A recoverable room against a plain one: the room fan-outs of `neffos history` over `neffos`. */
export const printHistoryCost = (summary: Summary, server = "neffos history") => {
  const lines = summary.flatMap((scenario) => {
    const row = scenario.rows.find((r) => r.server === server)
    if (row === undefined || !scenario.id.startsWith("fanout-room")) return []
    const cells = scenario.metrics.filter((m) => m.paired).map((m) =>
      `${m.label} ${ratio(row.metrics[m.key].ratios.neffos)}x`
    )
    return [`  ${scenario.title}\n    ${cells.join(", ")}`]
  })
  if (lines.length === 0) return
  console.log(`\nRecoverable room vs plain room (${server} / neffos, medians of per-trial ratios; target ≥ 0.8x):`)
  for (const line of lines) console.log(line)
}

export const printContractCost = (summary: Summary, server = "neffos contract") => {
  const lines = summary.flatMap((scenario) => {
    const row = scenario.rows.find((r) => r.server === server)
    if (row === undefined) return []
    const cells = scenario.metrics.filter((m) => m.paired).map((m) =>
      `${m.label} ${ratio(row.metrics[m.key].ratios.neffos)}x`
    )
    return [`  ${scenario.title}\n    ${cells.join(", ")}`]
  })
  if (lines.length === 0) return
  console.log(`\nTyped contract vs untyped (${server} / neffos, medians of per-trial ratios):`)
  for (const line of lines) console.log(line)
}

/** What observability costs: metrics on, and a no-op tracer installed, against neither ("neffos bare"). */
export const printObserveCost = (summary: Summary) => {
  const lines = summary.flatMap((scenario) => {
    const cells = ["neffos", "neffos noop tracer"].flatMap((server) => {
      const row = scenario.rows.find((r) => r.server === server)
      if (row === undefined || !scenario.rows.some((r) => r.server === "neffos bare")) return []
      const values = scenario.metrics.filter((m) => m.paired).map((m) =>
        `${m.label} ${ratio(row.metrics[m.key].ratios["neffos bare"])}x`
      )
      return [`    ${server === "neffos" ? "metrics on" : "metrics on + no-op tracer"}: ${values.join(", ")}`]
    })
    return cells.length === 0 ? [] : [`  ${scenario.title}\n${cells.join("\n")}`]
  })
  if (lines.length === 0) return
  console.log("\nObservability vs none (/ neffos bare: metrics: false, no tracer; medians of per-trial ratios):")
  for (const line of lines) console.log(line)
}

/**
 * A write coalescing window against none: the fan-outs of `neffos flush-2ms` as ratios to raw `ws`
 * and to the default server, and the p50/p99 delivery latency it adds (difference of the medians).
 */
export const printFlushCost = (summary: Summary, server = "neffos flush-2ms") => {
  const ms = (us: number) => (Number.isFinite(us) ? `${us >= 0 ? "+" : ""}${(us / 1e3).toFixed(2)} ms` : "-")
  const lines = summary.flatMap((scenario) => {
    const row = scenario.rows.find((r) => r.server === server)
    const base = scenario.rows.find((r) => r.server === "neffos")
    if (row === undefined || !scenario.id.startsWith("fanout-")) return []
    const cells = scenario.metrics.filter((m) => m.paired).map((m) =>
      `${m.label} ${ratio(row.metrics[m.key].ratios.ws)}x ws, ${ratio(row.metrics[m.key].ratios.neffos)}x neffos`
    )
    const added = ["p50Us", "p99Us"].flatMap((key) => {
      const own = row.metrics[key]?.median
      const ref = base?.metrics[key]?.median
      return own === undefined || ref === undefined ? [] : [`${key.slice(0, 3)} ${ms(own - ref)}`]
    })
    return [`  ${scenario.title}\n    ${cells.join("; ")}${added.length > 0 ? `; added ${added.join(", ")}` : ""}`]
  })
  if (lines.length === 0) return
  console.log(`\nWrite coalescing window (${server}, medians of per-trial ratios; target ≥ 3x ws at 1,000 clients):`)
  for (const line of lines) console.log(line)
}
