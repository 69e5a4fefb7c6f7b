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
import type { Endpoint, Event, Plan } from "./Domain.ts"
import * as Endpoints from "./Endpoints.ts"
import * as Entropy from "./Entropy.ts"
import {
  EventTypeNotSubscribed,
  IdempotencyConflict,
  type IngestError,
  InvalidJson,
  NotFound,
  type StorageError,
  ValidationFailed
} from "./Errors.ts"
import * as EventStateMachine from "./EventStateMachine.ts"
import * as Ids from "./Ids.ts"
import type { EndpointId, EventId } from "./Ids.ts"
import { Lifecycle } from "./Lifecycle.ts"
import * as Metrics from "./Metrics.ts"
import * as Quota from "./Quota.ts"
import * as ReadCache from "./ReadCache.ts"
import * as Signing from "./Signing.ts"
import { type IngestOutcome, Storage } from "./Storage.ts"

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

  // The endpoint of every ingest: a hot read, kept for a moment (misses are not kept), by organization and id.
  const endpoints = yield* ReadCache.make<string, Option.Option<Endpoint>, StorageError>({
    ttlMs: options.endpointCacheMs,
    keep: Option.isSome
  })

  const missing = (request: IngestRequest) =>
    new NotFound({
      resource: "endpoint",
      id: request.endpointId,
      message: `No endpoint ${request.endpointId} in this organization: check the id in the URL.`
    })

  /** The checks of a request against its endpoint, in their order; succeeds with the event type. */
  const check = (
    request: IngestRequest,
    endpoint: Endpoint,
    now: number
  ): Result.Result<string | null, IngestError> => {
    const parsed = parsePayload(request.body)
    if (Result.isFailure(parsed)) return Result.fail(parsed.failure)
    const { eventType } = parsed.success
    if (!Endpoints.acceptsEventType(endpoint.eventTypes, eventType)) {
      return Result.fail(
        new EventTypeNotSubscribed({
          eventType,
          accepted: endpoint.eventTypes,
          message: eventType === null
            ? `This endpoint accepts only ${endpoint.eventTypes.join(", ")}; add an "event" field naming one of them.`
            : `This endpoint does not subscribe to "${eventType}"; it accepts ${
              endpoint.eventTypes.join(", ")
            }. Add the type to its event_types or send it to another endpoint.`
        })
      )
    }
    const verdict = Signing.verifyInbound({
      secrets: Endpoints.activeSecrets(endpoint, now),
      signature: request.signature,
      timestamp: request.timestamp,
      body: request.body,
      nowSeconds: Math.floor(now / 1000),
      required: endpoint.requireSignature
    })
    return Result.isFailure(verdict) ? verdict : Result.succeed(eventType)
  }

  /** What the storage answered, as the result of the ingest. */
  const settle = (
    outcome: IngestOutcome,
    event: Event,
    request: IngestRequest,
    bodyHash: string
  ): Effect.Effect<IngestResult, IngestError> => {
    switch (outcome._tag) {
      case "KeyRevoked":
        return Effect.fail(unauthorized)
      case "Duplicate":
        return outcome.bodyHash === bodyHash
          ? Effect.succeed({ id: outcome.eventId, status: "QUEUED", duplicate: true })
          : Effect.fail(
            new IdempotencyConflict({
              key: request.idempotencyKey ?? "",
              message:
                "This Idempotency-Key was already used in the last 24 hours with a different body; use a new key for a new event."
            })
          )
      case "Inserted":
        return Effect.as(
          Effect.andThen(Metric.update(Metrics.eventsAccepted, 1), lifecycle.emit({ _tag: "Accepted", event })),
          { id: event.id, status: "QUEUED", duplicate: false }
        )
    }
  }

  /** Checks the request against its endpoint, then stores the event with its first delivery. */
  const store = (principal: Principal, request: IngestRequest, endpoint: Endpoint, now: number) => {
    const checked = check(request, endpoint, now)
    if (Result.isFailure(checked)) return Effect.fail(checked.failure)
    const bodyHash = request.idempotencyKey === undefined ? "" : Signing.hashBody(request.body)
    return Effect.flatMap(
      // The id carries the same time as createdAt, so ids order events exactly by creation time.
      Ids.makeEventIdAt(now, entropy),
      (id) => {
        const event: Event = {
          id,
          organizationId: principal.organization.id,
          endpointId: endpoint.id,
          eventType: checked.success,
          body: request.body,
          ...EventStateMachine.project(undefined, { _tag: "Accepted", at: now }),
          createdAt: now
        }
        return Effect.flatMap(
          storage.ingest({
            event,
            // Checked again in the write: the principal may come from a cache (Accounts.authenticateForIngest).
            apiKeyId: principal.apiKey.id,
            periodStart: Quota.periodOf(now).start,
            idempotency: request.idempotencyKey === undefined
              ? null
              : { key: request.idempotencyKey, bodyHash, expiresAt: now + IDEMPOTENCY_WINDOW_MS }
          }),
          (outcome) => settle(outcome, event, request, bodyHash)
        )
      }
    )
  }

  const acceptOnPlan = (principal: Principal, request: IngestRequest, plan: Plan) => {
    const size = Quota.checkPayloadSize(plan, request.body.byteLength)
    if (Result.isFailure(size)) return Effect.fail(size.failure)
    // Its shape was checked by accept.
    const endpointId = request.endpointId as EndpointId
    return Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<IngestResult, IngestError> => {
      const organizationId = principal.organization.id
      return Effect.flatMap(
        endpoints.get(`${organizationId}/${endpointId}`, now, () => storage.getEndpoint(organizationId, endpointId)),
        (found) => Option.isNone(found) ? Effect.fail(missing(request)) : store(principal, request, found.value, now)
      )
    })
  }

  /**
   * The hot path of every event, written as a few steps instead of a generator: no span, and synchronous
   * checks in plain functions (each step of a fiber costs time on every event).
   */
  const accept = (principal: Principal, request: IngestRequest): Effect.Effect<IngestResult, IngestError> => {
    if (!isEndpointId(request.endpointId)) return Effect.fail(missing(request))
    return Quota.withEffectivePlan(plans, principal.organization.plan, (plan) => acceptOnPlan(principal, request, plan))
  }

  return Ingestion.of({
    accept,
    ingest: (bearer, request) =>
      Effect.flatMap(accounts.authenticateForIngest(bearer), (principal) => accept(principal, request))
  })
})

/** Ingestion over Storage, Accounts and Lifecycle. */
export const layer: Layer.Layer<Ingestion, never, Storage | Accounts | Lifecycle> = Layer.effect(Ingestion, make)
