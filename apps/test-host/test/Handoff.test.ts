import { assert, describe, it } from "@effect/vitest"
import {
  Accounts,
  Backoff,
  Dispatcher,
  Endpoints,
  Engine,
  Entropy,
  Ingestion,
  Memory,
  Queue,
  Quota,
  Storage
} from "@promptjang/core"
import type { EventId } from "@promptjang/core/Ids"
import type { Claim, LocalWorker } from "@promptjang/core/Queue"
import { Clock, Context, Deferred, Effect, Fiber, Layer } from "effect"
import { HttpClient } from "effect/http"
import { TestClock } from "effect/testing"
import * as Receiver from "../src/Receiver.ts"

const SECOND = 1000
const encoder = new TextEncoder()

/**
 * The engine over a memory queue that offers `attachWorker`, as the PostgreSQL backend does: the test plays
 * the backend, claiming deliveries itself and handing them to the attached dispatcher.
 */
const setup = (options: Partial<Dispatcher.DispatcherOptions>) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(Date.UTC(2026, 4, 26, 12))
    const receiver = Receiver.make()
    const memory = yield* Layer.build(Memory.layer)
    const queue = Context.get(memory, Queue.Queue)
    let worker: LocalWorker | undefined
    const released: Array<EventId> = []
    // Runs once, as the next claim returns: a handoff that lands while a claim is under way.
    let duringClaim: (() => void) | undefined
    // While set, recording an attempt waits for it (a commit that stalls).
    let recording: Deferred.Deferred<void> | undefined
    let recorded = 0
    const handingQueue = Queue.Queue.of({
      ...queue,
      claimDue: (request) =>
        Effect.map(queue.claimDue(request), (claims) => {
          const hook = duringClaim
          duringClaim = undefined
          hook?.()
          return claims
        }),
      release: (claims) => {
        released.push(...claims.map((c) => c.event.id))
        return queue.release(claims)
      },
      complete: (claim, completion) =>
        Effect.andThen(recording === undefined ? Effect.void : Deferred.await(recording), () => {
          recorded++
          return queue.complete(claim, completion)
        }),
      attachWorker: (w) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            worker = w
          }),
          () =>
            Effect.sync(() => {
              worker = undefined
            })
        )
    })
    const engine = yield* Layer.build(
      Engine.layer.pipe(
        Layer.provide([
          Layer.succeed(Storage.Storage, Context.get(memory, Storage.Storage)),
          Layer.succeed(Queue.Queue, handingQueue),
          Layer.succeed(HttpClient.HttpClient, receiver.client)
        ]),
        Layer.provide(Layer.mergeAll(
          Layer.succeed(Backoff.CurrentSchedule, Backoff.defaultSchedule),
          Layer.succeed(Dispatcher.Options, { ...Dispatcher.defaultOptions, ...options }),
          Layer.succeed(Quota.Plans, Quota.defaultCatalog),
          Layer.succeed(Entropy.Entropy, Entropy.fromRandom)
        ))
      )
    )
    const { apiKey, organization } = yield* Context.get(engine, Accounts.Accounts).createOrganization({ name: "H" })
    const endpoints = Context.get(engine, Endpoints.Endpoints)
    const ingestion = Context.get(engine, Ingestion.Ingestion)
    const dispatcher = Context.get(engine, Dispatcher.Dispatcher)
    const leaseMs = Dispatcher.defaultOptions.timeoutMs + Dispatcher.defaultOptions.leaseMarginMs

    const endpoint = (url: string) => endpoints.create(organization.id, { url })
    let sent = 0
    /** Ingests `n` events, left in the queue. */
    const ingest = (endpointId: string, n: number) =>
      Effect.gen(function*() {
        for (let i = 0; i < n; i++) {
          yield* ingestion.ingest(apiKey.key, { endpointId, body: encoder.encode(`{"event":"e","n":${sent++}}`) })
        }
      })
    /** Ingests `n` events and claims their deliveries, as a backend leases them in the ingest write. */
    const ingestAndClaim = (endpointId: string, n: number) =>
      Effect.gen(function*() {
        yield* ingest(endpointId, n)
        return yield* queue.claimDue({ now: yield* Clock.currentTimeMillis, limit: 1000, leaseMs })
      })
    const attachedYet = () => worker !== undefined
    /** Starts the dispatcher and waits until it has attached itself. */
    const start = Effect.gen(function*() {
      const fiber = yield* Effect.forkScoped(dispatcher.run)
      for (let turn = 0; turn < 100 && !attachedYet(); turn++) yield* Effect.yieldNow
      return fiber
    })
    const attached = (): LocalWorker => {
      if (worker === undefined) return assert.fail("no worker attached")
      return worker
    }
    /** Offers every claim as the backend does: reserve before the write, take after the commit. */
    const handOver = (claims: ReadonlyArray<Claim>) =>
      claims.map((claim) => {
        const accepted = attached().reserve(claim.event.endpointId)
        if (accepted) attached().take(claim)
        return accepted
      })
    const turns = Effect.gen(function*() {
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
    })
    const onNextClaim = (hook: () => void) => {
      duringClaim = hook
    }
    /** Stalls the recording of attempts until the effect returned is run. */
    const stallRecording = Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      recording = gate
      return Effect.suspend(() => {
        recording = undefined
        return Deferred.succeed(gate, undefined)
      })
    })
    const storage = Context.get(memory, Storage.Storage)
    /** The stored state of an event of the test's organization. */
    const stored = (id: EventId) =>
      Effect.flatMap(storage.getEvent(organization.id, id), (found) =>
        found._tag === "Some" ? Effect.succeed(found.value) : Effect.die(new Error(`no event ${id}`)))
    return {
      stored,
      receiver,
      released,
      endpoint,
      ingest,
      ingestAndClaim,
      start,
      attached,
      handOver,
      turns,
      onNextClaim,
      stallRecording,
      recorded: () =>
        recorded,
      status: dispatcher.status
    }
  })

const bodyNumber = (body: Uint8Array): number => (JSON.parse(new TextDecoder().decode(body)) as { n: number }).n

describe("Local handoff", () => {
  it.effect("deliveries handed over beyond an endpoint's cap wait in memory and start in order as slots free", () =>
    Effect.gen(function*() {
      const host = yield* setup({ perEndpointConcurrency: 2 })
      const endpoint = yield* host.endpoint("https://receiver.test/a")
      host.receiver.script(endpoint.url, { status: 200, delay: "1 second" })
      const claims = yield* host.ingestAndClaim(endpoint.id, 6)
      yield* host.start
      assert.deepStrictEqual(host.handOver(claims), [true, true, true, true, true, true])
      yield* host.turns
      // Two at once (the endpoint's cap); the other four wait, not sent back to the queue.
      assert.strictEqual(host.receiver.requests().length, 2)
      assert.strictEqual(host.receiver.pending(), 2)
      assert.deepStrictEqual(host.released, [])
      for (let second = 1; second <= 3; second++) {
        yield* TestClock.adjust(SECOND)
        yield* host.turns
        assert.strictEqual(host.receiver.requests().length, Math.min(6, 2 + 2 * second))
      }
      yield* TestClock.adjust(SECOND)
      yield* host.turns
      // In the order they were handed over.
      assert.deepStrictEqual(
        host.receiver.requests().map((r) => bodyNumber(r.body)),
        claims.map((c) => bodyNumber(c.event.body))
      )
      assert.strictEqual(host.receiver.pending(), 0)
      assert.deepStrictEqual(host.released, [])
    }))

  it.effect("a held delivery that waited holdMs goes back to the queue, and so does every held one on shutdown", () =>
    Effect.gen(function*() {
      const host = yield* setup({ perEndpointConcurrency: 1, holdMs: 2 * SECOND })
      const slow = yield* host.endpoint("https://receiver.test/slow")
      host.receiver.script(slow.url, { hang: true })
      const first = yield* host.ingestAndClaim(slow.id, 3)
      const fiber = yield* host.start
      const worker = host.attached()
      host.handOver(first)
      yield* host.turns
      assert.strictEqual(host.receiver.pending(), 1)
      // Handed over later: still within its hold when the first two are given back.
      yield* TestClock.adjust(SECOND)
      const second = yield* host.ingestAndClaim(slow.id, 2)
      host.handOver(second.slice(0, 1))
      // Reserved before the shutdown, stored after it.
      assert.isTrue(worker.reserve(slow.id))
      yield* TestClock.adjust(SECOND + 500)
      yield* host.turns
      assert.deepStrictEqual(host.released, [first[1]?.event.id, first[2]?.event.id])
      yield* Fiber.interrupt(fiber)
      // The in-flight one and the one still held are given back at once, not left to their leases.
      assert.sameMembers(host.released, [
        first[0]?.event.id,
        first[1]?.event.id,
        first[2]?.event.id,
        second[0]?.event.id
      ])
      // A delivery stored after the shutdown goes straight back, and nothing new is reserved.
      const late = second[1]
      if (late === undefined) return assert.fail("two claims expected")
      worker.take(late)
      yield* host.turns
      assert.include(host.released, late.event.id)
      assert.isFalse(worker.reserve(slow.id))
    }))

  it.effect("a claimed delivery whose endpoint filled up during the claim waits in memory, not back in the queue", () =>
    Effect.gen(function*() {
      const host = yield* setup({ perEndpointConcurrency: 2 })
      const endpoint = yield* host.endpoint("https://receiver.test/a")
      host.receiver.script(endpoint.url, { status: 200, delay: "1 second" })
      const handed = yield* host.ingestAndClaim(endpoint.id, 2)
      // Two more wait in the queue; while the dispatcher claims them, the two above are handed over.
      yield* host.ingest(endpoint.id, 2)
      host.onNextClaim(() => host.handOver(handed))
      yield* host.start
      yield* host.turns
      // The handed-over two fill the endpoint; the two claimed are held, not released to be claimed again.
      assert.strictEqual(host.receiver.requests().length, 2)
      assert.deepStrictEqual(host.released, [])
      yield* TestClock.adjust(SECOND)
      yield* host.turns
      assert.strictEqual(host.receiver.requests().length, 4)
      const order = host.receiver.requests().map((r) => bodyNumber(r.body))
      assert.sameMembers(order.slice(0, 2), [0, 1])
      assert.sameMembers(order.slice(2), [2, 3])
      yield* TestClock.adjust(SECOND)
      yield* host.turns
      assert.strictEqual(host.receiver.pending(), 0)
      assert.deepStrictEqual(host.released, [])
    }))

  it.effect("refuses handoffs beyond maxHeldPerEndpoint and maxHeld; a refused endpoint's deliveries go to the queue until a claim finds none left", () =>
    Effect.gen(function*() {
      const host = yield* setup({ maxHeld: 5, maxHeldPerEndpoint: 3 })
      const a = yield* host.endpoint("https://receiver.test/a")
      const b = yield* host.endpoint("https://receiver.test/b")
      yield* host.start
      const worker = host.attached()
      const c = yield* host.endpoint("https://receiver.test/c")
      assert.deepStrictEqual([1, 2, 3, 4].map(() => worker.reserve(a.id)), [true, true, true, false])
      assert.deepStrictEqual([1, 2].map(() => worker.reserve(b.id)), [true, true])
      assert.isFalse(worker.reserve(c.id), "c has none, but the process holds 5")
      worker.cancel(a.id)
      // There is room again, but c's refused delivery waits in the queue: later ones must not overtake it.
      assert.isFalse(worker.reserve(c.id))
      // The next claim finds nothing of c's left in the queue (it delivers b's new event): c is handed over again.
      yield* host.ingest(b.id, 1)
      yield* host.turns
      assert.strictEqual(host.receiver.requests().length, 1)
      assert.isTrue(worker.reserve(c.id))
      assert.isFalse(worker.reserve(b.id), "the process holds 5 again")
    }))

  it.effect("a refused endpoint is handed over again only once its queued deliveries are claimed", () =>
    Effect.gen(function*() {
      const host = yield* setup({ perEndpointConcurrency: 1, maxHeldPerEndpoint: 1 })
      const endpoint = yield* host.endpoint("https://receiver.test/a")
      host.receiver.script(endpoint.url, { status: 200, delay: "1 second" })
      yield* host.start
      const worker = host.attached()
      assert.isTrue(worker.reserve(endpoint.id))
      assert.isFalse(worker.reserve(endpoint.id))
      worker.cancel(endpoint.id)
      // Two wait in the queue; the endpoint takes one at a time.
      yield* host.ingest(endpoint.id, 2)
      yield* host.turns
      assert.strictEqual(host.receiver.requests().length, 1)
      assert.isFalse(worker.reserve(endpoint.id), "one is still queued")
      yield* TestClock.adjust(SECOND)
      yield* host.turns
      assert.strictEqual(host.receiver.requests().length, 2)
      assert.isFalse(worker.reserve(endpoint.id))
      // The last one was claimed when the endpoint had room for it alone: the claim could not tell that none
      // was left. The next claim, once it ends, can.
      yield* TestClock.adjust(SECOND)
      yield* host.turns
      assert.isTrue(worker.reserve(endpoint.id))
    }))

  it.effect("a stalled commit of attempts does not hold request slots: deliveries go on up to maxUnfinished", () =>
    Effect.gen(function*() {
      // 4 requests at once (3 of them for handed-over deliveries), 6 deliveries unfinished at most.
      const host = yield* setup({ concurrency: 4, perEndpointConcurrency: 4, maxUnfinished: 6 })
      const endpoint = yield* host.endpoint("https://receiver.test/a")
      const resume = yield* host.stallRecording
      const claims = yield* host.ingestAndClaim(endpoint.id, 10)
      yield* host.start
      host.handOver(claims)
      yield* host.turns
      // Every request ended at once; their attempts wait to be recorded, and still more requests went out.
      assert.strictEqual(host.receiver.requests().length, 6)
      assert.strictEqual(host.receiver.pending(), 0)
      assert.strictEqual(host.recorded(), 0)
      assert.strictEqual((yield* host.status).inFlight, 6)
      yield* resume
      yield* host.turns
      assert.strictEqual(host.receiver.requests().length, 10)
      assert.strictEqual(host.recorded(), 10)
      assert.deepStrictEqual(
        host.receiver.requests().map((r) => bodyNumber(r.body)),
        claims.map((c) => bodyNumber(c.event.body))
      )
      assert.strictEqual((yield* host.status).inFlight, 0)
      assert.deepStrictEqual(host.released, [])
    }))

  it.effect("claims stop while maxUnfinished deliveries wait to be recorded, and resume once they are", () =>
    Effect.gen(function*() {
      const host = yield* setup({ concurrency: 4, perEndpointConcurrency: 4, maxUnfinished: 6 })
      const endpoint = yield* host.endpoint("https://receiver.test/a")
      const resume = yield* host.stallRecording
      // In the queue, found by claims, not handed over: the second claim takes only the 2 left of the 6.
      yield* host.ingest(endpoint.id, 10)
      yield* host.start
      yield* host.turns
      assert.strictEqual(host.receiver.requests().length, 6)
      assert.strictEqual((yield* host.status).inFlight, 6)
      yield* resume
      yield* host.turns
      assert.strictEqual(host.receiver.requests().length, 10)
      assert.strictEqual(host.recorded(), 10)
      assert.strictEqual((yield* host.status).inFlight, 0)
    }))

  it.effect("a dispatcher stopped while attempts wait to be recorded records them before it stops", () =>
    Effect.gen(function*() {
      const host = yield* setup({ concurrency: 4, perEndpointConcurrency: 4, maxUnfinished: 2 })
      const endpoint = yield* host.endpoint("https://receiver.test/a")
      const resume = yield* host.stallRecording
      const claims = yield* host.ingestAndClaim(endpoint.id, 3)
      const fiber = yield* host.start
      host.handOver(claims)
      yield* host.turns
      assert.strictEqual(host.receiver.requests().length, 2)
      // Stopping waits for the two records under way; the third delivery, never sent, goes back to the queue.
      const stopping = yield* Effect.forkChild(Fiber.interrupt(fiber))
      yield* host.turns
      yield* resume
      yield* Fiber.join(stopping)
      assert.strictEqual(host.recorded(), 2)
      const [first, second, third] = claims.map((claim) => claim.event.id)
      if (first === undefined || second === undefined || third === undefined) return assert.fail("3 claims")
      for (const id of [first, second]) assert.strictEqual((yield* host.stored(id)).status, "DELIVERED", id)
      assert.strictEqual((yield* host.stored(third)).status, "QUEUED")
      assert.include(host.released, third)
    }))
})
