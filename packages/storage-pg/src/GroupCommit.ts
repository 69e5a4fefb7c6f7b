/**
 * Group commit: callers submit one item each; a few writer fibers take
 * everything waiting and write it in one transaction, so the cost of a commit
 * (an fsync) is shared by every item of the batch. A caller resumes only after
 * the commit that holds its item.
 *
 * @since 0.1.0
 */
import { Effect, Exit, type Scope } from "effect"

/** How a group commit runs. */
export interface GroupCommitOptions<I, O, E> {
  /** Writes a batch; returns one result per item, in order. */
  readonly write: (items: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<O>, E>
  readonly maxBatch: number
  /** Writer fibers: more overlap commits on a server; one for a single-connection database. */
  readonly writers: number
  /**
   * While a batch commits, another writer starts on the waiting items only once at least this many wait
   * (default 1). Fewer wait for the batch under way to end and go in the next one: at moderate rates that
   * keeps batches large and round trips few, and under heavy load the writers still overlap.
   */
  readonly overlapAt?: number | undefined
  /**
   * Runs once a writer has work, before it takes the batch: what arrives meanwhile joins it. On PGlite a
   * macrotask turn here keeps batches from shrinking to one item; completions wait a few milliseconds here
   * for fewer, larger commits.
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
    const overlapAt = Math.max(1, options.overlapAt ?? 1)
    const waiting: Array<{ readonly item: I; readonly done: (exit: Exit.Exit<O, E>) => void }> = []
    let sleepers: Array<() => void> = []
    let busy = 0
    const wakeOne = () => {
      if (busy > 0 && waiting.length < overlapAt) return
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
        busy++
        // Enough waiting already (see overlapAt): let another writer start on it now.
        wakeOne()
        const exit = yield* Effect.exit(options.write(batch.map((entry) => entry.item)))
        busy--
        if (Exit.isSuccess(exit)) {
          batch.forEach((entry, index) => {
            const result = exit.value[index]
            entry.done(
              result === undefined ? Exit.die(new Error("group commit: missing result")) : Exit.succeed(result)
            )
          })
        } else {
          const failure = Exit.failCause(exit.cause)
          for (const entry of batch) entry.done(failure)
        }
      }
    })
    for (let i = 0; i < options.writers; i++) yield* Effect.forkScoped(writer)

    // A caller that is interrupted while it waits still has its item written with the batch; only the
    // answer is dropped.
    return (item: I) =>
      Effect.callback<O, E>((resume) => {
        waiting.push({ item, done: resume })
        wakeOne()
      })
  })
