import { assert, describe, it } from "@effect/vitest"
import { Endpoints, type Lifecycle } from "@promptjang/core"
import { Effect, Logger } from "effect"
import { makeTestHost } from "../src/index.ts"

/** An observer that records what it is told, as `[tag, attempt number or null, event status]`. */
const recorder = () => {
  const seen: Array<readonly [string, number | null, string]> = []
  const observer: Lifecycle.Observer = (notification) =>
    Effect.sync(() => {
      seen.push([
        notification._tag,
        notification._tag === "Attempted" ? notification.attempt.number : null,
        notification.event.status
      ])
    })
  return { seen, observer }
}

// The engine logs each misbehaving observer once; keep the test output quiet.
const quietly = Effect.provide(Logger.layer([]))

describe("Lifecycle observers", () => {
  it.effect("a fail, fail, success event is Accepted, Attempted three times, then Delivered, in that order", () =>
    Effect.gen(function*() {
      const { observer, seen } = recorder()
      const host = yield* makeTestHost({ observers: [observer] })
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { status: 500 }, { status: 502 }, { status: 200 })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      assert.deepStrictEqual(seen, [["Accepted", null, "QUEUED"]])
      yield* host.settle
      yield* host.advance("3 minutes")
      assert.strictEqual((yield* host.event(id)).event.status, "DELIVERED")
      assert.deepStrictEqual(seen, [
        ["Accepted", null, "QUEUED"],
        ["Attempted", 1, "RETRYING"],
        ["Attempted", 2, "RETRYING"],
        ["Attempted", 3, "DELIVERED"],
        ["Delivered", null, "DELIVERED"]
      ])
    }))

  it.effect("an always-failing event is Accepted, Attempted once per attempt, then Expired", () =>
    Effect.gen(function*() {
      const { observer, seen } = recorder()
      const host = yield* makeTestHost({ observers: [observer], retrySchedule: "10s,20s" })
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { status: 500 })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.settle
      yield* host.advance("1 hour")
      assert.strictEqual((yield* host.event(id)).event.status, "EXPIRED")
      assert.deepStrictEqual(seen, [
        ["Accepted", null, "QUEUED"],
        ["Attempted", 1, "RETRYING"],
        ["Attempted", 2, "RETRYING"],
        ["Attempted", 3, "EXPIRED"],
        ["Expired", null, "EXPIRED"]
      ])
    }))

  it.effect("deleting an endpoint tells observers that each of its pending events Failed", () =>
    Effect.gen(function*() {
      const { observer, seen } = recorder()
      const host = yield* makeTestHost({ observers: [observer] })
      const endpoint = yield* host.createEndpoint({ enabled: false })
      yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.send(endpoint.id, { event: "order.updated" })
      yield* host.settle
      yield* host.run(Endpoints.Endpoints.use((e) => e.remove(host.organization.id, endpoint.id)))
      assert.deepStrictEqual(seen, [
        ["Accepted", null, "QUEUED"],
        ["Accepted", null, "QUEUED"],
        ["Failed", null, "FAILED"],
        ["Failed", null, "FAILED"]
      ])
    }))

  it.effect("a send to a blocked address records the attempt and fails the event at once", () =>
    Effect.gen(function*() {
      const { observer, seen } = recorder()
      const host = yield* makeTestHost({ observers: [observer] })
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { error: "blocked_address" })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.settle
      yield* host.advance("1 hour")
      const { attempts, event } = yield* host.event(id)
      assert.strictEqual(event.status, "FAILED")
      assert.deepStrictEqual(attempts.map((a) => [a.number, a.statusCode, a.error]), [[1, null, "blocked_address"]])
      assert.deepStrictEqual(seen, [
        ["Accepted", null, "QUEUED"],
        ["Attempted", 1, "FAILED"],
        ["Failed", null, "FAILED"]
      ])
    }))

  it.effect("observers are told about the attempt that was recorded, with its outcome", () =>
    Effect.gen(function*() {
      const attempts: Array<readonly [number | null, string | null, boolean]> = []
      const host = yield* makeTestHost({
        observers: [(n) =>
          Effect.sync(() => {
            if (n._tag === "Attempted") attempts.push([n.attempt.statusCode, n.attempt.error, n.attempt.succeeded])
          })]
      })
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { error: "connection_refused" }, { status: 204 })
      const { id } = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.advance("1 minute")
      assert.deepStrictEqual(attempts, [[null, "connection_refused", false], [204, null, true]])
      assert.deepStrictEqual(
        (yield* host.attemptsOf(id)).map((a) => [a.statusCode, a.error, a.succeeded] as const),
        attempts
      )
    }))

  it.effect("an observer that fails or dies does not stop delivery or the other observers", () =>
    Effect.gen(function*() {
      const { observer, seen } = recorder()
      const calls = { failing: 0, dying: 0, throwing: 0 }
      const failing: Lifecycle.Observer = () =>
        Effect.suspend(() => {
          calls.failing++
          return Effect.fail("the audit log is down")
        })
      const dying: Lifecycle.Observer = () =>
        Effect.suspend(() => {
          calls.dying++
          return Effect.die(new Error("observer bug"))
        })
      const throwing: Lifecycle.Observer = () => {
        calls.throwing++
        throw new Error("observer threw")
      }
      const host = yield* makeTestHost({ observers: [failing, dying, throwing, observer] })
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { status: 500 }, { status: 200 })
      const first = yield* host.send(endpoint.id, { event: "order.created" })
      yield* host.settle
      yield* host.advance("1 minute")
      assert.strictEqual((yield* host.event(first.id)).event.status, "DELIVERED")
      assert.deepStrictEqual((yield* host.attemptsOf(first.id)).map((a) => a.number), [1, 2])
      const second = yield* host.send(endpoint.id, { event: "order.updated" })
      yield* host.settle
      assert.strictEqual((yield* host.event(second.id)).event.status, "DELIVERED")
      assert.deepStrictEqual(seen.map(([tag]) => tag), [
        "Accepted",
        "Attempted",
        "Attempted",
        "Delivered",
        "Accepted",
        "Attempted",
        "Delivered"
      ])
      // The misbehaving observers were told everything too: each failure was isolated, not skipped.
      assert.deepStrictEqual(calls, { failing: 7, dying: 7, throwing: 7 })
    }).pipe(quietly))
})
