import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import * as Targets from "../src/Targets.ts"

const guarded: Targets.TargetPolicy = { allowPrivateTargets: false }
const permissive: Targets.TargetPolicy = { allowPrivateTargets: true }

const refusal = (input: string, policy: Targets.TargetPolicy = guarded) => {
  const result = Targets.validateUrl(input, policy)
  if (Result.isSuccess(result)) return assert.fail(`expected ${input} to be refused, got ${result.success.href}`)
  return result.failure
}

const accepted = (input: string, policy: Targets.TargetPolicy = guarded): URL => {
  const result = Targets.validateUrl(input, policy)
  if (Result.isFailure(result)) return assert.fail(`expected ${input} to be accepted, got: ${result.failure.message}`)
  return result.success
}

describe("Targets", () => {
  describe("isBlockedAddress", () => {
    const blocked: ReadonlyArray<readonly [string, string]> = [
      ["127.0.0.1", "IPv4 loopback"],
      ["10.1.2.3", "private 10/8"],
      ["172.16.0.1", "private 172.16/12, first address"],
      ["172.31.255.255", "private 172.16/12, last address"],
      ["192.168.1.1", "private 192.168/16"],
      ["100.64.0.1", "CGNAT"],
      ["169.254.169.254", "cloud metadata"],
      ["0.0.0.0", "this network"],
      ["224.0.0.1", "multicast"],
      ["255.255.255.255", "broadcast"],
      ["::1", "IPv6 loopback"],
      ["::", "IPv6 unspecified"],
      ["fe80::1", "IPv6 link-local"],
      ["fc00::1", "IPv6 unique local"],
      ["fd00:ec2::254", "AWS IPv6 metadata"],
      ["ff02::1", "IPv6 multicast"],
      ["::ffff:127.0.0.1", "IPv4-mapped loopback, dotted"],
      ["::ffff:7f00:1", "IPv4-mapped loopback, hex"],
      ["64:ff9b::a00:1", "NAT64 of 10.0.0.1"],
      ["[::1]", "bracketed IPv6 loopback"],
      ["FE80::1", "upper-case link-local"]
    ]
    for (const [address, kind] of blocked) {
      it(`blocks ${address} (${kind})`, () => {
        assert.isTrue(Targets.isBlockedAddress(address))
      })
    }

    const allowed: ReadonlyArray<readonly [string, string]> = [
      ["172.32.0.1", "just past 172.16/12"],
      ["172.15.255.255", "just before 172.16/12"],
      ["8.8.8.8", "public IPv4"],
      ["1.1.1.1", "public IPv4"],
      ["2606:4700:4700::1111", "public IPv6"],
      ["::ffff:8.8.8.8", "IPv4-mapped public address"],
      ["64:ff9b::808:808", "NAT64 of 8.8.8.8"]
    ]
    for (const [address, kind] of allowed) {
      it(`allows ${address} (${kind})`, () => {
        assert.isFalse(Targets.isBlockedAddress(address))
      })
    }

    it("blocks text that is not an IP address", () => {
      assert.isTrue(Targets.isBlockedAddress("example.com"))
      assert.isTrue(Targets.isBlockedAddress(""))
    })
  })

  describe("validateUrl", () => {
    it("accepts a public https URL", () => {
      assert.strictEqual(accepted("https://example.com").hostname, "example.com")
      assert.strictEqual(accepted("http://8.8.8.8:8080/hook").port, "8080")
    })

    it("refuses ftp and names the scheme", () => {
      const error = refusal("ftp://example.com/hook")
      assert.strictEqual(error._tag, "ValidationFailed")
      assert.include(error.message, "ftp")
      assert.deepStrictEqual(error.details.map((issue) => issue.path), ["url"])
    })

    it("refuses credentials in the URL", () => {
      assert.include(refusal("https://user:secret@example.com/hook").message, "credentials")
      assert.include(refusal("https://user@example.com/hook").message, "credentials")
    })

    it("refuses a relative URL", () => {
      assert.include(refusal("/hooks/orders").message, "not an absolute URL")
    })

    for (
      const url of [
        "http://localhost",
        "http://LOCALHOST.",
        "http://api.localhost/hook",
        "http://metadata.google.internal/",
        "http://127.0.0.1:8080",
        "http://[::1]/"
      ]
    ) {
      it(`refuses ${url} and names ${Targets.SETTING}`, () => {
        const error = refusal(url)
        assert.include(error.message, "PROMPTJANG_ALLOW_PRIVATE_TARGETS")
        assert.deepStrictEqual(error.details.map((issue) => issue.path), ["url"])
      })
    }

    it("refuses private addresses written in other notations", () => {
      // the URL parser normalizes these to 127.0.0.1 and ::ffff:7f00:1
      for (
        const url of ["http://2130706433/", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/"]
      ) {
        assert.include(refusal(url).message, Targets.SETTING, url)
      }
    })

    it("allows private targets when the policy allows them", () => {
      for (const url of ["http://localhost", "http://127.0.0.1:8080", "http://[::1]/", "http://10.0.0.5/hook"]) {
        assert.strictEqual(accepted(url, permissive).href, new URL(url).href)
      }
    })

    it("still refuses other schemes and credentials when private targets are allowed", () => {
      assert.include(refusal("ftp://localhost/", permissive).message, "ftp")
      assert.include(refusal("http://user:pw@localhost/", permissive).message, "credentials")
    })

    it.effect("refuses private targets by default policy", () =>
      Effect.gen(function*() {
        const policy = yield* Targets.TargetPolicy
        assert.isFalse(policy.allowPrivateTargets)
        assert.isTrue(Result.isFailure(Targets.validateUrl("http://localhost", policy)))
      }))
  })
})
