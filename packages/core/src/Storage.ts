/**
 * The Storage port: organizations, API keys, endpoints, events, attempts,
 * usage counters and idempotency keys.
 *
 * Every read a tenant can trigger is scoped by organization. Writes that must
 * be atomic with the queue (ingest, endpoint deletion) are single operations
 * here, so each backend can run them in one transaction. Run
 * `@promptjang/core/conformance/Storage` against any implementation.
 *
 * @since 0.1.0
 */
import { Context, type Effect, Layer, type Option } from "effect"
import type { Attempt, Endpoint, Event, EventStatus, Organization } from "./Domain.ts"
import type { ApiKey } from "./Domain.ts"
import type { StorageError } from "./Errors.ts"
import type { ApiKeyId, EndpointId, EventId, OrganizationId } from "./Ids.ts"
import * as MemoryStore from "./MemoryStore.ts"

/** A page request: at most `limit` items after `cursor` (an id from a previous page). */
export interface PageRequest {
  readonly limit: number
  readonly cursor?: string | undefined
}

/** One page, newest first; `nextCursor` is null on the last page. */
export interface Page<A> {
  readonly data: ReadonlyArray<A>
  readonly nextCursor: string | null
}

/** Filters of the event list. */
export interface EventFilter {
  readonly endpointId?: EndpointId | undefined
  readonly status?: EventStatus | undefined
  readonly eventType?: string | undefined
}

/** An `Idempotency-Key` to remember with an event. */
export interface IdempotencyRecord {
  readonly key: string
  readonly bodyHash: string
  readonly expiresAt: number
}

/** Everything one accepted event writes, in one transaction. */
export interface IngestRecord {
  /** The event, QUEUED, with `nextAttemptAt` as the due time of its first delivery. */
  readonly event: Event
  /** The start of the usage period the event counts in. */
  readonly periodStart: number
  readonly idempotency: IdempotencyRecord | null
  /**
   * The API key the event came with: when given, the event is stored only if that key exists and is not
   * revoked at the moment of the write (checked in the same atomic write), so a key revoked by any process
   * is refused even when the caller authenticated it from a cache.
   */
  readonly apiKeyId?: ApiKeyId | undefined
}

/**
 * The result of an ingest: stored, the event an earlier request with the same idempotency key stored, or
 * nothing stored because `apiKeyId` was revoked (or deleted).
 */
export type IngestOutcome =
  | { readonly _tag: "Inserted" }
  | { readonly _tag: "Duplicate"; readonly eventId: EventId; readonly bodyHash: string }
  | { readonly _tag: "KeyRevoked" }

/** Fields an endpoint update may change. */
export interface EndpointPatch {
  readonly url?: string
  readonly description?: string
  readonly eventTypes?: ReadonlyArray<string>
  readonly enabled?: boolean
  readonly requireSignature?: boolean
  readonly headers?: Readonly<Record<string, string>>
  readonly retryDelays?: ReadonlyArray<number> | null
  readonly secret?: string
  readonly previousSecret?: string | null
  readonly previousSecretExpiresAt?: number | null
  readonly updatedAt: number
}

/** The Storage port. */
export class Storage extends Context.Service<Storage, {
  readonly createOrganization: (organization: Organization) => Effect.Effect<void, StorageError>
  readonly getOrganization: (id: OrganizationId) => Effect.Effect<Option.Option<Organization>, StorageError>
  readonly listOrganizations: Effect.Effect<ReadonlyArray<Organization>, StorageError>

  readonly createApiKey: (key: ApiKey) => Effect.Effect<void, StorageError>
  /** The key with this SHA-256 hash, revoked or not. */
  readonly findApiKeyByHash: (keyHash: string) => Effect.Effect<Option.Option<ApiKey>, StorageError>
  /** The key with this hash together with its organization, in one lookup (every API request makes it). */
  readonly findApiKeyWithOrganization: (
    keyHash: string
  ) => Effect.Effect<
    Option.Option<{ readonly apiKey: ApiKey; readonly organization: Organization }>,
    StorageError
  >
  readonly listApiKeys: (organizationId: OrganizationId) => Effect.Effect<ReadonlyArray<ApiKey>, StorageError>
  /** Revokes a key at `at`; false when the organization has no such key. Revoking twice keeps the first time. */
  readonly revokeApiKey: (
    organizationId: OrganizationId,
    id: ApiKeyId,
    at: number
  ) => Effect.Effect<boolean, StorageError>
  /** Records last-use times in one write (callers batch them). */
  readonly touchApiKeys: (
    uses: ReadonlyArray<{ readonly id: ApiKeyId; readonly at: number }>
  ) => Effect.Effect<void, StorageError>

  readonly createEndpoint: (endpoint: Endpoint) => Effect.Effect<void, StorageError>
  readonly getEndpoint: (
    organizationId: OrganizationId,
    id: EndpointId
  ) => Effect.Effect<Option.Option<Endpoint>, StorageError>
  /** An endpoint by id alone, for workers that act for every organization. */
  readonly findEndpoint: (id: EndpointId) => Effect.Effect<Option.Option<Endpoint>, StorageError>
  readonly listEndpoints: (
    organizationId: OrganizationId,
    page: PageRequest
  ) => Effect.Effect<Page<Endpoint>, StorageError>
  /**
   * Applies a patch. When it enables a disabled endpoint, the endpoint's QUEUED deliveries become due at
   * `patch.updatedAt` (they were parked while it was disabled).
   */
  readonly updateEndpoint: (
    organizationId: OrganizationId,
    id: EndpointId,
    patch: EndpointPatch
  ) => Effect.Effect<Option.Option<Endpoint>, StorageError>
  /**
   * Deletes an endpoint; its QUEUED and RETRYING events become FAILED and leave the queue. Returns those
   * events as they are now, or none when the organization has no such endpoint.
   */
  readonly deleteEndpoint: (
    organizationId: OrganizationId,
    id: EndpointId,
    at: number
  ) => Effect.Effect<Option.Option<ReadonlyArray<Event>>, StorageError>

  /** Stores an event, schedules its first delivery, counts it and remembers its idempotency key, atomically. */
  readonly ingest: (record: IngestRecord) => Effect.Effect<IngestOutcome, StorageError>
  readonly getEvent: (
    organizationId: OrganizationId,
    id: EventId
  ) => Effect.Effect<Option.Option<Event>, StorageError>
  readonly listEvents: (
    organizationId: OrganizationId,
    filter: EventFilter,
    page: PageRequest
  ) => Effect.Effect<Page<Event>, StorageError>
  /** Every attempt of an event, oldest first (cycle, then attempt number). */
  readonly listAttempts: (
    organizationId: OrganizationId,
    eventId: EventId
  ) => Effect.Effect<ReadonlyArray<Attempt>, StorageError>

  /** Accepted events of an organization in the period starting at `periodStart`. */
  readonly usage: (organizationId: OrganizationId, periodStart: number) => Effect.Effect<number, StorageError>

  /** Deletes at most `limit` events created before `before` (with their attempts); returns how many. */
  readonly purgeEvents: (
    organizationId: OrganizationId,
    before: number,
    limit: number
  ) => Effect.Effect<number, StorageError>
}>()("@promptjang/core/Storage") {}

/** Storage over a {@link MemoryStore.MemoryStore}; pair it with `Queue.layerMemory` on the same store. */
export const layerMemory: Layer.Layer<Storage, never, MemoryStore.MemoryStore> = Layer.effect(
  Storage,
  MemoryStore.makeStorage
)
