/**
 * Prefixed, time-ordered, URL-safe ids.
 *
 * An id is a prefix (`evt_`, `ep_`...) followed by 10 characters of the
 * creation time in milliseconds and 20 characters (100 bits) of randomness,
 * all in lowercase Crockford base32, so ids sort by creation time and serve as
 * pagination cursors.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Schema } from "effect"
import * as Entropy from "./Entropy.ts"

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
const TIME_CHARS = 10
const RANDOM_CHARS = 20

const shape = (prefix: string) =>
  Schema.String.pipe(
    Schema.check(
      Schema.isPattern(new RegExp(`^${prefix}[0-9a-hjkmnp-tv-z]{${TIME_CHARS + RANDOM_CHARS}}$`), {
        message: `Expected an id of the form ${prefix}<30 lowercase base32 characters>`
      })
    )
  )

/** `org_…` */
export const OrganizationId = shape("org_").pipe(Schema.brand("OrganizationId"))
export type OrganizationId = typeof OrganizationId.Type
/** `key_…`: the record id of an API key (not the key itself). */
export const ApiKeyId = shape("key_").pipe(Schema.brand("ApiKeyId"))
export type ApiKeyId = typeof ApiKeyId.Type
/** `ep_…` */
export const EndpointId = shape("ep_").pipe(Schema.brand("EndpointId"))
export type EndpointId = typeof EndpointId.Type
/** `evt_…` */
export const EventId = shape("evt_").pipe(Schema.brand("EventId"))
export type EventId = typeof EventId.Type
/** `dat_…`: one delivery attempt. */
export const AttemptId = shape("dat_").pipe(Schema.brand("AttemptId"))
export type AttemptId = typeof AttemptId.Type

/** Encodes `value` (a non-negative integer below 32^chars) in `chars` base32 characters. */
const encodeTime = (value: number): string => {
  let out = ""
  let rest = Math.max(0, Math.floor(value))
  for (let i = 0; i < TIME_CHARS; i++) {
    out = ALPHABET[rest % 32] + out
    rest = Math.floor(rest / 32)
  }
  return out
}

/** 100 bits of `bytes` (at least 13 of them) as 20 base32 characters. */
const encodeRandom = (bytes: Uint8Array): string => {
  let out = ""
  let buffer = 0
  let bits = 0
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte
    bits += 8
    while (bits >= 5 && out.length < RANDOM_CHARS) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31]
      bits -= 5
    }
    buffer &= (1 << bits) - 1
  }
  return out
}

/** The body of an id made at `millis` from 13 random bytes (pure, for tests and storage backends). */
export const format = (prefix: string, millis: number, randomBytes: Uint8Array): string =>
  `${prefix}${encodeTime(millis)}${encodeRandom(randomBytes)}`

/** The creation time encoded in an id, in epoch milliseconds. */
export const timestampOf = (id: string): number => {
  const underscore = id.indexOf("_")
  const time = id.slice(underscore + 1, underscore + 1 + TIME_CHARS)
  let value = 0
  for (const char of time) value = value * 32 + ALPHABET.indexOf(char)
  return value
}

/** An id made now, with random bytes from `bytes` (plain steps: attempt ids are made on every delivery). */
const makeWith = <A extends string>(
  prefix: string,
  bytes: (length: number) => Effect.Effect<Uint8Array>
): Effect.Effect<A> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.map(bytes(13), (random) => format(prefix, now, random) as A))

const make = <A extends string>(prefix: string) => makeWith<A>(prefix, Entropy.bytes)

/**
 * A new event id made at `millis` (the event's creation time, read once by the caller), with random bytes from
 * `source`: the entropy a service captured when it was built, cheaper than providing it on every call.
 */
export const makeEventIdAt = (millis: number, source: Entropy.Entropy): Effect.Effect<EventId> =>
  Effect.map(source.bytes(13), (random) => format("evt_", millis, random) as EventId)

/** A new attempt id, with random bytes from `source` (see `makeEventIdAt`). */
export const makeAttemptIdWith = (source: Entropy.Entropy): Effect.Effect<AttemptId> =>
  makeWith<AttemptId>("dat_", source.bytes)

/** A new organization id. */
export const makeOrganizationId: Effect.Effect<OrganizationId> = make<OrganizationId>("org_")
/** A new API key record id. */
export const makeApiKeyId: Effect.Effect<ApiKeyId> = make<ApiKeyId>("key_")
/** A new endpoint id. */
export const makeEndpointId: Effect.Effect<EndpointId> = make<EndpointId>("ep_")
/** A new event id. */
export const makeEventId: Effect.Effect<EventId> = make<EventId>("evt_")
/** A new attempt id. */
export const makeAttemptId: Effect.Effect<AttemptId> = make<AttemptId>("dat_")
