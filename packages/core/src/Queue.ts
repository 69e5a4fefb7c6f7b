/**
 * The Queue port: deliveries scheduled at a time, claimed with a lease,
 * completed, rescheduled or released; and a wake-up signal so a worker sleeps
 * until new work arrives or the next delivery falls due.
 *
 * A claim holds a lease. When a worker dies its lease expires and another
 * worker claims the delivery again; a completion with a lost lease is refused,
 * so attempt numbers never skip or repeat. Run
 * `@promptjang/core/conformance/Queue` against any implementation.
 *
 * @since 0.1.0
 */
import { Context, type Effect, Layer, type Option, type Scope } from "effect"
import type { Attempt, Event, EventState } from "./Domain.ts"
import type { StorageError } from "./Errors.ts"
import type { EndpointId, EventId, OrganizationId } from "./Ids.ts"
import * as MemoryStore from "./MemoryStore.ts"

/** A claimed delivery: the event as it was when claimed, and the lease that lets the worker complete it. */
export interface Claim {
  readonly event: Event
  readonly lease: string
  readonly leaseExpiresAt: number
}

/** How to claim. */
export interface ClaimOptions {
  /** The current time: deliveries due at or before it are claimable, and so are those whose lease expired. */
  readonly now: number
  readonly limit: number
  readonly leaseMs: number
  /** Endpoints to skip (their worker-side concurrency is full). */
  readonly excludeEndpoints?: ReadonlyArray<EndpointId> | undefined
  /** At most this many deliveries of one endpoint in this claim (the rest stay for later claims). */
  readonly maxPerEndpoint?: number | undefined
  /** Lower limits for some endpoints (those with deliveries already in flight), overriding `maxPerEndpoint`. */
  readonly endpointLimits?: ReadonlyMap<EndpointId, number> | undefined
}

/**
 * What an attempt (or a decision without one) did to a claimed event. When the
 * new state is RETRYING the delivery is due again at `state.nextAttemptAt`;
 * when it is final the delivery leaves the queue.
 */
export interface Completion {
  readonly attempt: Attempt | null
  readonly state: EventState
}

/** A state change that (re)enters the queue, applied only if the event is still in `expected` (a replay). */
export interface ScheduleRequest {
  readonly organizationId: OrganizationId
  readonly eventId: EventId
  readonly expected: Pick<EventState, "status" | "cycle">
  /** The new state; the delivery is due at `state.nextAttemptAt`. */
  readonly state: EventState
}

/**
 * A dispatcher in this process that takes deliveries of events as they are ingested here (see
 * {@link Queue} `attachWorker`): the ingest write leases the delivery to it, and the claim is handed over
 * in-process after the commit, without a claim round trip.
 */
export interface LocalWorker {
  /** The lease given to a handed-over delivery. */
  readonly leaseMs: number
  /**
   * Asked before the write: true when the worker takes a delivery to `endpointId` (at once, or held in memory
   * until a slot frees); false leaves it to be claimed as usual.
   */
  readonly reserve: (endpointId: EndpointId) => boolean
  /** After the commit: the claim of a reserved delivery, to deliver. */
  readonly take: (claim: Claim) => void
  /** The reserved delivery was not stored (a refusal, a duplicate, a failed write): give its place back. */
  readonly cancel: (endpointId: EndpointId) => void
}

/** Queue depth, for metrics. */
export interface QueueStats {
  readonly pending: number
  readonly oldestDueAt: number | null
}

/** The Queue port. */
export class Queue extends Context.Service<Queue, {
  /** Applies a state change and schedules the delivery, atomically; false when the event was not in `expected`. */
  readonly schedule: (request: ScheduleRequest) => Effect.Effect<boolean, StorageError>
  /** Claims up to `limit` due deliveries, earliest due first, each with a lease of `leaseMs`. */
  readonly claimDue: (options: ClaimOptions) => Effect.Effect<ReadonlyArray<Claim>, StorageError>
  /** Records the attempt and the new state, and reschedules or removes the delivery; false when the lease was lost. */
  readonly complete: (claim: Claim, completion: Completion) => Effect.Effect<boolean, StorageError>
  /** Makes a claimed delivery due at `dueAt` without an attempt; false when the lease was lost. */
  readonly reschedule: (claim: Claim, dueAt: number) => Effect.Effect<boolean, StorageError>
  /** Gives claims back unattempted (on shutdown): due again at once. */
  readonly release: (claims: ReadonlyArray<Claim>) => Effect.Effect<void, StorageError>
  /** When the earliest pending delivery (or expiring lease) falls due, if any. */
  readonly nextDueAt: Effect.Effect<Option.Option<number>, StorageError>
  /** The version of the new-work signal; read it before claiming. */
  readonly signalVersion: Effect.Effect<number>
  /** Completes when new work was signalled after `version` (at once if it already was). */
  readonly awaitSignal: (version: number) => Effect.Effect<void>
  readonly stats: Effect.Effect<QueueStats, StorageError>
  /**
   * Optional: attaches this process's dispatcher for the lifetime of the scope, so that events ingested
   * through the same backend reach it without a claim. Backends without it are claimed as usual.
   */
  readonly attachWorker?: ((worker: LocalWorker) => Effect.Effect<void, never, Scope.Scope>) | undefined
}>()("@promptjang/core/Queue") {}

/** Queue over a {@link MemoryStore.MemoryStore}; pair it with `Storage.layerMemory` on the same store. */
export const layerMemory: Layer.Layer<Queue, never, MemoryStore.MemoryStore> = Layer.effect(
  Queue,
  MemoryStore.makeQueue
)
