/**
 * A read-through cache for hot lookups that may be a moment stale, such as the endpoint and the API key of
 * every ingested event.
 *
 * An entry serves for `ttlMs` after the read that produced it began. Once it is half that old, the next
 * use starts one read in the background and is served from the entry meanwhile, so a key in constant use
 * is refreshed before it expires instead of being missed by every request at once when it does. Requests
 * that miss share one read per key (single flight): after an expiry, a burst of requests costs one
 * database round trip, not one each. What a read returns is kept only when `keep` says so, and a failed
 * read drops the entry.
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Exit, Scope } from "effect"

/** A cache of values by key, read through `read`. */
export interface ReadCache<K, A, E> {
  /** The value of `key` at `now` (epoch milliseconds): cached, or read with `read` (called only to read). */
  readonly get: (key: K, now: number, read: () => Effect.Effect<A, E>) => Effect.Effect<A, E>
  /** Drops the entries whose value matches; what a read under way returns is not kept. */
  readonly invalidate: (matches: (value: A) => boolean) => void
}

/** How a cache reads and keeps values. */
export interface ReadCacheOptions<A> {
  /** How long a value serves after its read began; 0 or less keeps nothing (concurrent reads are still shared). */
  readonly ttlMs: number
  /** Whether a value read is kept (default: every value). */
  readonly keep?: ((value: A) => boolean) | undefined
  /** The most entries kept; past it the cache starts empty again (default 10,000). */
  readonly maxEntries?: number | undefined
}

/** A cache whose background reads run in the current scope. */
export const make = <K, A, E>(options: ReadCacheOptions<A>): Effect.Effect<ReadCache<K, A, E>, never, Scope.Scope> =>
  Effect.map(Effect.scope, (scope) => {
    const entries = new Map<K, { readonly value: A; readonly readAt: number }>()
    const flights = new Map<K, Deferred.Deferred<A, E>>()
    const keep = options.keep ?? (() => true)
    const maxEntries = options.maxEntries ?? 10_000
    let generation = 0

    /** Reads `key` for every caller of `flight`, and keeps what it returns when it may. */
    const fly = (key: K, now: number, read: () => Effect.Effect<A, E>, flight: Deferred.Deferred<A, E>) => {
      const startedIn = generation
      return Effect.onExit(Effect.suspend(read), (exit) =>
        Effect.sync(() => {
          flights.delete(key)
          if (Exit.isSuccess(exit) && options.ttlMs > 0 && startedIn === generation && keep(exit.value)) {
            if (entries.size >= maxEntries && !entries.has(key)) entries.clear()
            entries.set(key, { value: exit.value, readAt: now })
          } else {
            entries.delete(key)
          }
          Deferred.doneUnsafe(flight, exit)
        }))
    }
    const takeOff = (key: K) => {
      const flight = Deferred.makeUnsafe<A, E>()
      flights.set(key, flight)
      return flight
    }

    // A flight is registered and flown without a point where an interruption could come between: one
    // registered and never flown would leave every later caller waiting. Only the wait is interruptible.
    const slow = (key: K, now: number, read: () => Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          const entry = entries.get(key)
          if (entry !== undefined && now - entry.readAt < options.ttlMs) {
            if (flights.has(key)) return Effect.succeed(entry.value)
            return Effect.as(Effect.forkIn(fly(key, now, read, takeOff(key)), scope), entry.value)
          }
          const joined = flights.get(key)
          if (joined !== undefined) return restore(Deferred.await(joined))
          const flight = takeOff(key)
          return Effect.andThen(fly(key, now, read, flight), restore(Deferred.await(flight)))
        })
      )

    return {
      get: (key, now, read) => {
        const entry = entries.get(key)
        return entry !== undefined && now - entry.readAt < options.ttlMs / 2
          ? Effect.succeed(entry.value)
          : slow(key, now, read)
      },
      invalidate: (matches) => {
        generation++
        for (const [key, entry] of entries) if (matches(entry.value)) entries.delete(key)
      }
    }
  })
