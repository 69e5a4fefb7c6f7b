/**
 * Ingestion: from an authenticated request to a durably queued event.
 *
 * The checks run cheapest first and nothing is stored unless all pass: the
 * endpoint must belong to the caller's organization, the payload must fit the
 * plan, be a JSON object, have a subscribed event type and, when signed (or
 * when the endpoint requires it), a valid `X-PJ-Signature`. The event, its
 * first delivery, the usage increment and the idempotency key are written in
 * one storage operation; when it returns, the event is durable.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Metric, Option, Result, Schema } from "effect"
import { Accounts, type Principal, unauthorized } from "./Accounts.ts"
import type { Endpoint, Event } from "./Domain.ts"
import * as Endpoints from "./Endpoints.ts"
import * as Entropy from "./Entropy.ts"
import {
  EventTypeNotSubscribed,
  IdempotencyConflict,
  type IngestError,
  InvalidJson,
  NotFound,
  ValidationFailed
} from "./Errors.ts"
import * as EventStateMachine from "./EventStateMachine.ts"
import * as Ids from "./Ids.ts"
import type { EndpointId, EventId, OrganizationId } from "./Ids.ts"
import { Lifecycle } from "./Lifecycle.ts"
import * as Metrics from "./Metrics.ts"
import * as Quota from "./Quota.ts"
import * as Signing from "./Signing.ts"
import { Storage } from "./Storage.ts"

/** Tuning of ingestion. */
export interface IngestionOptions {
  /**
   * How long an endpoint read for an ingest is reused (0: read it for every event). An endpoint update
   * (event types, signature requirement, rotation) reaches ingest within this time.
   */
  readonly endpointCacheMs: number
}

/** The current options (endpoints reused for 1 second). */
export const Options = Context.Reference<IngestionOptions>("@promptjang/core/Ingestion/Options", {
  defaultValue: () => ({ endpointCacheMs: 1_000 })
})

/** How long an `Idempotency-Key` is remembered. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000

/** One inbound event, as received. */
export interface IngestRequest {
  readonly endpointId: string
  /** The exact bytes of the body. */
  readonly body: Uint8Array
  /** `X-PJ-Signature` */
  readonly signature?: string | undefined
  /** `X-PJ-Timestamp` */
  readonly timestamp?: string | undefined
  /** `Idempotency-Key` */
  readonly idempotencyKey?: string | undefined
}

/** The answer to an accepted event; `duplicate` when an earlier request with the same idempotency key stored it. */
export interface IngestResult {
  readonly id: EventId
  readonly status: "QUEUED"
  readonly duplicate: boolean
}

const isEndpointId = Schema.is(Ids.EndpointId)
const textDecoder = new TextDecoder("utf-8", { fatal: true })

/** Parses the body as a JSON object and reads its top-level `"event"` string. */
export const parsePayload = (
  body: Uint8Array
): Result.Result<{ readonly eventType: string | null }, InvalidJson | ValidationFailed> => {
  let value: unknown
  try {
    value = JSON.parse(textDecoder.decode(body))
  } catch (error) {
    const reason = error instanceof SyntaxError ? error.message : "the body is not UTF-8"
    return Result.fail(new InvalidJson({ message: `The body is not valid JSON (${reason}); send a JSON object.` }))
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return Result.fail(
      new ValidationFailed({
        message: "The body must be a JSON object, such as {\"event\": \"order.created\", \"data\": {...}}.",
        details: [{ path: "", message: "must be a JSON object" }]
      })
    )
  }
  const eventType = (value as Record<string, unknown>)["event"]
  if (eventType !== undefined && typeof eventType !== "string") {
    return Result.fail(
      new ValidationFailed({
        message: "The \"event\" field must be a string naming the event type, such as \"order.created\".",
        details: [{ path: "event", message: "must be a string" }]
      })
    )
  }
  return Result.succeed({ eventType: eventType ?? null })
}

/** Ingestion. */
export class Ingestion extends Context.Service<Ingestion, {
  /** Accepts an event for an authenticated organization. */
  readonly accept: (principal: Principal, request: IngestRequest) => Effect.Effect<IngestResult, IngestError>
  /** Authenticates the bearer API key (see `Accounts.authenticateForIngest`), then accepts. */
  readonly ingest: (bearer: string | undefined, request: IngestRequest) => Effect.Effect<IngestResult, IngestError>
}>()("@promptjang/core/Ingestion") {}

/** Ingestion over Storage, Accounts and Lifecycle. */
export const make = Effect.gen(function*() {
  const storage = yield* Storage
  const accounts = yield* Accounts
  const lifecycle = yield* Lifecycle
  const plans = yield* Quota.Plans
  const entropy = yield* Entropy.Entropy
  const options = yield* Options

  // The endpoint of every ingest: a hot read, kept for a moment (misses are not kept).
  const endpoints = new Map<string, { readonly endpoint: Endpoint; readonly readAt: number }>()
  const findEndpoint = (organizationId: OrganizationId, id: EndpointId, now: number) => {
    const cached = endpoints.get(id)
    if (
      cached !== undefined && cached.endpoint.organizationId === organizationId &&
      now - cached.readAt < options.endpointCacheMs
    ) {
      return Effect.succeed(Option.some(cached.endpoint))
    }
    return Effect.tap(storage.getEndpoint(organizationId, id), (found) =>
      Effect.sync(() => {
        if (Option.isNone(found) || options.endpointCacheMs <= 0) return
        if (endpoints.size > 10_000) endpoints.clear()
        endpoints.set(id, { endpoint: found.value, readAt: now })
      }))
  }

  // The hot path of every event: untraced, so that it costs no span.
  const accept = Effect.fnUntraced(function*(principal: Principal, request: IngestRequest) {
    const organizationId = principal.organization.id
    // Built only when needed: constructing an error captures a stack trace, too slow for every event.
    const missing = () =>
      new NotFound({
        resource: "endpoint",
        id: request.endpointId,
        message: `No endpoint ${request.endpointId} in this organization: check the id in the URL.`
      })
    if (!isEndpointId(request.endpointId)) return yield* missing()
    const plan = yield* Quota.effectivePlan(plans, principal.organization.plan)
    yield* Effect.fromResult(Quota.checkPayloadSize(plan, request.body.byteLength))
    const now = yield* Clock.currentTimeMillis
    const endpoint = yield* findEndpoint(organizationId, request.endpointId, now)
    if (Option.isNone(endpoint)) return yield* missing()
    const { eventType } = yield* Effect.fromResult(parsePayload(request.body))
    if (!Endpoints.acceptsEventType(endpoint.value.eventTypes, eventType)) {
      return yield* new EventTypeNotSubscribed({
        eventType,
        accepted: endpoint.value.eventTypes,
        message: eventType === null
          ? `This endpoint accepts only ${
            endpoint.value.eventTypes.join(", ")
          }; add an "event" field naming one of them.`
          : `This endpoint does not subscribe to "${eventType}"; it accepts ${
            endpoint.value.eventTypes.join(", ")
          }. Add the type to its event_types or send it to another endpoint.`
      })
    }
    yield* Effect.fromResult(Signing.verifyInbound({
      secrets: Endpoints.activeSecrets(endpoint.value, now),
      signature: request.signature,
      timestamp: request.timestamp,
      body: request.body,
      nowSeconds: Math.floor(now / 1000),
      required: endpoint.value.requireSignature
    }))
    const bodyHash = request.idempotencyKey === undefined ? "" : Signing.hashBody(request.body)
    const accepted = EventStateMachine.project(undefined, { _tag: "Accepted", at: now })
    const event: Event = {
      // The id carries the same time as createdAt, so ids order events exactly by creation time.
      id: yield* Ids.makeEventIdAt(now, entropy),
      organizationId,
      endpointId: endpoint.value.id,
      eventType,
      body: request.body,
      ...accepted,
      createdAt: now
    }
    const outcome = yield* storage.ingest({
      event,
      // Checked again in the write: the principal may come from a cache (Accounts.authenticateForIngest).
      apiKeyId: principal.apiKey.id,
      periodStart: Quota.periodOf(now).start,
      idempotency: request.idempotencyKey === undefined
        ? null
        : { key: request.idempotencyKey, bodyHash, expiresAt: now + IDEMPOTENCY_WINDOW_MS }
    })
    if (outcome._tag === "KeyRevoked") return yield* unauthorized
    if (outcome._tag === "Duplicate") {
      if (outcome.bodyHash !== bodyHash) {
        return yield* new IdempotencyConflict({
          key: request.idempotencyKey ?? "",
          message:
            "This Idempotency-Key was already used in the last 24 hours with a different body; use a new key for a new event."
        })
      }
      return { id: outcome.eventId, status: "QUEUED", duplicate: true } as const
    }
    yield* Metric.update(Metrics.eventsAccepted, 1)
    yield* lifecycle.emit({ _tag: "Accepted", event })
    return { id: event.id, status: "QUEUED", duplicate: false } as const
  })

  return Ingestion.of({
    accept,
    ingest: (bearer, request) =>
      Effect.flatMap(accounts.authenticateForIngest(bearer), (principal) => accept(principal, request))
  })
})

/** Ingestion over Storage, Accounts and Lifecycle. */
export const layer: Layer.Layer<Ingestion, never, Storage | Accounts | Lifecycle> = Layer.effect(Ingestion, make)
