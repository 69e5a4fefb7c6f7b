import { assert, describe, it } from "@effect/vitest"
import { Dispatcher, Endpoints } from "@promptjang/core"
import { Effect } from "effect"
import { createHmac } from "node:crypto"
import { makeTestHost } from "../src/index.ts"

const SECOND = 1000
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The FAQ's Python `verify_signature`: hex HMAC-SHA256 keyed with the secret string, over the body. */
const faqSignature = (secret: string, body: Uint8Array): string =>
  createHmac("sha256", secret).update(body).digest("hex")

/** Standard Webhooks: base64 HMAC-SHA256 keyed with the base64-decoded part after `whsec_`, over `id.ts.body`. */
const standardSignature = (secret: string, id: string, timestamp: string, body: Uint8Array): string =>
  `v1,${
    createHmac("sha256", Buffer.from(secret.slice("whsec_".length), "base64"))
      .update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`, "utf8"), body]))
      .digest("base64")
  }`

const header = (headers: Readonly<Record<string, string>> | undefined, name: string): string => {
  const value = headers?.[name]
  assert.isDefined(value, `header ${name}`)
  return value ?? ""
}

describe("Delivery", () => {
  it.effect("the delivered body is byte-identical to the one sent", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      const sent =
        "{ \"event\" :\"order.created\",\n\t\"data\": {\"name\": \"Zoë 🎉 \\u00e9\",  \"total\": 1.50e2, \"tags\":[ ] } }  "
      const { id } = yield* host.send(endpoint.id, sent)
      yield* host.settle
      const [request] = host.receiver.requests(endpoint.url)
      assert.isDefined(request)
      assert.strictEqual(request?.method, "POST")
      assert.deepStrictEqual(request?.body, encoder.encode(sent))
      assert.strictEqual(decoder.decode(request?.body), sent)
      assert.strictEqual((yield* host.event(id)).event.status, "DELIVERED")
    }))

  it.effect("every attempt carries the PromptJang and Standard Webhooks headers; the attempt number counts 1, 2, 3", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      assert.match(endpoint.secret, /^whsec_[A-Za-z0-9+/]{32}$/)
      assert.strictEqual(Buffer.from(endpoint.secret.slice(6), "base64").byteLength, 24)
      host.receiver.script(endpoint.url, { status: 500 }, { status: 503 }, { status: 200 })
      const body = encoder.encode("{\"event\":\"order.created\",\"data\":{\"order_id\":\"ORD-001\"}}")
      const { id } = yield* host.send(endpoint.id, body)
      yield* host.settle
      yield* host.advance("3 minutes")
      assert.strictEqual((yield* host.event(id)).event.status, "DELIVERED")
      const requests = host.receiver.requests(endpoint.url)
      assert.strictEqual(requests.length, 3)
      assert.deepStrictEqual(requests.map((r) => (r.at - host.organization.createdAt) / SECOND), [0, 60, 180])
      for (const [index, request] of requests.entries()) {
        const headers = request.headers
        assert.strictEqual(header(headers, "content-type"), "application/json")
        assert.strictEqual(header(headers, "user-agent"), `PromptJang/${Dispatcher.VERSION}`)
        assert.match(header(headers, "user-agent"), /^PromptJang\/\d+\.\d+\.\d+$/)
        assert.strictEqual(header(headers, "x-promptjang-signature"), faqSignature(endpoint.secret, body))
        assert.strictEqual(header(headers, "x-promptjang-event-id"), id)
        assert.strictEqual(header(headers, "x-promptjang-event-type"), "order.created")
        assert.strictEqual(header(headers, "x-promptjang-attempt"), String(index + 1))
        assert.strictEqual(header(headers, "webhook-id"), id)
        const timestamp = header(headers, "webhook-timestamp")
        assert.strictEqual(timestamp, String(Math.floor(request.at / SECOND)))
        assert.strictEqual(
          header(headers, "webhook-signature"),
          standardSignature(endpoint.secret, id, timestamp, body)
        )
      }
      // The timestamps (and so the Standard Webhooks signatures) are those of each attempt.
      assert.strictEqual(new Set(requests.map((r) => r.headers["webhook-timestamp"])).size, 3)
      assert.strictEqual(new Set(requests.map((r) => r.headers["webhook-signature"])).size, 3)
    }))

  it.effect("during a rotation webhook-signature carries one v1 entry per secret, and only the new one after 24 h", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      const oldSecret = endpoint.secret
      const rotated = yield* host.run(
        Endpoints.Endpoints.use((endpoints) => endpoints.rotateSecret(host.organization.id, endpoint.id))
      )
      const newSecret = rotated.secret
      assert.notStrictEqual(newSecret, oldSecret)

      const body = encoder.encode("{\"event\":\"order.created\"}")
      const during = yield* host.send(endpoint.id, body)
      yield* host.settle
      const first = host.receiver.requests(endpoint.url).at(-1)
      const firstTimestamp = header(first?.headers, "webhook-timestamp")
      const entries = header(first?.headers, "webhook-signature").split(" ")
      assert.deepStrictEqual(entries, [
        standardSignature(newSecret, during.id, firstTimestamp, body),
        standardSignature(oldSecret, during.id, firstTimestamp, body)
      ])
      assert.strictEqual(header(first?.headers, "x-promptjang-signature"), faqSignature(newSecret, body))

      yield* host.advance("24 hours")
      yield* host.advance("1 second")
      const after = yield* host.send(endpoint.id, body)
      yield* host.settle
      const second = host.receiver.requests(endpoint.url).at(-1)
      const secondTimestamp = header(second?.headers, "webhook-timestamp")
      assert.strictEqual(
        header(second?.headers, "webhook-signature"),
        standardSignature(newSecret, after.id, secondTimestamp, body)
      )
      assert.strictEqual(host.receiver.requests(endpoint.url).length, 2)
    }))

  it.effect("custom endpoint headers are sent along with ours", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint({
        headers: { "X-Tenant": "acme", Authorization: "Bearer downstream" }
      })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.settle
      const [request] = host.receiver.requests(endpoint.url)
      assert.strictEqual(header(request?.headers, "x-tenant"), "acme")
      assert.strictEqual(header(request?.headers, "authorization"), "Bearer downstream")
      assert.strictEqual(header(request?.headers, "x-promptjang-event-id"), id)
      assert.strictEqual(header(request?.headers, "content-type"), "application/json")
    }))

  it.effect("an endpoint may not set a header that PromptJang sets: ValidationFailed naming it", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const create = (headers: Record<string, string>) =>
        Effect.flip(
          host.run(Endpoints.Endpoints.use((endpoints) =>
            endpoints.create(host.organization.id, { url: "https://receiver.test/custom", headers })
          ))
        )
      for (
        const name of [
          "X-PromptJang-Signature",
          "content-type",
          "User-Agent",
          "webhook-id",
          "Webhook-Signature",
          "X-PromptJang-Attempt"
        ]
      ) {
        const error = yield* create({ [name]: "forged" })
        assert.strictEqual(error._tag, "ValidationFailed", name)
        if (error._tag === "ValidationFailed") {
          assert.deepStrictEqual(error.details.map((d) => d.path), [`headers.${name}`])
          assert.include(error.message, "cannot be overridden")
        }
      }
      // Nor by an update.
      const endpoint = yield* host.createEndpoint()
      const update = yield* Effect.flip(
        host.run(
          Endpoints.Endpoints.use((endpoints) =>
            endpoints.update(host.organization.id, endpoint.id, { headers: { "webhook-timestamp": "0" } })
          )
        )
      )
      assert.strictEqual(update._tag, "ValidationFailed")
      const list = yield* host.run(
        Endpoints.Endpoints.use((endpoints) => endpoints.list(host.organization.id, { limit: 100 }))
      )
      assert.deepStrictEqual(list.data.map((e) => e.id), [endpoint.id])
    }))

  it.effect("the recorded response body is cut at 64 KiB", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { status: 200, body: "x".repeat(100 * 1024) })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.settle
      const [attempt] = yield* host.attemptsOf(id)
      assert.strictEqual(attempt?.statusCode, 200)
      assert.strictEqual(attempt?.responseBody?.length, 64 * 1024)
      assert.strictEqual((yield* host.event(id)).event.status, "DELIVERED")
    }))

  it.effect("a disabled endpoint's events stay QUEUED without a request and go out as soon as it is enabled", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint({ enabled: false })
      const first = yield* host.send(endpoint.id, { event: "order.created", n: 1 })
      const second = yield* host.send(endpoint.id, { event: "order.created", n: 2 })
      yield* host.settle
      yield* host.advance("10 minutes")
      assert.deepStrictEqual((yield* host.events()).map((e) => e.status), ["QUEUED", "QUEUED"])
      assert.strictEqual(host.receiver.requests().length, 0)
      assert.deepStrictEqual(yield* host.attemptsOf(first.id), [])

      yield* host.advance("30 seconds")
      const enabledAt = host.organization.createdAt + (yield* host.elapsed)
      yield* host.run(
        Endpoints.Endpoints.use((endpoints) => endpoints.update(host.organization.id, endpoint.id, { enabled: true }))
      )
      yield* host.settle
      const requests = host.receiver.requests(endpoint.url)
      assert.strictEqual(requests.length, 2)
      assert.isTrue(requests.every((r) => r.at === enabledAt))
      for (const id of [first.id, second.id]) {
        const { attempts, event } = yield* host.event(id)
        assert.strictEqual(event.status, "DELIVERED")
        assert.deepStrictEqual(attempts.map((a) => a.number), [1])
      }
    }))

  it.effect("deleting an endpoint makes its QUEUED and RETRYING events FAILED and no further request is made", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost({ dispatcher: { perEndpointConcurrency: 1 } })
      const endpoint = yield* host.createEndpoint()
      const bystander = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { hang: true })
      host.receiver.script(bystander.url, { status: 500 })
      // a: its first attempt hangs until the 15 s timeout, then it is RETRYING.
      const a = yield* host.send(endpoint.id, { event: "order.created", n: "a" })
      yield* host.settle
      const b = yield* host.send(endpoint.id, { event: "order.created", n: "b" })
      yield* host.advance("15 seconds")
      // b is now in flight (hanging); c waits for the endpoint's only slot.
      const c = yield* host.send(endpoint.id, { event: "order.created", n: "c" })
      const other = yield* host.send(bystander.id, { event: "order.created" })
      yield* host.settle
      assert.strictEqual((yield* host.event(a.id)).event.status, "RETRYING")
      assert.strictEqual((yield* host.event(b.id)).event.status, "QUEUED")
      assert.strictEqual((yield* host.event(c.id)).event.status, "QUEUED")
      assert.strictEqual(host.receiver.requests(endpoint.url).length, 2)

      yield* host.run(Endpoints.Endpoints.use((endpoints) => endpoints.remove(host.organization.id, endpoint.id)))
      for (const id of [a.id, b.id, c.id]) {
        const { event } = yield* host.event(id)
        assert.strictEqual(event.status, "FAILED", id)
        assert.strictEqual(event.nextAttemptAt, null)
      }
      yield* host.advance("1 hour")
      assert.strictEqual(host.receiver.requests(endpoint.url).length, 2)
      assert.deepStrictEqual(
        (yield* host.events({ endpointId: endpoint.id })).map((e) => e.status),
        ["FAILED", "FAILED", "FAILED"]
      )
      assert.deepStrictEqual((yield* host.attemptsOf(c.id)).length, 0)
      // Other endpoints are untouched: the bystander's event went through its whole schedule.
      assert.strictEqual((yield* host.event(other.id)).event.status, "EXPIRED")
      assert.strictEqual(host.receiver.requests(bystander.url).length, 6)
      const gone = yield* Effect.flip(
        host.run(Endpoints.Endpoints.use((endpoints) => endpoints.get(host.organization.id, endpoint.id)))
      )
      assert.strictEqual(gone._tag, "NotFound")
    }))

  it.effect("an endpoint's own retry delays [1000, 2000] give attempts at 0, 1 and 3 s, then EXPIRED", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint({ retryDelays: [1000, 2000] })
      host.receiver.script(endpoint.url, { status: 500 })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.settle
      yield* host.advance("2999 millis")
      assert.strictEqual((yield* host.event(id)).event.status, "RETRYING")
      yield* host.advance("1 millis")
      const { attempts, event } = yield* host.event(id)
      assert.strictEqual(event.status, "EXPIRED")
      assert.deepStrictEqual(attempts.map((a) => (a.createdAt - host.organization.createdAt) / SECOND), [0, 1, 3])
      yield* host.advance("1 hour")
      assert.strictEqual(host.receiver.requests(endpoint.url).length, 3)
    }))

  it.effect("a refused connection is recorded as error connection_refused with no status code", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { error: "connection_refused" })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.settle
      const [attempt] = yield* host.attemptsOf(id)
      assert.strictEqual(attempt?.error, "connection_refused")
      assert.strictEqual(attempt?.statusCode, null)
      assert.strictEqual(attempt?.responseBody, null)
      assert.strictEqual(attempt?.succeeded, false)
      const { event } = yield* host.event(id)
      assert.strictEqual(event.status, "RETRYING")
      assert.strictEqual(event.nextAttemptAt, host.organization.createdAt + 60 * SECOND)
    }))
})
