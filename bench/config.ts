/**
 * How much work each scenario does, in the quick (`npm run bench`) and full (`npm run bench:full`) runs.
 */

export interface Config {
  readonly mode: "quick" | "full" | "smoke"
  /** Interleaved trials per scenario; each trial starts every server afresh. */
  readonly trials: number
  /** Fan-out groups: clients connected at once and broadcasts per measurement, one per turn. */
  readonly fanout: ReadonlyArray<{ readonly clients: number; readonly broadcasts: number }>
  /** Burst fan-out, run in the fan-out group with the same client count. */
  readonly burst: { readonly clients: number; readonly broadcasts: number; readonly perTurn: number }
  readonly echo: { readonly clients: ReadonlyArray<number>; readonly durationMs: number }
  /**
   * One client stops reading while `readers` others receive `broadcasts` broadcasts of `size` bytes.
   * Loopback TCP buffers hold about 4 MB per connection, so the paused client must be sent well over
   * that before any server has to buffer or drop; larger bodies get there with fewer deliveries.
   */
  readonly paused: { readonly readers: number; readonly broadcasts: number; readonly size: number }
  readonly churnMs: number
  /** A paced fan-out (one broadcast every `intervalMs`) in the group with `clients`: delivery latency. */
  readonly paced: { readonly clients: number; readonly broadcasts: number; readonly intervalMs: number }
}

export const quick: Config = {
  mode: "quick",
  trials: 3,
  fanout: [{ clients: 100, broadcasts: 200 }, { clients: 1000, broadcasts: 20 }, { clients: 5000, broadcasts: 4 }],
  burst: { clients: 1000, broadcasts: 50, perTurn: 50 },
  echo: { clients: [10, 100], durationMs: 500 },
  paused: { readers: 50, broadcasts: 2000, size: 4096 },
  churnMs: 700,
  paced: { clients: 1000, broadcasts: 50, intervalMs: 20 }
}

export const full: Config = {
  mode: "full",
  trials: 5,
  fanout: [{ clients: 100, broadcasts: 2500 }, { clients: 1000, broadcasts: 250 }, { clients: 5000, broadcasts: 50 }],
  burst: { clients: 1000, broadcasts: 500, perTurn: 50 },
  echo: { clients: [10, 100], durationMs: 3000 },
  paused: { readers: 50, broadcasts: 6000, size: 4096 },
  churnMs: 3000,
  paced: { clients: 1000, broadcasts: 150, intervalMs: 20 }
}

/** A short check that every server and scenario runs (`npm run bench -- --smoke`); its numbers are not figures. */
export const smoke: Config = {
  mode: "smoke",
  trials: 1,
  fanout: [{ clients: 100, broadcasts: 100 }, { clients: 1000, broadcasts: 10 }],
  burst: { clients: 1000, broadcasts: 50, perTurn: 50 },
  echo: { clients: [10], durationMs: 500 },
  paused: { readers: 10, broadcasts: 200, size: 4096 },
  churnMs: 300,
  paced: { clients: 1000, broadcasts: 20, intervalMs: 20 }
}
