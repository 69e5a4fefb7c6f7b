/**
 * The reads every ingested event needs (its endpoint and its API key) under load: after the cached values
 * expire, a burst of events costs one read of each, not one per event.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { TestClock } from "effect/testing"
import * as Accounts from "../src/Accounts.ts"
import * as Endpoints from "../src/Endpoints.ts"
import * as Engine from "../src/Engine.ts"
import * as Ingestion from "../src/Ingestion.ts"
import * as Memory from "../src/Memory.ts"
import * as Storage from "../src/Storage.ts"

/** Memory storage whose endpoint and API key reads are counted, and take a turn of the scheduler each. */
const counting = () => {
  const reads = { endpoint: 0, apiKey: 0 }
  const layer = Layer.effect(
    Storage.Storage,
    Effect.gen(function*() {
      const storage = yield* Storage.Storage
      return {
        ...storage,
        getEndpoint: (organizationId, id) =>
          Effect.andThen(
            Effect.sync(() => reads.endpoint++),
            Effect.andThen(Effect.yieldNow, storage.getEndpoint(organizationId, id))
          ),
        findApiKeyWithOrganization: (hash) =>
          Effect.andThen(
            Effect.sync(() => reads.apiKey++),
            Effect.andThen(Effect.yieldNow, storage.findApiKeyWithOrganization(hash))
          )
      } satisfies Storage.Storage["Service"]
    })
  )
  return { reads, layer }
}

describe("the reads of every ingest", () => {
  it.effect("a burst after the endpoint and the key expired reads each once; in steady use they are refreshed ahead", () => {
    const { layer, reads } = counting()
    return Effect.gen(function*() {
      const { apiKey, organization } = yield* Accounts.Accounts.use((a) => a.createOrganization({ name: "Acme" }))
      const endpoint = yield* Endpoints.Endpoints.use((e) =>
        e.create(organization.id, { url: "https://example.com/hooks" })
      )
      const body = new TextEncoder().encode(`{"event":"order.created"}`)
      const ingest = Ingestion.Ingestion.use((i) => i.ingest(apiKey.key, { endpointId: endpoint.id, body }))
      yield* ingest
      assert.deepStrictEqual(reads, { endpoint: 1, apiKey: 1 })

      // Both expired (they serve for 1 second): 20 events at once share one read of each.
      yield* TestClock.adjust("2 seconds")
      const burst = yield* Effect.forEach(Array.from({ length: 20 }), () => Effect.forkChild(ingest))
      const results = yield* Fiber.joinAll(burst)
      assert.strictEqual(new Set(results.map((r) => r.id)).size, 20)
      assert.deepStrictEqual(reads, { endpoint: 2, apiKey: 2 })

      // Past half their time, the next event is served from them and starts one refresh of each.
      yield* TestClock.adjust("600 millis")
      for (let i = 0; i < 5; i++) yield* ingest
      yield* Effect.yieldNow
      yield* Effect.yieldNow
      assert.deepStrictEqual(reads, { endpoint: 3, apiKey: 3 })
      // Refreshed at 600 ms: still fresh 900 ms later, so no event waits for a read.
      yield* TestClock.adjust("900 millis")
      yield* ingest
      assert.deepStrictEqual(reads, { endpoint: 3, apiKey: 3 })
    }).pipe(
      Effect.provide(Engine.layer.pipe(Layer.provide(layer), Layer.provide([Memory.layer, FetchHttpClient.layer])))
    )
  })
})
