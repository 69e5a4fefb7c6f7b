/**
 * The conformance suite of the {@link Queue} port.
 *
 * Every implementation of Queue must pass the same cases: claims with leases,
 * completions that refuse a lost lease (so attempt numbers never skip or
 * repeat), rescheduling, release, guarded replays and the new-work signal.
 * The suite needs the Storage of the same backend too, because deliveries
 * enter the queue through `Storage.ingest`.
 *
 * Call it from a vitest test file of your package with a layer that builds a
 * fresh, empty backend each time it is built: every case provides the layer
 * itself, so cases never see each other's data.
 *
 * @example
 * ```ts
 * // packages/my-storage/test/MyQueue.test.ts
 * import { queueSuite } from "@promptjang/core/conformance/Queue"
 * import * as MyStorage from "../src/MyStorage.ts"
 *
 * queueSuite("my-storage", MyStorage.layer) // Layer<Storage | Queue, E>
 * ```
 *
 * Your package needs `vitest` and `@effect/vitest` as dev dependencies.
 *
 * @since 0.1.0
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, type Layer, Option, type Scope } from "effect"
import type { Event } from "../Domain.ts"
import * as EventStateMachine from "../EventStateMachine.ts"
import { Queue } from "../Queue.ts"
import { Storage } from "../Storage.ts"
import * as Fixtures from "./fixtures.ts"

const { DAY, HOUR, MINUTE, NOW, SECOND } = Fixtures
const LEASE = 30 * SECOND

const eventIds = (claims: ReadonlyArray<{ readonly event: Event }>): Array<string> =>
  claims.map((claim) => claim.event.id)

/**
 * Registers the Queue conformance cases under `describe(\`Queue (${name})\`)`.
 *
 * @param name - the implementation's name, shown in the test report
 * @param layer - builds a fresh, empty backend (Storage and Queue sharing it) per case
 */
export const queueSuite = (name: string, layer: Layer.Layer<Storage | Queue, unknown>): void => {
  const test = (title: string, body: () => Effect.Effect<void, unknown, Storage | Queue | Scope.Scope>) =>
    it.effect(title, () => Effect.provide(body(), layer))

  /** The event as stored now; dies when it is gone. */
  const currentEvent = (event: Event) =>
    Effect.gen(function*() {
      const storage = yield* Storage
      return yield* Effect.fromOption(yield* storage.getEvent(event.organizationId, event.id)).pipe(Effect.orDie)
    })

  describe(`Queue (${name})`, () => {
    describe("claimDue", () => {
      test("claims only deliveries that are due, earliest first", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const third = yield* Fixtures.ingestEvent(endpoint, { at: NOW + 2 * SECOND })
          const first = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const second = yield* Fixtures.ingestEvent(endpoint, { at: NOW + SECOND })

          assert.deepStrictEqual(yield* queue.claimDue({ now: NOW - 1, limit: 10, leaseMs: LEASE }), [])
          const claims = yield* queue.claimDue({ now: NOW + SECOND, limit: 10, leaseMs: LEASE })
          assert.deepStrictEqual(eventIds(claims), [first.id, second.id])
          const [claim] = claims
          assert.deepStrictEqual(
            Option.map(Option.fromUndefinedOr(claim?.event), Fixtures.comparable),
            Option.some(Fixtures.comparable(first))
          )
          assert.strictEqual(claim?.leaseExpiresAt, NOW + SECOND + LEASE)
          assert.deepStrictEqual(
            eventIds(yield* queue.claimDue({ now: NOW + 2 * SECOND, limit: 10, leaseMs: LEASE })),
            [third.id]
          )
        }))

      test("claims at most limit deliveries", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const events: Array<Event> = []
          for (let i = 0; i < 5; i++) events.push(yield* Fixtures.ingestEvent(endpoint, { at: NOW + i }))
          const ids = events.map((event) => event.id)

          const claimTwo = queue.claimDue({ now: NOW + 10, limit: 2, leaseMs: LEASE }).pipe(Effect.map(eventIds))

          assert.deepStrictEqual(yield* claimTwo, ids.slice(0, 2))
          assert.deepStrictEqual(yield* claimTwo, ids.slice(2, 4))
          assert.deepStrictEqual(yield* claimTwo, ids.slice(4))
        }))

      test("skips the deliveries of excluded endpoints", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint: busy, organization } = yield* Fixtures.seedTenant()
          const idle = Fixtures.makeEndpoint(organization.id)
          yield* storage.createEndpoint(idle)
          yield* Fixtures.ingestEvent(busy, { at: NOW })
          const waiting = yield* Fixtures.ingestEvent(idle, { at: NOW + 1 })

          const claims = yield* queue.claimDue({
            now: NOW + 10,
            limit: 10,
            leaseMs: LEASE,
            excludeEndpoints: [busy.id]
          })
          assert.deepStrictEqual(eventIds(claims), [waiting.id])
          assert.deepStrictEqual(
            yield* queue.claimDue({ now: NOW + 10, limit: 10, leaseMs: LEASE, excludeEndpoints: [busy.id, idle.id] }),
            []
          )
        }))

      test("claims at most maxPerEndpoint deliveries of one endpoint, earliest first, and fills up with others", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint: hot, organization } = yield* Fixtures.seedTenant()
          const cold = Fixtures.makeEndpoint(organization.id)
          yield* storage.createEndpoint(cold)
          const hotEvents = []
          for (let i = 0; i < 5; i++) hotEvents.push(yield* Fixtures.ingestEvent(hot, { at: NOW + i }))
          const coldEvent = yield* Fixtures.ingestEvent(cold, { at: NOW + 10 })

          const claims = yield* queue.claimDue({ now: NOW + 20, limit: 10, leaseMs: LEASE, maxPerEndpoint: 2 })
          const hotIds = hotEvents.map((e) => e.id)
          assert.deepStrictEqual(eventIds(claims), [...hotIds.slice(0, 2), coldEvent.id])
          const rest = yield* queue.claimDue({ now: NOW + 20, limit: 10, leaseMs: LEASE, maxPerEndpoint: 2 })
          assert.deepStrictEqual(eventIds(rest), hotIds.slice(2, 4))
        }))

      test("claims no more for an endpoint than its own limit allows, beside the general one", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint: hot, organization } = yield* Fixtures.seedTenant()
          const cold = Fixtures.makeEndpoint(organization.id)
          yield* storage.createEndpoint(cold)
          const hotEvents = []
          for (let i = 0; i < 4; i++) hotEvents.push(yield* Fixtures.ingestEvent(hot, { at: NOW + i }))
          const coldEvents = []
          for (let i = 0; i < 4; i++) coldEvents.push(yield* Fixtures.ingestEvent(cold, { at: NOW + 10 + i }))

          const claims = yield* queue.claimDue({
            now: NOW + 20,
            limit: 10,
            leaseMs: LEASE,
            maxPerEndpoint: 3,
            endpointLimits: new Map([[hot.id, 1]])
          })
          const expected = [...hotEvents.slice(0, 1), ...coldEvents.slice(0, 3)].map((e) => e.id)
          assert.deepStrictEqual(eventIds(claims), expected)
        }))

      test("does not hand out a claimed delivery again while its lease holds", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })

          const first = yield* queue.claimDue({ now: NOW, limit: 10, leaseMs: LEASE })
          assert.deepStrictEqual(eventIds(first), [event.id])
          assert.deepStrictEqual(yield* queue.claimDue({ now: NOW, limit: 10, leaseMs: LEASE }), [])
          assert.deepStrictEqual(yield* queue.claimDue({ now: NOW + LEASE - 1, limit: 10, leaseMs: LEASE }), [])
        }))

      test("hands a delivery whose lease expired to the next claimer with a new lease", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })

          const [crashed] = yield* queue.claimDue({ now: NOW, limit: 10, leaseMs: LEASE })
          const takeover = yield* queue.claimDue({ now: NOW + LEASE, limit: 10, leaseMs: LEASE })
          assert.deepStrictEqual(eventIds(takeover), [event.id])
          const [next] = takeover
          assert.isDefined(crashed)
          assert.isDefined(next)
          assert.notStrictEqual(next?.lease, crashed?.lease)
          assert.strictEqual(next?.leaseExpiresAt, NOW + 2 * LEASE)
        }))
    })

    describe("complete", () => {
      test("records the attempt and the new state when the lease is current", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const claim = yield* Fixtures.claimEvent(event.id, NOW)
          const completion = Fixtures.retried(claim.event, NOW + SECOND, NOW + MINUTE)

          assert.isTrue(yield* queue.complete(claim, completion))

          assert.deepStrictEqual(yield* storage.listAttempts(event.organizationId, event.id), [completion.attempt])
          const stored = yield* currentEvent(event)
          assert.deepStrictEqual(Fixtures.stateOf(stored), completion.state)
          assert.deepStrictEqual(Array.from(stored.body), Array.from(event.body))
        }))

      test("makes a RETRYING delivery due again at its next attempt time, not before", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const claim = yield* Fixtures.claimEvent(event.id, NOW)
          const retryAt = NOW + MINUTE
          assert.isTrue(yield* queue.complete(claim, Fixtures.retried(claim.event, NOW + SECOND, retryAt)))

          assert.deepStrictEqual(yield* queue.nextDueAt, Option.some(retryAt))
          assert.deepStrictEqual(yield* queue.claimDue({ now: retryAt - 1, limit: 10, leaseMs: LEASE }), [])
          const [retry] = yield* queue.claimDue({ now: retryAt, limit: 10, leaseMs: LEASE })
          assert.deepStrictEqual(
            retry === undefined ? undefined : [retry.event.id, retry.event.status, retry.event.attemptCount],
            [event.id, "RETRYING", 1]
          )
        }))

      test("takes a delivery that reached a final state off the queue", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const claim = yield* Fixtures.claimEvent(event.id, NOW)
          const completion = Fixtures.delivered(claim.event, NOW + SECOND)

          assert.isTrue(yield* queue.complete(claim, completion))

          assert.deepStrictEqual(Fixtures.stateOf(yield* currentEvent(event)), completion.state)
          assert.isTrue(Option.isNone(yield* queue.nextDueAt))
          assert.deepStrictEqual(yield* queue.stats, { pending: 0, oldestDueAt: null })
          assert.deepStrictEqual(yield* queue.claimDue({ now: NOW + DAY, limit: 10, leaseMs: LEASE }), [])
        }))

      test("applies a decision without an attempt", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const claim = yield* Fixtures.claimEvent(event.id, NOW)
          const state = EventStateMachine.project(claim.event, {
            _tag: "Failed",
            at: NOW + 1,
            cycle: claim.event.cycle,
            attempt: null,
            reason: "the address is blocked"
          })

          assert.isTrue(yield* queue.complete(claim, { attempt: null, state }))

          assert.deepStrictEqual(yield* storage.listAttempts(event.organizationId, event.id), [])
          assert.deepStrictEqual(Fixtures.stateOf(yield* currentEvent(event)), state)
          assert.strictEqual((yield* queue.stats).pending, 0)
        }))

      test("refuses a completion whose lease another worker took over, so attempt numbers never repeat", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const stale = yield* Fixtures.claimEvent(event.id, NOW, LEASE)
          const current = yield* Fixtures.claimEvent(event.id, NOW + LEASE, LEASE)

          assert.isFalse(yield* queue.complete(stale, Fixtures.retried(stale.event, NOW + LEASE + 1, NOW + HOUR)))
          assert.deepStrictEqual(yield* storage.listAttempts(event.organizationId, event.id), [])
          assert.deepStrictEqual(Fixtures.stateOf(yield* currentEvent(event)), Fixtures.stateOf(event))

          const completion = Fixtures.retried(current.event, NOW + LEASE + 2, NOW + HOUR)
          assert.isTrue(yield* queue.complete(current, completion))
          assert.isFalse(yield* queue.complete(stale, Fixtures.delivered(stale.event, NOW + LEASE + 3)))
          const attempts = yield* storage.listAttempts(event.organizationId, event.id)
          assert.deepStrictEqual(attempts.map((a) => a.number), [1])
          assert.deepStrictEqual(Fixtures.stateOf(yield* currentEvent(event)), completion.state)
          assert.deepStrictEqual(yield* queue.nextDueAt, Option.some(NOW + HOUR))
        }))

      test("refuses a completion for an event whose endpoint was deleted meanwhile", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint, organization } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const claim = yield* Fixtures.claimEvent(event.id, NOW)
          assert.isTrue(Option.isSome(yield* storage.deleteEndpoint(organization.id, endpoint.id, NOW + SECOND)))

          assert.isFalse(yield* queue.complete(claim, Fixtures.retried(claim.event, NOW + 2 * SECOND, NOW + MINUTE)))

          assert.deepStrictEqual(yield* storage.listAttempts(organization.id, event.id), [])
          const stored = yield* currentEvent(event)
          assert.deepStrictEqual([stored.status, stored.nextAttemptAt], ["FAILED", null])
          assert.deepStrictEqual(yield* queue.stats, { pending: 0, oldestDueAt: null })
        }))

      test("refuses a second completion with the same lease", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const claim = yield* Fixtures.claimEvent(event.id, NOW)
          const completion = Fixtures.retried(claim.event, NOW + SECOND, NOW + MINUTE)

          assert.isTrue(yield* queue.complete(claim, completion))
          assert.isFalse(yield* queue.complete(claim, Fixtures.retried(claim.event, NOW + 2 * SECOND, NOW + MINUTE)))

          assert.deepStrictEqual(yield* storage.listAttempts(event.organizationId, event.id), [completion.attempt])
        }))
    })

    describe("reschedule and release", () => {
      test("reschedules a claimed delivery to a later time without an attempt", () =>
        Effect.gen(function*() {
          const storage = yield* Storage
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const claim = yield* Fixtures.claimEvent(event.id, NOW)
          const later = NOW + 5 * MINUTE

          assert.isTrue(yield* queue.reschedule(claim, later))

          assert.deepStrictEqual(yield* queue.nextDueAt, Option.some(later))
          assert.deepStrictEqual(yield* queue.claimDue({ now: later - 1, limit: 10, leaseMs: LEASE }), [])
          assert.deepStrictEqual(eventIds(yield* queue.claimDue({ now: later, limit: 10, leaseMs: LEASE })), [event.id])
          assert.deepStrictEqual(yield* storage.listAttempts(event.organizationId, event.id), [])
          assert.deepStrictEqual(Fixtures.stateOf(yield* currentEvent(event)), Fixtures.stateOf(event))
        }))

      test("releases claims so that they are due at once", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const claim = yield* Fixtures.claimEvent(event.id, NOW, HOUR)

          yield* queue.release([claim])

          const [again] = yield* queue.claimDue({ now: NOW, limit: 10, leaseMs: LEASE })
          assert.strictEqual(again?.event.id, event.id)
          assert.notStrictEqual(again?.lease, claim.lease)
        }))

      test("refuses to reschedule or release a delivery whose lease was lost", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const stale = yield* Fixtures.claimEvent(event.id, NOW, LEASE)
          const current = yield* Fixtures.claimEvent(event.id, NOW + LEASE, LEASE)

          assert.isFalse(yield* queue.reschedule(stale, NOW + LEASE + 1))
          yield* queue.release([stale])

          assert.deepStrictEqual(yield* queue.claimDue({ now: NOW + LEASE + 1, limit: 10, leaseMs: LEASE }), [])
          assert.deepStrictEqual(yield* queue.nextDueAt, Option.some(current.leaseExpiresAt))
          assert.isTrue(yield* queue.reschedule(current, NOW + HOUR))
          assert.deepStrictEqual(yield* queue.nextDueAt, Option.some(NOW + HOUR))
        }))
    })

    describe("schedule (replay)", () => {
      /** An event that was delivered in its first cycle. */
      const deliveredEvent = Effect.gen(function*() {
        const queue = yield* Queue
        const { endpoint } = yield* Fixtures.seedTenant()
        const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
        const claim = yield* Fixtures.claimEvent(event.id, NOW)
        assert.isTrue(yield* queue.complete(claim, Fixtures.delivered(claim.event, NOW + SECOND)))
        return yield* currentEvent(event)
      })

      test("applies a replay when the event is in the expected state, due at its next attempt time", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const event = yield* deliveredEvent
          const replayAt = NOW + HOUR
          const request = Fixtures.replay(event, replayAt)

          assert.isTrue(yield* queue.schedule(request))

          const stored = yield* currentEvent(event)
          assert.deepStrictEqual(Fixtures.stateOf(stored), request.state)
          assert.deepStrictEqual(
            [stored.status, stored.cycle, stored.attemptCount],
            ["QUEUED", 2, 0]
          )
          assert.deepStrictEqual(yield* queue.nextDueAt, Option.some(replayAt))
          assert.deepStrictEqual(yield* queue.claimDue({ now: replayAt - 1, limit: 10, leaseMs: LEASE }), [])
          const [claim] = yield* queue.claimDue({ now: replayAt, limit: 10, leaseMs: LEASE })
          assert.deepStrictEqual(claim === undefined ? undefined : [claim.event.id, claim.event.cycle], [event.id, 2])
        }))

      test("refuses a replay from any other state and changes nothing", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const event = yield* deliveredEvent
          const other = yield* Fixtures.seedTenant()
          const request = Fixtures.replay(event, NOW + HOUR)
          const refused = [
            { ...request, expected: { status: "QUEUED" as const, cycle: 1 } },
            { ...request, expected: { status: "DELIVERED" as const, cycle: 2 } },
            { ...request, organizationId: other.organization.id },
            { ...request, eventId: Fixtures.eventId(NOW) }
          ]

          for (const attempt of refused) assert.isFalse(yield* queue.schedule(attempt))

          assert.deepStrictEqual(Fixtures.comparable(yield* currentEvent(event)), Fixtures.comparable(event))
          assert.deepStrictEqual(yield* queue.stats, { pending: 0, oldestDueAt: null })
          assert.isTrue(Option.isNone(yield* queue.nextDueAt))
        }))

      test("refuses to replay an event that is still in flight", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW + MINUTE })
          const request = {
            ...Fixtures.replay(event, NOW + HOUR),
            expected: { status: "DELIVERED" as const, cycle: 1 }
          }

          assert.isFalse(yield* queue.schedule(request))

          assert.deepStrictEqual(Fixtures.comparable(yield* currentEvent(event)), Fixtures.comparable(event))
          assert.deepStrictEqual(yield* queue.nextDueAt, Option.some(NOW + MINUTE))
        }))

      test("applies exactly one of two concurrent replays of the same state", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const event = yield* deliveredEvent
          const requests = [Fixtures.replay(event, NOW + HOUR), Fixtures.replay(event, NOW + HOUR + 1)]

          const applied = yield* Effect.forEach(requests, (request) => queue.schedule(request), {
            concurrency: "unbounded"
          })

          assert.strictEqual(applied.filter((ok) => ok).length, 1)
          const winner = requests[applied.indexOf(true)]
          const stored = yield* currentEvent(event)
          assert.deepStrictEqual(Fixtures.stateOf(stored), winner?.state)
          assert.deepStrictEqual((yield* queue.stats).pending, 1)
        }))
    })

    describe("depth", () => {
      test("tells when the next delivery or expiring lease falls due", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          assert.isTrue(Option.isNone(yield* queue.nextDueAt))
          yield* Fixtures.ingestEvent(endpoint, { at: NOW + 2 * MINUTE })
          const early = yield* Fixtures.ingestEvent(endpoint, { at: NOW + MINUTE })

          assert.deepStrictEqual(yield* queue.nextDueAt, Option.some(NOW + MINUTE))
          yield* Fixtures.claimEvent(early.id, NOW + MINUTE, 10 * SECOND)
          assert.deepStrictEqual(yield* queue.nextDueAt, Option.some(NOW + MINUTE + 10 * SECOND))
        }))

      test("counts pending deliveries and reports the oldest due time", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          assert.deepStrictEqual(yield* queue.stats, { pending: 0, oldestDueAt: null })
          yield* Fixtures.ingestEvent(endpoint, { at: NOW + 2 * MINUTE })
          const early = yield* Fixtures.ingestEvent(endpoint, { at: NOW + MINUTE })
          yield* Fixtures.ingestEvent(endpoint, { at: NOW + 3 * MINUTE })

          assert.deepStrictEqual(yield* queue.stats, { pending: 3, oldestDueAt: NOW + MINUTE })
          const claim = yield* Fixtures.claimEvent(early.id, NOW + MINUTE)
          assert.isTrue(yield* queue.complete(claim, Fixtures.delivered(claim.event, NOW + MINUTE + 1)))
          assert.deepStrictEqual(yield* queue.stats, { pending: 2, oldestDueAt: NOW + 2 * MINUTE })
        }))
    })

    describe("signal", () => {
      test("wakes a waiter at once when new work was signalled since its version", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const version = yield* queue.signalVersion
          yield* Fixtures.ingestEvent(endpoint)

          // Nothing happens after this point: the wait must end on the ingest that already happened.
          yield* queue.awaitSignal(version)
          assert.isAbove(yield* queue.signalVersion, version)
        }))

      test("keeps a waiter waiting while nothing happens", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint)
          const version = yield* queue.signalVersion

          const waiter = yield* Effect.forkChild(queue.awaitSignal(version))
          yield* Effect.yieldNow
          assert.isUndefined(waiter.pollUnsafe())
          yield* queue.stats
          yield* queue.nextDueAt
          yield* currentEvent(event)
          yield* Effect.yieldNow
          assert.isUndefined(waiter.pollUnsafe())
          yield* Fiber.interrupt(waiter)
        }))

      test("wakes a waiter when an event is ingested", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const version = yield* queue.signalVersion

          const waiter = yield* Effect.forkChild(queue.awaitSignal(version))
          yield* Effect.yieldNow
          assert.isUndefined(waiter.pollUnsafe())
          yield* Fixtures.ingestEvent(endpoint)

          yield* Fiber.join(waiter)
          assert.isAbove(yield* queue.signalVersion, version)
        }))

      test("wakes a waiter when a replay is scheduled", () =>
        Effect.gen(function*() {
          const queue = yield* Queue
          const { endpoint } = yield* Fixtures.seedTenant()
          const event = yield* Fixtures.ingestEvent(endpoint, { at: NOW })
          const claim = yield* Fixtures.claimEvent(event.id, NOW)
          assert.isTrue(yield* queue.complete(claim, Fixtures.delivered(claim.event, NOW + SECOND)))
          const delivered = yield* currentEvent(event)
          const version = yield* queue.signalVersion

          const waiter = yield* Effect.forkChild(queue.awaitSignal(version))
          yield* Effect.yieldNow
          assert.isUndefined(waiter.pollUnsafe())
          assert.isTrue(yield* queue.schedule(Fixtures.replay(delivered, NOW + HOUR)))

          yield* Fiber.join(waiter)
          assert.isAbove(yield* queue.signalVersion, version)
        }))
    })
  })
}
