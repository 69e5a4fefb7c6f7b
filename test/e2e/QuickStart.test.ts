/**
 * End to end: the real server process on the embedded database and (when PROMPTJANG_TEST_DATABASE_URL is
 * set) on a fresh PostgreSQL database, driven by the Quick Start's own shell commands (curl, openssl,
 * date), delivering to a receiver that checks signatures with the FAQ's Python verify_signature.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { Webhook } from "standardwebhooks"
import { list, record, send, text } from "./http.ts"
import {
  type Database,
  firstLine,
  freshDatabase,
  postgresUrl,
  root,
  type ServerProcess,
  startServer,
  stopServer,
  waitFor
} from "./server.ts"

const run = promisify(execFile)

/** Runs a bash snippet of the Quick Start with the given variables; its stdout parsed as JSON. */
const sh = async (script: string, env: Record<string, string>): Promise<unknown> =>
  JSON.parse((await run("bash", ["-c", script], { env: { ...process.env, ...env }, timeout: 30_000 })).stdout)

/** Where the server of one run of the Quick Start keeps its data, and how to remove it afterwards. */
interface Target {
  readonly name: string
  readonly open: (dir: string) => Promise<{ readonly database: Database; readonly close: () => Promise<void> }>
}

const embedded: Target = {
  name: "embedded database",
  open: async (dir) => ({ database: { _tag: "Pglite", dir: join(dir, "data") }, close: async () => {} })
}

const postgres = (serverUrl: string): Target => ({
  name: "PostgreSQL",
  open: async () => {
    const db = await freshDatabase(serverUrl)
    return { database: { _tag: "Postgres", url: db.url }, close: db.drop }
  }
})

const targets: ReadonlyArray<Target> = postgresUrl === undefined ? [embedded] : [embedded, postgres(postgresUrl)]

/** Stops a child process by pid and waits (at most `graceMs`) until it is gone. */
const stopChild = async (child: ChildProcess, graceMs = 5_000) => {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()))
  process.kill(child.pid, "SIGTERM")
  const stopped = await Promise.race([
    closed.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs))
  ])
  if (!stopped && child.exitCode === null && child.signalCode === null) process.kill(child.pid, "SIGKILL")
}

describe.each(targets)("the Quick Start against the local server ($name)", (target) => {
  let dir = ""
  let secretFile = ""
  let receiverLog = ""
  let receiver: ChildProcess | undefined
  let server: ServerProcess | undefined
  let close: (() => Promise<void>) | undefined
  let receiverUrl = ""

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "promptjang-e2e-"))
    secretFile = join(dir, "secret")
    receiverLog = join(dir, "received.jsonl")
    writeFileSync(secretFile, "")
    receiver = spawn("python3", [join(root, "test/e2e/receiver.py"), secretFile, receiverLog, "110"], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    receiverUrl = `http://127.0.0.1:${await firstLine(receiver, /^\d+$/)}/webhooks`
    const opened = await target.open(dir)
    close = opened.close
    server = await startServer({
      database: opened.database,
      env: { PROMPTJANG_ALLOW_PRIVATE_TARGETS: "true", PROMPTJANG_RETRY_SCHEDULE: "1s,1s" }
    })
  }, 180_000)

  afterAll(async () => {
    if (receiver !== undefined) await stopChild(receiver)
    if (server !== undefined) await stopServer(server)
    await close?.()
    if (dir !== "") rmSync(dir, { recursive: true, force: true })
  }, 60_000)

  const host = () => server?.url ?? assert.fail("the server did not start")
  const apiKey = () => server?.apiKey ?? assert.fail("the server printed no API key")
  const getJson = (path: string) => send(host(), "GET", path, { key: apiKey() })
  /** The receiver's log: one JSON object per request it answered. */
  const received = () =>
    readFileSync(receiverLog, { encoding: "utf8", flag: "a+" }).split("\n").filter((line) => line.trim() !== "")
      .map((line) => record(JSON.parse(line), "a line of the receiver's log"))

  it("creates an endpoint, sends a signed event, sees it DELIVERED with its attempt, and replays it", async () => {
    assert.match(apiKey(), /^pj_live_[0-9A-Za-z]{32}$/)
    // 2. Create an Endpoint
    const created = await sh(
      `curl -s -X POST "$HOST/api/v1/endpoints" \\
        -H "Authorization: Bearer $KEY" \\
        -H "Content-Type: application/json" \\
        -d '{
        "url": "'"$RECEIVER"'",
        "description": "My first endpoint",
        "event_types": ["order.created", "order.updated"]
        }'`,
      { HOST: host(), KEY: apiKey(), RECEIVER: receiverUrl }
    )
    const endpointId = text(created, "id")
    const secret = text(created, "secret")
    assert.match(endpointId, /^ep_/)
    assert.match(secret, /^whsec_/)
    assert.strictEqual(text(created, "description"), "My first endpoint")
    writeFileSync(secretFile, secret)

    // 3. Send an Event, signed exactly as the Quick Start does
    const sent = await sh(
      `PAYLOAD='{"event":"order.created","data":{"order_id":"ORD-001"}}'
      TIMESTAMP=$(date +%s)
      SIGNATURE=$(echo -n "\${TIMESTAMP}.\${PAYLOAD}" | openssl dgst -sha256 -hmac "$SECRET" | awk '{print $NF}')
      curl -s -X POST "$HOST/e/$ENDPOINT" \\
        -H "Authorization: Bearer $KEY" \\
        -H "Content-Type: application/json" \\
        -H "X-PJ-Signature: \${SIGNATURE}" \\
        -H "X-PJ-Timestamp: \${TIMESTAMP}" \\
        -d "$PAYLOAD"`,
      { HOST: host(), KEY: apiKey(), ENDPOINT: endpointId, SECRET: secret }
    )
    assert.deepStrictEqual(Object.keys(record(sent)), ["id", "status", "message"])
    const eventId = text(sent, "id")
    assert.strictEqual(text(sent, "status"), "QUEUED")
    assert.strictEqual(text(sent, "message"), "Event received and queued for delivery")

    // 4. Check Delivery Status
    let last = ""
    const event = await waitFor(`${eventId} to be DELIVERED`, async () => {
      const answer = await getJson(`/api/v1/events/${eventId}`)
      last = answer.text
      return answer.status === 200 && text(answer.body, "status") === "DELIVERED" ? answer.body : undefined
    }, { timeoutMs: 15_000, everyMs: 100, describe: () => `Last answer: ${last}` })
    assert.strictEqual(text(event, "endpoint_id"), endpointId)
    assert.deepStrictEqual(record(event)["payload"], { event: "order.created", data: { order_id: "ORD-001" } })
    const attempts = list(event, "attempts")
    assert.strictEqual(attempts.length, 1, JSON.stringify(attempts))
    assert.strictEqual(record(attempts[0], "the attempt")["status_code"], 200)
    assert.strictEqual(record(attempts[0], "the attempt")["response_body"], "OK")
    const deliveries = received()
    assert.deepStrictEqual(deliveries.map((r) => [r["valid"], r["event_id"], r["attempt"]]), [[true, eventId, "1"]])
    const first = record(deliveries[0], "the delivery")
    assert.strictEqual(text(first, "body"), `{"event":"order.created","data":{"order_id":"ORD-001"}}`)
    // The Standard Webhooks headers verify with the reference library, unmodified.
    const verified = new Webhook(secret).verify(text(first, "body"), {
      "webhook-id": text(first, "webhook_id"),
      "webhook-timestamp": text(first, "webhook_timestamp"),
      "webhook-signature": text(first, "webhook_signature")
    })
    assert.deepStrictEqual(verified, { event: "order.created", data: { order_id: "ORD-001" } })
    assert.strictEqual(text(first, "webhook_id"), eventId)

    // 5. Replay an Event
    const replayed = await sh(
      `curl -s -X POST "$HOST/api/v1/events/$EVENT/replay" -H "Authorization: Bearer $KEY"`,
      { HOST: host(), KEY: apiKey(), EVENT: eventId }
    )
    assert.strictEqual(text(replayed, "status"), "QUEUED")
    const again = await waitFor("the replay to reach the receiver", () => {
      const lines = received()
      return lines.length >= 2 ? lines : undefined
    }, { timeoutMs: 15_000, everyMs: 100, describe: () => JSON.stringify(received()) })
    assert.deepStrictEqual(again.map((r) => [r["valid"], r["event_id"], r["attempt"]]), [[true, eventId, "1"], [
      true,
      eventId,
      "1"
    ]])
  }, 60_000)

  it("accepts the FAQ's unsigned example on /api/v1/e/{endpoint_id}", async () => {
    const endpoints = await getJson("/api/v1/endpoints")
    assert.strictEqual(endpoints.status, 200, endpoints.text)
    const endpoint = list(endpoints.body, "data").find((item) => record(item)["description"] === "My first endpoint")
    const endpointId = text(
      endpoint ?? assert.fail(`the Quick Start's endpoint is not listed: ${endpoints.text}`),
      "id"
    )
    const answer = await sh(
      `curl -s -X POST "$HOST/api/v1/e/$ENDPOINT" \\
        -H "Authorization: Bearer $KEY" \\
        -H "Content-Type: application/json" \\
        -d '{"event": "order.created", "data": {"order_id": 123}}'`,
      { HOST: host(), KEY: apiKey(), ENDPOINT: endpointId }
    )
    assert.strictEqual(text(answer, "status"), "QUEUED")
    const eventId = text(answer, "id")
    assert.match(eventId, /^evt_/)
    const stored = await getJson(`/api/v1/events/${eventId}`)
    assert.strictEqual(stored.status, 200, stored.text)
    assert.strictEqual(text(stored.body, "endpoint_id"), endpointId)
    assert.deepStrictEqual(record(stored.body)["payload"], { event: "order.created", data: { order_id: 123 } })
  })
})

if (postgresUrl === undefined) {
  describe("the Quick Start against the local server (PostgreSQL)", () => {
    // oxlint-disable-next-line vitest/expect-expect -- a report that the suite did not run, not a check
    it("is not run: set PROMPTJANG_TEST_DATABASE_URL to a PostgreSQL database to run it", () => {
      console.warn("PostgreSQL Quick Start not run: PROMPTJANG_TEST_DATABASE_URL is not set")
    })
  })
}
