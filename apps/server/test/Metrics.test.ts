import { afterAll, assert, describe, it } from "@effect/vitest"
import { Engine, Memory } from "@promptjang/core"
import { Routes } from "@promptjang/http"
import { Receiver } from "@promptjang/test-host"
import { Layer, Redacted } from "effect"
import { HttpClient, HttpRouter, HttpServer } from "effect/http"
import { metricsRoute } from "../src/Server.ts"

const receiver = Receiver.make()
const engine = Engine.layer.pipe(
  Layer.provideMerge(Memory.layer),
  Layer.provide(Layer.succeed(HttpClient.HttpClient, receiver.client))
)
const { dispose, handler } = HttpRouter.toWebHandler(
  Layer.merge(Routes.layer, metricsRoute).pipe(
    Layer.provide(engine),
    Layer.provide(Layer.succeed(Routes.Options, { adminToken: Redacted.make("admin") })),
    Layer.provide(HttpServer.layerServices)
  ),
  { disableLogger: true }
)
afterAll(() => dispose())

const call = (path: string, init: RequestInit = {}) => handler(new Request(`http://localhost${path}`, init), undefined)

describe("GET /metrics", () => {
  it("exports accepted events and the queue depth in Prometheus text", async () => {
    const org = (await (await call("/api/v1/organizations", {
      method: "POST",
      headers: { authorization: "Bearer admin", "content-type": "application/json" },
      body: JSON.stringify({ name: "Acme" })
    })).json()) as Record<string, string>
    const auth = { authorization: `Bearer ${org["api_key"]}`, "content-type": "application/json" }
    const endpoint = (await (await call("/api/v1/endpoints", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ url: "https://receiver.test/hooks" })
    })).json()) as Record<string, string>
    for (let i = 0; i < 3; i++) {
      const sent = await call(`/e/${endpoint["id"]}`, {
        method: "POST",
        headers: auth,
        body: `{"event":"order.created"}`
      })
      assert.strictEqual(sent.status, 202)
    }
    const response = await call("/metrics")
    assert.strictEqual(response.status, 200)
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain/)
    const text = await response.text()
    const accepted = /^promptjang_events_accepted_total(?:\{[^}]*\})? (\d+)/m.exec(text)
    assert.isAtLeast(Number(accepted?.[1] ?? 0), 3)
    // No dispatcher runs here: the three deliveries are still queued.
    assert.match(text, /^promptjang_pending_deliveries(?:\{[^}]*\})? 3$/m)
    assert.match(text, /^promptjang_oldest_due_age_seconds/m)
  })
})
