import * as path from "node:path"
import { defineConfig } from "vitest/config"

const src = path.join(import.meta.dirname, "src")

export default defineConfig({
  resolve: {
    alias: [
      { find: /^effect-neffos$/, replacement: path.join(src, "index.ts") },
      { find: /^effect-neffos\/(.*)$/, replacement: path.join(src, "$1.ts") }
    ]
  },
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    // a Redis and a NATS of the run's own on free ports; fails at once when a program is missing
    globalSetup: ["test/services.ts"],
    testTimeout: 30_000,
    // the memory tests check with WeakRefs that closed connections can be collected
    poolOptions: { forks: { execArgv: ["--expose-gc"] } },
    hookTimeout: 30_000
  }
})
