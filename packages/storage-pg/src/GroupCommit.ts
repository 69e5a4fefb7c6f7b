/**
 * Group commit: callers submit one item each; a few writer fibers take
 * everything waiting and write it in one transaction, so the cost of a commit
 * (an fsync) is shared by every item of the batch. A caller resumes only after
 * the commit that holds its item.
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Exit, type Scope } from "effect"

/** How a group commit runs. */
export interface GroupCommitOptions<I, O, E> {
  /** Writes a batch; returns one result per item, in order. */
  readonly write: (items: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<O>, E>
  readonly maxBatch: number
  /** Writer fibers: more overlap commits on a server; one for a single-connection database. */
  readonly writers: number
  /**
   * Runs once a writer has work, before it takes the batch. On PGlite a macrotask turn here lets the
   * requests that arrive meanwhile join the batch (otherwise batches shrink to one item).
   */
  readonly gather?: Effect.Effect<void> | undefined
}

/** Starts the writers in the current scope; returns the submit function. */
export const make = <I, O, E>(options: GroupCommitOptions<I, O, E>): Effect.Effect<
  (item: I) => Effect.Effect<O, E>,
  never,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const waiting: Array<{ readonly item: I; readonly done: Deferred.Deferred<O, E> }> = []
    let sleepers: Array<() => void> = []
    const wakeOne = () => {
      const wake = sleepers.shift()
      if (wake !== undefined) wake()
    }
    const awaitWork = Effect.callback<void>((resume) => {
      if (waiting.length > 0) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      sleepers.push(wake)
      return Effect.sync(() => {
        sleepers = sleepers.filter((w) => w !== wake)
      })
    })

    const writer = Effect.gen(function*() {
      while (true) {
        yield* awaitWork
        if (options.gather !== undefined) yield* options.gather
        const batch = waiting.splice(0, options.maxBatch)
        if (batch.length === 0) continue
        // More waiting than one batch holds: let another writer start on it now.
        if (waiting.length > 0) wakeOne()
        const exit = yield* Effect.exit(options.write(batch.map((entry) => entry.item)))
        if (Exit.isSuccess(exit)) {
          batch.forEach((entry, index) => {
            const result = exit.value[index]
            Deferred.doneUnsafe(
              entry.done,
              result === undefined ? Exit.die(new Error("group commit: missing result")) : Exit.succeed(result)
            )
          })
        } else {
          const failure = Exit.failCause(exit.cause)
          for (const entry of batch) Deferred.doneUnsafe(entry.done, failure)
        }
      }
    })
    for (let i = 0; i < options.writers; i++) yield* Effect.forkScoped(writer)

    return (item: I) =>
      Effect.gen(function*() {
        const done = yield* Deferred.make<O, E>()
        waiting.push({ item, done })
        wakeOne()
        return yield* Deferred.await(done)
      })
  })
