import { afterAll, assert, describe, it } from "@effect/vitest"
import { Engine, Memory } from "@promptjang/core"
import { Receiver } from "@promptjang/test-host"
import { Effect, Layer, Redacted } from "effect"
import { HttpClient, HttpClientResponse } from "effect/http"
import * as Client from "../src/Client.ts"
import * as WebHandler from "../src/WebHandler.ts"

const receiver = Receiver.make()
const api = WebHandler.make(
  Engine.layerRunning.pipe(Layer.provide([Memory.layer, Layer.succeed(HttpClient.HttpClient, receiver.client)])),
  { adminToken: Redacted.make("admin") }
)
afterAll(() => api.dispose())

// The typed client's requests go straight to the web handler.
const ThroughHandler = Layer.succeed(
  HttpClient.HttpClient,
  HttpClient.make((request, url) =>
    Effect.promise(async () => {
      const body = request.body._tag === "Uint8Array" ? request.body.body : undefined
      const response = await api.handler(
        new Request(url, {
          method: request.method,
          headers: request.headers,
          ...(body === undefined ? {} : { body: new Uint8Array(body) })
        })
      )
      return HttpClientResponse.fromWeb(request, response)
    })
  )
)

describe("the typed client derived from the API definition", () => {
  it.live("creates an organization, an endpoint and an event, and reads them back decoded", () =>
    Effect.gen(function*() {
      const operator = yield* Client.make({ baseUrl: "http://localhost", apiKey: "admin" })
      const org = yield* operator.operator.createOrganization({ payload: { name: "Acme" } })
      const client = yield* Client.make({ baseUrl: "http://localhost", apiKey: org.api_key })
      const endpoint = yield* client.endpoints.create({
        payload: { url: "https://receiver.test/hooks", event_types: ["order.*"] }
      })
      assert.match(endpoint.secret ?? "", /^whsec_/)
      const accepted = yield* client.ingest.post({
        params: { endpoint_id: endpoint.id },
        headers: {},
        payload: { event: "order.created", data: { order_id: "ORD-1" } }
      })
      assert.strictEqual(accepted.status, "QUEUED")
      let event = yield* client.events.get({ params: { id: accepted.id } })
      for (let i = 0; i < 50 && event.status !== "DELIVERED"; i++) {
        yield* Effect.sleep("10 millis")
        event = yield* client.events.get({ params: { id: accepted.id } })
      }
      assert.strictEqual(event.status, "DELIVERED")
      assert.strictEqual(event.attempts?.[0]?.status_code, 200)
      const page = yield* client.events.list({ query: { status: "DELIVERED" } })
      assert.deepStrictEqual(page.data.map((e) => e.id), [accepted.id])
      const usage = yield* client.account.usage()
      assert.strictEqual(usage.events, 1)
      const keys = yield* client.account.listApiKeys()
      assert.strictEqual(keys.data.length, 1)
      assert.lengthOf(keys.data[0]?.prefix ?? "", 12)
    }).pipe(Effect.provide(ThroughHandler)))

  it("serves the OpenAPI document and a docs page without a CDN", async () => {
    const document = (await (await api.handler(new Request("http://localhost/api/v1/openapi.json"))).json()) as {
      openapi: string
      paths: Record<string, unknown>
    }
    assert.match(document.openapi, /^3\./)
    for (const path of ["/api/v1/endpoints", "/e/{endpoint_id}", "/api/v1/events/{id}/replay", "/api/v1/usage"]) {
      assert.property(document.paths, path)
    }
    const docs = await api.handler(new Request("http://localhost/docs"))
    assert.strictEqual(docs.status, 200)
    const html = await docs.text()
    assert.include(html, "<html")
    assert.notMatch(html, /<script[^>]+src="https?:\/\//)
  })
})
