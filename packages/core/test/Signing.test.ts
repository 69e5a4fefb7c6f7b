import { assert, describe, it } from "@effect/vitest"
import { Effect, Random, Result, Schema } from "effect"
import * as fc from "fast-check"
import { createHmac } from "node:crypto"
import * as Entropy from "../src/Entropy.ts"
import * as Signing from "../src/Signing.ts"

const encoder = new TextEncoder()
const bytes = (text: string): Uint8Array => encoder.encode(text)

// The Quick Start's example payload, a fixed time (2026-05-26T12:00:00Z) and two secrets.
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
const OTHER_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
const PAYLOAD = "{\"event\":\"order.created\",\"data\":{\"order_id\":\"ORD-001\"}}"
const UNICODE_PAYLOAD = "{\"name\":\"José\",\"emoji\":\"🚀\"}"
const TIMESTAMP = "1779796800"
const NOW = 1779796800

const failureOf = <A, E>(result: Result.Result<A, E>): E => {
  if (Result.isSuccess(result)) return assert.fail(`expected a failure, got ${String(result.success)}`)
  return result.failure
}

describe("Signing", () => {
  describe("signInbound", () => {
    it("matches the Quick Start's openssl command", () => {
      // PAYLOAD='{"event":"order.created","data":{"order_id":"ORD-001"}}'; TIMESTAMP=1779796800
      // echo -n "${TIMESTAMP}.${PAYLOAD}" | openssl dgst -sha256 -hmac "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" | awk '{print $NF}'
      assert.strictEqual(
        Signing.signInbound(SECRET, TIMESTAMP, bytes(PAYLOAD)),
        "13d8a04521860ffdd6b9f1065e17ed6deb033d8af1ef969adab1f2aa9f93ee9a"
      )
    })

    it("hashes the body's UTF-8 bytes as sent", () => {
      // PAYLOAD='{"name":"José","emoji":"🚀"}'; TIMESTAMP=1779796800
      // echo -n "${TIMESTAMP}.${PAYLOAD}" | openssl dgst -sha256 -hmac "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD" | awk '{print $NF}'
      assert.strictEqual(
        Signing.signInbound(OTHER_SECRET, TIMESTAMP, bytes(UNICODE_PAYLOAD)),
        "221fd8ce91cf0e7d743fe2d43d2fc1418cc936e531d6aa7d1f4c87db2d703872"
      )
    })
  })

  describe("signPayload", () => {
    it("produces the X-PromptJang-Signature the FAQ's Python verify_signature checks", () => {
      // printf '%s' "$PAYLOAD" | openssl dgst -sha256 -hmac "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
      assert.strictEqual(
        Signing.signPayload(SECRET, bytes(PAYLOAD)),
        "92e352a48f53d62204d2e5654121bce42d23af2f8ae79537420f78e1dfb74177"
      )
      // printf '%s' '{"name":"José","emoji":"🚀"}' | openssl dgst -sha256 -hmac "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
      assert.strictEqual(
        Signing.signPayload(OTHER_SECRET, bytes(UNICODE_PAYLOAD)),
        "4a0a1d05897003bf7dff2988a9cd59619f9cb95ea46565a826fa1b5c6796c3a0"
      )
    })
  })

  describe("standardWebhooksSignature", () => {
    const id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    const body = bytes("{\"test\": 2432232314}")

    it("matches the Standard Webhooks reference vector", () => {
      assert.strictEqual(
        Signing.standardWebhooksSignature([SECRET], id, 1614265330, body),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
      )
    })

    it("sends one space-separated signature per active secret during a rotation", () => {
      // printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' \
      //   | openssl dgst -sha256 -mac HMAC -macopt hexkey:0b6155b0140886bb1c0a195020c57e6f9b1262ca686fba03 -binary | base64
      // (the hex key is `printf '%s' C2FVsBQIhrscChlQIMV+b5sSYspob7oD | base64 -d | od -An -tx1`)
      assert.strictEqual(
        Signing.standardWebhooksSignature([SECRET, OTHER_SECRET], id, 1614265330, body),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,78nXHjpFP0tVJQW5D0SBwmVyyW87BV/rL6MgfM/Bw44="
      )
    })

    it("changes with the timestamp, so a replayed header does not verify a later attempt", () => {
      assert.notStrictEqual(
        Signing.standardWebhooksSignature([SECRET], id, 1614265330, body),
        Signing.standardWebhooksSignature([SECRET], id, 1614265331, body)
      )
    })
  })

  describe("HMAC-SHA256", () => {
    // All three schemes, computed by Signing and by node:crypto's own HMAC.
    const signatures = (secret: string, timestamp: string, body: Uint8Array) => ({
      ours: [
        Signing.signInbound(secret, timestamp, body),
        Signing.signPayload(secret, body),
        Signing.standardWebhooksSignature([secret], "msg_1", 1614265330, body)
      ],
      nodeCrypto: [
        createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest("hex"),
        createHmac("sha256", secret).update(body).digest("hex"),
        `v1,${
          createHmac("sha256", Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64"))
            .update(`msg_1.1614265330.`).update(body).digest("base64")
        }`
      ]
    })

    it("equals node:crypto's HMAC for any secret (shorter or longer than a block), timestamp and body", () => {
      fc.assert(
        fc.property(
          // "max" spreads lengths over the whole range: secrets of more than 64 bytes are hashed into the key.
          fc.string({ unit: "grapheme", maxLength: 120, size: "max" }),
          fc.string({ unit: "grapheme", maxLength: 20 }),
          fc.uint8Array({ maxLength: 6000, size: "max" }),
          (secret, timestamp, body) => {
            const { nodeCrypto, ours } = signatures(secret, timestamp, body)
            assert.deepStrictEqual(ours, nodeCrypto)
          }
        ),
        { numRuns: 300 }
      )
    })

    it("equals node:crypto's HMAC for a body larger than the shared buffer, and for a small one after it", () => {
      const large = new Uint8Array(70 * 1024).map((_, i) => (i * 31) % 251)
      for (
        const [secret, body] of [[SECRET, large], [SECRET, bytes(PAYLOAD)], [
          OTHER_SECRET,
          large.subarray(0, 65 * 1024)
        ]] as const
      ) {
        const { nodeCrypto, ours } = signatures(secret, TIMESTAMP, body)
        assert.deepStrictEqual(ours, nodeCrypto)
      }
    })
  })

  describe("verifyInbound", () => {
    const body = bytes(PAYLOAD)
    const signed = Signing.signInbound(SECRET, TIMESTAMP, body)
    const base = {
      secrets: [SECRET],
      signature: signed,
      timestamp: TIMESTAMP,
      body,
      nowSeconds: NOW,
      required: false
    }

    it("accepts a request signed as in the Quick Start", () => {
      assert.deepStrictEqual(Signing.verifyInbound(base), Result.succeed("signed"))
    })

    it("accepts an unsigned request on an endpoint that does not require signatures", () => {
      assert.deepStrictEqual(
        Signing.verifyInbound({ ...base, signature: undefined, timestamp: undefined }),
        Result.succeed("unsigned")
      )
    })

    it("rejects a tampered body", () => {
      const error = failureOf(Signing.verifyInbound({ ...base, body: bytes(PAYLOAD.replace("001", "002")) }))
      assert.strictEqual(error._tag, "InvalidSignature")
      assert.include(error.message, "does not match")
    })

    it("rejects a signature made with another secret", () => {
      const error = failureOf(
        Signing.verifyInbound({ ...base, signature: Signing.signInbound(OTHER_SECRET, TIMESTAMP, body) })
      )
      assert.strictEqual(error._tag, "InvalidSignature")
    })

    it("never puts a secret in an error message", () => {
      const error = failureOf(Signing.verifyInbound({ ...base, secrets: [OTHER_SECRET] }))
      assert.notInclude(error.message, OTHER_SECRET)
      assert.notInclude(error.message, OTHER_SECRET.slice("whsec_".length))
    })

    it("accepts the old secret during a rotation", () => {
      assert.deepStrictEqual(
        Signing.verifyInbound({ ...base, secrets: [OTHER_SECRET, SECRET] }),
        Result.succeed("signed")
      )
    })

    it("accepts the signature in uppercase hex, with surrounding spaces", () => {
      assert.deepStrictEqual(
        Signing.verifyInbound({ ...base, signature: ` ${signed.toUpperCase()} ` }),
        Result.succeed("signed")
      )
    })

    it("rejects malformed signatures as a mismatch", () => {
      for (const signature of ["", "zz", signed.slice(0, 63), `${signed}00`, `${signed.slice(0, 63)}g`]) {
        assert.strictEqual(failureOf(Signing.verifyInbound({ ...base, signature }))._tag, "InvalidSignature")
      }
    })

    it("accepts a timestamp exactly 300 seconds off in either direction", () => {
      for (const offset of [-300, 300]) {
        const timestamp = String(NOW + offset)
        const result = Signing.verifyInbound({
          ...base,
          timestamp,
          signature: Signing.signInbound(SECRET, timestamp, body)
        })
        assert.deepStrictEqual(result, Result.succeed("signed"))
      }
    })

    it("rejects a timestamp 301 seconds off, even with a valid signature", () => {
      for (const offset of [-301, 301]) {
        const timestamp = String(NOW + offset)
        const error = failureOf(
          Signing.verifyInbound({ ...base, timestamp, signature: Signing.signInbound(SECRET, timestamp, body) })
        )
        assert.strictEqual(error._tag, "TimestampOutOfRange")
        assert.include(error.message, "300 seconds")
        assert.include(error.message, "date +%s")
      }
    })

    it("honours a custom tolerance", () => {
      const timestamp = String(NOW - 61)
      const error = failureOf(
        Signing.verifyInbound({
          ...base,
          timestamp,
          signature: Signing.signInbound(SECRET, timestamp, body),
          toleranceSeconds: 60
        })
      )
      assert.strictEqual(error._tag, "TimestampOutOfRange")
      assert.include(error.message, "60 seconds")
    })

    it("rejects a timestamp that is not whole Unix seconds", () => {
      for (const timestamp of ["abc", "1779796800.5", "-1779796800", "1e9", "", "2026-05-26T12:00:00Z"]) {
        const error = failureOf(
          Signing.verifyInbound({ ...base, timestamp, signature: Signing.signInbound(SECRET, timestamp, body) })
        )
        assert.strictEqual(error._tag, "TimestampOutOfRange", timestamp)
        assert.include(error.message, "date +%s")
      }
    })

    it("rejects a request with only one of the two headers, naming the missing one", () => {
      const noTimestamp = failureOf(Signing.verifyInbound({ ...base, timestamp: undefined }))
      assert.strictEqual(noTimestamp._tag, "InvalidSignature")
      assert.include(noTimestamp.message, "X-PJ-Timestamp header is missing")

      const noSignature = failureOf(Signing.verifyInbound({ ...base, signature: undefined }))
      assert.strictEqual(noSignature._tag, "InvalidSignature")
      assert.include(noSignature.message, "X-PJ-Signature header is missing")
    })

    it("rejects an unsigned request when the endpoint requires signatures", () => {
      const error = failureOf(
        Signing.verifyInbound({ ...base, signature: undefined, timestamp: undefined, required: true })
      )
      assert.strictEqual(error._tag, "InvalidSignature")
      assert.include(error.message, "requires")
      assert.include(error.message, "X-PJ-Signature")
      assert.include(error.message, "X-PJ-Timestamp")
    })

    it("still accepts a signed request when the endpoint requires signatures", () => {
      assert.deepStrictEqual(Signing.verifyInbound({ ...base, required: true }), Result.succeed("signed"))
    })

    it.prop(
      "accepts what signInbound signs, for any body and secret",
      [Schema.Uint8Array, Schema.String, Schema.String],
      ([body, secret, otherSecret]) => {
        const signature = Signing.signInbound(secret, TIMESTAMP, body)
        assert.match(signature, /^[0-9a-f]{64}$/)
        const result = Signing.verifyInbound({
          secrets: [otherSecret, secret],
          signature,
          timestamp: TIMESTAMP,
          body,
          nowSeconds: NOW,
          required: true
        })
        assert.deepStrictEqual(result, Result.succeed("signed"))
      }
    )

    it.prop(
      "rejects the signature once any single byte of the body changes",
      [Schema.Uint8Array, Schema.Int, Schema.Int],
      ([generated, position, change]) => {
        const original = generated.length === 0 ? Uint8Array.of(0) : generated
        const tampered = Uint8Array.from(original)
        const index = ((position % tampered.length) + tampered.length) % tampered.length
        // A delta in 1..255, so the byte always changes.
        tampered[index] = ((tampered[index] ?? 0) + 1 + (((change % 255) + 255) % 255)) % 256
        const result = Signing.verifyInbound({
          secrets: [SECRET],
          signature: Signing.signInbound(SECRET, TIMESTAMP, original),
          timestamp: TIMESTAMP,
          body: tampered,
          nowSeconds: NOW,
          required: false
        })
        assert.strictEqual(failureOf(result)._tag, "InvalidSignature")
      }
    )
  })

  describe("generateSecret", () => {
    it.effect("is whsec_ followed by base64 of 24 random bytes", () =>
      Effect.gen(function*() {
        const secret = yield* Signing.generateSecret
        assert.match(secret, /^whsec_[A-Za-z0-9+/]{32}$/)
        assert.strictEqual(Buffer.from(secret.slice("whsec_".length), "base64").length, 24)
        assert.notStrictEqual(yield* Signing.generateSecret, secret)
      }))

    it.effect("works as a Standard Webhooks secret and as a raw-string key", () =>
      Effect.gen(function*() {
        const secret = yield* Signing.generateSecret
        const body = bytes(PAYLOAD)
        assert.match(Signing.standardWebhooksSignature([secret], "evt_1", NOW, body), /^v1,[A-Za-z0-9+/]{43}=$/)
        assert.match(Signing.signPayload(secret, body), /^[0-9a-f]{64}$/)
      }))

    it.effect("is reproducible under a seeded Random", () =>
      Effect.gen(function*() {
        const run = (seed: string) =>
          Signing.generateSecret.pipe(Effect.provide(Entropy.layerRandom), Random.withSeed(seed))
        const first = yield* run("seed-a")
        assert.strictEqual(yield* run("seed-a"), first)
        assert.notStrictEqual(yield* run("seed-b"), first)
      }))
  })

  describe("generateApiKey", () => {
    it.effect("is pj_live_ followed by 32 base62 characters", () =>
      Effect.gen(function*() {
        const key = yield* Signing.generateApiKey
        assert.match(key, /^pj_live_[0-9A-Za-z]{32}$/)
        assert.isTrue(Signing.isApiKeyShaped(key))
        assert.notStrictEqual(yield* Signing.generateApiKey, key)
      }))

    it.effect("is reproducible under a seeded Random", () =>
      Effect.gen(function*() {
        const run = (seed: string) =>
          Signing.generateApiKey.pipe(Effect.provide(Entropy.layerRandom), Random.withSeed(seed))
        const first = yield* run("seed-a")
        assert.strictEqual(yield* run("seed-a"), first)
        assert.notStrictEqual(yield* run("seed-b"), first)
      }))

    it.effect("uses every base62 character, each about equally often", () =>
      Effect.gen(function*() {
        const counts = new Map<string, number>()
        for (let i = 0; i < 200; i++) {
          const key = yield* Signing.generateApiKey
          for (const char of key.slice("pj_live_".length)) counts.set(char, (counts.get(char) ?? 0) + 1)
        }
        assert.strictEqual(counts.size, 62)
        // 6,400 characters: about 103 each; a biased mapping would push some far outside this band.
        for (const [char, count] of counts) assert.isTrue(count > 50 && count < 160, `${char} appeared ${count} times`)
      }).pipe(Effect.provide(Entropy.layerRandom), Random.withSeed("uniformity")))

    it.effect("skips bytes of 248 and above, drawing more bytes when needed", () =>
      Effect.gen(function*() {
        const draws: Array<number> = []
        const scripted: Entropy.Entropy = {
          bytes: (length) =>
            Effect.sync(() => {
              draws.push(length)
              // First draw: only rejected bytes, except 247 (the largest accepted, 247 % 62 = 61 → "z").
              return draws.length === 1
                ? Uint8Array.from({ length }, (_, i) => (i === 0 ? 247 : 248 + (i % 8)))
                : Uint8Array.from({ length }, (_, i) => i % 62)
            })
        }
        const key = yield* Signing.generateApiKey.pipe(Effect.provideService(Entropy.Entropy, scripted))
        assert.strictEqual(key, "pj_live_z0123456789ABCDEFGHIJKLMNOPQRSTU")
        assert.isAbove(draws.length, 1)
      }))
  })

  describe("API key helpers", () => {
    const key = "pj_live_0123456789ABCDEFGHIJabcdefghijkl"

    it("hashes a key to lowercase hex SHA-256", () => {
      // printf '%s' pj_live_0123456789ABCDEFGHIJabcdefghijkl | sha256sum
      assert.strictEqual(
        Signing.hashApiKey(key),
        "46ce94cf4b17089927347c25fc5d7ce64e613fe55018d71524dfa40607f9bb7e"
      )
    })

    it("keeps the first 12 characters as the display prefix", () => {
      assert.strictEqual(Signing.apiKeyPrefix(key), "pj_live_0123")
    })

    it("recognises only pj_live_ followed by 32 base62 characters", () => {
      assert.isTrue(Signing.isApiKeyShaped(key))
      for (
        const bad of [
          "",
          "pj_live_",
          `${key}0`,
          key.slice(0, -1),
          key.replace("pj_live_", "pj_test_"),
          key.replace("A", "-"),
          ` ${key}`
        ]
      ) {
        assert.isFalse(Signing.isApiKeyShaped(bad), bad)
      }
    })
  })

  describe("hashBody", () => {
    it("is the lowercase hex SHA-256 of the bytes", () => {
      // printf '' | sha256sum
      assert.strictEqual(
        Signing.hashBody(new Uint8Array()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
      )
      assert.notStrictEqual(Signing.hashBody(bytes("{\"a\":1}")), Signing.hashBody(bytes("{\"a\": 1}")))
    })
  })

  describe("constantTimeEqual", () => {
    it("is true only for equal strings, whatever their lengths", () => {
      assert.isTrue(Signing.constantTimeEqual("abc", "abc"))
      assert.isTrue(Signing.constantTimeEqual("", ""))
      assert.isFalse(Signing.constantTimeEqual("abc", "abd"))
      assert.isFalse(Signing.constantTimeEqual("abc", "abcd"))
      assert.isFalse(Signing.constantTimeEqual("", "a"))
    })
  })
})
