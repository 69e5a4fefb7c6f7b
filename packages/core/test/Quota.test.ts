import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Option, Result } from "effect"
import type { Plan } from "../src/Domain.ts"
import * as Quota from "../src/Quota.ts"

const DAY = 86_400_000

describe("Quota", () => {
  describe("plans", () => {
    it("offers starter and pro with the figures of the pricing table", () => {
      assert.deepInclude(Quota.starter, {
        name: "starter",
        priceCents: 2900,
        includedEvents: 100_000,
        retentionDays: 7,
        maxPayloadBytes: 262_144,
        overageUnitEvents: 100_000
      })
      assert.deepInclude(Quota.pro, {
        name: "pro",
        priceCents: 6900,
        includedEvents: 1_000_000,
        retentionDays: 30,
        maxPayloadBytes: 2_097_152,
        overageUnitEvents: 100_000
      })
    })

    it("finds plans by name in the default catalog, and nothing for an unknown name", () => {
      assert.deepStrictEqual(Quota.planOf(Quota.defaultCatalog, "starter"), Option.some(Quota.starter))
      assert.deepStrictEqual(Quota.planOf(Quota.defaultCatalog, "pro"), Option.some(Quota.pro))
      assert.isTrue(Option.isNone(Quota.planOf(Quota.defaultCatalog, "enterprise")))
    })

    it("lets a later plan replace an earlier one of the same name", () => {
      const cheaper: Plan = { ...Quota.starter, priceCents: 1900 }
      const catalog = Quota.makeCatalog([Quota.starter, Quota.pro, cheaper])
      assert.strictEqual(catalog.size, 2)
      assert.deepStrictEqual(Quota.planOf(catalog, "starter"), Option.some(cheaper))
    })

    it.effect("reads the default catalog when no one provides Plans", () =>
      Effect.gen(function*() {
        const catalog = yield* Quota.Plans
        assert.strictEqual(catalog, Quota.defaultCatalog)
      }))

    it.effect("lets an operator replace the catalog with a layer", () =>
      Effect.gen(function*() {
        const enterprise: Plan = { ...Quota.pro, name: "enterprise", includedEvents: 10_000_000 }
        const catalog = yield* Quota.Plans.pipe(
          Effect.provide(Layer.succeed(Quota.Plans, Quota.makeCatalog([Quota.starter, enterprise])))
        )
        assert.deepStrictEqual(Quota.planOf(catalog, "enterprise"), Option.some(enterprise))
        assert.isTrue(Option.isNone(Quota.planOf(catalog, "pro")))
      }))
  })

  describe("withEffectivePlan", () => {
    it.effect("uses the catalog's plan, or the starter plan with a warning for a name the catalog lacks", () =>
      Effect.gen(function*() {
        const warnings: Array<unknown> = []
        const collect = Logger.layer([Logger.make((options) => void warnings.push(options.message))])
        const named = (name: string) =>
          Quota.withEffectivePlan(Quota.defaultCatalog, name, (plan) => Effect.succeed(plan.name)).pipe(
            Effect.provide(collect)
          )
        assert.strictEqual(yield* named("pro"), "pro")
        assert.deepStrictEqual(warnings, [])
        assert.strictEqual(yield* named("gold"), "starter")
        assert.strictEqual(warnings.length, 1)
        assert.include(String(warnings[0]), "\"gold\" is not in the plan catalog")
      }))
  })

  describe("checkPayloadSize", () => {
    it("accepts a payload of exactly the plan's limit", () => {
      assert.isTrue(Result.isSuccess(Quota.checkPayloadSize(Quota.starter, 262_144)))
      assert.isTrue(Result.isSuccess(Quota.checkPayloadSize(Quota.pro, 2_097_152)))
      assert.isTrue(Result.isSuccess(Quota.checkPayloadSize(Quota.starter, 0)))
    })

    it("refuses one byte more, stating the plan and its limit", () => {
      const starter = Quota.checkPayloadSize(Quota.starter, 262_145)
      assert.isTrue(Result.isFailure(starter))
      if (Result.isFailure(starter)) {
        assert.strictEqual(starter.failure._tag, "PayloadTooLarge")
        assert.strictEqual(starter.failure.plan, "starter")
        assert.strictEqual(starter.failure.maxPayloadBytes, 262_144)
        assert.strictEqual(
          starter.failure.message,
          "The payload is 262145 bytes; the starter plan accepts at most 262144 bytes (256 KiB)."
        )
      }
      const pro = Quota.checkPayloadSize(Quota.pro, 2_097_153)
      assert.isTrue(Result.isFailure(pro))
      if (Result.isFailure(pro)) {
        assert.strictEqual(
          pro.failure.message,
          "The payload is 2097153 bytes; the pro plan accepts at most 2097152 bytes (2 MiB)."
        )
      }
    })

    it("states an unknown size when reading stopped at the limit", () => {
      assert.strictEqual(
        Quota.payloadTooLarge(Quota.starter, undefined).message,
        "The payload is larger than the limit; the starter plan accepts at most 262144 bytes (256 KiB)."
      )
    })

    it("words limits that are not whole KiB or MiB readably", () => {
      const custom: Plan = { ...Quota.starter, name: "custom", maxPayloadBytes: 1_572_864 }
      assert.strictEqual(
        Quota.payloadTooLarge(custom, 2_000_000).message,
        "The payload is 2000000 bytes; the custom plan accepts at most 1572864 bytes (1.5 MiB)."
      )
      const tiny: Plan = { ...Quota.starter, name: "tiny", maxPayloadBytes: 500 }
      assert.strictEqual(
        Quota.payloadTooLarge(tiny, 501).message,
        "The payload is 501 bytes; the tiny plan accepts at most 500 bytes."
      )
    })
  })

  describe("periodOf", () => {
    it("is the UTC calendar month, start inclusive and end exclusive", () => {
      const period = Quota.periodOf(Date.UTC(2026, 4, 26, 12))
      assert.deepStrictEqual(period, { start: Date.UTC(2026, 4, 1), end: Date.UTC(2026, 5, 1) })
      assert.deepStrictEqual(Quota.periodOf(period.start), period)
      assert.deepStrictEqual(Quota.periodOf(period.end - 1), period)
      assert.deepStrictEqual(Quota.periodOf(period.end), {
        start: Date.UTC(2026, 5, 1),
        end: Date.UTC(2026, 6, 1)
      })
    })

    it("rolls December over into January of the next year", () => {
      assert.deepStrictEqual(Quota.periodOf(Date.UTC(2026, 11, 31, 23, 59, 59, 999)), {
        start: Date.parse("2026-12-01T00:00:00Z"),
        end: Date.parse("2027-01-01T00:00:00Z")
      })
      assert.deepStrictEqual(Quota.periodOf(Date.parse("2027-01-01T00:00:00Z")), {
        start: Date.parse("2027-01-01T00:00:00Z"),
        end: Date.parse("2027-02-01T00:00:00Z")
      })
    })

    it("gives February 2028 its leap day", () => {
      const period = Quota.periodOf(Date.parse("2028-02-29T18:00:00Z"))
      assert.deepStrictEqual(period, {
        start: Date.parse("2028-02-01T00:00:00Z"),
        end: Date.parse("2028-03-01T00:00:00Z")
      })
      assert.strictEqual(period.end - period.start, 29 * DAY)
      const plain = Quota.periodOf(Date.parse("2027-02-15T00:00:00Z"))
      assert.strictEqual(plain.end - plain.start, 28 * DAY)
    })
  })

  describe("overage", () => {
    it("bills nothing up to the included events", () => {
      assert.strictEqual(Quota.overageUnits(Quota.starter, 0), 0)
      assert.strictEqual(Quota.overageUnits(Quota.starter, 100_000), 0)
      assert.strictEqual(Quota.overageCents(Quota.starter, 100_000), 0)
    })

    it("bills a whole unit from the first event over, rounding up", () => {
      assert.strictEqual(Quota.overageUnits(Quota.starter, 100_001), 1)
      assert.strictEqual(Quota.overageUnits(Quota.starter, 200_000), 1)
      assert.strictEqual(Quota.overageUnits(Quota.starter, 200_001), 2)
      assert.strictEqual(Quota.overageUnits(Quota.pro, 1_000_000), 0)
      assert.strictEqual(Quota.overageUnits(Quota.pro, 1_250_000), 3)
    })

    it("prices units at the plan's configured rate", () => {
      assert.strictEqual(Quota.overageCents(Quota.starter, 200_001), 2 * Quota.starter.overageUnitPriceCents)
      assert.strictEqual(Quota.overageCents(Quota.pro, 1_250_000), 3 * Quota.pro.overageUnitPriceCents)
    })

    it("bills no overage on a plan without an overage unit", () => {
      const capped: Plan = { ...Quota.starter, overageUnitEvents: 0 }
      assert.strictEqual(Quota.overageUnits(capped, 1_000_000), 0)
    })
  })

  describe("retentionCutoff", () => {
    it("lies retentionDays before now", () => {
      const now = Date.parse("2026-05-26T12:00:00Z")
      assert.strictEqual(Quota.retentionCutoff(Quota.starter, now), Date.parse("2026-05-19T12:00:00Z"))
      assert.strictEqual(Quota.retentionCutoff(Quota.pro, now), Date.parse("2026-04-26T12:00:00Z"))
    })
  })

  describe("usageSummary", () => {
    it("reports the period, the count against the plan and the plan's limits", () => {
      const now = Date.parse("2026-05-26T12:00:00Z")
      assert.deepStrictEqual(Quota.usageSummary(Quota.starter, 250_000, now), {
        plan: "starter",
        periodStart: Date.parse("2026-05-01T00:00:00Z"),
        periodEnd: Date.parse("2026-06-01T00:00:00Z"),
        events: 250_000,
        includedEvents: 100_000,
        overageUnits: 2,
        overageCents: 2 * Quota.starter.overageUnitPriceCents,
        retentionDays: 7,
        maxPayloadBytes: 262_144
      })
    })
  })
})
