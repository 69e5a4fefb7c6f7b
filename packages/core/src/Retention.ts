/**
 * Retention: events (with their attempts) older than the organization's plan
 * retention are deleted in bounded batches, so a purge never holds long locks
 * or stalls ingest and delivery.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Layer, Option, Schedule } from "effect"
import type { StorageError } from "./Errors.ts"
import * as Quota from "./Quota.ts"
import { Storage } from "./Storage.ts"

/** Tuning of the purge. */
export interface RetentionOptions {
  /** Events deleted per statement. */
  readonly batchSize: number
  /** The pause between batches, to leave room for other work. */
  readonly pauseMs: number
  /** How often the background job runs. */
  readonly intervalMs: number
}

/** The current options (1,000 per batch, hourly). */
export const Options = Context.Reference<RetentionOptions>("@promptjang/core/Retention/Options", {
  defaultValue: () => ({ batchSize: 1_000, pauseMs: 10, intervalMs: 60 * 60 * 1000 })
})

/** Retention. */
export class Retention extends Context.Service<Retention, {
  /** Purges everything past retention now; returns how many events were deleted. */
  readonly purge: Effect.Effect<number, StorageError>
}>()("@promptjang/core/Retention") {}

/** Retention over the Storage in context. */
export const make = Effect.gen(function*() {
  const storage = yield* Storage
  const options = yield* Options
  const plans = yield* Quota.Plans
  return Retention.of({
    purge: Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      let total = 0
      for (const organization of yield* storage.listOrganizations) {
        const plan = Quota.planOf(plans, organization.plan)
        if (Option.isNone(plan)) continue
        const cutoff = Quota.retentionCutoff(plan.value, now)
        while (true) {
          const deleted = yield* storage.purgeEvents(organization.id, cutoff, options.batchSize)
          total += deleted
          if (deleted < options.batchSize) break
          yield* Effect.sleep(Duration.millis(options.pauseMs))
        }
      }
      return total
    }).pipe(Effect.withSpan("Retention.purge"))
  })
})

/** Retention over the Storage in context. */
export const layer: Layer.Layer<Retention, never, Storage> = Layer.effect(Retention, make)

/** Runs the purge in the background at the configured interval while the layer lives. */
export const layerWorker: Layer.Layer<never, never, Retention> = Layer.effectDiscard(
  Effect.gen(function*() {
    const retention = yield* Retention
    const options = yield* Options
    yield* retention.purge.pipe(
      Effect.tap((deleted) =>
        deleted > 0
          ? Effect.logInfo("Purged events past retention").pipe(Effect.annotateLogs({ deleted }))
          : Effect.void
      ),
      Effect.catchCause((cause) =>
        Effect.logWarning("Retention purge failed; it runs again later").pipe(Effect.annotateLogs({ cause }))
      ),
      Effect.repeat(Schedule.spaced(Duration.millis(options.intervalMs))),
      Effect.forkScoped
    )
  })
)
