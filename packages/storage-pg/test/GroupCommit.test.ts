import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import * as GroupCommit from "../src/GroupCommit.ts"

/** A write that records each batch and waits until the test lets it finish (batch i waits for gates[i]). */
const gatedWrite = () => {
  const batches: Array<ReadonlyArray<number>> = []
  const gates: Array<Deferred.Deferred<void, string>> = []
  const write = (items: ReadonlyArray<number>) =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void, string>()
      batches.push(items)
      gates.push(gate)
      yield* Deferred.await(gate)
      return items.map((n) => n * 10)
    })
  const settle = (index: number, f: (gate: Deferred.Deferred<void, string>) => Effect.Effect<boolean>) =>
    Effect.suspend(() => {
      const gate = gates[index]
      return gate === undefined ? Effect.die(new Error(`no batch ${index}`)) : f(gate)
    })
  const open = (index: number) => settle(index, (gate) => Deferred.succeed(gate, undefined))
  const fail = (index: number, reason: string) => settle(index, (gate) => Deferred.fail(gate, reason))
  return { batches, write, open, fail }
}

const turns = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

describe("GroupCommit", () => {
  it.effect("gives each caller its own result; what arrives during a commit goes in the next batch", () =>
    Effect.gen(function*() {
      const gated = gatedWrite()
      const submit = yield* GroupCommit.make({ write: gated.write, maxBatch: 100, writers: 1 })
      const first = yield* Effect.forkChild(submit(1))
      yield* turns
      const rest = yield* Effect.forEach([2, 3, 4], (n) => Effect.forkChild(submit(n)))
      yield* turns
      assert.deepStrictEqual(gated.batches, [[1]])
      yield* gated.open(0)
      yield* turns
      assert.deepStrictEqual(gated.batches, [[1], [2, 3, 4]])
      yield* gated.open(1)
      assert.deepStrictEqual(yield* Fiber.joinAll([first, ...rest]), [10, 20, 30, 40])
    }))

  it.effect("fails every caller of a failed batch, and the next batch goes on", () =>
    Effect.gen(function*() {
      const gated = gatedWrite()
      const submit = yield* GroupCommit.make({ write: gated.write, maxBatch: 100, writers: 1 })
      const held = yield* Effect.forkChild(submit(0))
      yield* turns
      const failed = yield* Effect.forEach([1, 2], (n) => Effect.forkChild(submit(n)))
      yield* turns
      yield* gated.open(0)
      yield* turns
      assert.deepStrictEqual(gated.batches, [[0], [1, 2]])
      yield* gated.fail(1, "commit failed")
      for (const fiber of failed) {
        const exit = yield* Fiber.await(fiber)
        assert.isTrue(Exit.isFailure(exit))
      }
      assert.strictEqual(yield* Fiber.join(held), 0)
      const next = yield* Effect.forkChild(submit(3))
      yield* turns
      yield* gated.open(2)
      assert.strictEqual(yield* Fiber.join(next), 30)
    }))

  it.effect("starts a second writer during a commit only once overlapAt items wait", () =>
    Effect.gen(function*() {
      const gated = gatedWrite()
      const submit = yield* GroupCommit.make({ write: gated.write, maxBatch: 100, writers: 2, overlapAt: 3 })
      const fibers = [yield* Effect.forkChild(submit(1))]
      yield* turns
      fibers.push(...(yield* Effect.forEach([2, 3], (n) => Effect.forkChild(submit(n)))))
      yield* turns
      // Two wait: below overlapAt, they wait for the commit under way.
      assert.deepStrictEqual(gated.batches, [[1]])
      fibers.push(yield* Effect.forkChild(submit(4)))
      yield* turns
      // Three wait: the second writer takes them while the first batch still commits.
      assert.deepStrictEqual(gated.batches, [[1], [2, 3, 4]])
      yield* gated.open(1)
      yield* gated.open(0)
      assert.deepStrictEqual(yield* Fiber.joinAll(fibers), [10, 20, 30, 40])
    }))

  it.effect("overlaps at once by default", () =>
    Effect.gen(function*() {
      const gated = gatedWrite()
      const submit = yield* GroupCommit.make({ write: gated.write, maxBatch: 100, writers: 2 })
      const first = yield* Effect.forkChild(submit(1))
      yield* turns
      const second = yield* Effect.forkChild(submit(2))
      yield* turns
      assert.deepStrictEqual(gated.batches, [[1], [2]])
      yield* gated.open(0)
      yield* gated.open(1)
      assert.deepStrictEqual(yield* Fiber.joinAll([first, second]), [10, 20])
    }))

  it.effect("a writer runs gather before it takes the batch, and what arrives meanwhile shares the batch", () =>
    Effect.gen(function*() {
      const gated = gatedWrite()
      const gathered = yield* Deferred.make<void>()
      const submit = yield* GroupCommit.make({
        write: gated.write,
        maxBatch: 100,
        writers: 1,
        gather: Deferred.await(gathered)
      })
      const first = yield* Effect.forkChild(submit(1))
      yield* turns
      const rest = yield* Effect.forEach([2, 3], (n) => Effect.forkChild(submit(n)))
      yield* turns
      // Still gathering: nothing written yet.
      assert.deepStrictEqual(gated.batches, [])
      yield* Deferred.succeed(gathered, undefined)
      yield* turns
      assert.deepStrictEqual(gated.batches, [[1, 2, 3]])
      yield* gated.open(0)
      assert.deepStrictEqual(yield* Fiber.joinAll([first, ...rest]), [10, 20, 30])
    }))
})
