/**
 * The Prometheus text exposition format (0.0.4) of Effect metric snapshots:
 * every metric of the registry, ours and the application's, with `# HELP` and
 * `# TYPE` once per name; a monotonic counter as `<name>_total`; a histogram as
 * cumulative `_bucket{le}` lines ending with `+Inf`, then `_sum` and `_count`.
 *
 * @internal
 */
import * as MetricKeyType from "effect/MetricKeyType"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"

/** @internal */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

const sanitizeName = (name: string): string => {
  const clean = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[0-9]/.test(clean) ? "_" + clean : clean
}

const sanitizeLabel = (name: string): string => {
  const clean = name.replace(/[^a-zA-Z0-9_]/g, "_")
  return /^[0-9]/.test(clean) || clean.startsWith("__") ? "_" + clean : clean
}

const escapeValue = (value: string): string => value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

const escapeHelp = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const formatNumber = (n: number | bigint): string => {
  if (typeof n === "bigint") return n.toString()
  if (Number.isNaN(n)) return "NaN"
  if (n === Infinity) return "+Inf"
  if (n === -Infinity) return "-Inf"
  return String(n)
}

type Labels = ReadonlyArray<readonly [string, string]>

const formatLabels = (labels: Labels): string =>
  labels.length === 0
    ? ""
    : "{" + labels.map(([key, value]) => `${sanitizeLabel(key)}="${escapeValue(value)}"`).join(",") + "}"

interface Family {
  readonly type: "counter" | "gauge" | "histogram" | "summary"
  help: string
  readonly lines: Array<string>
}

/** @internal */
export const render = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  const family = (name: string, type: Family["type"], help: string): Family => {
    let found = families.get(name)
    if (found === undefined) {
      found = { type, help, lines: [] }
      families.set(name, found)
    } else if (found.help === "") {
      found.help = help
    }
    return found
  }
  for (const pair of pairs) {
    const key = pair.metricKey
    const state = pair.metricState
    const name = sanitizeName(key.name)
    const help = Option.getOrElse(key.description, () => "")
    const labels: Labels = key.tags.map((tag) => [tag.key, tag.value] as const)
    if (MetricState.isCounterState(state)) {
      const monotonic = MetricKeyType.isCounterKey(key.keyType) && key.keyType.incremental
      if (monotonic) {
        family(name, "counter", help).lines.push(`${name}_total${formatLabels(labels)} ${formatNumber(state.count)}`)
      } else {
        family(name, "gauge", help).lines.push(`${name}${formatLabels(labels)} ${formatNumber(state.count)}`)
      }
    } else if (MetricState.isGaugeState(state)) {
      family(name, "gauge", help).lines.push(`${name}${formatLabels(labels)} ${formatNumber(state.value)}`)
    } else if (MetricState.isHistogramState(state)) {
      const lines = family(name, "histogram", help).lines
      let infinite = false
      for (const [bound, count] of state.buckets) {
        if (bound === Infinity) infinite = true
        lines.push(`${name}_bucket${formatLabels([...labels, ["le", formatNumber(bound)]])} ${count}`)
      }
      if (!infinite) lines.push(`${name}_bucket${formatLabels([...labels, ["le", "+Inf"]])} ${state.count}`)
      lines.push(`${name}_sum${formatLabels(labels)} ${formatNumber(state.sum)}`)
      lines.push(`${name}_count${formatLabels(labels)} ${state.count}`)
    } else if (MetricState.isSummaryState(state)) {
      const lines = family(name, "summary", help).lines
      for (const [quantile, value] of state.quantiles) {
        const v = Option.getOrElse(value, () => NaN)
        lines.push(`${name}${formatLabels([...labels, ["quantile", formatNumber(quantile)]])} ${formatNumber(v)}`)
      }
      lines.push(`${name}_sum${formatLabels(labels)} ${formatNumber(state.sum)}`)
      lines.push(`${name}_count${formatLabels(labels)} ${state.count}`)
    } else if (MetricState.isFrequencyState(state)) {
      const lines = family(name, "counter", help).lines
      for (const [word, count] of state.occurrences) {
        lines.push(`${name}_total${formatLabels([...labels, ["key", word]])} ${count}`)
      }
    }
  }
  let out = ""
  for (const name of Array.from(families.keys()).sort()) {
    const { help, lines, type } = families.get(name)!
    if (help !== "") out += `# HELP ${name} ${escapeHelp(help)}\n`
    out += `# TYPE ${name} ${type}\n`
    for (const line of lines) out += line + "\n"
  }
  return out
}
