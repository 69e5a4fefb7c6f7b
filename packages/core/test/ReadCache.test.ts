import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import * as ReadCache from "../src/ReadCache.ts"

/** A read whose result the test releases, counting how often it was started. */
const gatedRead = <A>() => {
  let started = 0
  let gate = Deferred.makeUnsafe<A, string>()
  return {
    read: () =>
      Effect.suspend(() => {
        started++
        return Deferred.await(gate)
      }),
    started: () => started,
    release: (exit: Exit.Exit<A, string>) =>
      Effect.sync(() => {
        const released = gate
        gate = Deferred.makeUnsafe<A, string>()
        Deferred.doneUnsafe(released, exit)
      })
  }
}

/** A read that succeeds at once with the next of `values`, counting its calls. */
const countingRead = <A>(...values: ReadonlyArray<A>) => {
  let calls = 0
  return {
    read: () =>
      Effect.sync(() => {
        const value = values[Math.min(calls, values.length - 1)] as A
        calls++
        return value
      }),
    calls: () => calls
  }
}

describe("ReadCache", () => {
  it.effect("requests that miss together share one read, and all get its value", () =>
    Effect.gen(function*() {
      const cache = yield* ReadCache.make<string, number, string>({ ttlMs: 1_000 })
      const gated = gatedRead<number>()
      const fibers = yield* Effect.forEach(
        Array.from({ length: 50 }, () => cache.get("k", 0, gated.read)),
        (get) => Effect.forkChild(get)
      )
      yield* Effect.yieldNow
      assert.strictEqual(gated.started(), 1)
      yield* gated.release(Exit.succeed(7))
      assert.deepStrictEqual(yield* Fiber.joinAll(fibers), Array.from({ length: 50 }, () => 7))
      // Kept: the next request reads nothing.
      assert.strictEqual(yield* cache.get("k", 10, gated.read), 7)
      assert.strictEqual(gated.started(), 1)
    }))

  it.effect("serves a fresh entry without reading; past half its time it serves it and refreshes it once", () =>
    Effect.gen(function*() {
      const cache = yield* ReadCache.make<string, string, string>({ ttlMs: 1_000 })
      const counted = countingRead("first", "second", "third")
      assert.strictEqual(yield* cache.get("k", 0, counted.read), "first")
      assert.strictEqual(yield* cache.get("k", 499, counted.read), "first")
      assert.strictEqual(counted.calls(), 1)
      // Half its time: still served at once, with one read started in the background.
      assert.strictEqual(yield* cache.get("k", 500, counted.read), "first")
      yield* Effect.yieldNow
      assert.strictEqual(counted.calls(), 2)
      // The refreshed value was read at 500, so it serves until 1,500 without another read.
      assert.strictEqual(yield* cache.get("k", 999, counted.read), "second")
      assert.strictEqual(yield* cache.get("k", 1_499, counted.read), "second")
      assert.strictEqual(counted.calls(), 2)
      // Not used for a whole time-to-live: expired, so the request waits for a read.
      assert.strictEqual(yield* cache.get("k", 2_500, counted.read), "third")
      assert.strictEqual(counted.calls(), 3)
    }))

  it.effect("starts one background read however many requests find the entry old, and serves the entry meanwhile", () =>
    Effect.gen(function*() {
      const cache = yield* ReadCache.make<string, string, string>({ ttlMs: 1_000 })
      const gated = gatedRead<string>()
      const first = yield* Effect.forkChild(cache.get("k", 0, gated.read))
      yield* Effect.yieldNow
      yield* gated.release(Exit.succeed("old"))
      assert.strictEqual(yield* Fiber.join(first), "old")
      for (const now of [600, 700, 800]) assert.strictEqual(yield* cache.get("k", now, gated.read), "old")
      yield* Effect.yieldNow
      assert.strictEqual(gated.started(), 2)
      // Expired while the refresh is under way: the request waits for that same read.
      const late = yield* Effect.forkChild(cache.get("k", 1_200, gated.read))
      yield* Effect.yieldNow
      assert.strictEqual(gated.started(), 2)
      yield* gated.release(Exit.succeed("new"))
      assert.strictEqual(yield* Fiber.join(late), "new")
    }))

  it.effect("keeps only what keep accepts; a value it refuses is still shared by the requests that waited for it", () =>
    Effect.gen(function*() {
      const cache = yield* ReadCache.make<string, number, string>({ ttlMs: 1_000, keep: (n) => n > 0 })
      const gated = gatedRead<number>()
      const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(cache.get("k", 0, gated.read)))
      yield* Effect.yieldNow
      yield* gated.release(Exit.succeed(0))
      assert.deepStrictEqual(yield* Fiber.joinAll(fibers), [0, 0, 0])
      assert.strictEqual(gated.started(), 1)
      const again = yield* Effect.forkChild(cache.get("k", 1, gated.read))
      yield* Effect.yieldNow
      assert.strictEqual(gated.started(), 2)
      yield* gated.release(Exit.succeed(5))
      assert.strictEqual(yield* Fiber.join(again), 5)
      assert.strictEqual(yield* cache.get("k", 2, gated.read), 5)
      assert.strictEqual(gated.started(), 2)
    }))

  it.effect("a failed read fails every request that waited for it and drops the entry it was refreshing", () =>
    Effect.gen(function*() {
      const cache = yield* ReadCache.make<string, string, string>({ ttlMs: 1_000 })
      const gated = gatedRead<string>()
      const first = yield* Effect.forkChild(cache.get("k", 0, gated.read))
      yield* Effect.yieldNow
      yield* gated.release(Exit.succeed("value"))
      yield* Fiber.join(first)
      // A refresh that fails: the entry is dropped, so the next request reads (and sees the failure).
      assert.strictEqual(yield* cache.get("k", 600, gated.read), "value")
      yield* Effect.yieldNow
      yield* gated.release(Exit.fail("revoked"))
      const waiting = yield* Effect.forEach(
        [1, 2],
        () => Effect.forkChild(Effect.flip(cache.get("k", 700, gated.read)))
      )
      yield* Effect.yieldNow
      assert.strictEqual(gated.started(), 3)
      yield* gated.release(Exit.fail("still revoked"))
      assert.deepStrictEqual(yield* Fiber.joinAll(waiting), ["still revoked", "still revoked"])
    }))

  it.effect("invalidate drops matching entries, and a read under way when it is called is not kept", () =>
    Effect.gen(function*() {
      const cache = yield* ReadCache.make<string, string, string>({ ttlMs: 1_000 })
      const counted = countingRead("a1", "a2")
      assert.strictEqual(yield* cache.get("a", 0, counted.read), "a1")
      assert.strictEqual(yield* cache.get("b", 0, () => Effect.succeed("b1")), "b1")
      cache.invalidate((value) => value.startsWith("a"))
      assert.strictEqual(yield* cache.get("a", 1, counted.read), "a2")
      assert.strictEqual(yield* cache.get("b", 1, () => Effect.succeed("not read")), "b1")

      const gated = gatedRead<string>()
      const reading = yield* Effect.forkChild(cache.get("c", 0, gated.read))
      yield* Effect.yieldNow
      cache.invalidate(() => true)
      yield* gated.release(Exit.succeed("read before the invalidation"))
      assert.strictEqual(yield* Fiber.join(reading), "read before the invalidation")
      assert.strictEqual(yield* cache.get("c", 1, () => Effect.succeed("read again")), "read again")
    }))

  it.effect("a request that started a read and is interrupted leaves the read to the others", () =>
    Effect.gen(function*() {
      const cache = yield* ReadCache.make<string, string, string>({ ttlMs: 1_000 })
      const gated = gatedRead<string>()
      const leader = yield* Effect.forkChild(cache.get("k", 0, gated.read))
      yield* Effect.yieldNow
      const follower = yield* Effect.forkChild(cache.get("k", 0, gated.read))
      yield* Effect.yieldNow
      const interrupted = yield* Effect.forkChild(Fiber.interrupt(leader))
      yield* Effect.yieldNow
      yield* gated.release(Exit.succeed("value"))
      yield* Fiber.join(interrupted)
      assert.strictEqual(yield* Fiber.join(follower), "value")
      assert.strictEqual(gated.started(), 1)
    }))

  it.effect("a request built and never run starts no read, and leaves no one waiting", () =>
    Effect.gen(function*() {
      const cache = yield* ReadCache.make<string, string, string>({ ttlMs: 1_000 })
      const counted = countingRead("value")
      cache.get("k", 0, counted.read)
      assert.strictEqual(counted.calls(), 0)
      assert.strictEqual(yield* cache.get("k", 0, counted.read), "value")
      assert.strictEqual(counted.calls(), 1)
    }))

  it.effect("with a time-to-live of 0 keeps nothing, but still shares a read between requests that wait together", () =>
    Effect.gen(function*() {
      const cache = yield* ReadCache.make<string, string, string>({ ttlMs: 0 })
      const gated = gatedRead<string>()
      const both = yield* Effect.forEach([1, 2], () => Effect.forkChild(cache.get("k", 0, gated.read)))
      yield* Effect.yieldNow
      yield* gated.release(Exit.succeed("once"))
      assert.deepStrictEqual(yield* Fiber.joinAll(both), ["once", "once"])
      const counted = countingRead("each time")
      yield* cache.get("k", 0, counted.read)
      yield* cache.get("k", 0, counted.read)
      assert.strictEqual(counted.calls(), 2)
    }))
})
