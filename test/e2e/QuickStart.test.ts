/**
 * End to end: the real server process on the embedded database (and on PostgreSQL when
 * PROMPTJANG_TEST_DATABASE_URL is set), driven by the Quick Start's own shell commands (curl, openssl,
 * date), delivering to a receiver that checks signatures with the FAQ's Python verify_signature.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { Webhook } from "standardwebhooks"
import { firstLine, root, type ServerProcess, startServer, stopServer } from "./server.ts"

const run = promisify(execFile)
const children: Array<ChildProcess> = []
let server: ServerProcess | undefined
const dir = mkdtempSync(join(tmpdir(), "promptjang-e2e-"))

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
  server = await startServer({
    database: { _tag: "Pglite", dir: join(dir, "data") },
    env: { PROMPTJANG_ALLOW_PRIVATE_TARGETS: "true", PROMPTJANG_RETRY_SCHEDULE: "1s,1s" }
  })
  apiKey = server.apiKey ?? ""
  host = server.url
}, 120_000)

afterAll(async () => {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGTERM")
  }
  if (server !== undefined) await stopServer(server)
  rmSync(dir, { recursive: true, force: true })
}, 30_000)

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
    // The Standard Webhooks headers verify with the reference library, unmodified.
    const first = received[0] ?? {}
    const verified = new Webhook(String(created["secret"])).verify(String(first["body"]), {
      "webhook-id": String(first["webhook_id"]),
      "webhook-timestamp": String(first["webhook_timestamp"]),
      "webhook-signature": String(first["webhook_signature"])
    })
    assert.deepStrictEqual(verified, { event: "order.created", data: { order_id: "ORD-001" } })
    assert.strictEqual(first["webhook_id"], sent["id"])

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
