import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Random, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Entropy from "../src/Entropy.ts"
import * as Ids from "../src/Ids.ts"

// 2026-05-26T12:00:00.000Z
const NOW = Date.UTC(2026, 4, 26, 12)
const ID_BODY = /^[0-9a-hjkmnp-tv-z]{30}$/

/** Runs with seeded, reproducible entropy. */
const seeded = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(Entropy.layerRandom), Random.withSeed("ids"))

// The 10 time characters hold 32^10 = 2^50 milliseconds (until the year 37648).
const Millis = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 2 ** 50 - 1 }))
const RandomBytes = Schema.Array(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 255 }))).check(
  Schema.isBetweenLength(13, 13)
)
const DistinctMillis = Arbitrary.filter(
  Arbitrary.schema(Schema.Tuple([Millis, Millis])),
  ([a, b]) => a !== b
)

describe("Ids", () => {
  it.effect("gives each kind of id its prefix and a 30-character base32 body its schema accepts", () =>
    seeded(Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const made = {
        org_: { id: yield* Ids.makeOrganizationId, is: Schema.is(Ids.OrganizationId) },
        key_: { id: yield* Ids.makeApiKeyId, is: Schema.is(Ids.ApiKeyId) },
        ep_: { id: yield* Ids.makeEndpointId, is: Schema.is(Ids.EndpointId) },
        evt_: { id: yield* Ids.makeEventId, is: Schema.is(Ids.EventId) },
        dat_: { id: yield* Ids.makeAttemptId, is: Schema.is(Ids.AttemptId) }
      }
      for (const [prefix, { id, is }] of Object.entries(made)) {
        assert.isTrue(id.startsWith(prefix), `${id} starts with ${prefix}`)
        assert.match(id.slice(prefix.length), ID_BODY)
        assert.isTrue(is(id), `${id} is accepted by its schema`)
      }
    })))

  it.effect("refuses an id of another kind, a short id and an id with characters outside the alphabet", () =>
    seeded(Effect.gen(function*() {
      const isEventId = Schema.is(Ids.EventId)
      const eventId = yield* Ids.makeEventId
      const endpointId = yield* Ids.makeEndpointId
      assert.isTrue(isEventId(eventId))
      assert.isFalse(isEventId(endpointId))
      assert.isFalse(isEventId(eventId.slice(0, -1)))
      assert.isFalse(isEventId(eventId.toUpperCase()))
      // i, l, o and u are not in Crockford's base32
      assert.isFalse(isEventId(`${eventId.slice(0, -1)}u`))
      assert.isFalse(isEventId("evt_"))
    })))

  it.effect("sorts ids made later after ids made earlier", () =>
    seeded(Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const made: Array<string> = []
      for (const step of [1, 1, 2, 999, 1, 60_000, 1, 86_400_000, 1]) {
        made.push(yield* Ids.makeEventId)
        yield* TestClock.adjust(step)
      }
      made.push(yield* Ids.makeEventId)
      assert.deepStrictEqual([...made].sort(), made)
      assert.strictEqual(new Set(made).size, made.length)
    })))

  it.effect("records the creation time, which timestampOf reads back", () =>
    seeded(Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      assert.strictEqual(Ids.timestampOf(yield* Ids.makeEventId), NOW)
      yield* TestClock.adjust("31 minutes")
      assert.strictEqual(Ids.timestampOf(yield* Ids.makeAttemptId), NOW + 31 * 60_000)
    })))

  it.effect("makes 1,000 distinct ids within the same millisecond", () =>
    seeded(Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const ids = yield* Effect.replicateEffect(Ids.makeEventId, 1_000)
      assert.strictEqual(new Set(ids.map(Ids.timestampOf)).size, 1)
      assert.strictEqual(new Set(ids).size, 1_000)
    })))

  it.effect("makes 1,000 distinct ids within the same millisecond from the secure default source", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const ids = yield* Effect.replicateEffect(Ids.makeEventId, 1_000)
      assert.strictEqual(new Set(ids.map(Ids.timestampOf)).size, 1)
      assert.strictEqual(new Set(ids).size, 1_000)
    }))

  it.effect("repeats the same ids for the same seed and time", () =>
    Effect.gen(function*() {
      const run = seeded(Effect.gen(function*() {
        yield* TestClock.setTime(NOW)
        return yield* Effect.replicateEffect(Ids.makeEventId, 3)
      }))
      const first = yield* run
      const second = yield* run
      assert.deepStrictEqual(first, second)
      assert.strictEqual(new Set(first).size, 3)
    }))

  describe("format", () => {
    it("sorts one millisecond later after any random part", () => {
      const highest = Ids.format("evt_", NOW, new Uint8Array(13).fill(255))
      const lowest = Ids.format("evt_", NOW + 1, new Uint8Array(13).fill(0))
      assert.isTrue(highest < lowest, `${highest} < ${lowest}`)
    })

    it("uses different random parts for different random bytes", () => {
      const a = Ids.format("evt_", NOW, new Uint8Array(13).fill(0))
      const b = Ids.format("evt_", NOW, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16))
      assert.notStrictEqual(a, b)
    })

    it.prop(
      "orders ids by time whatever their random parts",
      [DistinctMillis, RandomBytes, RandomBytes],
      ([[a, b], r1, r2]) => {
        const [earlier, later] = a < b ? [a, b] : [b, a]
        const first = Ids.format("evt_", earlier, Uint8Array.from(r1))
        const second = Ids.format("evt_", later, Uint8Array.from(r2))
        assert.isTrue(first < second, `${first} (${earlier}) < ${second} (${later})`)
      }
    )

    it.prop("round-trips the time through timestampOf", [Millis, RandomBytes], ([millis, bytes]) => {
      const id = Ids.format("dat_", millis, Uint8Array.from(bytes))
      assert.strictEqual(Ids.timestampOf(id), millis)
      assert.isTrue(Schema.is(Ids.AttemptId)(id), id)
    })
  })
})
