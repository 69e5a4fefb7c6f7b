import { assert, describe, it } from "@effect/vitest"
import { Accounts } from "@promptjang/core"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { makeTestHost, type TestHost } from "../src/index.ts"

const accounts = <A, E>(f: (service: Accounts.Accounts["Service"]) => Effect.Effect<A, E>) => (host: TestHost) =>
  host.run(Accounts.Accounts.use(f))

describe("Accounts", () => {
  it.effect("createOrganization refuses a plan that is not in the catalog with ValidationFailed naming the plans", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const error = yield* Effect.flip(
        accounts((a) => a.createOrganization({ name: "Acme", plan: "enterprise" }))(host)
      )
      assert.strictEqual(error._tag, "ValidationFailed")
      if (error._tag === "ValidationFailed") {
        assert.include(error.message, "\"enterprise\"")
        assert.include(error.message, "starter")
        assert.include(error.message, "pro")
        assert.deepStrictEqual(error.details.map((d) => d.path), ["plan"])
      }
      const created = yield* accounts((a) => a.createOrganization({ name: "Acme", plan: "pro" }))(host)
      assert.strictEqual(created.organization.plan, "pro")
      assert.strictEqual(created.organization.name, "Acme")
      assert.match(created.organization.id, /^org_/)
      assert.match(created.apiKey.key, /^pj_live_[0-9A-Za-z]{32}$/)
    }))

  it.effect("createOrganization refuses an empty or blank name with ValidationFailed", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      for (const name of ["", "   "]) {
        const error = yield* Effect.flip(accounts((a) => a.createOrganization({ name }))(host))
        assert.strictEqual(error._tag, "ValidationFailed", JSON.stringify(name))
        if (error._tag === "ValidationFailed") {
          assert.deepStrictEqual(error.details.map((d) => d.path), ["name"])
          assert.match(error.message, /^[A-Z].+\.$/)
        }
      }
      const created = yield* accounts((a) => a.createOrganization({ name: "  Acme  " }))(host)
      assert.strictEqual(created.organization.name, "Acme")
      assert.strictEqual(created.organization.plan, "starter")
    }))

  it.effect("authenticate records lastUsedAt only when last-use times are flushed, not per request", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const lastUsed = Effect.map(
        accounts((a) => a.listApiKeys(host.organization.id))(host),
        (keys) => keys.map((k) => k.lastUsedAt)
      )
      assert.deepStrictEqual(yield* lastUsed, [null])
      yield* host.advance("3 seconds")
      const principal = yield* accounts((a) => a.authenticate(host.apiKey))(host)
      assert.strictEqual(principal.organization.id, host.organization.id)
      yield* accounts((a) => a.authenticate(host.apiKey))(host)
      assert.deepStrictEqual(yield* lastUsed, [null])
      yield* accounts((a) => a.flushLastUsed)(host)
      const usedAt = host.organization.createdAt + 3000
      assert.deepStrictEqual(yield* lastUsed, [usedAt])
      // A refused key records nothing.
      yield* Effect.flip(accounts((a) => a.authenticate(`pj_live_${"Z".repeat(32)}`))(host))
      yield* accounts((a) => a.flushLastUsed)(host)
      assert.deepStrictEqual(yield* lastUsed, [usedAt])
    }))

  it.effect("listApiKeys shows each key's 12-character prefix and never the key itself", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const second = yield* accounts((a) => a.createApiKey(host.organization.id, "ci"))(host)
      const keys = yield* accounts((a) => a.listApiKeys(host.organization.id))(host)
      assert.strictEqual(keys.length, 2)
      const byName = new Map(keys.map((k) => [k.name, k]))
      assert.strictEqual(byName.get("default")?.prefix, host.apiKey.slice(0, 12))
      assert.strictEqual(byName.get("ci")?.prefix, second.key.slice(0, 12))
      assert.strictEqual(byName.get("ci")?.id, second.record.id)
      assert.match(second.key.slice(0, 12), /^pj_live_[0-9A-Za-z]{4}$/)
      const listed = JSON.stringify(keys)
      for (const key of [host.apiKey, second.key]) {
        assert.notInclude(listed, key)
        assert.notInclude(listed, key.slice(12))
      }
      // What is kept is the SHA-256 of the key.
      assert.strictEqual(byName.get("ci")?.keyHash, createHash("sha256").update(second.key).digest("hex"))
    }))

  it.effect("revoking another organization's key is NotFound and leaves the key working", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const other = yield* accounts((a) => a.createOrganization({ name: "Other" }))(host)
      const error = yield* Effect.flip(
        accounts((a) => a.revokeApiKey(host.organization.id, other.apiKey.record.id))(host)
      )
      assert.strictEqual(error._tag, "NotFound")
      assert.match(error.message, /^[A-Z].+\.$/)
      const principal = yield* accounts((a) => a.authenticate(other.apiKey.key))(host)
      assert.strictEqual(principal.organization.id, other.organization.id)
      const [record] = yield* accounts((a) => a.listApiKeys(other.organization.id))(host)
      assert.strictEqual(record?.revokedAt, null)
      // The owner can revoke it.
      yield* accounts((a) => a.revokeApiKey(other.organization.id, other.apiKey.record.id))(host)
      const refused = yield* Effect.flip(accounts((a) => a.authenticate(other.apiKey.key))(host))
      assert.strictEqual(refused._tag, "Unauthorized")
    }))
})
