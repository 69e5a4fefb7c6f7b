import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import type { Endpoint } from "../src/Domain.ts"
import * as Endpoints from "../src/Endpoints.ts"
import * as Ids from "../src/Ids.ts"

// 2026-05-26T12:00:00.000Z
const NOW = Date.UTC(2026, 4, 26, 12)
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
const OLD_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
const guarded = { allowPrivateTargets: false }

const endpoint = (fields: Partial<Endpoint> = {}): Endpoint => ({
  id: Ids.EndpointId.make(Ids.format("ep_", NOW, new Uint8Array(13))),
  organizationId: Ids.OrganizationId.make(Ids.format("org_", NOW, new Uint8Array(13))),
  url: "https://example.com/hooks",
  description: "",
  secret: SECRET,
  previousSecret: null,
  previousSecretExpiresAt: null,
  eventTypes: [],
  enabled: true,
  requireSignature: false,
  headers: {},
  retryDelays: null,
  createdAt: NOW,
  updatedAt: NOW,
  ...fields
})

const issuesOf = (input: Endpoints.EndpointUpdate) => {
  const result = Endpoints.validate(input, guarded)
  if (Result.isSuccess(result)) return assert.fail(`expected ${JSON.stringify(input)} to be refused`)
  return result.failure
}

const isValid = (input: Endpoints.EndpointUpdate): boolean => Result.isSuccess(Endpoints.validate(input, guarded))

describe("Endpoints", () => {
  describe("acceptsEventType", () => {
    it("accepts an exactly matching type and refuses others", () => {
      assert.isTrue(Endpoints.acceptsEventType(["order.created"], "order.created"))
      assert.isFalse(Endpoints.acceptsEventType(["order.created"], "order.updated"))
      assert.isFalse(Endpoints.acceptsEventType(["order.created"], "order.created.v2"))
    })

    it("accepts a type listed anywhere in the filter", () => {
      assert.isTrue(Endpoints.acceptsEventType(["user.deleted", "order.created"], "order.created"))
    })

    it("lets order.* match types under order. and nothing else", () => {
      assert.isTrue(Endpoints.acceptsEventType(["order.*"], "order.created"))
      assert.isTrue(Endpoints.acceptsEventType(["order.*"], "order.item.added"))
      assert.isFalse(Endpoints.acceptsEventType(["order.*"], "orders.created"))
      assert.isFalse(Endpoints.acceptsEventType(["order.*"], "order"))
      assert.isFalse(Endpoints.acceptsEventType(["order.*"], "user.created"))
    })

    it("lets * match every type", () => {
      assert.isTrue(Endpoints.acceptsEventType(["*"], "order.created"))
      assert.isTrue(Endpoints.acceptsEventType(["*"], "anything"))
    })

    it("accepts everything, including events without a type, when the filter is empty", () => {
      assert.isTrue(Endpoints.acceptsEventType([], "order.created"))
      assert.isTrue(Endpoints.acceptsEventType([], null))
    })

    it("refuses an event without a type when the filter is not empty", () => {
      assert.isFalse(Endpoints.acceptsEventType(["order.created"], null))
      assert.isFalse(Endpoints.acceptsEventType(["order.*"], null))
    })
  })

  describe("activeSecrets", () => {
    const expiresAt = NOW + Endpoints.ROTATION_OVERLAP_MS
    const rotated = endpoint({ previousSecret: OLD_SECRET, previousSecretExpiresAt: expiresAt })

    it("signs with the current secret only when there was no rotation", () => {
      assert.deepStrictEqual(Endpoints.activeSecrets(endpoint(), NOW), [SECRET])
    })

    it("signs with the new secret first and the old one second during the 24 hour overlap", () => {
      assert.deepStrictEqual(Endpoints.activeSecrets(rotated, NOW), [SECRET, OLD_SECRET])
      assert.deepStrictEqual(Endpoints.activeSecrets(rotated, expiresAt - 1), [SECRET, OLD_SECRET])
    })

    it("drops the old secret once the overlap is over", () => {
      assert.deepStrictEqual(Endpoints.activeSecrets(rotated, expiresAt), [SECRET])
      assert.deepStrictEqual(Endpoints.activeSecrets(rotated, expiresAt + 1), [SECRET])
    })

    it("makes the overlap 24 hours", () => {
      assert.strictEqual(Endpoints.ROTATION_OVERLAP_MS, 86_400_000)
    })
  })

  describe("validate", () => {
    it("accepts a complete, valid endpoint", () => {
      assert.isTrue(isValid({
        url: "https://example.com/hooks",
        description: "orders",
        eventTypes: ["order.created", "order.*", "*", "user_profile.updated-v2"],
        headers: { "X-Tenant": "acme", Authorization: "Bearer abc" },
        retryDelays: [1_000, 60_000]
      }))
    })

    it("accepts an empty update", () => {
      assert.isTrue(isValid({}))
    })

    for (
      const type of ["", "order..created", ".order", "order.", "order.*.created", "order created", "*.created", "**"]
    ) {
      it(`refuses the event type ${JSON.stringify(type)} and names its index`, () => {
        const error = issuesOf({ eventTypes: ["order.created", type] })
        assert.strictEqual(error._tag, "ValidationFailed")
        assert.deepStrictEqual(error.details.map((issue) => issue.path), ["event_types.1"])
        assert.include(error.details[0]?.message ?? "", JSON.stringify(type))
      })
    }

    for (
      const name of [
        "X-PromptJang-Signature",
        "x-promptjang-signature",
        "X-PROMPTJANG-ATTEMPT",
        "webhook-id",
        "Webhook-Id",
        "WEBHOOK-SIGNATURE",
        "webhook-timestamp",
        "Content-Type",
        "user-agent"
      ]
    ) {
      it(`refuses the reserved header ${name}`, () => {
        const error = issuesOf({ headers: { [name]: "x" } })
        assert.deepStrictEqual(error.details, [{
          path: `headers.${name}`,
          message: "is set by PromptJang and cannot be overridden"
        }])
      })
    }

    it("refuses header values with a line break", () => {
      const error = issuesOf({ headers: { "X-Injected": "a\r\nX-PromptJang-Signature: forged", "X-Nl": "a\nb" } })
      assert.deepStrictEqual(error.details.map((issue) => issue.path), ["headers.X-Injected", "headers.X-Nl"])
      assert.include(error.details[0]?.message ?? "", "line breaks")
    })

    it("refuses a header name that is not a token", () => {
      assert.deepStrictEqual(issuesOf({ headers: { "Bad Header": "x" } }).details.map((issue) => issue.path), [
        "headers.Bad Header"
      ])
    })

    it("refuses a bad URL under the url path", () => {
      const error = issuesOf({ url: "ftp://example.com/hooks" })
      assert.deepStrictEqual(error.details.map((issue) => issue.path), ["url"])
      assert.strictEqual(error.message, `Invalid url: ${error.details[0]?.message.replace(/\.$/, "")}.`)
      assert.notMatch(error.message, /\.\.$/)
    })

    it("refuses a private URL with a message naming PROMPTJANG_ALLOW_PRIVATE_TARGETS, unless the policy allows it", () => {
      assert.include(issuesOf({ url: "http://127.0.0.1:8080" }).message, "PROMPTJANG_ALLOW_PRIVATE_TARGETS")
      assert.isTrue(
        Result.isSuccess(Endpoints.validate({ url: "http://127.0.0.1:8080" }, { allowPrivateTargets: true }))
      )
    })

    it("refuses retry delays that are not positive whole milliseconds", () => {
      const error = issuesOf({ retryDelays: [60_000, 0, -5, 1.5, 120_000] })
      assert.deepStrictEqual(error.details.map((issue) => issue.path), [
        "retry_delays.1",
        "retry_delays.2",
        "retry_delays.3"
      ])
    })

    it("refuses a description longer than 1000 characters", () => {
      assert.isTrue(isValid({ description: "a".repeat(1000) }))
      assert.deepStrictEqual(issuesOf({ description: "a".repeat(1001) }).details.map((issue) => issue.path), [
        "description"
      ])
    })

    it("reports every bad field with its path at once", () => {
      const error = issuesOf({
        url: "not a url",
        eventTypes: ["order.created", "order..created"],
        headers: { "X-PromptJang-Signature": "forged", "webhook-id": "msg_1", "X-Ok": "line\nbreak" },
        retryDelays: [0]
      })
      assert.deepStrictEqual(error.details.map((issue) => issue.path), [
        "url",
        "event_types.1",
        "headers.X-PromptJang-Signature",
        "headers.webhook-id",
        "headers.X-Ok",
        "retry_delays.0"
      ])
      assert.strictEqual(error.message, "The endpoint has 6 invalid fields; see details.")
    })
  })
})
