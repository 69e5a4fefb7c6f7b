/**
 * End to end: the real server process on the embedded database (and on PostgreSQL when
 * PROMPTJANG_TEST_DATABASE_URL is set), driven by the Quick Start's own shell commands (curl, openssl,
 * date), delivering to a receiver that checks signatures with the FAQ's Python verify_signature.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const run = promisify(execFile)
const root = fileURLToPath(new URL("../..", import.meta.url))
const children: Array<ChildProcess> = []
const dir = mkdtempSync(join(tmpdir(), "promptjang-e2e-"))

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const firstLine = (child: ChildProcess, pattern: RegExp) =>
  new Promise<string>((resolve, reject) => {
    if (child.stdout === null) return reject(new Error("no stdout"))
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}`)), 60_000)
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (pattern.test(line)) {
        clearTimeout(timer)
        resolve(line)
      }
    })
  })

/** Runs a bash snippet of the Quick Start with the given variables. */
const sh = async (script: string, env: Record<string, string>) =>
  (await run("bash", ["-c", script], { env: { ...process.env, ...env }, timeout: 30_000 })).stdout

let host = ""
let apiKey = ""
let receiverUrl = ""
const secretFile = join(dir, "secret")
const receiverLog = join(dir, "received.jsonl")

beforeAll(async () => {
  writeFileSync(secretFile, "")
  const receiver = spawn("python3", [join(root, "test/e2e/receiver.py"), secretFile, receiverLog, "110"], {
    stdio: ["ignore", "pipe", "inherit"]
  })
  children.push(receiver)
  receiverUrl = `http://127.0.0.1:${await firstLine(receiver, /^\d+$/)}/webhooks`
  const port = await freePort()
  const server = spawn(process.execPath, [join(root, "apps/server/src/cli.ts"), "serve"], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      PROMPTJANG_DATA_DIR: join(dir, "data"),
      PROMPTJANG_ALLOW_PRIVATE_TARGETS: "true",
      PROMPTJANG_RETRY_SCHEDULE: "1s,1s"
    },
    stdio: ["ignore", "pipe", "inherit"]
  })
  children.push(server)
  const keyLine = await firstLine(server, /API key:/)
  apiKey = keyLine.trim().split(/\s+/).at(-1) ?? ""
  host = `http://127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) {
    const ready = await fetch(`${host}/readyz`).then((r) => r.ok, () => false)
    if (ready) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}, 90_000)

afterAll(() => {
  for (const child of children) if (child.pid !== undefined && child.exitCode === null) child.kill("SIGTERM")
  rmSync(dir, { recursive: true, force: true })
})

const getJson = async (path: string) => {
  const response = await fetch(`${host}${path}`, { headers: { authorization: `Bearer ${apiKey}` } })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

describe("the Quick Start against the local server (embedded database)", () => {
  it("creates an endpoint, sends a signed event, sees it DELIVERED with its attempt, and replays it", async () => {
    assert.match(apiKey, /^pj_live_[0-9A-Za-z]{32}$/)
    // 2. Create an Endpoint
    const created = JSON.parse(
      await sh(
        `curl -s -X POST "$HOST/api/v1/endpoints" \\
        -H "Authorization: Bearer $KEY" \\
        -H "Content-Type: application/json" \\
        -d '{
        "url": "'"$RECEIVER"'",
        "description": "My first endpoint",
        "event_types": ["order.created", "order.updated"]
        }'`,
        { HOST: host, KEY: apiKey, RECEIVER: receiverUrl }
      )
    ) as Record<string, unknown>
    assert.match(String(created["id"]), /^ep_/)
    assert.match(String(created["secret"]), /^whsec_/)
    assert.strictEqual(created["description"], "My first endpoint")
    writeFileSync(secretFile, String(created["secret"]))

    // 3. Send an Event, signed exactly as the Quick Start does
    const sent = JSON.parse(
      await sh(
        `PAYLOAD='{"event":"order.created","data":{"order_id":"ORD-001"}}'
      TIMESTAMP=$(date +%s)
      SIGNATURE=$(echo -n "\${TIMESTAMP}.\${PAYLOAD}" | openssl dgst -sha256 -hmac "$SECRET" | awk '{print $NF}')
      curl -s -X POST "$HOST/e/$ENDPOINT" \\
        -H "Authorization: Bearer $KEY" \\
        -H "Content-Type: application/json" \\
        -H "X-PJ-Signature: \${SIGNATURE}" \\
        -H "X-PJ-Timestamp: \${TIMESTAMP}" \\
        -d "$PAYLOAD"`,
        { HOST: host, KEY: apiKey, ENDPOINT: String(created["id"]), SECRET: String(created["secret"]) }
      )
    ) as Record<string, unknown>
    assert.deepStrictEqual(Object.keys(sent), ["id", "status", "message"])
    assert.strictEqual(sent["status"], "QUEUED")
    assert.strictEqual(sent["message"], "Event received and queued for delivery")

    // 4. Check Delivery Status
    let event = await getJson(`/api/v1/events/${String(sent["id"])}`)
    for (let i = 0; i < 100 && event.body["status"] !== "DELIVERED"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      event = await getJson(`/api/v1/events/${String(sent["id"])}`)
    }
    assert.strictEqual(event.body["status"], "DELIVERED")
    assert.strictEqual(event.body["endpoint_id"], created["id"])
    assert.deepStrictEqual(event.body["payload"], { event: "order.created", data: { order_id: "ORD-001" } })
    const attempts = event.body["attempts"] as Array<Record<string, unknown>>
    assert.strictEqual(attempts[0]?.["status_code"], 200)
    assert.strictEqual(attempts[0]?.["response_body"], "OK")
    const received = readFileSync(receiverLog, "utf8").trim().split("\n").map((line) =>
      JSON.parse(line) as Record<string, unknown>
    )
    assert.deepStrictEqual(received.map((r) => [r["valid"], r["event_id"], r["attempt"]]), [[true, sent["id"], "1"]])
    assert.strictEqual(received[0]?.["body"], `{"event":"order.created","data":{"order_id":"ORD-001"}}`)

    // 5. Replay an Event
    const replayed = JSON.parse(
      await sh(
        `curl -s -X POST "$HOST/api/v1/events/$EVENT/replay" -H "Authorization: Bearer $KEY"`,
        { HOST: host, KEY: apiKey, EVENT: String(sent["id"]) }
      )
    ) as Record<string, unknown>
    assert.strictEqual(replayed["status"], "QUEUED")
    for (let i = 0; i < 100 && readFileSync(receiverLog, "utf8").trim().split("\n").length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const again = readFileSync(receiverLog, "utf8").trim().split("\n").map((line) =>
      JSON.parse(line) as Record<string, unknown>
    )
    assert.deepStrictEqual(again.map((r) => [r["valid"], r["attempt"]]), [[true, "1"], [true, "1"]])
  }, 60_000)

  it("accepts the FAQ's unsigned example on /api/v1/e/{endpoint_id}", async () => {
    const endpoints = await getJson("/api/v1/endpoints")
    const id = String((endpoints.body["data"] as Array<Record<string, unknown>>)[0]?.["id"])
    const answer = JSON.parse(
      await sh(
        `curl -s -X POST "$HOST/api/v1/e/$ENDPOINT" \\
        -H "Authorization: Bearer $KEY" \\
        -H "Content-Type: application/json" \\
        -d '{"event": "order.created", "data": {"order_id": 123}}'`,
        { HOST: host, KEY: apiKey, ENDPOINT: id }
      )
    ) as Record<string, unknown>
    assert.strictEqual(answer["status"], "QUEUED")
    assert.match(String(answer["id"]), /^evt_/)
  })
})
