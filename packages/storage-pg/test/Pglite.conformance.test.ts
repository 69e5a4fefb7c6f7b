import { afterAll } from "@effect/vitest"
import { queueSuite } from "@promptjang/core/conformance/Queue"
import { storageSuite } from "@promptjang/core/conformance/Storage"
import { makePglite } from "./harness.ts"

const pglite = makePglite()
afterAll(() => pglite.close())

storageSuite("PGlite", pglite.layer)
queueSuite("PGlite", pglite.layer)
