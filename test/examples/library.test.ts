import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const run = promisify(execFile)
const example = fileURLToPath(new URL("../../examples/library.ts", import.meta.url))

describe("examples/library.ts (the README's library example)", () => {
  it("delivers one signed event to a local receiver and prints DELIVERED", async () => {
    const { stdout } = await run(process.execPath, [example], { timeout: 30_000 })
    assert.match(stdout, /accepted: evt_[0-9a-z]{30} QUEUED/)
    assert.match(stdout, /receiver: order\.created attempt 1, signature valid/)
    assert.match(stdout, /event: evt_[0-9a-z]{30} DELIVERED after 1 attempt\(s\), receiver said 200/)
  })
})
