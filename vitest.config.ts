import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts", "test/**/*.test.ts"],
    // A test that needs longer than this is waiting on something it should not.
    testTimeout: 30_000
  }
})
