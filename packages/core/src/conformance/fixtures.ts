/**
 * Valid records for the conformance suites, and for tests of plugins that
 * want the same data.
 *
 * Every builder takes explicit times (epoch milliseconds), so nothing depends
 * on the wall clock. Ids come from a counter rather than from randomness:
 * ids made at the same millisecond sort in the order they were built, which
 * keeps listings predictable, and a failing test reproduces exactly.
 *
 * @example
 * ```ts
 * import * as Fixtures from "@promptjang/core/conformance/fixtures"
 *
 * const organization = Fixtures.organization({ at: Fixtures.NOW })
 * const endpoint = Fixtures.endpoint(organization.id, { at: Fixtures.NOW })
 * const event = Fixtures.event(endpoint, { at: Fixtures.NOW, body: "{\"event\":\"order.paid\"}" })
 * yield* storage.ingest(Fixtures.ingestRecord(event))
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import type { ApiKey, Attempt, Endpoint, Event, EventState, Organization } from "../Domain.ts"
import * as EventStateMachine from "../EventStateMachine.ts"
import * as Ids from "../Ids.ts"
import type { Claim, Completion, ScheduleRequest } from "../Queue.ts"
import { Queue } from "../Queue.ts"
import type { IdempotencyRecord, IngestRecord } from "../Storage.ts"
import { Storage } from "../Storage.ts"

/** A fixed "now" for the suites: 2023-11-14T22:13:20Z. */
export const NOW = 1_700_000_000_000
/** The start of the UTC month that contains {@link NOW}, as a usage period. */
export const PERIOD_START = Date.UTC(2023, 10, 1)
/** The start of the month after {@link PERIOD_START}. */
export const NEXT_PERIOD_START = Date.UTC(2023, 11, 1)

/** One second in milliseconds. */
export const SECOND = 1_000
/** One minute in milliseconds. */
export const MINUTE = 60 * SECOND
/** One hour in milliseconds. */
export const HOUR = 60 * MINUTE
/** One day in milliseconds. */
export const DAY = 24 * HOUR

let sequence = 0

/** 13 "random" bytes that start with a growing counter, so ids of one millisecond sort in build order. */
const nextRandomBytes = (): Uint8Array => {
  sequence++
  const bytes = new Uint8Array(13)
  let rest = sequence
  for (let i = 5; i >= 0; i--) {
    bytes[i] = rest % 256
    rest = Math.floor(rest / 256)
  }
  return bytes
}

/** A valid, unique id with the given prefix, made at `millis`. */
const makeId = <S extends Schema.Codec<unknown, string>>(schema: S, prefix: string) => (millis: number): S["Type"] =>
  Schema.decodeUnknownSync(schema)(Ids.format(prefix, millis, nextRandomBytes()))

/** A unique organization id made at `millis`. */
export const organizationId = makeId(Ids.OrganizationId, "org_")
/** A unique API key record id made at `millis`. */
export const apiKeyId = makeId(Ids.ApiKeyId, "key_")
/** A unique endpoint id made at `millis`. */
export const endpointId = makeId(Ids.EndpointId, "ep_")
/** A unique event id made at `millis`. */
export const eventId = makeId(Ids.EventId, "evt_")
/** A unique attempt id made at `millis`. */
export const attemptId = makeId(Ids.AttemptId, "dat_")

const encoder = new TextEncoder()

/** An organization created at `at`. */
export const makeOrganization = (options: {
  readonly at?: number | undefined
  readonly name?: string | undefined
  readonly plan?: string | undefined
} = {}): Organization => {
  const at = options.at ?? NOW
  return { id: organizationId(at), name: options.name ?? "Acme", plan: options.plan ?? "starter", createdAt: at }
}

/** An API key record (never revoked, never used); `keyHash` defaults to a unique hex string. */
export const makeApiKey = (organization: Organization["id"], options: {
  readonly at?: number | undefined
  readonly name?: string | undefined
  readonly keyHash?: string | undefined
} = {}): ApiKey => {
  const at = options.at ?? NOW
  const id = apiKeyId(at)
  return {
    id,
    organizationId: organization,
    name: options.name ?? "default",
    prefix: `pj_live_${id.slice(-4)}`,
    keyHash: options.keyHash ?? hexOf(id),
    createdAt: at,
    lastUsedAt: null,
    revokedAt: null
  }
}

/** An enabled endpoint with no event type filter and the engine's retry schedule. */
export const makeEndpoint = (
  organization: Organization["id"],
  options: Partial<Omit<Endpoint, "id" | "organizationId" | "createdAt" | "updatedAt">> & {
    readonly at?: number | undefined
  } = {}
): Endpoint => {
  const { at = NOW, ...fields } = options
  const id = endpointId(at)
  return {
    id,
    organizationId: organization,
    url: `https://receiver.example.com/hooks/${id}`,
    description: "",
    secret: `whsec_${id.slice(-24)}`,
    previousSecret: null,
    previousSecretExpiresAt: null,
    eventTypes: [],
    enabled: true,
    requireSignature: false,
    headers: {},
    retryDelays: null,
    createdAt: at,
    updatedAt: at,
    ...fields
  }
}

/** A just-accepted event (QUEUED, first delivery due at `at`) for `endpoint`. */
export const makeEvent = (
  endpoint: Pick<Endpoint, "id" | "organizationId">,
  options: {
    readonly at?: number | undefined
    readonly eventType?: string | null | undefined
    /** The exact bytes; a string is encoded as UTF-8. Defaults to a JSON object naming the event type. */
    readonly body?: Uint8Array | string | undefined
  } = {}
): Event => {
  const at = options.at ?? NOW
  const eventType = options.eventType === undefined ? "order.created" : options.eventType
  const id = eventId(at)
  const body = options.body ?? JSON.stringify({ event: eventType, data: { id } })
  return {
    id,
    organizationId: endpoint.organizationId,
    endpointId: endpoint.id,
    eventType,
    body: typeof body === "string" ? encoder.encode(body) : body,
    ...EventStateMachine.project(undefined, { _tag: "Accepted", at }),
    createdAt: at
  }
}

/** An idempotency record for `key` that lives `ttl` (24 h by default) from `at`. */
export const makeIdempotency = (key: string, options: {
  readonly at?: number | undefined
  readonly bodyHash?: string | undefined
  readonly ttl?: number | undefined
} = {}): IdempotencyRecord => ({
  key,
  bodyHash: options.bodyHash ?? hexOf(key),
  expiresAt: (options.at ?? NOW) + (options.ttl ?? DAY)
})

/** What ingesting `event` writes: counted in {@link PERIOD_START} unless told otherwise, with no idempotency key. */
export const makeIngestRecord = (event: Event, options: {
  readonly periodStart?: number | undefined
  readonly idempotency?: IdempotencyRecord | null | undefined
  readonly apiKeyId?: ApiKey["id"] | undefined
} = {}): IngestRecord => ({
  event,
  periodStart: options.periodStart ?? PERIOD_START,
  idempotency: options.idempotency ?? null,
  apiKeyId: options.apiKeyId
})

/** One attempt of `event` in its current cycle. */
export const makeAttempt = (
  event: Pick<Event, "id" | "organizationId" | "endpointId" | "cycle">,
  options: {
    readonly number: number
    readonly at?: number | undefined
    readonly cycle?: number | undefined
    readonly succeeded?: boolean | undefined
  }
): Attempt => {
  const at = options.at ?? NOW
  const succeeded = options.succeeded ?? true
  return {
    id: attemptId(at),
    eventId: event.id,
    organizationId: event.organizationId,
    endpointId: event.endpointId,
    cycle: options.cycle ?? event.cycle,
    number: options.number,
    statusCode: succeeded ? 200 : 500,
    responseBody: succeeded ? "ok" : "Internal Server Error",
    durationMs: 12,
    error: null,
    succeeded,
    createdAt: at
  }
}

/** A completion that records an attempt. */
export interface AttemptCompletion extends Completion {
  readonly attempt: Attempt
}

/** A successful attempt of a claimed event at `at`: the event becomes DELIVERED and leaves the queue. */
export const delivered = (event: Event, at: number): AttemptCompletion => {
  const state = EventStateMachine.project(event, {
    _tag: "Delivered",
    at,
    cycle: event.cycle,
    attempt: event.attemptCount + 1
  })
  return { attempt: makeAttempt(event, { number: state.attemptCount, at, succeeded: true }), state }
}

/** A failed attempt of a claimed event at `at`, retried at `retryAt`: the event becomes RETRYING. */
export const retried = (event: Event, at: number, retryAt: number): AttemptCompletion => {
  const state = EventStateMachine.project(event, {
    _tag: "RetryScheduled",
    at,
    cycle: event.cycle,
    attempt: event.attemptCount + 1,
    retryAt
  })
  return { attempt: makeAttempt(event, { number: state.attemptCount, at, succeeded: false }), state }
}

/** A replay of a final event at `at`: a new cycle, QUEUED, due at `at`. */
export const replay = (event: Event, at: number): ScheduleRequest => ({
  organizationId: event.organizationId,
  eventId: event.id,
  expected: { status: event.status, cycle: event.cycle },
  state: EventStateMachine.project(event, { _tag: "Replayed", at, cycle: event.cycle + 1 })
})

/** The delivery state fields of an event, for comparing states. */
export const stateOf = (state: EventState): EventState => ({
  status: state.status,
  cycle: state.cycle,
  attemptCount: state.attemptCount,
  nextAttemptAt: state.nextAttemptAt,
  updatedAt: state.updatedAt
})

/**
 * An event with its body as a plain array of numbers, for deep comparisons
 * that must not depend on which byte-array class a backend returns.
 */
export const comparable = (event: Event): Omit<Event, "body"> & { readonly body: ReadonlyArray<number> } => ({
  ...event,
  body: Array.from(event.body)
})

/** An organization with one endpoint, stored. */
export const seedTenant = (at: number = NOW): Effect.Effect<
  { readonly organization: Organization; readonly endpoint: Endpoint },
  unknown,
  Storage
> =>
  Effect.gen(function*() {
    const storage = yield* Storage
    const org = makeOrganization({ at })
    yield* storage.createOrganization(org)
    const ep = makeEndpoint(org.id, { at })
    yield* storage.createEndpoint(ep)
    return { organization: org, endpoint: ep }
  })

/** Builds and ingests an event; dies unless it was inserted. */
export const ingestEvent = (
  endpoint: Pick<Endpoint, "id" | "organizationId">,
  options: Parameters<typeof makeEvent>[1] & { readonly periodStart?: number | undefined } = {}
): Effect.Effect<Event, unknown, Storage> =>
  Effect.gen(function*() {
    const storage = yield* Storage
    const built = makeEvent(endpoint, options)
    const outcome = yield* storage.ingest(makeIngestRecord(built, { periodStart: options.periodStart }))
    if (outcome._tag !== "Inserted") return yield* Effect.die(new Error(`ingest of ${built.id} was not inserted`))
    return built
  })

/**
 * Claims the due delivery of one event at `now` and releases every other claim
 * it had to take; dies when the event is not claimable at `now`.
 */
export const claimEvent = (
  eventId: Event["id"],
  now: number,
  leaseMs: number = 30 * SECOND
): Effect.Effect<Claim, unknown, Queue> =>
  Effect.gen(function*() {
    const queue = yield* Queue
    const claims = yield* queue.claimDue({ now, limit: 1_000, leaseMs })
    const mine = claims.find((claim) => claim.event.id === eventId)
    yield* queue.release(claims.filter((claim) => claim !== mine))
    if (mine === undefined) return yield* Effect.die(new Error(`${eventId} is not claimable at ${now}`))
    return mine
  })

const hexOf = (text: string): string =>
  Array.from(encoder.encode(text), (byte) => byte.toString(16).padStart(2, "0")).join("").padEnd(64, "0")
