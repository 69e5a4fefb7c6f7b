/**
 * The engine's metrics (effect `Metric`s, exported in Prometheus format by
 * hosts): events accepted, attempts by outcome, attempt duration, and the
 * queue gauges a host refreshes when it is scraped.
 *
 * @since 0.1.0
 */
import { Effect, Metric } from "effect"
import type { QueueStats } from "./Queue.ts"

/** Events accepted by ingestion (answered 202). */
export const eventsAccepted = Metric.counter("promptjang_events_accepted_total", {
  description: "Events accepted for delivery",
  incremental: true
})

/** Delivery attempts, with the attribute `outcome` = success | failure | blocked. */
export const attempts = Metric.counter("promptjang_attempts_total", {
  description: "Delivery attempts by outcome",
  incremental: true
})

/** How long attempts took, in seconds. */
export const attemptDuration = Metric.histogram("promptjang_attempt_duration_seconds", {
  description: "Duration of delivery attempts in seconds",
  boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15]
})

/** Deliveries waiting in the queue (due or not). */
export const pendingDeliveries = Metric.gauge("promptjang_pending_deliveries", {
  description: "Deliveries waiting in the queue"
})

/** Seconds since the oldest pending delivery fell due (0 when none is overdue). */
export const oldestDueAge = Metric.gauge("promptjang_oldest_due_age_seconds", {
  description: "Age of the oldest pending delivery past its due time, in seconds"
})

const success = attempts.pipe(Metric.withAttributes({ outcome: "success" }))
const failure = attempts.pipe(Metric.withAttributes({ outcome: "failure" }))
const blocked = attempts.pipe(Metric.withAttributes({ outcome: "blocked" }))

/** Records one attempt. */
export const recordAttempt = (outcome: "success" | "failure" | "blocked", durationMs: number): Effect.Effect<void> =>
  Effect.andThen(
    Metric.update(outcome === "success" ? success : outcome === "failure" ? failure : blocked, 1),
    Metric.update(attemptDuration, durationMs / 1000)
  )

/** Sets the queue gauges from a snapshot taken at `now`. */
export const recordQueue = (stats: QueueStats, now: number): Effect.Effect<void> =>
  Effect.andThen(
    Metric.update(pendingDeliveries, stats.pending),
    Metric.update(oldestDueAge, stats.oldestDueAt === null ? 0 : Math.max(0, (now - stats.oldestDueAt) / 1000))
  )
