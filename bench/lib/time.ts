/**
 * Clock and statistics helpers shared by every benchmark process.
 */

/** Monotonic milliseconds; CLOCK_MONOTONIC is system-wide, so values compare across processes. */
export const monoMs = (): number => {
  const [s, ns] = process.hrtime()
  return s * 1e3 + ns / 1e6
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** The q-quantile (0..1) of sorted values, nearest rank. */
export const quantile = (sorted: ArrayLike<number>, q: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]

export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length === 0 ? NaN : sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
