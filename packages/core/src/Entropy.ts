/**
 * The source of random bytes for secrets, API keys and ids.
 *
 * The default draws from the operating system's CSPRNG, because secrets and
 * API keys must be unpredictable. Tests swap in {@link layerRandom}, which
 * draws from effect's `Random` service so that `Random.withSeed` makes a run
 * reproducible.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Random } from "effect"
import { getRandomValues } from "node:crypto"

/** Fills byte arrays with random data. */
export interface Entropy {
  readonly bytes: (length: number) => Effect.Effect<Uint8Array>
}

// Random bytes are drawn from the OS in blocks: one system call per id would dominate a hot path.
const POOL_SIZE = 4096
let pool = new Uint8Array(0)
let offset = 0
const takeSecure = (length: number): Uint8Array => {
  if (length > POOL_SIZE) return getRandomValues(new Uint8Array(length))
  if (offset + length > pool.length) {
    pool = getRandomValues(new Uint8Array(POOL_SIZE))
    offset = 0
  }
  const out = pool.slice(offset, offset + length)
  offset += length
  return out
}

/** The cryptographically secure default. */
export const secure: Entropy = {
  bytes: (length) => Effect.sync(() => takeSecure(length))
}

/** Entropy drawn from effect's `Random` service: deterministic under `Random.withSeed`. Never for production secrets. */
export const fromRandom: Entropy = {
  bytes: (length) =>
    Effect.gen(function*() {
      const out = new Uint8Array(length)
      for (let i = 0; i < length; i++) out[i] = yield* Random.nextIntBetween(0, 255)
      return out
    })
}

/**
 * The current entropy source (defaults to {@link secure}).
 *
 * @example
 * ```ts
 * const bytes = yield* Entropy.bytes(24)
 * ```
 */
export const Entropy = Context.Reference<Entropy>("@promptjang/core/Entropy", { defaultValue: () => secure })

/** `length` random bytes from the current source. */
export const bytes = (length: number): Effect.Effect<Uint8Array> =>
  Effect.gen(function*() {
    const entropy = yield* Entropy
    return yield* entropy.bytes(length)
  })

/** Provides {@link fromRandom}: reproducible ids and secrets for tests. */
export const layerRandom: Layer.Layer<never> = Layer.succeed(Entropy, fromRandom)

/**
 * Runs an effect with the entropy source captured when a service was built, so
 * that a service behaves the same whatever context its callers run in.
 */
export const withSource = (source: Entropy) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, Entropy, source)
