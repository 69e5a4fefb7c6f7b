/**
 * The conformance suite of the {@link Storage} port.
 *
 * Every implementation of Storage (memory, PostgreSQL, a plugin's own) must
 * pass the same cases, so the engine can rely on the contract rather than on
 * one backend. The suite needs the Queue of the same backend too, because
 * ingest and endpoint deletion write both atomically.
 *
 * Call it from a vitest test file of your package with a layer that builds a
 * fresh, empty backend each time it is built: every case provides the layer
 * itself, so cases never see each other's data.
 *
 * @example
 * ```ts
 * // packages/my-storage/test/MyStorage.test.ts
 * import { storageSuite } from "@promptjang/core/conformance/Storage"
 * import { queueSuite } from "@promptjang/core/conformance/Queue"
 * import * as MyStorage from "../src/MyStorage.ts"
 *
 * storageSuite("my-storage", MyStorage.layer) // Layer<Storage | Queue, E>
 * queueSuite("my-storage", MyStorage.layer)
 * ```
 *
 * Your package needs `vitest` and `@effect/vitest` as dev dependencies.
 *
 * @since 0.1.0
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, type Layer, Option, type Scope } from "effect"
import type { Event } from "../Domain.ts"
import { Queue } from "../Queue.ts"
import { Storage } from "../Storage.ts"
import * as Fixtures from "./fixtures.ts"

const { DAY, HOUR, MINUTE, NOW, PERIOD_START, NEXT_PERIOD_START, SECOND } = Fixtures

const idsOf = (items: ReadonlyArray<{ readonly id: string }>): Array<string> => items.map((item) => item.id)
const sortedIds = (items: ReadonlyArray<{ readonly id: string }>): Array<string> => idsOf(items).sort()
/** Newest first, as every listing is: by id, descending. */
const newestFirst = (items: ReadonlyArray<{ readonly id: string }>): Array<string> => idsOf(items).sort().reverse()

/**
 * Registers the Storage conformance cases under `describe(\`Storage (${name})\`)`.
 *
 * @param name - the implementation's name, shown in the test report
 * @param layer - builds a fresh, empty backend (Storage and Queue sharing it) per case
 */
export const storageSuite = (name: string, layer: Layer.Layer<Storage | Queue, unknown>): void => {
  const test = (
    title: string,
    body: () => Effect.Effect<void, unknown, Storage | Queue | Scope.Scope>,
    timeout?: number
  ) => it.effect(title, () => Effect.provide(body(), layer), timeout)

  describe(`Storage (${name})`, () => {
    describe("organizations", () => {
      test("creates, gets and lists organizations", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const acme = Fixtures.makeOrganization({ name: "Acme", plan: "starter" })
          const globex = Fixtures.makeOrganization({ name: "Globex", plan: "pro", at: NOW + SECOND })
          yield* storage.createOrganization(acme)
          yield* storage.createOrganization(globex)

          assert.deepStrictEqual(yield* storage.getOrganization(acme.id), Option.some(acme))
          assert.deepStrictEqual(yield* storage.getOrganization(globex.id), Option.some(globex))
          assert.isTrue(Option.isNone(yield* storage.getOrganization(Fixtures.organizationId(NOW))))
          const all = yield* storage.listOrganizations
          assert.deepStrictEqual([...all].sort((a, b) => (a.id < b.id ? -1 : 1)), [acme, globex])
        }))
    })

    describe("API keys", () => {
      test("creates an API key and finds it by its hash", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { organization } = yield* Fixtures.seedTenant()
          const key = Fixtures.makeApiKey(organization.id, { name: "ci" })
          yield* storage.createApiKey(key)

          assert.deepStrictEqual(yield* storage.findApiKeyByHash(key.keyHash), Option.some(key))
          assert.isTrue(Option.isNone(yield* storage.findApiKeyByHash("0".repeat(64))))
        }))

      test("finds a key together with its organization in one lookup", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { organization } = yield* Fixtures.seedTenant()
          const other = yield* Fixtures.seedTenant()
          const key = Fixtures.makeApiKey(organization.id, { name: "ci" })
          yield* storage.createApiKey(key)
          yield* storage.createApiKey(Fixtures.makeApiKey(other.organization.id))

          assert.deepStrictEqual(
            yield* storage.findApiKeyWithOrganization(key.keyHash),
            Option.some({ apiKey: key, organization })
          )
          assert.isTrue(Option.isNone(yield* storage.findApiKeyWithOrganization("0".repeat(64))))
          yield* storage.revokeApiKey(organization.id, key.id, NOW + SECOND)
          assert.deepStrictEqual(
            Option.map(yield* storage.findApiKeyWithOrganization(key.keyHash), (found) => found.apiKey.revokedAt),
            Option.some(NOW + SECOND)
          )
        }))

      test("lists only the organization's own keys", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const a = yield* Fixtures.seedTenant()
          const b = yield* Fixtures.seedTenant()
          const a1 = Fixtures.makeApiKey(a.organization.id)
          const a2 = Fixtures.makeApiKey(a.organization.id, { at: NOW + SECOND })
          const b1 = Fixtures.makeApiKey(b.organization.id)
          for (const key of [a1, b1, a2]) yield* storage.createApiKey(key)

          assert.deepStrictEqual(sortedIds(yield* storage.listApiKeys(a.organization.id)), sortedIds([a1, a2]))
          assert.deepStrictEqual(idsOf(yield* storage.listApiKeys(b.organization.id)), [b1.id])
          assert.deepStrictEqual(yield* storage.listApiKeys(Fixtures.organizationId(NOW)), [])
        }))

      test("revokes a key once and keeps the first revocation time", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { organization } = yield* Fixtures.seedTenant()
          const key = Fixtures.makeApiKey(organization.id)
          yield* storage.createApiKey(key)

          assert.isTrue(yield* storage.revokeApiKey(organization.id, key.id, NOW + MINUTE))
          const revoked = yield* storage.findApiKeyByHash(key.keyHash)
          assert.deepStrictEqual(Option.map(revoked, (k) => k.revokedAt), Option.some(NOW + MINUTE))

          assert.isTrue(yield* storage.revokeApiKey(organization.id, key.id, NOW + HOUR))
          const again = yield* storage.findApiKeyByHash(key.keyHash)
          assert.deepStrictEqual(Option.map(again, (k) => k.revokedAt), Option.some(NOW + MINUTE))
        }))

      test("refuses to revoke another organization's key", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const owner = yield* Fixtures.seedTenant()
          const other = yield* Fixtures.seedTenant()
          const key = Fixtures.makeApiKey(owner.organization.id)
          yield* storage.createApiKey(key)

          assert.isFalse(yield* storage.revokeApiKey(other.organization.id, key.id, NOW + MINUTE))
          assert.isFalse(yield* storage.revokeApiKey(owner.organization.id, Fixtures.apiKeyId(NOW), NOW + MINUTE))
          assert.deepStrictEqual(yield* storage.findApiKeyByHash(key.keyHash), Option.some(key))
        }))

      test("records when keys were last used and never moves that time backwards", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { organization } = yield* Fixtures.seedTenant()
          const first = Fixtures.makeApiKey(organization.id)
          const second = Fixtures.makeApiKey(organization.id)
          yield* storage.createApiKey(first)
          yield* storage.createApiKey(second)
          const lastUsed = (hash: string) =>
            storage.findApiKeyByHash(hash).pipe(Effect.map(Option.map((k) => k.lastUsedAt)))

          yield* storage.touchApiKeys([{ id: first.id, at: NOW + HOUR }, { id: second.id, at: NOW + MINUTE }])
          assert.deepStrictEqual(yield* lastUsed(first.keyHash), Option.some(NOW + HOUR))
          assert.deepStrictEqual(yield* lastUsed(second.keyHash), Option.some(NOW + MINUTE))

          yield* storage.touchApiKeys([{ id: first.id, at: NOW + MINUTE }, { id: second.id, at: NOW + HOUR }])
          assert.deepStrictEqual(yield* lastUsed(first.keyHash), Option.some(NOW + HOUR))
          assert.deepStrictEqual(yield* lastUsed(second.keyHash), Option.some(NOW + HOUR))
        }))
    })

    describe("endpoints", () => {
      test("creates an endpoint and reads it back", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { organization } = yield* Fixtures.seedTenant()
          const endpoint = Fixtures.makeEndpoint(organization.id, {
            description: "orders",
            eventTypes: ["order.*", "invoice.paid"],
            enabled: false,
            requireSignature: true,
            headers: { "X-Team": "billing" },
            retryDelays: [1_000, 5_000],
            previousSecret: "whsec_previous",
            previousSecretExpiresAt: NOW + DAY
          })
          yield* storage.createEndpoint(endpoint)

          assert.deepStrictEqual(yield* storage.getEndpoint(organization.id, endpoint.id), Option.some(endpoint))
        }))

      test("scopes every endpoint read by organization", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const owner = yield* Fixtures.seedTenant()
          const other = yield* Fixtures.seedTenant()

          assert.isTrue(Option.isNone(yield* storage.getEndpoint(other.organization.id, owner.endpoint.id)))
          assert.isTrue(Option.isNone(yield* storage.getEndpoint(owner.organization.id, Fixtures.endpointId(NOW))))
          const listed = yield* storage.listEndpoints(other.organization.id, { limit: 100 })
          assert.deepStrictEqual(idsOf(listed.data), [other.endpoint.id])
        }))

      test("finds an endpoint by id alone, for workers", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { endpoint } = yield* Fixtures.seedTenant()

          assert.deepStrictEqual(yield* storage.findEndpoint(endpoint.id), Option.some(endpoint))
          assert.isTrue(Option.isNone(yield* storage.findEndpoint(Fixtures.endpointId(NOW))))
        }))

      test("updates only the patched fields", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { organization } = yield* Fixtures.seedTenant()
          const endpoint = Fixtures.makeEndpoint(organization.id, {
            description: "orders",
            eventTypes: ["order.*"],
            requireSignature: true,
            headers: { "X-Team": "billing" },
            retryDelays: [1_000, 5_000]
          })
          yield* storage.createEndpoint(endpoint)
          const patch = {
            description: "renamed",
            enabled: false,
            eventTypes: ["order.paid"],
            previousSecret: endpoint.secret,
            previousSecretExpiresAt: NOW + DAY,
            secret: "whsec_rotated",
            updatedAt: NOW + MINUTE
          }
          const expected = { ...endpoint, ...patch }

          assert.deepStrictEqual(
            yield* storage.updateEndpoint(organization.id, endpoint.id, patch),
            Option.some(expected)
          )
          assert.deepStrictEqual(yield* storage.getEndpoint(organization.id, endpoint.id), Option.some(expected))

          const cleared = yield* storage.updateEndpoint(organization.id, endpoint.id, {
            url: "https://receiver.example.com/v2",
            headers: { "X-Env": "prod" },
            previousSecret: null,
            previousSecretExpiresAt: null,
            retryDelays: null,
            updatedAt: NOW + HOUR
          })
          assert.deepStrictEqual(
            cleared,
            Option.some({
              ...expected,
              url: "https://receiver.example.com/v2",
              headers: { "X-Env": "prod" },
              previousSecret: null,
              previousSecretExpiresAt: null,
              retryDelays: null,
              updatedAt: NOW + HOUR
            })
          )
        }))

      test("refuses to update another organization's endpoint", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const owner = yield* Fixtures.seedTenant()
          const other = yield* Fixtures.seedTenant()

          const result = yield* storage.updateEndpoint(other.organization.id, owner.endpoint.id, {
            url: "https://attacker.example.com/",
            updatedAt: NOW + MINUTE
          })
          assert.isTrue(Option.isNone(result))
          assert.deepStrictEqual(
            yield* storage.getEndpoint(owner.organization.id, owner.endpoint.id),
            Option.some(owner.endpoint)
          )
        }))

      test("lists endpoints newest first, page by page, within the organization", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { endpoint: first, organization } = yield* Fixtures.seedTenant()
          const other = yield* Fixtures.seedTenant(NOW + 2 * SECOND)
          const rest = [1, 2, 3, 4].map((i) => Fixtures.makeEndpoint(organization.id, { at: NOW + i * SECOND }))
          for (const endpoint of [rest[2], rest[0], rest[3], rest[1]]) {
            if (endpoint !== undefined) yield* storage.createEndpoint(endpoint)
          }
          const expected = newestFirst([first, ...rest])

          const page1 = yield* storage.listEndpoints(organization.id, { limit: 2 })
          assert.deepStrictEqual(idsOf(page1.data), expected.slice(0, 2))
          assert.isNotNull(page1.nextCursor)
          const page2 = yield* storage.listEndpoints(organization.id, { limit: 2, cursor: page1.nextCursor ?? "" })
          assert.deepStrictEqual(idsOf(page2.data), expected.slice(2, 4))
          assert.isNotNull(page2.nextCursor)
          const page3 = yield* storage.listEndpoints(organization.id, { limit: 2, cursor: page2.nextCursor ?? "" })
          assert.deepStrictEqual(idsOf(page3.data), expected.slice(4))
          assert.isNull(page3.nextCursor)

          const whole = yield* storage.listEndpoints(organization.id, { limit: 5 })
          assert.deepStrictEqual(idsOf(whole.data), expected)
          assert.isNull(whole.nextCursor)
          assert.deepStrictEqual(whole.data[0], rest[3])
          const others = yield* storage.listEndpoints(other.organization.id, { limit: 100 })
          assert.deepStrictEqual(idsOf(others.data), [other.endpoint.id])
        }))

      test("deletes an endpoint, failing its pending events and taking them off the queue", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          const kept = Fixtures.makeEndpoint(organization.id)
          yield* storage.createEndpoint(kept)
          const queued = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const retrying = yield* Fixtures.ingestEvent(endpoint, { at: NOW + SECOND })
          const done = yield* Fixtures.ingestEvent(endpoint, { at: NOW + 2 * SECOND })
          const elsewhere = yield* Fixtures.ingestEvent(kept, { at: NOW + 3 * SECOND })
          const retryClaim = yield* Fixtures.claimEvent(retrying.id, NOW + SECOND)
          const retry = Fixtures.retried(retryClaim.event, NOW + 5 * SECOND, NOW + MINUTE)
          assert.isTrue(yield* queue.complete(retryClaim, retry))
          const doneClaim = yield* Fixtures.claimEvent(done.id, NOW + 5 * SECOND)
          assert.isTrue(yield* queue.complete(doneClaim, Fixtures.delivered(doneClaim.event, NOW + 6 * SECOND)))
          const deliveredBefore = Option.map(yield* storage.getEvent(organization.id, done.id), Fixtures.comparable)

          const failedNow = yield* storage.deleteEndpoint(organization.id, endpoint.id, NOW + 10 * SECOND)
          assert.deepStrictEqual(
            Option.map(failedNow, (events) => events.map((e) => [e.id, e.status]).sort()),
            Option.some([[queued.id, "FAILED"], [retrying.id, "FAILED"]].sort())
          )

          assert.isTrue(Option.isNone(yield* storage.getEndpoint(organization.id, endpoint.id)))
          assert.isTrue(Option.isNone(yield* storage.findEndpoint(endpoint.id)))
          for (const event of [queued, retrying]) {
            const failed = yield* storage.getEvent(organization.id, event.id)
            assert.deepStrictEqual(
              Option.map(failed, (e) => [e.status, e.nextAttemptAt, e.updatedAt]),
              Option.some(["FAILED", null, NOW + 10 * SECOND])
            )
          }
          assert.deepStrictEqual(
            Option.map(yield* storage.getEvent(organization.id, done.id), Fixtures.comparable),
            deliveredBefore
          )
          assert.deepStrictEqual(Option.map(deliveredBefore, (e) => e.status), Option.some("DELIVERED"))
          const claimable = yield* queue.claimDue({ now: NOW + DAY, limit: 100, leaseMs: 30 * SECOND })
          assert.deepStrictEqual(claimable.map((claim) => claim.event.id), [elsewhere.id])
          assert.deepStrictEqual(
            Option.map(yield* storage.getEvent(organization.id, elsewhere.id), (e) => e.status),
            Option.some("QUEUED")
          )
        }))

      test("refuses to delete another organization's endpoint", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const owner = yield* Fixtures.seedTenant()
          const other = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(owner.endpoint)

          assert.isTrue(
            Option.isNone(yield* storage.deleteEndpoint(other.organization.id, owner.endpoint.id, NOW + MINUTE))
          )
          assert.isTrue(
            Option.isNone(yield* storage.deleteEndpoint(owner.organization.id, Fixtures.endpointId(NOW), NOW + MINUTE))
          )

          assert.deepStrictEqual(
            yield* storage.getEndpoint(owner.organization.id, owner.endpoint.id),
            Option.some(owner.endpoint)
          )
          assert.deepStrictEqual(
            Option.map(yield* storage.getEvent(owner.organization.id, event.id), Fixtures.comparable),
            Option.some(Fixtures.comparable(event))
          )
          const claims = yield* queue.claimDue({ now: NOW, limit: 10, leaseMs: 30 * SECOND })
          assert.deepStrictEqual(claims.map((claim) => claim.event.id), [event.id])
        }))
    })

    describe("ingest", () => {
      test("stores the event with its exact bytes and state", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          // Bytes that a JSON round trip or a text column would alter: key order, spacing, escapes, a BOM-like char.
          const bytes = new TextEncoder().encode(
            "{ \"b\":1,\"a\" : \"\\u00e9\u00e9\",\n\"event\":\"order.paid\" }\uFEFF"
          )
          const event = Fixtures.makeEvent(endpoint, { eventType: "order.paid", body: bytes })
          assert.deepStrictEqual(yield* storage.ingest(Fixtures.makeIngestRecord(event)), { _tag: "Inserted" })

          const stored = yield* storage.getEvent(organization.id, event.id)
          assert.isTrue(Option.isSome(stored))
          if (Option.isNone(stored)) return
          assert.deepStrictEqual(Array.from(stored.value.body), Array.from(bytes))
          assert.deepStrictEqual(Fixtures.stateOf(stored.value), Fixtures.stateOf(event))
          assert.deepStrictEqual(
            [stored.value.id, stored.value.organizationId, stored.value.endpointId, stored.value.eventType],
            [event.id, organization.id, endpoint.id, "order.paid"]
          )
          assert.strictEqual(stored.value.createdAt, event.createdAt)
        }))

      test("stores an event without a type", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { eventType: null, body: "{}" })

          const stored = yield* storage.getEvent(organization.id, event.id)
          assert.deepStrictEqual(Option.map(stored, (e) => e.eventType), Option.some(null))
        }))

      test("schedules the first delivery of an ingested event", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })

          const claims = yield* queue.claimDue({ now: NOW, limit: 10, leaseMs: 30 * SECOND })
          assert.deepStrictEqual(claims.map((claim) => claim.event.id), [event.id])
          const [claim] = claims
          assert.deepStrictEqual(Array.from(claim?.event.body ?? []), Array.from(event.body))
        }))

      test("stores an event only while the API key it came with exists and is not revoked", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          const live = Fixtures.makeApiKey(organization.id, { at: NOW })
          const revoked = Fixtures.makeApiKey(organization.id, { at: NOW + 1 })
          yield* storage.createApiKey(live)
          yield* storage.createApiKey(revoked)
          assert.isTrue(yield* storage.revokeApiKey(organization.id, revoked.id, NOW + SECOND))
          const missing = Fixtures.makeApiKey(organization.id, { at: NOW + 2 })

          const kept = Fixtures.makeEvent(endpoint, { at: NOW })
          const refused = Fixtures.makeEvent(endpoint, { at: NOW + 1 })
          const keyed = Fixtures.makeEvent(endpoint, { at: NOW + 2 })
          const unknown = Fixtures.makeEvent(endpoint, { at: NOW + 3 })
          const outcomes = yield* Effect.all([
            storage.ingest(Fixtures.makeIngestRecord(kept, { apiKeyId: live.id })),
            storage.ingest(Fixtures.makeIngestRecord(refused, { apiKeyId: revoked.id })),
            storage.ingest(
              Fixtures.makeIngestRecord(keyed, { apiKeyId: revoked.id, idempotency: Fixtures.makeIdempotency("k1") })
            ),
            storage.ingest(Fixtures.makeIngestRecord(unknown, { apiKeyId: missing.id }))
          ], { concurrency: "unbounded" })
          assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Inserted", "KeyRevoked", "KeyRevoked", "KeyRevoked"])

          // Nothing of the refused events was written: no event, no delivery, no usage, no idempotency key.
          for (const event of [refused, keyed, unknown]) {
            assert.isTrue(Option.isNone(yield* storage.getEvent(organization.id, event.id)))
          }
          assert.strictEqual(yield* storage.usage(organization.id, PERIOD_START), 1)
          const claims = yield* queue.claimDue({ now: NOW + HOUR, limit: 10, leaseMs: 30 * SECOND })
          assert.deepStrictEqual(claims.map((claim) => claim.event.id), [kept.id])
          const retried = Fixtures.makeEvent(endpoint, { at: NOW + 4 })
          assert.deepStrictEqual(
            yield* storage.ingest(
              Fixtures.makeIngestRecord(retried, { apiKeyId: live.id, idempotency: Fixtures.makeIdempotency("k1") })
            ),
            { _tag: "Inserted" }
          )
        }))

      test("counts usage exactly per organization and period", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const a = yield* Fixtures.seedTenant()
          const b = yield* Fixtures.seedTenant()
          for (let i = 0; i < 3; i++) yield* Fixtures.ingestEvent(a.endpoint, { periodStart: PERIOD_START })
          yield* Fixtures.ingestEvent(a.endpoint, { periodStart: NEXT_PERIOD_START })
          for (let i = 0; i < 2; i++) yield* Fixtures.ingestEvent(b.endpoint, { periodStart: PERIOD_START })

          assert.strictEqual(yield* storage.usage(a.organization.id, PERIOD_START), 3)
          assert.strictEqual(yield* storage.usage(a.organization.id, NEXT_PERIOD_START), 1)
          assert.strictEqual(yield* storage.usage(b.organization.id, PERIOD_START), 2)
          assert.strictEqual(yield* storage.usage(b.organization.id, NEXT_PERIOD_START), 0)
          assert.strictEqual(yield* storage.usage(a.organization.id, Date.UTC(2023, 9, 1)), 0)
        }))

      test("answers a repeated idempotency key with the first event and stores nothing new", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          const first = Fixtures.makeEvent(endpoint, { at: NOW })
          const retry = Fixtures.makeEvent(endpoint, { at: NOW + HOUR, body: "{\"event\":\"changed\"}" })
          const firstKey = Fixtures.makeIdempotency("order-42", { at: NOW, bodyHash: "a".repeat(64) })
          const retryKey = Fixtures.makeIdempotency("order-42", { at: NOW + HOUR, bodyHash: "b".repeat(64) })

          assert.deepStrictEqual(
            yield* storage.ingest(Fixtures.makeIngestRecord(first, { idempotency: firstKey })),
            { _tag: "Inserted" }
          )
          assert.deepStrictEqual(
            yield* storage.ingest(Fixtures.makeIngestRecord(retry, { idempotency: retryKey })),
            { _tag: "Duplicate", eventId: first.id, bodyHash: "a".repeat(64) }
          )

          assert.isTrue(Option.isNone(yield* storage.getEvent(organization.id, retry.id)))
          const listed = yield* storage.listEvents(organization.id, {}, { limit: 100 })
          assert.deepStrictEqual(idsOf(listed.data), [first.id])
          assert.strictEqual(yield* storage.usage(organization.id, PERIOD_START), 1)
          assert.strictEqual((yield* queue.stats).pending, 1)
        }))

      test("keeps idempotency keys apart per organization", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const a = yield* Fixtures.seedTenant()
          const b = yield* Fixtures.seedTenant()
          const key = Fixtures.makeIdempotency("order-42")

          const inA = Fixtures.makeEvent(a.endpoint)
          const inB = Fixtures.makeEvent(b.endpoint)
          assert.deepStrictEqual(
            yield* storage.ingest(Fixtures.makeIngestRecord(inA, { idempotency: key })),
            { _tag: "Inserted" }
          )
          assert.deepStrictEqual(
            yield* storage.ingest(Fixtures.makeIngestRecord(inB, { idempotency: key })),
            { _tag: "Inserted" }
          )
          assert.isTrue(Option.isSome(yield* storage.getEvent(b.organization.id, inB.id)))
          assert.strictEqual(yield* storage.usage(b.organization.id, PERIOD_START), 1)
        }))

      test("accepts an idempotency key again once it expired", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          const key = Fixtures.makeIdempotency("order-42", { at: NOW, ttl: DAY })
          const first = Fixtures.makeEvent(endpoint, { at: NOW })
          const justBefore = Fixtures.makeEvent(endpoint, { at: key.expiresAt - 1 })
          const atExpiry = Fixtures.makeEvent(endpoint, { at: key.expiresAt })
          const renewed = { ...key, expiresAt: key.expiresAt + DAY }

          assert.deepStrictEqual(
            yield* storage.ingest(Fixtures.makeIngestRecord(first, { idempotency: key })),
            { _tag: "Inserted" }
          )
          const duplicate = yield* storage.ingest(Fixtures.makeIngestRecord(justBefore, { idempotency: key }))
          assert.deepStrictEqual(duplicate, { _tag: "Duplicate", eventId: first.id, bodyHash: key.bodyHash })
          assert.deepStrictEqual(
            yield* storage.ingest(Fixtures.makeIngestRecord(atExpiry, { idempotency: renewed })),
            { _tag: "Inserted" }
          )

          assert.isTrue(Option.isSome(yield* storage.getEvent(organization.id, atExpiry.id)))
          assert.strictEqual(yield* storage.usage(organization.id, PERIOD_START), 2)
          // The key now points at the new event.
          const later = Fixtures.makeEvent(endpoint, { at: key.expiresAt + HOUR })
          assert.deepStrictEqual(
            yield* storage.ingest(Fixtures.makeIngestRecord(later, { idempotency: renewed })),
            { _tag: "Duplicate", eventId: atExpiry.id, bodyHash: key.bodyHash }
          )
        }))

      test("counts 200 concurrent ingests exactly", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          const events = Array.from({ length: 200 }, (_, i) => Fixtures.makeEvent(endpoint, { at: NOW + i }))

          const outcomes = yield* Effect.forEach(
            events,
            (event) => storage.ingest(Fixtures.makeIngestRecord(event)),
            { concurrency: 50 }
          )

          assert.isTrue(outcomes.every((outcome) => outcome._tag === "Inserted"))
          assert.strictEqual(yield* storage.usage(organization.id, PERIOD_START), 200)
        }), 60_000)

      test("inserts exactly one of 20 concurrent ingests with the same idempotency key", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          const key = Fixtures.makeIdempotency("order-42")
          const events = Array.from({ length: 20 }, () => Fixtures.makeEvent(endpoint))

          const outcomes = yield* Effect.forEach(
            events,
            (event) => storage.ingest(Fixtures.makeIngestRecord(event, { idempotency: key })),
            { concurrency: "unbounded" }
          )

          const inserted = events.filter((_, i) => outcomes[i]?._tag === "Inserted")
          assert.strictEqual(inserted.length, 1)
          const winner = inserted[0]?.id
          for (const outcome of outcomes) {
            if (outcome._tag === "Duplicate") assert.strictEqual(outcome.eventId, winner)
          }
          const listed = yield* storage.listEvents(organization.id, {}, { limit: 100 })
          assert.deepStrictEqual(idsOf(listed.data), inserted.map((event) => event.id))
          assert.strictEqual(yield* storage.usage(organization.id, PERIOD_START), 1)
          assert.strictEqual((yield* queue.stats).pending, 1)
        }), 60_000)
    })

    describe("events", () => {
      test("filters events by endpoint, status and event type", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint: orders, organization } = yield* Fixtures.seedTenant()
          const invoices = Fixtures.makeEndpoint(organization.id)
          yield* storage.createEndpoint(invoices)
          const created = yield* Fixtures.ingestEvent(orders, { at: NOW, eventType: "order.created" })
          const paid = yield* Fixtures.ingestEvent(orders, { at: NOW + 1, eventType: "order.paid" })
          const invoiceCreated = yield* Fixtures.ingestEvent(invoices, { at: NOW + 2, eventType: "order.created" })
          const untyped = yield* Fixtures.ingestEvent(invoices, { at: NOW + 3, eventType: null })
          const claim = yield* Fixtures.claimEvent(paid.id, NOW + 10)
          assert.isTrue(yield* queue.complete(claim, Fixtures.delivered(claim.event, NOW + 20)))
          const list = (filter: Parameters<typeof storage.listEvents>[1]) =>
            storage.listEvents(organization.id, filter, { limit: 100 }).pipe(Effect.map((page) => idsOf(page.data)))

          assert.deepStrictEqual(yield* list({}), newestFirst([created, paid, invoiceCreated, untyped]))
          assert.deepStrictEqual(yield* list({ endpointId: orders.id }), newestFirst([created, paid]))
          assert.deepStrictEqual(yield* list({ endpointId: invoices.id }), newestFirst([invoiceCreated, untyped]))
          assert.deepStrictEqual(yield* list({ status: "DELIVERED" }), [paid.id])
          assert.deepStrictEqual(yield* list({ status: "QUEUED" }), newestFirst([created, invoiceCreated, untyped]))
          assert.deepStrictEqual(yield* list({ status: "FAILED" }), [])
          assert.deepStrictEqual(yield* list({ eventType: "order.created" }), newestFirst([created, invoiceCreated]))
          assert.deepStrictEqual(yield* list({ endpointId: orders.id, eventType: "order.created" }), [created.id])
          assert.deepStrictEqual(yield* list({ endpointId: invoices.id, status: "DELIVERED" }), [])
          assert.deepStrictEqual(
            yield* list({ endpointId: orders.id, status: "QUEUED", eventType: "order.created" }),
            [created.id]
          )
        }))

      test("lists events newest first, page by page", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          const events: Array<Event> = []
          for (const offset of [3, 0, 4, 1, 2]) {
            events.push(yield* Fixtures.ingestEvent(endpoint, { at: NOW + offset * SECOND }))
          }
          const expected = newestFirst(events)

          const page1 = yield* storage.listEvents(organization.id, {}, { limit: 2 })
          assert.deepStrictEqual(idsOf(page1.data), expected.slice(0, 2))
          assert.isNotNull(page1.nextCursor)
          const page2 = yield* storage.listEvents(organization.id, {}, { limit: 2, cursor: page1.nextCursor ?? "" })
          assert.deepStrictEqual(idsOf(page2.data), expected.slice(2, 4))
          assert.isNotNull(page2.nextCursor)
          const page3 = yield* storage.listEvents(organization.id, {}, { limit: 2, cursor: page2.nextCursor ?? "" })
          assert.deepStrictEqual(idsOf(page3.data), expected.slice(4))
          assert.isNull(page3.nextCursor)

          const whole = yield* storage.listEvents(organization.id, {}, { limit: 5 })
          assert.deepStrictEqual(idsOf(whole.data), expected)
          assert.isNull(whole.nextCursor)
        }))

      test("paginates a filtered listing", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          const other = Fixtures.makeEndpoint(organization.id)
          yield* storage.createEndpoint(other)
          const mine: Array<Event> = []
          for (let i = 0; i < 3; i++) {
            mine.push(yield* Fixtures.ingestEvent(endpoint, { at: NOW + 2 * i * SECOND }))
            yield* Fixtures.ingestEvent(other, { at: NOW + (2 * i + 1) * SECOND })
          }
          const expected = newestFirst(mine)

          const page1 = yield* storage.listEvents(organization.id, { endpointId: endpoint.id }, { limit: 2 })
          assert.deepStrictEqual(idsOf(page1.data), expected.slice(0, 2))
          const page2 = yield* storage.listEvents(organization.id, { endpointId: endpoint.id }, {
            limit: 2,
            cursor: page1.nextCursor ?? ""
          })
          assert.deepStrictEqual(idsOf(page2.data), expected.slice(2))
          assert.isNull(page2.nextCursor)
        }))

      test("scopes every event read by organization", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const owner = yield* Fixtures.seedTenant()
          const other = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(owner.endpoint)
          const theirs = yield* Fixtures.ingestEvent(other.endpoint)
          const claim = yield* Fixtures.claimEvent(event.id, NOW)
          assert.isTrue(yield* queue.complete(claim, Fixtures.delivered(claim.event, NOW + SECOND)))

          assert.isTrue(Option.isNone(yield* storage.getEvent(other.organization.id, event.id)))
          assert.deepStrictEqual(yield* storage.listAttempts(other.organization.id, event.id), [])
          assert.strictEqual((yield* storage.listAttempts(owner.organization.id, event.id)).length, 1)
          const listed = yield* storage.listEvents(other.organization.id, {}, { limit: 100 })
          assert.deepStrictEqual(idsOf(listed.data), [theirs.id])
          const byEndpoint = yield* storage.listEvents(other.organization.id, { endpointId: owner.endpoint.id }, {
            limit: 100
          })
          assert.deepStrictEqual(byEndpoint.data, [])
        }))

      test("lists attempts by cycle, then attempt number", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })

          const first = yield* Fixtures.claimEvent(event.id, NOW)
          const failed = Fixtures.retried(first.event, NOW + SECOND, NOW + MINUTE)
          assert.isTrue(yield* queue.complete(first, failed))
          const second = yield* Fixtures.claimEvent(event.id, NOW + MINUTE)
          const succeeded = Fixtures.delivered(second.event, NOW + MINUTE + SECOND)
          assert.isTrue(yield* queue.complete(second, succeeded))
          const final = yield* storage.getEvent(organization.id, event.id)
          assert.isTrue(Option.isSome(final))
          if (Option.isNone(final)) return
          assert.isTrue(yield* queue.schedule(Fixtures.replay(final.value, NOW + HOUR)))
          const third = yield* Fixtures.claimEvent(event.id, NOW + HOUR)
          const replayed = Fixtures.delivered(third.event, NOW + HOUR + SECOND)
          assert.isTrue(yield* queue.complete(third, replayed))

          const attempts = yield* storage.listAttempts(organization.id, event.id)
          assert.deepStrictEqual(attempts.map((a) => [a.cycle, a.number]), [[1, 1], [1, 2], [2, 1]])
          assert.deepStrictEqual(attempts, [failed.attempt, succeeded.attempt, replayed.attempt])
        }))
    })

    describe("retention", () => {
      test("purges at most limit events created before the cutoff, with their attempts", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          const other = yield* Fixtures.seedTenant()
          const cutoff = NOW + DAY
          const old: Array<Event> = []
          for (let i = 0; i < 5; i++) old.push(yield* Fixtures.ingestEvent(endpoint, { at: NOW + i * HOUR }))
          const atCutoff = yield* Fixtures.ingestEvent(endpoint, { at: cutoff })
          const recent = yield* Fixtures.ingestEvent(endpoint, { at: cutoff + HOUR })
          const othersOld = yield* Fixtures.ingestEvent(other.endpoint, { at: NOW })
          const oldest = old[0]
          assert.isDefined(oldest)
          if (oldest === undefined) return
          const claim = yield* Fixtures.claimEvent(oldest.id, NOW)
          assert.isTrue(yield* queue.complete(claim, Fixtures.delivered(claim.event, NOW + SECOND)))
          const remaining = () =>
            storage.listEvents(organization.id, {}, { limit: 100 }).pipe(Effect.map((page) => idsOf(page.data)))

          assert.strictEqual(yield* storage.purgeEvents(organization.id, cutoff, 3), 3)
          const afterFirst = yield* remaining()
          assert.strictEqual(afterFirst.length, 4)
          assert.includeMembers(afterFirst, [atCutoff.id, recent.id])

          assert.strictEqual(yield* storage.purgeEvents(organization.id, cutoff, 3), 2)
          assert.deepStrictEqual(yield* remaining(), newestFirst([atCutoff, recent]))
          assert.strictEqual(yield* storage.purgeEvents(organization.id, cutoff, 3), 0)

          for (const event of old) {
            assert.isTrue(Option.isNone(yield* storage.getEvent(organization.id, event.id)))
          }
          assert.deepStrictEqual(yield* storage.listAttempts(organization.id, oldest.id), [])
          assert.deepStrictEqual(
            Option.map(yield* storage.getEvent(other.organization.id, othersOld.id), Fixtures.comparable),
            Option.some(Fixtures.comparable(othersOld))
          )
          assert.strictEqual((yield* queue.stats).pending, 3)
          const claimable = yield* queue.claimDue({ now: cutoff + DAY, limit: 100, leaseMs: 30 * SECOND })
          assert.deepStrictEqual(
            claimable.map((c) => c.event.id).sort(),
            [atCutoff.id, recent.id, othersOld.id].sort()
          )
        }))
    })
  })
}
