/**
 * The in-memory backend of the Storage and Queue ports.
 *
 * Both ports share one store, so that the operations that must be atomic
 * across them (ingest writes an event and its delivery) are. JavaScript runs
 * each operation to completion, which makes every operation here a
 * transaction.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option } from "effect"
import type { ApiKey, Attempt, Endpoint, Event, Organization } from "./Domain.ts"
import { isFinal } from "./Domain.ts"
import type { EndpointId, EventId } from "./Ids.ts"
import type { Claim, Queue } from "./Queue.ts"
import * as Signal from "./Signal.ts"
import type { Page, PageRequest, Storage } from "./Storage.ts"

interface Delivery {
  readonly eventId: EventId
  readonly endpointId: EndpointId
  dueAt: number
  lease: string | null
  leaseExpiresAt: number
}

interface Tables {
  readonly organizations: Map<string, Organization>
  readonly apiKeys: Map<string, ApiKey>
  readonly apiKeyIdsByHash: Map<string, string>
  readonly endpoints: Map<string, Endpoint>
  readonly events: Map<string, Event>
  readonly attempts: Map<string, Array<Attempt>>
  readonly deliveries: Map<string, Delivery>
  readonly usage: Map<string, number>
  readonly idempotency: Map<string, { eventId: EventId; bodyHash: string; expiresAt: number }>
}

/** The shared in-memory tables and the new-work signal. */
export class MemoryStore extends Context.Service<MemoryStore, {
  readonly tables: Tables
  /** Wakes workers waiting for new work. */
  readonly signal: () => void
  readonly signalVersion: () => number
  readonly awaitSignal: (version: number) => Effect.Effect<void>
  readonly nextLease: () => string
}>()("@promptjang/core/MemoryStore") {}

/** A fresh, empty store. */
export const make: Effect.Effect<MemoryStore["Service"]> = Effect.sync(() => {
  const signal = Signal.make()
  let leases = 0
  return {
    tables: {
      organizations: new Map(),
      apiKeys: new Map(),
      apiKeyIdsByHash: new Map(),
      endpoints: new Map(),
      events: new Map(),
      attempts: new Map(),
      deliveries: new Map(),
      usage: new Map(),
      idempotency: new Map()
    },
    signal: signal.bump,
    signalVersion: signal.version,
    awaitSignal: signal.await,
    nextLease: () => `lease_${++leases}`
  }
})

/** A fresh, empty store as a layer. */
export const layer: Layer.Layer<MemoryStore> = Layer.effect(MemoryStore, make)

const paginate = <A extends { readonly id: string }>(items: Iterable<A>, page: PageRequest): Page<A> => {
  const sorted = Array.from(items).filter((item) => page.cursor === undefined || item.id < page.cursor)
  sorted.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
  const data = sorted.slice(0, page.limit)
  const last = data[data.length - 1]
  return { data, nextCursor: sorted.length > page.limit && last !== undefined ? last.id : null }
}

const idempotencyKey = (organizationId: string, key: string) => `${organizationId}\u0000${key}`
const usageKey = (organizationId: string, periodStart: number) => `${organizationId}\u0000${periodStart}`

/** The Storage port over the store in context. */
export const makeStorage: Effect.Effect<Storage["Service"], never, MemoryStore> = Effect.gen(function*() {
  const store = yield* MemoryStore
  const t = store.tables

  const removeEvent = (id: string) => {
    t.events.delete(id)
    t.attempts.delete(id)
    t.deliveries.delete(id)
  }

  return {
    createOrganization: (organization) => Effect.sync(() => void t.organizations.set(organization.id, organization)),
    getOrganization: (id) => Effect.sync(() => Option.fromUndefinedOr(t.organizations.get(id))),
    listOrganizations: Effect.sync(() => Array.from(t.organizations.values())),

    createApiKey: (key) =>
      Effect.sync(() => {
        t.apiKeys.set(key.id, key)
        t.apiKeyIdsByHash.set(key.keyHash, key.id)
      }),
    findApiKeyByHash: (hash) =>
      Effect.sync(() => {
        const id = t.apiKeyIdsByHash.get(hash)
        return Option.fromUndefinedOr(id === undefined ? undefined : t.apiKeys.get(id))
      }),
    findApiKeyWithOrganization: (hash) =>
      Effect.sync(() => {
        const id = t.apiKeyIdsByHash.get(hash)
        const apiKey = id === undefined ? undefined : t.apiKeys.get(id)
        const organization = apiKey === undefined ? undefined : t.organizations.get(apiKey.organizationId)
        return apiKey === undefined || organization === undefined
          ? Option.none()
          : Option.some({ apiKey, organization })
      }),
    listApiKeys: (organizationId) =>
      Effect.sync(() =>
        Array.from(t.apiKeys.values()).filter((key) => key.organizationId === organizationId).sort((a, b) =>
          a.id < b.id ? -1 : 1
        )
      ),
    revokeApiKey: (organizationId, id, at) =>
      Effect.sync(() => {
        const key = t.apiKeys.get(id)
        if (key === undefined || key.organizationId !== organizationId) return false
        if (key.revokedAt === null) t.apiKeys.set(id, { ...key, revokedAt: at })
        return true
      }),
    touchApiKeys: (uses) =>
      Effect.sync(() => {
        for (const use of uses) {
          const key = t.apiKeys.get(use.id)
          if (key !== undefined && (key.lastUsedAt === null || key.lastUsedAt < use.at)) {
            t.apiKeys.set(use.id, { ...key, lastUsedAt: use.at })
          }
        }
      }),

    createEndpoint: (endpoint) => Effect.sync(() => void t.endpoints.set(endpoint.id, endpoint)),
    getEndpoint: (organizationId, id) =>
      Effect.sync(() =>
        Option.filter(Option.fromUndefinedOr(t.endpoints.get(id)), (e) => e.organizationId === organizationId)
      ),
    findEndpoint: (id) => Effect.sync(() => Option.fromUndefinedOr(t.endpoints.get(id))),
    listEndpoints: (organizationId, page) =>
      Effect.sync(() =>
        paginate(Array.from(t.endpoints.values()).filter((e) => e.organizationId === organizationId), page)
      ),
    updateEndpoint: (organizationId, id, patch) =>
      Effect.sync(() => {
        const current = t.endpoints.get(id)
        if (current === undefined || current.organizationId !== organizationId) return Option.none()
        const next: Endpoint = { ...current, ...patch }
        t.endpoints.set(id, next)
        if (patch.enabled === true && !current.enabled) {
          // Deliveries parked while the endpoint was disabled are due again at once.
          for (const delivery of t.deliveries.values()) {
            if (
              delivery.endpointId === id && delivery.lease === null &&
              t.events.get(delivery.eventId)?.status === "QUEUED"
            ) {
              delivery.dueAt = Math.min(delivery.dueAt, patch.updatedAt)
            }
          }
          store.signal()
        }
        return Option.some(next)
      }),
    deleteEndpoint: (organizationId, id, at) =>
      Effect.sync(() => {
        const current = t.endpoints.get(id)
        if (current === undefined || current.organizationId !== organizationId) return Option.none()
        t.endpoints.delete(id)
        const failed: Array<Event> = []
        for (const event of t.events.values()) {
          if (event.endpointId === id && !isFinal(event.status)) {
            const next: Event = { ...event, status: "FAILED", nextAttemptAt: null, updatedAt: at }
            t.events.set(event.id, next)
            t.deliveries.delete(event.id)
            failed.push(next)
          }
        }
        return Option.some(failed)
      }),

    ingest: ({ apiKeyId, event, idempotency, periodStart }) =>
      Effect.sync(() => {
        if (apiKeyId !== undefined) {
          const key = t.apiKeys.get(apiKeyId)
          if (key === undefined || key.revokedAt !== null) return { _tag: "KeyRevoked" } as const
        }
        if (idempotency !== null) {
          const key = idempotencyKey(event.organizationId, idempotency.key)
          const existing = t.idempotency.get(key)
          if (existing !== undefined && existing.expiresAt > event.createdAt) {
            return { _tag: "Duplicate", eventId: existing.eventId, bodyHash: existing.bodyHash } as const
          }
          t.idempotency.set(key, {
            eventId: event.id,
            bodyHash: idempotency.bodyHash,
            expiresAt: idempotency.expiresAt
          })
        }
        t.events.set(event.id, event)
        t.deliveries.set(event.id, {
          eventId: event.id,
          endpointId: event.endpointId,
          dueAt: event.nextAttemptAt ?? event.createdAt,
          lease: null,
          leaseExpiresAt: 0
        })
        const usage = usageKey(event.organizationId, periodStart)
        t.usage.set(usage, (t.usage.get(usage) ?? 0) + 1)
        store.signal()
        return { _tag: "Inserted" } as const
      }),
    getEvent: (organizationId, id) =>
      Effect.sync(() =>
        Option.filter(Option.fromUndefinedOr(t.events.get(id)), (e) => e.organizationId === organizationId)
      ),
    listEvents: (organizationId, filter, page) =>
      Effect.sync(() =>
        paginate(
          Array.from(t.events.values()).filter((e) =>
            e.organizationId === organizationId &&
            (filter.endpointId === undefined || e.endpointId === filter.endpointId) &&
            (filter.status === undefined || e.status === filter.status) &&
            (filter.eventType === undefined || e.eventType === filter.eventType)
          ),
          page
        )
      ),
    listAttempts: (organizationId, eventId) =>
      Effect.sync(() => {
        const event = t.events.get(eventId)
        if (event === undefined || event.organizationId !== organizationId) return []
        return [...(t.attempts.get(eventId) ?? [])]
      }),

    usage: (organizationId, periodStart) => Effect.sync(() => t.usage.get(usageKey(organizationId, periodStart)) ?? 0),

    purgeEvents: (organizationId, before, limit) =>
      Effect.sync(() => {
        const doomed: Array<string> = []
        for (const event of t.events.values()) {
          if (doomed.length >= limit) break
          if (event.organizationId === organizationId && event.createdAt < before) doomed.push(event.id)
        }
        for (const id of doomed) removeEvent(id)
        for (const [key, record] of t.idempotency) {
          if (record.expiresAt <= before && key.startsWith(`${organizationId}\u0000`)) t.idempotency.delete(key)
        }
        return doomed.length
      })
  }
})

/** The Queue port over the store in context. */
export const makeQueue: Effect.Effect<Queue["Service"], never, MemoryStore> = Effect.gen(function*() {
  const store = yield* MemoryStore
  const t = store.tables

  const dueOf = (d: Delivery) => (d.lease === null ? d.dueAt : d.leaseExpiresAt)
  const holds = (claim: Claim): Delivery | undefined => {
    const delivery = t.deliveries.get(claim.event.id)
    return delivery !== undefined && delivery.lease === claim.lease ? delivery : undefined
  }

  return {
    schedule: (request) =>
      Effect.sync(() => {
        const event = t.events.get(request.eventId)
        if (
          event === undefined || event.organizationId !== request.organizationId ||
          event.status !== request.expected.status || event.cycle !== request.expected.cycle
        ) return false
        t.events.set(event.id, { ...event, ...request.state })
        t.deliveries.set(event.id, {
          eventId: event.id,
          endpointId: event.endpointId,
          dueAt: request.state.nextAttemptAt ?? request.state.updatedAt,
          lease: null,
          leaseExpiresAt: 0
        })
        store.signal()
        return true
      }),
    claimDue: ({ endpointLimits, excludeEndpoints, leaseMs, limit, maxPerEndpoint, now }) =>
      Effect.sync(() => {
        const excluded = new Set<string>(excludeEndpoints ?? [])
        const due: Array<Delivery> = []
        for (const delivery of t.deliveries.values()) {
          if (dueOf(delivery) <= now && !excluded.has(delivery.endpointId)) due.push(delivery)
        }
        due.sort((a, b) => dueOf(a) - dueOf(b) || (a.eventId < b.eventId ? -1 : 1))
        const claims: Array<Claim> = []
        const perEndpoint = new Map<string, number>()
        for (const delivery of due) {
          if (claims.length >= limit) break
          const taken = perEndpoint.get(delivery.endpointId) ?? 0
          const cap = endpointLimits?.get(delivery.endpointId) ?? maxPerEndpoint
          if (cap !== undefined && taken >= cap) continue
          const event = t.events.get(delivery.eventId)
          if (event === undefined) continue
          perEndpoint.set(delivery.endpointId, taken + 1)
          delivery.lease = store.nextLease()
          delivery.leaseExpiresAt = now + leaseMs
          claims.push({ event, lease: delivery.lease, leaseExpiresAt: delivery.leaseExpiresAt })
        }
        return claims
      }),
    complete: (claim, { attempt, state }) =>
      Effect.sync(() => {
        const delivery = holds(claim)
        const event = t.events.get(claim.event.id)
        if (delivery === undefined || event === undefined) return false
        if (attempt !== null) {
          const log = t.attempts.get(event.id)
          if (log === undefined) t.attempts.set(event.id, [attempt])
          else log.push(attempt)
        }
        t.events.set(event.id, { ...event, ...state })
        if (isFinal(state.status)) {
          t.deliveries.delete(event.id)
        } else {
          delivery.dueAt = state.nextAttemptAt ?? state.updatedAt
          delivery.lease = null
          store.signal()
        }
        return true
      }),
    reschedule: (claim, dueAt) =>
      Effect.sync(() => {
        const delivery = holds(claim)
        if (delivery === undefined) return false
        delivery.dueAt = dueAt
        delivery.lease = null
        store.signal()
        return true
      }),
    release: (claims) =>
      Effect.sync(() => {
        for (const claim of claims) {
          const delivery = holds(claim)
          if (delivery !== undefined) delivery.lease = null
        }
        if (claims.length > 0) store.signal()
      }),
    nextDueAt: Effect.sync(() => {
      let next: number | undefined
      for (const delivery of t.deliveries.values()) {
        const due = dueOf(delivery)
        if (next === undefined || due < next) next = due
      }
      return Option.fromUndefinedOr(next)
    }),
    signalVersion: Effect.sync(store.signalVersion),
    awaitSignal: store.awaitSignal,
    stats: Effect.sync(() => {
      let oldest: number | null = null
      for (const delivery of t.deliveries.values()) {
        if (oldest === null || delivery.dueAt < oldest) oldest = delivery.dueAt
      }
      return { pending: t.deliveries.size, oldestDueAt: oldest }
    })
  }
})
