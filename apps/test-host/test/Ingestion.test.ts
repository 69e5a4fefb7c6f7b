import { assert, describe, it } from "@effect/vitest"
import { Accounts, Endpoints, Ingestion, Quota, Signing } from "@promptjang/core"
import { Clock, Effect } from "effect"
import { makeTestHost, type TestHost } from "../src/index.ts"

const encoder = new TextEncoder()
const STARTER_LIMIT = 262_144

/** An error message a human can act on: a capitalised sentence, not a code or a stack trace. */
const assertSentence = (message: string) => {
  assert.match(message, /^[A-Z"`].{20,}[.!?]$/s)
  assert.notMatch(message, /\n\s+at /)
}

/** A JSON object of exactly `size` bytes. */
const objectOfSize = (size: number): string => {
  const head = "{\"event\":\"order.created\",\"pad\":\""
  const tail = "\"}"
  return head + "a".repeat(size - head.length - tail.length) + tail
}

const ingestWith = (host: TestHost, bearer: string | undefined, request: Ingestion.IngestRequest) =>
  host.run(Ingestion.Ingestion.use((ingestion) => ingestion.ingest(bearer, request)))

/** Signs `body` as the Quick Start does, with `secret`, `ageSeconds` before the current test-clock time. */
const signed = (secret: string, body: string, ageSeconds = 0) =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    const timestamp = String(Math.floor(now / 1000) - ageSeconds)
    const bytes = encoder.encode(body)
    return { body: bytes, timestamp, signature: Signing.signInbound(secret, timestamp, bytes) }
  })

const usageOf = (host: TestHost) => host.run(Accounts.Accounts.use((accounts) => accounts.usage(host.organization.id)))

describe("Ingestion", () => {
  it.effect("an endpoint change reaches ingestion within a second (endpoints are reused that long)", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint({ eventTypes: ["order.*"] })
      yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.run(
        Endpoints.Endpoints.use((e) => e.update(host.organization.id, endpoint.id, { eventTypes: ["user.*"] }))
      )
      yield* host.advance("1 second")
      const refused = yield* Effect.flip(host.send(endpoint.id, { event: "order.created" }))
      assert.strictEqual(refused._tag, "EventTypeNotSubscribed")
      assert.strictEqual((yield* host.send(endpoint.id, { event: "user.created" })).status, "QUEUED")
    }))

  describe("authentication", () => {
    it.effect("an unknown, well-formed API key is Unauthorized", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const error = yield* Effect.flip(
          ingestWith(host, `pj_live_${"A".repeat(32)}`, { endpointId: endpoint.id, body: encoder.encode("{}") })
        )
        assert.strictEqual(error._tag, "Unauthorized")
        assertSentence(error.message)
        assert.include(error.message, "API key")
        assert.deepStrictEqual(yield* host.events(), [])
      }))

    it.effect("a malformed or missing API key is Unauthorized", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        for (const bearer of [undefined, "", "hello", "pj_live_short", `${host.apiKey} `, host.apiKey.slice(0, -1)]) {
          const error = yield* Effect.flip(
            ingestWith(host, bearer, { endpointId: endpoint.id, body: encoder.encode("{}") })
          )
          assert.strictEqual(error._tag, "Unauthorized", `bearer ${JSON.stringify(bearer)}`)
          assertSentence(error.message)
        }
        // The host's own key works, so the refusals above are about the keys.
        const accepted = yield* ingestWith(host, host.apiKey, { endpointId: endpoint.id, body: encoder.encode("{}") })
        assert.strictEqual(accepted.status, "QUEUED")
      }))

    it.effect("a revoked API key is refused on the very next call", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const second = yield* host.run(
          Accounts.Accounts.use((accounts) => accounts.createApiKey(host.organization.id, "second"))
        )
        const body = encoder.encode("{\"event\":\"order.created\"}")
        const before = yield* ingestWith(host, second.key, { endpointId: endpoint.id, body })
        assert.strictEqual(before.status, "QUEUED")
        yield* host.run(
          Accounts.Accounts.use((accounts) => accounts.revokeApiKey(host.organization.id, second.record.id))
        )
        const error = yield* Effect.flip(ingestWith(host, second.key, { endpointId: endpoint.id, body }))
        assert.strictEqual(error._tag, "Unauthorized")
        assertSentence(error.message)
        // Revoking one key leaves the others working.
        const other = yield* ingestWith(host, host.apiKey, { endpointId: endpoint.id, body })
        assert.strictEqual(other.status, "QUEUED")
        assert.strictEqual((yield* host.events()).length, 2)
      }))
  })

  describe("endpoint", () => {
    it.effect("an endpoint of another organization is NotFound, like a missing one", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const other = yield* host.run(
          Accounts.Accounts.use((accounts) => accounts.createOrganization({ name: "Other org" }))
        )
        const foreign = yield* host.run(
          Endpoints.Endpoints.use((endpoints) =>
            endpoints.create(other.organization.id, { url: "https://other.test/hooks" })
          )
        )
        const body = encoder.encode("{\"event\":\"order.created\"}")
        const error = yield* Effect.flip(host.send(foreign.id, body))
        assert.strictEqual(error._tag, "NotFound")
        assertSentence(error.message)
        const missingId = `ep_${"0".repeat(30)}`
        const missing = yield* Effect.flip(host.send(missingId, body))
        assert.strictEqual(missing._tag, "NotFound")
        assert.strictEqual(error.message.replace(foreign.id, "<id>"), missing.message.replace(missingId, "<id>"))
        // The endpoint exists and works for its own organization.
        const own = yield* ingestWith(host, other.apiKey.key, { endpointId: foreign.id, body })
        assert.strictEqual(own.status, "QUEUED")
        assert.deepStrictEqual(yield* host.events(), [])
      }))

    it.effect("a malformed endpoint id is NotFound", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        for (
          const id of ["", "ep_123", "evt_0000000000000000000000000000", "../api/v1/endpoints", `ep_${"I".repeat(30)}`]
        ) {
          const error = yield* Effect.flip(host.send(id, { event: "order.created" }))
          assert.strictEqual(error._tag, "NotFound", `id ${JSON.stringify(id)}`)
          assertSentence(error.message)
        }
      }))
  })

  describe("body", () => {
    it.effect("a body one byte over the starter limit is PayloadTooLarge naming the limit; exactly the limit is accepted", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const tooLarge = objectOfSize(STARTER_LIMIT + 1)
        assert.strictEqual(encoder.encode(tooLarge).byteLength, 262_145)
        const error = yield* Effect.flip(host.send(endpoint.id, tooLarge))
        assert.strictEqual(error._tag, "PayloadTooLarge")
        assertSentence(error.message)
        assert.include(error.message, "262144")
        assert.include(error.message, "starter")
        const atLimit = objectOfSize(STARTER_LIMIT)
        assert.strictEqual(encoder.encode(atLimit).byteLength, STARTER_LIMIT)
        const accepted = yield* host.send(endpoint.id, atLimit)
        assert.strictEqual(accepted.status, "QUEUED")
        assert.deepStrictEqual((yield* host.events()).map((e) => e.id), [accepted.id])
      }))

    it.effect("a body that is not JSON is InvalidJson", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        for (const body of ["{\"event\": \"order.created\"", "not json", "", "{'event': 'x'}"]) {
          const error = yield* Effect.flip(host.send(endpoint.id, body))
          assert.strictEqual(error._tag, "InvalidJson", `body ${JSON.stringify(body)}`)
          assertSentence(error.message)
          assert.include(error.message, "JSON")
        }
        const notUtf8 = yield* Effect.flip(host.send(endpoint.id, new Uint8Array([0x7b, 0xff, 0x7d])))
        assert.strictEqual(notUtf8._tag, "InvalidJson")
      }))

    it.effect("a JSON array or other non-object is ValidationFailed", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        for (const body of ["[{\"event\":\"order.created\"}]", "\"order.created\"", "42", "null", "true"]) {
          const error = yield* Effect.flip(host.send(endpoint.id, body))
          assert.strictEqual(error._tag, "ValidationFailed", `body ${body}`)
          assertSentence(error.message)
          assert.include(error.message, "JSON object")
        }
      }))

    it.effect("an \"event\" that is not a string is ValidationFailed naming the field", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const error = yield* Effect.flip(host.send(endpoint.id, { event: 5 }))
        assert.strictEqual(error._tag, "ValidationFailed")
        assertSentence(error.message)
        assert.include(error.message, "\"event\"")
        if (error._tag === "ValidationFailed") assert.deepStrictEqual(error.details.map((d) => d.path), ["event"])
      }))
  })

  describe("event types", () => {
    it.effect("an endpoint subscribed to order.* accepts order.created and refuses user.created, storing nothing", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint({ eventTypes: ["order.*"] })
        const accepted = yield* host.send(endpoint.id, { event: "order.created" })
        assert.strictEqual(accepted.status, "QUEUED")
        const usageBefore = (yield* usageOf(host)).events
        for (const event of ["user.created", "orders.created", "order"]) {
          const error = yield* Effect.flip(host.send(endpoint.id, { event }))
          assert.strictEqual(error._tag, "EventTypeNotSubscribed", event)
          assertSentence(error.message)
          assert.include(error.message, "order.*")
        }
        const untyped = yield* Effect.flip(host.send(endpoint.id, { data: 1 }))
        assert.strictEqual(untyped._tag, "EventTypeNotSubscribed")
        assert.deepStrictEqual((yield* host.events()).map((e) => e.id), [accepted.id])
        assert.strictEqual(usageBefore, 1)
        assert.strictEqual((yield* usageOf(host)).events, 1)
      }))

    it.effect("a refused event type leaves the event list empty and usage unchanged", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint({ eventTypes: ["order.*"] })
        const error = yield* Effect.flip(host.send(endpoint.id, { event: "user.created" }))
        assert.strictEqual(error._tag, "EventTypeNotSubscribed")
        yield* host.settle
        assert.deepStrictEqual(yield* host.events(), [])
        assert.strictEqual((yield* usageOf(host)).events, 0)
        assert.strictEqual(host.receiver.requests().length, 0)
      }))
  })

  describe("signatures", () => {
    it.effect("the Quick Start's signed send is accepted", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint({ eventTypes: ["order.created", "order.updated"] })
        const result = yield* host.send(
          endpoint.id,
          "{\"event\":\"order.created\",\"data\":{\"order_id\":\"ORD-001\"}}",
          { sign: true }
        )
        assert.strictEqual(result.status, "QUEUED")
        assert.isFalse(result.duplicate)
        assert.match(result.id, /^evt_/)
      }))

    it.effect("a wrong signature is InvalidSignature and stores nothing", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const good = yield* signed(endpoint.secret, "{\"event\":\"order.created\"}")
        const cases = [
          { ...good, signature: Signing.signInbound(`${endpoint.secret}x`, good.timestamp, good.body) },
          { ...good, signature: "0".repeat(64) },
          { ...good, signature: "not-hex" },
          // A valid signature of another body.
          { ...good, body: encoder.encode("{\"event\":\"order.deleted\"}") }
        ]
        for (const request of cases) {
          const error = yield* Effect.flip(ingestWith(host, host.apiKey, { endpointId: endpoint.id, ...request }))
          assert.strictEqual(error._tag, "InvalidSignature")
          assertSentence(error.message)
          assert.include(error.message, "X-PJ-Signature")
        }
        assert.deepStrictEqual(yield* host.events(), [])
        const accepted = yield* ingestWith(host, host.apiKey, { endpointId: endpoint.id, ...good })
        assert.strictEqual(accepted.status, "QUEUED")
      }))

    it.effect("a timestamp 301 s old is TimestampOutOfRange; 300 s old is accepted", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const stale = yield* signed(endpoint.secret, "{\"event\":\"order.created\"}", 301)
        const error = yield* Effect.flip(ingestWith(host, host.apiKey, { endpointId: endpoint.id, ...stale }))
        assert.strictEqual(error._tag, "TimestampOutOfRange")
        assertSentence(error.message)
        assert.include(error.message, "300 seconds")
        const future = yield* signed(endpoint.secret, "{\"event\":\"order.created\"}", -301)
        const futureError = yield* Effect.flip(ingestWith(host, host.apiKey, { endpointId: endpoint.id, ...future }))
        assert.strictEqual(futureError._tag, "TimestampOutOfRange")
        const edge = yield* signed(endpoint.secret, "{\"event\":\"order.created\"}", 300)
        const accepted = yield* ingestWith(host, host.apiKey, { endpointId: endpoint.id, ...edge })
        assert.strictEqual(accepted.status, "QUEUED")
      }))

    it.effect("only one of the two signature headers is InvalidSignature", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const { body, signature, timestamp } = yield* signed(endpoint.secret, "{\"event\":\"order.created\"}")
        const onlySignature = yield* Effect.flip(
          ingestWith(host, host.apiKey, { endpointId: endpoint.id, body, signature })
        )
        assert.strictEqual(onlySignature._tag, "InvalidSignature")
        assertSentence(onlySignature.message)
        assert.include(onlySignature.message, "X-PJ-Timestamp")
        const onlyTimestamp = yield* Effect.flip(
          ingestWith(host, host.apiKey, { endpointId: endpoint.id, body, timestamp })
        )
        assert.strictEqual(onlyTimestamp._tag, "InvalidSignature")
        assertSentence(onlyTimestamp.message)
        assert.include(onlyTimestamp.message, "X-PJ-Signature")
        assert.deepStrictEqual(yield* host.events(), [])
      }))

    it.effect("an endpoint with require_signature refuses unsigned events and accepts signed ones", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint({ requireSignature: true })
        const error = yield* Effect.flip(host.send(endpoint.id, { event: "order.created" }))
        assert.strictEqual(error._tag, "InvalidSignature")
        assertSentence(error.message)
        assert.include(error.message, "requires")
        const accepted = yield* host.send(endpoint.id, { event: "order.created" }, { sign: true })
        assert.strictEqual(accepted.status, "QUEUED")
        assert.strictEqual((yield* host.events()).length, 1)
      }))

    it.effect("the FAQ's unsigned example is accepted by an endpoint that does not require signatures", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const result = yield* host.send(endpoint.id, "{\"event\": \"order.created\", \"data\": {\"order_id\": 123}}")
        assert.strictEqual(result.status, "QUEUED")
        const [event] = yield* host.events()
        assert.strictEqual(event?.eventType, "order.created")
      }))

    it.effect("after a secret rotation both secrets verify for 24 h, then only the new one", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const oldSecret = endpoint.secret
        const rotated = yield* host.run(
          Endpoints.Endpoints.use((endpoints) => endpoints.rotateSecret(host.organization.id, endpoint.id))
        )
        const newSecret = rotated.secret
        assert.notStrictEqual(newSecret, oldSecret)
        const send = (secret: string) =>
          Effect.flatMap(
            signed(secret, "{\"event\":\"order.created\"}"),
            (request) => ingestWith(host, host.apiKey, { endpointId: endpoint.id, ...request })
          )
        assert.strictEqual((yield* send(oldSecret)).status, "QUEUED")
        assert.strictEqual((yield* send(newSecret)).status, "QUEUED")
        yield* host.advance("23 hours")
        yield* host.advance("59 minutes")
        yield* host.advance("59 seconds")
        assert.strictEqual((yield* send(oldSecret)).status, "QUEUED")
        yield* host.advance("2 seconds")
        const error = yield* Effect.flip(send(oldSecret))
        assert.strictEqual(error._tag, "InvalidSignature")
        assert.strictEqual((yield* send(newSecret)).status, "QUEUED")
        // A secret that was never the endpoint's is refused throughout.
        const stranger = yield* Effect.flip(send("whsec_c3RyYW5nZXJzdHJhbmdlcnN0cmFuZ2Vy"))
        assert.strictEqual(stranger._tag, "InvalidSignature")
      }))
  })

  describe("Idempotency-Key", () => {
    it.effect("the same key and body return the same id as a duplicate, stored and counted once", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const first = yield* host.send(endpoint.id, { event: "order.created" }, { idempotencyKey: "k-1" })
        const second = yield* host.send(endpoint.id, { event: "order.created" }, { idempotencyKey: "k-1" })
        assert.isFalse(first.duplicate)
        assert.isTrue(second.duplicate)
        assert.strictEqual(second.id, first.id)
        assert.strictEqual(second.status, "QUEUED")
        assert.deepStrictEqual((yield* host.events()).map((e) => e.id), [first.id])
        assert.strictEqual((yield* usageOf(host)).events, 1)
        yield* host.settle
        assert.strictEqual(host.receiver.requests(endpoint.url).length, 1)
      }))

    it.effect("the same key with a different body is IdempotencyConflict", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const first = yield* host.send(endpoint.id, { event: "order.created", n: 1 }, { idempotencyKey: "k-1" })
        const error = yield* Effect.flip(
          host.send(endpoint.id, { event: "order.created", n: 2 }, { idempotencyKey: "k-1" })
        )
        assert.strictEqual(error._tag, "IdempotencyConflict")
        assertSentence(error.message)
        assert.include(error.message, "Idempotency-Key")
        assert.deepStrictEqual((yield* host.events()).map((e) => e.id), [first.id])
        assert.strictEqual((yield* usageOf(host)).events, 1)
      }))

    it.effect("the same key is a duplicate until 24 h have passed, then makes a new event", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const first = yield* host.send(endpoint.id, { event: "order.created" }, { idempotencyKey: "k-1" })
        yield* host.advance("23 hours")
        yield* host.advance("59 minutes")
        yield* host.advance("59 seconds")
        const stillDuplicate = yield* host.send(endpoint.id, { event: "order.created" }, { idempotencyKey: "k-1" })
        assert.isTrue(stillDuplicate.duplicate)
        assert.strictEqual(stillDuplicate.id, first.id)
        yield* host.advance("1 second")
        const fresh = yield* host.send(endpoint.id, { event: "order.created" }, { idempotencyKey: "k-1" })
        assert.isFalse(fresh.duplicate)
        assert.notStrictEqual(fresh.id, first.id)
        assert.strictEqual((yield* host.events()).length, 2)
        assert.strictEqual((yield* usageOf(host)).events, 2)
      }))

    it.effect("idempotency keys belong to one organization", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint()
        const other = yield* host.run(
          Accounts.Accounts.use((accounts) => accounts.createOrganization({ name: "Other" }))
        )
        const otherEndpoint = yield* host.run(
          Endpoints.Endpoints.use((endpoints) =>
            endpoints.create(other.organization.id, { url: "https://other.test/" })
          )
        )
        const body = encoder.encode("{\"event\":\"order.created\"}")
        const mine = yield* host.send(endpoint.id, body, { idempotencyKey: "shared" })
        const theirs = yield* ingestWith(host, other.apiKey.key, {
          endpointId: otherEndpoint.id,
          body,
          idempotencyKey: "shared"
        })
        assert.isFalse(theirs.duplicate)
        assert.notStrictEqual(theirs.id, mine.id)
      }))
  })

  describe("metering", () => {
    it.effect("usage counts accepted events only: not rejected ones, duplicates or replays", () =>
      Effect.gen(function*() {
        const host = yield* makeTestHost()
        const endpoint = yield* host.createEndpoint({ eventTypes: ["order.*"] })
        assert.strictEqual((yield* usageOf(host)).events, 0)
        const first = yield* host.send(endpoint.id, { event: "order.created" }, { idempotencyKey: "a" })
        yield* host.send(endpoint.id, { event: "order.updated" })
        yield* host.send(endpoint.id, { event: "order.created" }, { idempotencyKey: "a" })
        yield* Effect.flip(host.send(endpoint.id, "{not json"))
        yield* Effect.flip(host.send(endpoint.id, { event: "user.created" }))
        yield* Effect.flip(host.send(endpoint.id, objectOfSize(STARTER_LIMIT + 1)))
        yield* Effect.flip(ingestWith(host, "pj_live_nope", { endpointId: endpoint.id, body: encoder.encode("{}") }))
        yield* host.settle
        assert.strictEqual((yield* host.event(first.id)).event.status, "DELIVERED")
        yield* host.replay(first.id)
        yield* host.settle
        const usage = yield* usageOf(host)
        assert.strictEqual(usage.events, 2)
        assert.strictEqual(usage.plan, "starter")
        assert.strictEqual(usage.includedEvents, 100_000)
        assert.strictEqual(usage.overageUnits, 0)
        assert.strictEqual(usage.maxPayloadBytes, STARTER_LIMIT)
        assert.strictEqual(usage.retentionDays, 7)
      }))

    it.effect("exceeding the included events never rejects: the excess is billed in whole overage units", () =>
      Effect.gen(function*() {
        const tiny = {
          ...Quota.starter,
          name: "tiny",
          includedEvents: 3,
          overageUnitEvents: 2,
          overageUnitPriceCents: 700
        }
        const host = yield* makeTestHost({ plans: Quota.makeCatalog([tiny]), plan: "tiny" })
        const endpoint = yield* host.createEndpoint()
        const units: Array<number> = []
        for (let i = 1; i <= 6; i++) {
          const result = yield* host.send(endpoint.id, { event: "order.created", i })
          assert.strictEqual(result.status, "QUEUED")
          units.push((yield* usageOf(host)).overageUnits)
        }
        // 4th event starts unit 1 (rounded up), 6th starts unit 2: ceil((6 - 3) / 2) = 2.
        assert.deepStrictEqual(units, [0, 0, 0, 1, 1, 2])
        const usage = yield* usageOf(host)
        assert.strictEqual(usage.events, 6)
        assert.strictEqual(usage.overageUnits, Quota.overageUnits(tiny, 6))
        assert.strictEqual(usage.overageCents, 1400)
        yield* host.settle
        assert.strictEqual((yield* host.events({ status: "DELIVERED" })).length, 6)
      }))
  })
})
