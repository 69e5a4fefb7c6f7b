import { afterAll, assert, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"

const example = fileURLToPath(new URL("../../examples/embedding.ts", import.meta.url))
let child: ChildProcess | undefined
afterAll(() => {
  if (child?.pid !== undefined && child.exitCode === null) child.kill("SIGTERM")
})

describe("examples/embedding.ts", () => {
  it("serves the app's own route and the PromptJang API mounted under /webhooks", async () => {
    child = spawn(process.execPath, [example, "--seconds", "25"], {
      env: { ...process.env, ADMIN_TOKEN: "t0ken" },
      stdio: ["ignore", "pipe", "inherit"]
    })
    const stdout = child.stdout
    if (stdout === null) return assert.fail("no stdout")
    const base = await new Promise<string>((resolve) => createInterface({ input: stdout }).once("line", resolve))
    assert.strictEqual(await (await fetch(`${base}/`)).text(), "my app")

    const org = await fetch(`${base}/webhooks/api/v1/organizations`, {
      method: "POST",
      headers: { authorization: "Bearer t0ken", "content-type": "application/json" },
      body: JSON.stringify({ name: "Acme" })
    })
    assert.strictEqual(org.status, 201)
    const key = String(((await org.json()) as Record<string, unknown>)["api_key"])
    const usage = await fetch(`${base}/webhooks/api/v1/usage`, { headers: { authorization: `Bearer ${key}` } })
    assert.strictEqual(usage.status, 200)
    assert.strictEqual(((await usage.json()) as Record<string, unknown>)["plan"], "starter")
    const missing = await fetch(`${base}/webhooks/api/v1/nothing`, { headers: { authorization: `Bearer ${key}` } })
    assert.strictEqual(missing.status, 404)
    assert.strictEqual(
      ((await missing.json()) as Record<string, Record<string, unknown>>)["error"]?.["code"],
      "not_found"
    )
  }, 30_000)
})
