/**
 * HMAC signatures for inbound events and outbound deliveries, and the
 * generation and hashing of endpoint secrets and API keys.
 *
 * One endpoint secret (`whsec_` + base64 of 24 random bytes) serves three
 * schemes, so that every documented receiver works from the same value:
 *
 * - inbound `X-PJ-Signature` (SPEC §3.4, the Quick Start's `openssl` command):
 *   hex HMAC-SHA256 keyed with the whole secret string over `"${timestamp}.${body}"`;
 * - outbound `X-PromptJang-Signature` (the FAQ's `verify_signature`): hex
 *   HMAC-SHA256 keyed with the whole secret string over the body;
 * - outbound `webhook-signature` (Standard Webhooks): base64 HMAC-SHA256 keyed
 *   with the base64-decoded part after `whsec_` over `"${id}.${timestamp}.${body}"`.
 *
 * Everything here is a plain function over bytes, except the generators, which
 * draw randomness from {@link Entropy} so that tests can seed it.
 *
 * @since 0.1.0
 */
import { Effect, Result } from "effect"
import { hash, timingSafeEqual } from "node:crypto"
import * as Entropy from "./Entropy.ts"
import { InvalidSignature, TimestampOutOfRange } from "./Errors.ts"

// ---------------------------------------------------------------------------
// HMAC-SHA256
// ---------------------------------------------------------------------------

/** SHA-256's block size: the HMAC key is padded (or first hashed) to it. */
const BLOCK = 64

/**
 * One HMAC-SHA256 key, prepared once (RFC 2104): the key block XOR ipad, and a buffer that holds the key block
 * XOR opad followed by room for the inner digest.
 */
interface HmacKey {
  readonly innerPad: Buffer
  readonly outer: Buffer
}

const hmacKey = (key: Uint8Array): HmacKey => {
  const block = Buffer.alloc(BLOCK)
  block.set(key.byteLength > BLOCK ? hash("sha256", key, "buffer") : key)
  const innerPad = Buffer.allocUnsafe(BLOCK)
  const outer = Buffer.alloc(BLOCK + 32)
  block.forEach((byte, i) => {
    innerPad[i] = byte ^ 0x36
    outer[i] = byte ^ 0x5c
  })
  return { innerPad, outer }
}

/** Inputs up to this size are assembled in one reused buffer; larger ones get a buffer of their own. */
const SCRATCH_MAX = 64 * 1024
let scratch = Buffer.allocUnsafe(4096)

/**
 * HMAC-SHA256 of `prefix` (as UTF-8) followed by `body`, built from two one-shot hashes. On Node 24 (OpenSSL 3)
 * a `createHmac` costs about a microsecond to set up and a Buffer digest about as much again, more than hashing
 * a 1 KiB body; one-shot hashes with string output cost neither, so a signature takes about half the time.
 * Everything here is synchronous, so the shared buffers cannot be used by two calls at once.
 */
const hmacSha256 = (key: HmacKey, prefix: string, body: Uint8Array, encoding: "hex" | "base64"): string => {
  const prefixLength = Buffer.byteLength(prefix, "utf8")
  const length = BLOCK + prefixLength + body.byteLength
  let input: Buffer
  if (length > SCRATCH_MAX) input = Buffer.allocUnsafe(length)
  else {
    if (scratch.length < length) scratch = Buffer.allocUnsafe(SCRATCH_MAX)
    input = scratch
  }
  input.set(key.innerPad, 0)
  input.write(prefix, BLOCK, "utf8")
  input.set(body, BLOCK + prefixLength)
  // A "binary" (latin1) string carries the 32 digest bytes one per character, without a Buffer's allocation.
  key.outer.write(hash("sha256", input.subarray(0, length), "binary"), BLOCK, "latin1")
  return hash("sha256", key.outer, encoding)
}

// ---------------------------------------------------------------------------
// Key cache
// ---------------------------------------------------------------------------

/**
 * The keys derived from one secret. Built lazily because inbound checks only
 * ever need `raw`.
 */
interface SecretKeys {
  raw: HmacKey | undefined
  standard: HmacKey | undefined
}

/**
 * Bounds the cache so that a flood of distinct secrets (many endpoints, or a
 * caller passing attacker-chosen strings) cannot grow memory without limit.
 */
const MAX_CACHED_SECRETS = 10_000

/**
 * secret → derived keys, so that a secret's padded key blocks are computed once
 * and reused by every event and delivery. A Map iterates in insertion order,
 * which makes evicting the oldest entry O(1).
 */
const keyCache = new Map<string, SecretKeys>()

const keysOf = (secret: string): SecretKeys => {
  let keys = keyCache.get(secret)
  if (keys === undefined) {
    if (keyCache.size >= MAX_CACHED_SECRETS) {
      const oldest = keyCache.keys().next()
      if (oldest.done !== true) keyCache.delete(oldest.value)
    }
    keys = { raw: undefined, standard: undefined }
    keyCache.set(secret, keys)
  }
  return keys
}

/** The whole secret string as UTF-8: the key of the inbound and `X-PromptJang-Signature` schemes. */
const rawKey = (secret: string): HmacKey => {
  const keys = keysOf(secret)
  if (keys.raw === undefined) keys.raw = hmacKey(Buffer.from(secret, "utf8"))
  return keys.raw
}

const STANDARD_PREFIX = "whsec_"

/**
 * The base64-decoded part after `whsec_`: the Standard Webhooks key. A secret
 * without the prefix is decoded whole, as the Standard Webhooks libraries do.
 */
const standardKey = (secret: string): HmacKey => {
  const keys = keysOf(secret)
  if (keys.standard === undefined) {
    const encoded = secret.startsWith(STANDARD_PREFIX) ? secret.slice(STANDARD_PREFIX.length) : secret
    keys.standard = hmacKey(Buffer.from(encoded, "base64"))
  }
  return keys.standard
}

// ---------------------------------------------------------------------------
// Inbound: X-PJ-Signature / X-PJ-Timestamp
// ---------------------------------------------------------------------------

/**
 * The `X-PJ-Signature` a sender computes: lowercase hex HMAC-SHA256, keyed with
 * the whole secret string (including `whsec_`) as UTF-8, over
 * `"${timestamp}.${body}"`. Identical to the Quick Start's
 * `echo -n "${TIMESTAMP}.${PAYLOAD}" | openssl dgst -sha256 -hmac "$SECRET"`.
 *
 * @example
 * ```ts
 * const signature = Signing.signInbound(secret, "1779796800", new TextEncoder().encode(payload))
 * ```
 */
export const signInbound = (secret: string, timestamp: string, body: Uint8Array): string =>
  // The body is hashed as the bytes received: decoding and re-encoding it
  // could change it (invalid UTF-8, a BOM) and break a valid signature.
  hmacSha256(rawKey(secret), `${timestamp}.`, body, "hex")

/** The default allowed clock difference for `X-PJ-Timestamp`, in seconds (SPEC §3.4). */
export const DEFAULT_TOLERANCE_SECONDS = 300

/** The inputs of {@link verifyInbound}: the request's headers and body, and the endpoint's settings. */
export interface VerifyInboundOptions {
  /** Every secret that may have signed the request: the current one, plus the previous one during a rotation. */
  readonly secrets: ReadonlyArray<string>
  /** The `X-PJ-Signature` header, `undefined` when absent. */
  readonly signature: string | undefined
  /** The `X-PJ-Timestamp` header, `undefined` when absent. */
  readonly timestamp: string | undefined
  /** The raw request body, exactly as received. */
  readonly body: Uint8Array
  /** The server's current time in Unix seconds. */
  readonly nowSeconds: number
  /** The endpoint's `require_signature`: refuse requests that carry neither header. */
  readonly required: boolean
  /** Allowed difference between the timestamp and `nowSeconds`, inclusive (default 300). */
  readonly toleranceSeconds?: number
}

const HEX_SHA256 = /^[0-9a-fA-F]{64}$/
const UNIX_SECONDS = /^[0-9]+$/

/**
 * Whether two lowercase hex digests are equal, in time that does not depend on where they differ. Unlike
 * `constantTimeEqual` it hashes nothing first: both sides are digests of one known length.
 */
const equalHexDigests = (a: string, b: string): boolean => {
  let difference = a.length ^ b.length
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return difference === 0
}

/** A header value shown back in an error, cut short so that a huge header does not make a huge response. */
const quoted = (value: string): string => JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)

/**
 * Checks the `X-PJ-Signature` and `X-PJ-Timestamp` of an inbound event (SPEC §3.4).
 *
 * Succeeds with `"unsigned"` when neither header is sent and the endpoint does
 * not require them (the FAQ's unsigned example), and with `"signed"` when the
 * signature matches any of `secrets`, so that senders keep working while a
 * rotated secret is rolled out. The timestamp is checked before the signature
 * so that a sender with a skewed clock is told about the clock, not about a
 * signature that is in fact right. Comparisons are constant-time and every
 * secret is tried, so the response time says nothing about which one matched.
 *
 * @example
 * ```ts
 * const verdict = Signing.verifyInbound({
 *   secrets: [endpoint.secret],
 *   signature: headers["x-pj-signature"],
 *   timestamp: headers["x-pj-timestamp"],
 *   body,
 *   nowSeconds: Math.floor(now / 1000),
 *   required: endpoint.requireSignature
 * })
 * ```
 */
export const verifyInbound = (
  options: VerifyInboundOptions
): Result.Result<"signed" | "unsigned", InvalidSignature | TimestampOutOfRange> => {
  const { body, nowSeconds, required, secrets, signature, timestamp } = options
  const toleranceSeconds = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS

  if (signature === undefined && timestamp === undefined) {
    return required
      ? Result.fail(
        new InvalidSignature({
          message: "This endpoint requires signed events: send the X-PJ-Signature and X-PJ-Timestamp headers, " +
            "computed as shown in the Quick Start."
        })
      )
      : Result.succeed("unsigned")
  }
  if (signature === undefined) {
    return Result.fail(
      new InvalidSignature({
        message: "The X-PJ-Signature header is missing: a signed event must send both X-PJ-Signature and " +
          "X-PJ-Timestamp, or neither."
      })
    )
  }
  if (timestamp === undefined) {
    return Result.fail(
      new InvalidSignature({
        message: "The X-PJ-Timestamp header is missing: a signed event must send both X-PJ-Signature and " +
          "X-PJ-Timestamp, or neither."
      })
    )
  }

  const trimmedTimestamp = timestamp.trim()
  if (!UNIX_SECONDS.test(trimmedTimestamp)) {
    return Result.fail(
      new TimestampOutOfRange({
        message: `The X-PJ-Timestamp header ${quoted(timestamp)} is not a Unix time in whole seconds: ` +
          `send the output of \`date +%s\`, within ${toleranceSeconds} seconds of the current time, ` +
          "and sign with that same value.",
        timestamp,
        toleranceSeconds
      })
    )
  }
  const skew = Math.abs(nowSeconds - Number(trimmedTimestamp))
  if (!(skew <= toleranceSeconds)) {
    return Result.fail(
      new TimestampOutOfRange({
        message: `The X-PJ-Timestamp ${trimmedTimestamp} is ${Math.round(skew)} seconds away from the server's ` +
          `clock; it must be within ${toleranceSeconds} seconds. Send the current Unix time (\`date +%s\`) ` +
          "and sign with that same value; if it is current, check the sender's clock.",
        timestamp,
        toleranceSeconds
      })
    )
  }

  // A malformed signature is just a mismatch: the sender gets the same answer
  // and the same explanation whatever is wrong with it.
  const trimmedSignature = signature.trim()
  const provided = HEX_SHA256.test(trimmedSignature) ? trimmedSignature.toLowerCase() : undefined
  let matched = false
  for (const secret of secrets) {
    const expected = signInbound(secret, trimmedTimestamp, body)
    if (provided !== undefined && equalHexDigests(expected, provided)) matched = true
  }
  return matched
    ? Result.succeed("signed")
    : Result.fail(
      new InvalidSignature({
        message: "The X-PJ-Signature header does not match this request: compute the lowercase hex " +
          "HMAC-SHA256 of \"<X-PJ-Timestamp>.<raw body>\" with the endpoint's whole secret (including whsec_) " +
          "as the key, over the exact bytes sent, as shown in the Quick Start."
      })
    )
}

// ---------------------------------------------------------------------------
// Outbound: X-PromptJang-Signature and Standard Webhooks
// ---------------------------------------------------------------------------

/**
 * The `X-PromptJang-Signature` of a delivery: lowercase hex HMAC-SHA256, keyed
 * with the whole secret string as UTF-8, over the body. It is what the FAQ's
 * Python `verify_signature` checks:
 * `hmac.new(secret.encode(), payload_body, hashlib.sha256).hexdigest()`.
 */
export const signPayload = (secret: string, body: Uint8Array): string => hmacSha256(rawKey(secret), "", body, "hex")

/**
 * The Standard Webhooks `webhook-signature` header: `v1,<base64 HMAC-SHA256>`
 * per secret, space-separated, keyed with the base64-decoded part after
 * `whsec_`, over `"${id}.${timestampSeconds}.${body}"`. Several secrets give
 * several signatures so that receivers verify with either the old or the new
 * secret during a rotation.
 *
 * @example
 * ```ts
 * const header = Signing.standardWebhooksSignature([secret, previousSecret], eventId, 1614265330, body)
 * // "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,..."
 * ```
 */
export const standardWebhooksSignature = (
  secrets: ReadonlyArray<string>,
  id: string,
  timestampSeconds: number,
  body: Uint8Array
): string => {
  const prefix = `${id}.${timestampSeconds}.`
  return secrets
    .map((secret) => `v1,${hmacSha256(standardKey(secret), prefix, body, "base64")}`)
    .join(" ")
}

// ---------------------------------------------------------------------------
// Secrets and API keys
// ---------------------------------------------------------------------------

/**
 * A new endpoint secret: `whsec_` + base64 of 24 random bytes. 24 bytes encode
 * to 32 base64 characters without padding, and the same value works both as
 * the raw-string key of the PromptJang schemes and as a Standard Webhooks secret.
 */
export const generateSecret: Effect.Effect<string> = Effect.map(
  Entropy.bytes(24),
  (bytes) => `${STANDARD_PREFIX}${Buffer.from(bytes).toString("base64")}`
)

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
const API_KEY_PREFIX = "pj_live_"
const API_KEY_RANDOM_CHARS = 32
/** 248 = 4 × 62: bytes at or above it are dropped so that `byte % 62` is uniform. */
const BASE62_REJECT_FROM = 248

/**
 * A new API key: `pj_live_` + 32 base62 characters (about 190 bits).
 * Rejection sampling keeps every character equally likely, so the key has the
 * entropy its length promises.
 */
export const generateApiKey: Effect.Effect<string> = Effect.gen(function*() {
  let out = API_KEY_PREFIX
  while (out.length < API_KEY_PREFIX.length + API_KEY_RANDOM_CHARS) {
    // About 3% of bytes are rejected, so a few spare bytes usually suffice.
    const bytes = yield* Entropy.bytes(API_KEY_PREFIX.length + API_KEY_RANDOM_CHARS - out.length + 4)
    for (const byte of bytes) {
      if (byte >= BASE62_REJECT_FROM) continue
      out += BASE62.charAt(byte % 62)
      if (out.length === API_KEY_PREFIX.length + API_KEY_RANDOM_CHARS) break
    }
  }
  return out
})

const API_KEY_SHAPE = /^pj_live_[0-9A-Za-z]{32}$/

/**
 * Whether `key` looks like an API key. Lets authentication refuse garbage
 * without a database lookup; it says nothing about whether the key exists.
 */
export const isApiKeyShaped = (key: string): boolean => API_KEY_SHAPE.test(key)

/**
 * The stored form of an API key: lowercase hex SHA-256. A plain hash is enough
 * (no salt or slow KDF) because the key carries ~190 random bits, and it lets
 * a key be looked up by its hash.
 */
export const hashApiKey = (key: string): string => hash("sha256", key, "hex")

/** The first 12 characters of an API key (`pj_live_` + 4), kept to tell keys apart in lists. */
export const apiKeyPrefix = (key: string): string => key.slice(0, 12)

/** Lowercase hex SHA-256 of a body: compares an idempotent retry's body with the first one without keeping it. */
export const hashBody = (body: Uint8Array): string => hash("sha256", body, "hex")

/**
 * Whether two strings are equal, in time that does not depend on where they
 * differ. Both sides are hashed first so that inputs of different lengths are
 * compared without revealing the expected length.
 */
export const constantTimeEqual = (a: string, b: string): boolean =>
  timingSafeEqual(
    hash("sha256", a, "buffer"),
    hash("sha256", b, "buffer")
  )
