/**
 * Organizations, API keys, authentication and usage.
 *
 * API keys are stored as SHA-256 hashes only; a lookup by hash is
 * constant-time with respect to the key, and every refusal reads the same, so
 * a caller learns nothing about which keys exist. Last-use times are
 * collected in memory and written in one batch per flush, not once per request.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Option, Schedule } from "effect"
import type { ApiKey, Organization } from "./Domain.ts"
import * as Entropy from "./Entropy.ts"
import { NotFound, type StorageError, Unauthorized, ValidationFailed } from "./Errors.ts"
import * as Ids from "./Ids.ts"
import type { ApiKeyId, OrganizationId } from "./Ids.ts"
import * as Quota from "./Quota.ts"
import * as ReadCache from "./ReadCache.ts"
import * as Signing from "./Signing.ts"
import { Storage } from "./Storage.ts"

/** Who is calling: an organization, through one of its keys. */
export interface Principal {
  readonly organization: Organization
  readonly apiKey: ApiKey
}

/** A new API key: the record and the key itself, which is shown this once. */
export interface CreatedApiKey {
  readonly record: ApiKey
  readonly key: string
}

/** Usage of the current period against the plan. */
export type Usage = ReturnType<typeof Quota.usageSummary>

/** How long a principal read for ingest is reused. */
const INGEST_PRINCIPAL_TTL_MS = 1_000

/** The one refusal of a missing, unknown or revoked API key (every refusal reads the same). */
export const unauthorized = new Unauthorized({
  message: "Missing or invalid API key: send `Authorization: Bearer pj_live_…` with a key that has not been revoked."
})

/** Organizations, API keys, authentication and usage. */
export class Accounts extends Context.Service<Accounts, {
  /** Creates an organization on a plan of the catalog, with a first API key. */
  readonly createOrganization: (input: {
    readonly name: string
    readonly plan?: string | undefined
  }) => Effect.Effect<
    { readonly organization: Organization; readonly apiKey: CreatedApiKey },
    ValidationFailed | StorageError
  >
  readonly getOrganization: (id: OrganizationId) => Effect.Effect<Organization, NotFound | StorageError>
  readonly createApiKey: (
    organizationId: OrganizationId,
    name: string
  ) => Effect.Effect<CreatedApiKey, NotFound | StorageError>
  readonly listApiKeys: (organizationId: OrganizationId) => Effect.Effect<ReadonlyArray<ApiKey>, StorageError>
  readonly revokeApiKey: (organizationId: OrganizationId, id: ApiKeyId) => Effect.Effect<void, NotFound | StorageError>
  /** The principal of a bearer token, or Unauthorized. */
  readonly authenticate: (bearer: string | undefined) => Effect.Effect<Principal, Unauthorized | StorageError>
  /**
   * The principal of a bearer token as read at most a second ago (revoking a key in this process forgets
   * it at once). A key revoked by another process may still pass here for that second: use it only where
   * storage checks the key again in the write itself, as ingest does with `IngestRecord.apiKeyId`.
   */
  readonly authenticateForIngest: (
    bearer: string | undefined
  ) => Effect.Effect<Principal, Unauthorized | StorageError>
  /** Writes the collected last-use times now. */
  readonly flushLastUsed: Effect.Effect<void, StorageError>
  readonly usage: (organizationId: OrganizationId) => Effect.Effect<Usage, NotFound | StorageError>
}>()("@promptjang/core/Accounts") {}

/** Accounts over the Storage in context; flushes last-use times every 10 seconds while the layer lives. */
export const make = Effect.gen(function*() {
  const storage = yield* Storage
  const plans = yield* Quota.Plans
  const withEntropy = Entropy.withSource(yield* Entropy.Entropy)
  const lastUsed = new Map<ApiKeyId, number>()
  // Key hash -> principal, for ingest only (see authenticateForIngest); unknown and revoked keys are never kept.
  const principals = yield* ReadCache.make<string, Principal, Unauthorized | StorageError>({
    ttlMs: INGEST_PRINCIPAL_TTL_MS
  })

  /** The principal of a live key by its hash (Unauthorized when unknown or revoked), its use noted at `now`. */
  const principalOf = Effect.fnUntraced(function*(hash: string, now: number) {
    const found = yield* storage.findApiKeyWithOrganization(hash)
    if (Option.isNone(found) || found.value.apiKey.revokedAt !== null) return yield* unauthorized
    lastUsed.set(found.value.apiKey.id, now)
    return found.value
  })

  const createApiKey = Effect.fn("Accounts.createApiKey")(function*(organizationId: OrganizationId, name: string) {
    const organization = yield* storage.getOrganization(organizationId)
    if (Option.isNone(organization)) {
      return yield* new NotFound({
        resource: "organization",
        id: organizationId,
        message: `No organization ${organizationId}.`
      })
    }
    const key = yield* Signing.generateApiKey
    const record: ApiKey = {
      id: yield* Ids.makeApiKeyId,
      organizationId,
      name,
      prefix: Signing.apiKeyPrefix(key),
      keyHash: Signing.hashApiKey(key),
      createdAt: yield* Clock.currentTimeMillis,
      lastUsedAt: null,
      revokedAt: null
    }
    yield* storage.createApiKey(record)
    return { record, key }
  }, withEntropy)

  const flushLastUsed = Effect.suspend(() => {
    if (lastUsed.size === 0) return Effect.void
    const uses = Array.from(lastUsed, ([id, at]) => ({ id, at }))
    lastUsed.clear()
    return storage.touchApiKeys(uses)
  })

  yield* flushLastUsed.pipe(
    Effect.catchCause((cause) =>
      Effect.logWarning("Could not record API key last-use times").pipe(Effect.annotateLogs({ cause }))
    ),
    Effect.repeat(Schedule.spaced("10 seconds")),
    Effect.forkScoped
  )
  yield* Effect.addFinalizer(() => Effect.ignore(flushLastUsed))

  return Accounts.of({
    createOrganization: Effect.fn("Accounts.createOrganization")(function*(input) {
      const planName = input.plan ?? "starter"
      const name = input.name.trim()
      if (name === "") {
        return yield* new ValidationFailed({
          message: "The organization needs a name.",
          details: [{ path: "name", message: "must not be empty" }]
        })
      }
      if (Option.isNone(Quota.planOf(plans, planName))) {
        return yield* new ValidationFailed({
          message: `Unknown plan "${planName}": choose one of ${Array.from(plans.keys()).join(", ")}.`,
          details: [{ path: "plan", message: `must be one of ${Array.from(plans.keys()).join(", ")}` }]
        })
      }
      const organization: Organization = {
        id: yield* Ids.makeOrganizationId,
        name,
        plan: planName,
        createdAt: yield* Clock.currentTimeMillis
      }
      yield* storage.createOrganization(organization)
      const apiKey = yield* Effect.catchTag(createApiKey(organization.id, "default"), "NotFound", (e) => Effect.die(e))
      return { organization, apiKey }
    }, withEntropy),
    getOrganization: (id) =>
      storage.getOrganization(id).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.fail(new NotFound({ resource: "organization", id, message: `No organization ${id}.` })),
          onSome: Effect.succeed
        }))
      ),
    createApiKey,
    listApiKeys: storage.listApiKeys,
    revokeApiKey: Effect.fn("Accounts.revokeApiKey")(function*(organizationId, id) {
      const found = yield* storage.revokeApiKey(organizationId, id, yield* Clock.currentTimeMillis)
      principals.invalidate((principal) => principal.apiKey.id === id)
      if (!found) {
        return yield* new NotFound({ resource: "api_key", id, message: `No API key ${id} in this organization.` })
      }
    }),
    authenticate: Effect.fnUntraced(function*(bearer) {
      if (bearer === undefined || !Signing.isApiKeyShaped(bearer)) return yield* unauthorized
      return yield* principalOf(Signing.hashApiKey(bearer), yield* Clock.currentTimeMillis)
    }),
    // Every event's first step, in plain steps rather than a generator (see Ingestion.accept).
    authenticateForIngest: (bearer) => {
      if (bearer === undefined || !Signing.isApiKeyShaped(bearer)) return Effect.fail(unauthorized)
      const hash = Signing.hashApiKey(bearer)
      return Effect.flatMap(
        Clock.currentTimeMillis,
        (now) =>
          Effect.map(principals.get(hash, now, () => principalOf(hash, now)), (principal) => {
            lastUsed.set(principal.apiKey.id, now)
            return principal
          })
      )
    },
    flushLastUsed,
    usage: Effect.fn("Accounts.usage")(function*(organizationId) {
      const organization = yield* storage.getOrganization(organizationId)
      if (Option.isNone(organization)) {
        return yield* new NotFound({
          resource: "organization",
          id: organizationId,
          message: `No organization ${organizationId}.`
        })
      }
      const plan = yield* Quota.effectivePlan(plans, organization.value.plan)
      const now = yield* Clock.currentTimeMillis
      const period = Quota.periodOf(now)
      const events = yield* storage.usage(organizationId, period.start)
      return Quota.usageSummary(plan, events, now)
    })
  })
})

/** Accounts over the Storage in context. */
export const layer: Layer.Layer<Accounts, never, Storage> = Layer.effect(Accounts, make)
