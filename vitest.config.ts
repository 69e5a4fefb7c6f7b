import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts", "test/**/*.test.ts"],
    // A test that needs longer than this is waiting on something it should not.
    testTimeout: 30_000,
    // Each file in a fresh worker (said explicitly, which also keeps vitest's summary line last in the output).
    isolate: true
  }
})
