/**
 * Plans, billing periods, overage and retention (SPEC §7) as plain functions
 * over a {@link Plan}.
 *
 * The catalog is configuration: the engine reads it from the {@link Plans}
 * reference, whose default is {@link defaultCatalog}, so an operator changes
 * the figures or adds plans with a layer instead of a code change:
 *
 * ```ts
 * Layer.succeed(Quota.Plans, Quota.makeCatalog([{ ...Quota.starter, includedEvents: 50_000 }, Quota.pro]))
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Option, Result } from "effect"
import type { Plan } from "./Domain.ts"
import { PayloadTooLarge } from "./Errors.ts"

const KIB = 1024
const MIB = 1024 * KIB
const DAY_MILLIS = 86_400_000

/**
 * $29/month: 100,000 events, 7 days of retention, payloads up to 256 KiB.
 * `overageUnitPriceCents` (1000 per 100,000 events) is our configuration, not
 * a published figure: the FAQ names no overage price.
 */
export const starter: Plan = {
  name: "starter",
  priceCents: 2900,
  includedEvents: 100_000,
  retentionDays: 7,
  maxPayloadBytes: 256 * KIB,
  overageUnitEvents: 100_000,
  overageUnitPriceCents: 1000
}

/**
 * $69/month: 1,000,000 events, 30 days of retention, payloads up to 2 MiB.
 * `overageUnitPriceCents` (500 per 100,000 events) is our configuration, not
 * a published figure: the FAQ names no overage price.
 */
export const pro: Plan = {
  name: "pro",
  priceCents: 6900,
  includedEvents: 1_000_000,
  retentionDays: 30,
  maxPayloadBytes: 2 * MIB,
  overageUnitEvents: 100_000,
  overageUnitPriceCents: 500
}

/** Plans by name. An organization stores only its plan's name, so figures can change without a migration. */
export type PlanCatalog = ReadonlyMap<string, Plan>

/** A catalog of `plans`, keyed by name; a later plan with the same name replaces an earlier one. */
export const makeCatalog = (plans: Iterable<Plan>): PlanCatalog => {
  const catalog = new Map<string, Plan>()
  for (const plan of plans) catalog.set(plan.name, plan)
  return catalog
}

/** The plans of SPEC §7: {@link starter} and {@link pro}. */
export const defaultCatalog: PlanCatalog = makeCatalog([starter, pro])

/**
 * The plan catalog in use. A reference rather than a required service so that
 * tests and the default host need not provide it; operators override it with
 * `Layer.succeed(Quota.Plans, catalog)`.
 */
export const Plans: Context.Reference<PlanCatalog> = Context.Reference<PlanCatalog>("@promptjang/core/Plans", {
  defaultValue: () => defaultCatalog
})

/** The plan named `name`, if the catalog has one (an organization may name a plan an operator removed). */
export const planOf = (catalog: PlanCatalog, name: string): Option.Option<Plan> =>
  Option.fromUndefinedOr(catalog.get(name))

/**
 * The plan an organization is billed and limited by. An organization whose plan
 * was removed from the catalog falls back to the catalog's `starter` (or the
 * built-in starter), with a warning, so that limits always apply.
 */
export const effectivePlan = (catalog: PlanCatalog, name: string): Effect.Effect<Plan> => {
  const plan = catalog.get(name)
  if (plan !== undefined) return Effect.succeed(plan)
  const fallback = catalog.get(starter.name) ?? starter
  return Effect.as(
    Effect.logWarning(`Plan "${name}" is not in the plan catalog; applying the ${fallback.name} plan's limits`),
    fallback
  )
}

/**
 * `use` with the effective plan of `name`: at once when the catalog has it (no extra step on the path of
 * every event), after `effectivePlan`'s warning when it does not.
 */
export const withEffectivePlan = <A, E, R>(
  catalog: PlanCatalog,
  name: string,
  use: (plan: Plan) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const plan = catalog.get(name)
  return plan === undefined ? Effect.flatMap(effectivePlan(catalog, name), use) : use(plan)
}

/** `bytes` in the largest binary unit that keeps it readable: "256 KiB", "2 MiB", "1.5 MiB". */
const humanBytes = (bytes: number): string | undefined => {
  const round = (value: number) => String(Math.round(value * 100) / 100)
  if (bytes >= MIB) return `${round(bytes / MIB)} MiB`
  if (bytes >= KIB) return `${round(bytes / KIB)} KiB`
  return undefined
}

const limitText = (plan: Plan): string => {
  const human = humanBytes(plan.maxPayloadBytes)
  return human === undefined ? `${plan.maxPayloadBytes} bytes` : `${plan.maxPayloadBytes} bytes (${human})`
}

/**
 * The refusal of a payload larger than `plan` allows. `byteLength` is
 * `undefined` when reading stopped at the limit, because a larger body is never
 * buffered whole and its size is then unknown.
 */
export const payloadTooLarge = (plan: Plan, byteLength: number | undefined): PayloadTooLarge =>
  new PayloadTooLarge({
    plan: plan.name,
    maxPayloadBytes: plan.maxPayloadBytes,
    message: `${
      byteLength === undefined ? "The payload is larger than the limit" : `The payload is ${byteLength} bytes`
    }; the ${plan.name} plan accepts at most ${limitText(plan)}.`
  })

/**
 * Whether a payload of `byteLength` bytes fits `plan`; the limit itself is allowed.
 *
 * @example
 * ```ts
 * Quota.checkPayloadSize(Quota.starter, 300_000)
 * // Failure: "The payload is 300000 bytes; the starter plan accepts at most 262144 bytes (256 KiB)."
 * ```
 */
export const checkPayloadSize = (plan: Plan, byteLength: number): Result.Result<void, PayloadTooLarge> =>
  byteLength <= plan.maxPayloadBytes ? Result.void : Result.fail(payloadTooLarge(plan, byteLength))

/** A billing period: `[start, end)` in epoch milliseconds. */
export interface Period {
  readonly start: number
  readonly end: number
}

/** The billing period containing `nowMillis`: its calendar month in UTC, whatever the server's time zone. */
export const periodOf = (nowMillis: number): Period => {
  const now = new Date(nowMillis)
  const year = now.getUTCFullYear()
  const month = now.getUTCMonth()
  // Date.UTC carries month 12 into January of the next year.
  return { start: Date.UTC(year, month, 1), end: Date.UTC(year, month + 1, 1) }
}

/**
 * The overage units billed for `events` accepted in a period: whole units of
 * `plan.overageUnitEvents` beyond the included events, rounded up, so one event
 * over starts a unit. A plan with no unit size (`<= 0`) bills no overage.
 */
export const overageUnits = (plan: Plan, events: number): number => {
  const over = events - plan.includedEvents
  if (over <= 0 || plan.overageUnitEvents <= 0) return 0
  return Math.ceil(over / plan.overageUnitEvents)
}

/** The overage charge for `events` accepted in a period, in cents. */
export const overageCents = (plan: Plan, events: number): number =>
  overageUnits(plan, events) * plan.overageUnitPriceCents

/**
 * The retention boundary at `nowMillis`: events created strictly before it
 * are past `plan.retentionDays` and are purged with their attempts.
 */
export const retentionCutoff = (plan: Plan, nowMillis: number): number => nowMillis - plan.retentionDays * DAY_MILLIS

/** What `GET /api/v1/usage` reports for the current period. */
export interface UsageSummary {
  readonly plan: string
  readonly periodStart: number
  readonly periodEnd: number
  readonly events: number
  readonly includedEvents: number
  readonly overageUnits: number
  readonly overageCents: number
  readonly retentionDays: number
  readonly maxPayloadBytes: number
}

/** The usage of an organization on `plan` that accepted `events` in the period containing `nowMillis`. */
export const usageSummary = (plan: Plan, events: number, nowMillis: number): UsageSummary => {
  const period = periodOf(nowMillis)
  return {
    plan: plan.name,
    periodStart: period.start,
    periodEnd: period.end,
    events,
    includedEvents: plan.includedEvents,
    overageUnits: overageUnits(plan, events),
    overageCents: overageCents(plan, events),
    retentionDays: plan.retentionDays,
    maxPayloadBytes: plan.maxPayloadBytes
  }
}
