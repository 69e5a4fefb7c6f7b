import { assert, describe, it } from "@effect/vitest"
import { Dispatcher } from "@promptjang/core"
import { Effect } from "effect"
import { makeTestHost } from "../src/index.ts"

const SECOND = 1000

describe("TestHost", () => {
  // The README's example, as written there.
  it.effect("an endpoint that is down gets 6 attempts, then the event is EXPIRED", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { status: 500 })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.advance("31 minutes")
      assert.strictEqual((yield* host.event(id)).event.status, "EXPIRED")
      assert.strictEqual((yield* host.attemptsOf(id)).length, 6)
    }))

  it.effect("an always-failing endpoint is tried at 0, 60, 180, 420, 900 and 1860 s, then EXPIRED", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { status: 500, body: "down" })
      const sentAt = yield* host.elapsed
      const { id } = yield* host.send(endpoint.id, { event: "order.created", data: { order_id: "ORD-001" } })
      yield* host.settle
      yield* host.advance("31 minutes")
      const { attempts, event } = yield* host.event(id)
      assert.strictEqual(event.status, "EXPIRED")
      assert.deepStrictEqual(
        attempts.map((a) => (a.createdAt - host.organization.createdAt - sentAt) / SECOND),
        [0, 60, 180, 420, 900, 1860]
      )
      assert.deepStrictEqual(attempts.map((a) => a.number), [1, 2, 3, 4, 5, 6])
      assert.deepStrictEqual(attempts.map((a) => a.statusCode), [500, 500, 500, 500, 500, 500])
      assert.strictEqual(attempts[0]?.responseBody, "down")
      assert.strictEqual(event.nextAttemptAt, null)
      assert.strictEqual(host.receiver.requests(endpoint.url).length, 6)
    }))

  it.effect("an endpoint that fails twice then answers 200 is DELIVERED on attempt 3 at t = 180 s", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { status: 503 }, { status: 500 }, { status: 200, body: "OK" })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.settle
      const first = yield* host.event(id)
      assert.strictEqual(first.event.status, "RETRYING")
      assert.strictEqual(first.event.nextAttemptAt, host.organization.createdAt + 60 * SECOND)
      yield* host.advance("179 seconds")
      assert.strictEqual((yield* host.event(id)).event.status, "RETRYING")
      yield* host.advance("1 second")
      const { attempts, event } = yield* host.event(id)
      assert.strictEqual(event.status, "DELIVERED")
      assert.strictEqual(event.attemptCount, 3)
      assert.deepStrictEqual(attempts.map((a) => [a.number, a.statusCode, a.succeeded]), [
        [1, 503, false],
        [2, 500, false],
        [3, 200, true]
      ])
      assert.strictEqual(attempts[2]?.createdAt, host.organization.createdAt + 180 * SECOND)
      yield* host.advance("1 hour")
      assert.strictEqual((yield* host.attemptsOf(id)).length, 3)
    }))

  it.effect("a 302 and a timeout count as failures", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(
        endpoint.url,
        { status: 302, headers: { location: "https://elsewhere.test/" } },
        { hang: true },
        { status: 200 }
      )
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.settle
      yield* host.advance("60 seconds")
      // The second attempt hangs: nothing is recorded until the 15 s timeout.
      assert.strictEqual((yield* host.attemptsOf(id)).length, 1)
      yield* host.advance("15 seconds")
      const attempts = yield* host.attemptsOf(id)
      assert.deepStrictEqual(attempts.map((a) => [a.statusCode, a.error, a.succeeded]), [
        [302, null, false],
        [null, "timeout", false]
      ])
      assert.strictEqual(attempts[1]?.durationMs, 15 * SECOND)
      assert.strictEqual((yield* host.event(id)).event.status, "RETRYING")
      assert.strictEqual(host.receiver.requests("https://elsewhere.test/").length, 0)
      yield* host.advance("120 seconds")
      assert.strictEqual((yield* host.event(id)).event.status, "DELIVERED")
    }))

  it.effect.each([200, 201, 202, 204, 299])("a %s counts as success", (status) =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { status })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.settle
      const { attempts, event } = yield* host.event(id)
      assert.strictEqual(event.status, "DELIVERED")
      assert.deepStrictEqual(attempts.map((a) => a.statusCode), [status])
    }))

  it.effect.each([300, 400, 404, 410, 500, 599])("a %s counts as failure", (status) =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { status })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.settle
      assert.strictEqual((yield* host.event(id)).event.status, "RETRYING")
    }))

  it.effect("a refused connection is recorded as connection_refused and retried", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { error: "connection_refused" }, { error: "dns" }, { status: 200 })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.advance("3 minutes")
      const attempts = yield* host.attemptsOf(id)
      assert.deepStrictEqual(attempts.map((a) => a.error), ["connection_refused", "dns", null])
      assert.strictEqual((yield* host.event(id)).event.status, "DELIVERED")
    }))

  it.effect("replay of an EXPIRED event starts a new cycle and keeps the earlier attempts", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost({ retrySchedule: "10s,20s" })
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { status: 500 }, { status: 500 }, { status: 500 }, { status: 200 })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.advance("30 seconds")
      assert.strictEqual((yield* host.event(id)).event.status, "EXPIRED")
      const replayed = yield* host.replay(id)
      assert.strictEqual(replayed.status, "QUEUED")
      assert.strictEqual(replayed.cycle, 2)
      yield* host.settle
      const { attempts, event } = yield* host.event(id)
      assert.strictEqual(event.status, "DELIVERED")
      assert.deepStrictEqual(attempts.map((a) => [a.cycle, a.number, a.statusCode]), [
        [1, 1, 500],
        [1, 2, 500],
        [1, 3, 500],
        [2, 1, 200]
      ])
      const request = host.receiver.requests(endpoint.url).at(-1)
      assert.strictEqual(request?.headers["x-promptjang-attempt"], "1")
    }))

  it.effect("replay of an event still in flight is refused with EventInFlight", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { status: 500 })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.settle
      const error = yield* Effect.flip(host.replay(id))
      assert.strictEqual((error as { _tag: string })._tag, "EventInFlight")
      assert.strictEqual((yield* host.attemptsOf(id)).length, 1)
    }))

  it.effect("1,000 events to 10 endpoints: nine are delivered while the tenth hangs until its timeout", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const endpoints = []
      for (let i = 0; i < 10; i++) endpoints.push(yield* host.createEndpoint())
      const [hanging, ...healthy] = endpoints
      if (hanging === undefined) return assert.fail("no endpoints")
      host.receiver.script(hanging.url, { hang: true })
      // Interleaved, and the hanging endpoint's events first in every round, so they are due first.
      for (let round = 0; round < 100; round++) {
        for (const endpoint of endpoints) {
          yield* host.send(endpoint.id, { event: "order.created", data: { round } })
        }
      }
      yield* host.settle
      const delivered = yield* host.events({ status: "DELIVERED" })
      assert.strictEqual(delivered.length, 900)
      assert.isTrue(delivered.every((e) => e.endpointId !== hanging.id))
      assert.strictEqual(yield* host.elapsed, 0)
      for (const endpoint of healthy) assert.strictEqual(host.receiver.requests(endpoint.url).length, 100)
      const waiting = yield* host.events({ endpointId: hanging.id, status: "QUEUED" })
      assert.strictEqual(waiting.length, 100)
      // Only the hanging endpoint's share of the dispatcher is stuck on it.
      assert.strictEqual(host.receiver.pending(), Dispatcher.defaultOptions.perEndpointConcurrency)
    }))
})
