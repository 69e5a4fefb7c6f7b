/**
 * A wake-up signal: a version number that `bump` increases, and `await(since)`
 * that completes once the version moved past `since` (at once if it already
 * did). Read the version before looking for work, then await it: a bump that
 * happens in between is never missed.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"

/** A signal. */
export interface Signal {
  readonly bump: () => void
  readonly version: () => number
  readonly await: (since: number) => Effect.Effect<void>
}

/** A fresh signal at version 0. */
export const make = (): Signal => {
  let version = 0
  let waiters = new Set<() => void>()
  return {
    bump: () => {
      version++
      // Swap the set first: a woken waiter may wait again at once, and must not be woken by this same bump.
      const woken = waiters
      waiters = new Set()
      for (const wake of woken) wake()
    },
    version: () => version,
    await: (since) =>
      Effect.callback<void>((resume) => {
        if (version > since) return resume(Effect.void)
        const wake = () => resume(Effect.void)
        waiters.add(wake)
        return Effect.sync(() => {
          waiters.delete(wake)
        })
      })
  }
}
