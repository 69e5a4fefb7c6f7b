/**
 * A host's delivery transport (`Dispatcher.CurrentTransport`) replaces the `HttpClient` for deliveries:
 * the dispatcher sends through it, records what it reports, and interrupts it at the timeout.
 */
import { assert, describe, it } from "@effect/vitest"
import { Accounts, Dispatcher, Endpoints, Engine, Entropy, Ids, Ingestion, Memory, Storage } from "@promptjang/core"
import { Context, Effect, Layer } from "effect"
import { HttpClient } from "effect/http"
import { TestClock } from "effect/testing"

const SECOND = 1000

const setup = (transport: Dispatcher.Transport, entropy: Entropy.Entropy = Entropy.fromRandom) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(Date.UTC(2026, 4, 26, 12))
    const engine = yield* Layer.build(
      Engine.layer.pipe(
        Layer.provideMerge(Memory.layer),
        // With a transport set, the HttpClient must not be used for deliveries.
        Layer.provide(Layer.succeed(
          HttpClient.HttpClient,
          HttpClient.make(() => Effect.die(new Error("the HttpClient was used for a delivery")))
        )),
        Layer.provide(Layer.mergeAll(
          Layer.succeed(Dispatcher.CurrentTransport, transport),
          Layer.succeed(Entropy.Entropy, entropy)
        ))
      )
    )
    const { apiKey, organization } = yield* Context.get(engine, Accounts.Accounts).createOrganization({ name: "T" })
    const endpoint = yield* Context.get(engine, Endpoints.Endpoints).create(organization.id, {
      url: "https://receiver.test/hooks?x=1",
      headers: { "x-custom": "yes" }
    })
    const { id } = yield* Context.get(engine, Ingestion.Ingestion).ingest(apiKey.key, {
      endpointId: endpoint.id,
      body: new TextEncoder().encode(`{"event":"order.created"}`)
    })
    yield* Effect.forkScoped(Context.get(engine, Dispatcher.Dispatcher).run)
    const storage = Context.get(engine, Storage.Storage)
    const attempts = Effect.orDie(storage.listAttempts(organization.id, id))
    const event = Effect.orDie(storage.getEvent(organization.id, id))
    return { endpoint, id, attempts, event }
  })

const turns = Effect.gen(function*() {
  for (let i = 0; i < 50; i++) yield* Effect.yieldNow
})

describe("Dispatcher.CurrentTransport", () => {
  it.effect("sends every delivery through the transport and records what it reports", () =>
    Effect.gen(function*() {
      const sent: Array<{ delivery: Dispatcher.Delivery; maxResponseBytes: number }> = []
      const host = yield* setup((delivery, maxResponseBytes) => {
        sent.push({ delivery, maxResponseBytes })
        return Effect.succeed({ statusCode: 200, responseBody: "thanks", error: null })
      })
      yield* turns
      assert.strictEqual(sent.length, 1)
      const first = sent[0] ?? assert.fail("nothing sent")
      assert.strictEqual(first.delivery.url, host.endpoint.url)
      assert.strictEqual(first.maxResponseBytes, Dispatcher.defaultOptions.maxResponseBytes)
      assert.strictEqual(new TextDecoder().decode(first.delivery.body), `{"event":"order.created"}`)
      assert.strictEqual(first.delivery.headers["x-promptjang-event-id"], host.id)
      assert.strictEqual(first.delivery.headers["x-custom"], "yes")
      assert.match(first.delivery.headers["x-promptjang-signature"] ?? "", /^[0-9a-f]{64}$/)
      const attempts = yield* host.attempts
      assert.deepStrictEqual(attempts.map((a) => [a.statusCode, a.responseBody, a.succeeded]), [[200, "thanks", true]])
      const event = yield* host.event
      assert.strictEqual(event._tag === "Some" ? event.value.status : "missing", "DELIVERED")
    }))

  it.effect("interrupts a transport that has not answered at the timeout and records a timeout", () =>
    Effect.gen(function*() {
      let interrupted = 0
      const host = yield* setup(() => Effect.onInterrupt(Effect.never, () => Effect.sync(() => interrupted++)))
      yield* turns
      assert.deepStrictEqual(yield* host.attempts, [])
      yield* TestClock.adjust(Dispatcher.defaultOptions.timeoutMs - SECOND)
      yield* turns
      assert.deepStrictEqual(yield* host.attempts, [])
      yield* TestClock.adjust(SECOND)
      yield* turns
      assert.strictEqual(interrupted, 1)
      const attempts = yield* host.attempts
      assert.deepStrictEqual(attempts.map((a) => [a.statusCode, a.error, a.succeeded]), [[null, "timeout", false]])
    }))

  it.effect("makes event and attempt ids from the entropy the engine was built with, not the caller's", () =>
    Effect.gen(function*() {
      const fixed: Entropy.Entropy = { bytes: (length) => Effect.succeed(new Uint8Array(length).fill(0x11)) }
      const host = yield* setup(() => Effect.succeed({ statusCode: 200, responseBody: "", error: null }), fixed).pipe(
        // What the caller's context holds must not matter.
        Effect.provideService(Entropy.Entropy, Entropy.fromRandom)
      )
      yield* turns
      const random = (id: string) => id.slice(-20)
      assert.strictEqual(random(host.id), random(Ids.format("evt_", 0, new Uint8Array(13).fill(0x11))))
      const attempts = yield* host.attempts
      assert.strictEqual(attempts.length, 1)
      assert.strictEqual(random(attempts[0]?.id ?? ""), random(host.id))
    }))
})
