import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Engine, Memory, Targets } from "@promptjang/core"
import { Receiver } from "@promptjang/test-host"
import { Layer, Redacted } from "effect"
import { HttpClient } from "effect/http"
import { createHmac } from "node:crypto"
import * as WebHandler from "../src/WebHandler.ts"

const receiver = Receiver.make()
const api = WebHandler.make(
  Engine.layerRunning.pipe(
    Layer.provide([
      Memory.layer,
      Layer.succeed(HttpClient.HttpClient, receiver.client),
      Layer.succeed(Targets.TargetPolicy, { allowPrivateTargets: false })
    ])
  ),
  { adminToken: Redacted.make("admin-secret") }
)
afterAll(() => api.dispose())

const call = async (
  method: string,
  path: string,
  options: { key?: string; body?: string; headers?: Record<string, string> } = {}
) => {
  const headers: Record<string, string> = { ...options.headers }
  if (options.key !== undefined) headers["authorization"] = `Bearer ${options.key}`
  if (options.body !== undefined && headers["content-type"] === undefined) headers["content-type"] = "application/json"
  const response = await api.handler(
    new Request(`http://localhost${path}`, {
      method,
      headers,
      ...(options.body === undefined ? {} : { body: options.body })
    })
  )
  const text = await response.text()
  return {
    status: response.status,
    headers: response.headers,
    json: text === "" ? undefined : JSON.parse(text) as unknown
  }
}

/** The value at a dotted path of a parsed JSON body ("attempts.0.status_code"). */
const pick = (value: unknown, path: string): unknown =>
  path.split(".").reduce<unknown>(
    (
      current,
      key
    ) => (typeof current === "object" && current !== null ? (current as Record<string, unknown>)[key] : undefined),
    value
  )

/** The string at a dotted path. */
const text = (value: unknown, path: string): string => String(pick(value, path))

let key = ""
beforeAll(async () => {
  const created = await call("POST", "/api/v1/organizations", {
    headers: { authorization: "Bearer admin-secret" },
    body: JSON.stringify({ name: "Acme", plan: "starter" })
  })
  assert.strictEqual(created.status, 201)
  key = text(created.json, "api_key")
})

describe("the HTTP API", () => {
  it("runs the Quick Start: endpoint, signed event, status with attempts, replay", async () => {
    const endpoint = await call("POST", "/api/v1/endpoints", {
      key,
      body: JSON.stringify({
        url: "https://example.com/webhooks",
        description: "My first endpoint",
        event_types: ["order.created", "order.updated"]
      })
    })
    assert.strictEqual(endpoint.status, 201)
    assert.match(text(endpoint.json, "id"), /^ep_/)
    assert.match(text(endpoint.json, "secret"), /^whsec_/)
    assert.deepStrictEqual(pick(endpoint.json, "event_types"), ["order.created", "order.updated"])
    assert.strictEqual(pick(endpoint.json, "enabled"), true)

    const payload = `{"event":"order.created","data":{"order_id":"ORD-001"}}`
    const timestamp = String(Math.floor(Date.now() / 1000))
    const signature = createHmac("sha256", text(endpoint.json, "secret")).update(`${timestamp}.${payload}`).digest(
      "hex"
    )
    const sent = await call("POST", `/e/${text(endpoint.json, "id")}`, {
      key,
      body: payload,
      headers: { "x-pj-signature": signature, "x-pj-timestamp": timestamp }
    })
    assert.strictEqual(sent.status, 202)
    assert.deepStrictEqual(Object.keys(sent.json ?? {}), ["id", "status", "message"])
    assert.strictEqual(pick(sent.json, "status"), "QUEUED")
    assert.strictEqual(pick(sent.json, "message"), "Event received and queued for delivery")

    let event = await call("GET", `/api/v1/events/${text(sent.json, "id")}`, { key })
    for (let i = 0; i < 50 && pick(event.json, "status") !== "DELIVERED"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      event = await call("GET", `/api/v1/events/${text(sent.json, "id")}`, { key })
    }
    assert.strictEqual(event.status, 200)
    assert.strictEqual(pick(event.json, "status"), "DELIVERED")
    assert.strictEqual(pick(event.json, "endpoint_id"), pick(endpoint.json, "id"))
    assert.strictEqual(pick(event.json, "event_type"), "order.created")
    assert.deepStrictEqual(pick(event.json, "payload"), JSON.parse(payload) as unknown)
    assert.strictEqual(pick(event.json, "attempts.0.status_code"), 200)
    assert.strictEqual(pick(event.json, "attempts.0.response_body"), "OK")
    assert.isNumber(pick(event.json, "attempts.0.duration_ms"))
    assert.match(text(event.json, "attempts.0.id"), /^dat_/)

    const replayed = await call("POST", `/api/v1/events/${text(sent.json, "id")}/replay`, { key })
    assert.strictEqual(replayed.status, 202)
    assert.strictEqual(pick(replayed.json, "status"), "QUEUED")
  })

  it("answers every refusal with a JSON error code and a message", async () => {
    const expectError = async (result: Awaited<ReturnType<typeof call>>, status: number, code: string) => {
      assert.strictEqual(result.status, status)
      assert.strictEqual(pick(result.json, "error.code"), code)
      assert.isAbove(String(pick(result.json, "error.message") ?? "").length, 10)
    }
    await expectError(await call("GET", "/api/v1/endpoints"), 401, "unauthorized")
    await expectError(await call("GET", "/api/v1/endpoints", { key: "pj_live_" + "x".repeat(32) }), 401, "unauthorized")
    await expectError(await call("GET", "/api/v1/nope", { key }), 404, "not_found")
    await expectError(await call("PUT", "/api/v1/endpoints", { key }), 405, "method_not_allowed")
    await expectError(
      await call("POST", "/api/v1/endpoints", { key, body: "{", headers: { "content-type": "application/json" } }),
      400,
      "invalid_json"
    )
    const invalid = await call("POST", "/api/v1/endpoints", { key, body: JSON.stringify({ url: 5 }) })
    await expectError(invalid, 400, "validation_failed")
    assert.strictEqual(pick(invalid.json, "error.details.0.path"), "url")
    await expectError(
      await call("POST", "/api/v1/endpoints", {
        key,
        body: "url=x",
        headers: { "content-type": "application/x-www-form-urlencoded" }
      }),
      415,
      "unsupported_media_type"
    )
    const local = await call("POST", "/api/v1/endpoints", { key, body: JSON.stringify({ url: "http://127.0.0.1:9/" }) })
    await expectError(local, 400, "validation_failed")
    assert.include(text(local.json, "error.message"), "PROMPTJANG_ALLOW_PRIVATE_TARGETS")
    await expectError(await call("GET", "/api/v1/events/evt_missing", { key }), 404, "not_found")
  })
})
