import { describe, it } from "@effect/vitest"
import { queueSuite } from "@promptjang/core/conformance/Queue"
import { storageSuite } from "@promptjang/core/conformance/Storage"
import { postgresLayer, postgresUrl } from "./harness.ts"

if (postgresUrl === undefined) {
  // A newcomer's machine without PostgreSQL: say so in the run; CI sets PROMPTJANG_TEST_DATABASE_URL.
  describe("PostgreSQL conformance", () => {
    // oxlint-disable-next-line vitest/expect-expect -- a report that the suites did not run, not a check
    it("is not run: set PROMPTJANG_TEST_DATABASE_URL to a PostgreSQL database to run it", () => {
      console.warn("PostgreSQL conformance suites not run: PROMPTJANG_TEST_DATABASE_URL is not set")
    })
  })
} else {
  storageSuite("PostgreSQL", postgresLayer(postgresUrl))
  queueSuite("PostgreSQL", postgresLayer(postgresUrl))
}
