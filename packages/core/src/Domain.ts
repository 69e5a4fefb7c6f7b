/**
 * The domain model: plain data described by schemas.
 *
 * Times are epoch milliseconds (UTC); the HTTP layer renders them as ISO 8601.
 * Payloads are kept as the exact bytes received, because signatures cover
 * those bytes.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { ApiKeyId, AttemptId, EndpointId, EventId, OrganizationId } from "./Ids.ts"

/** Epoch milliseconds, UTC. */
export const Millis = Schema.Int.annotate({ description: "epoch milliseconds (UTC)" })
export type Millis = typeof Millis.Type

/** A plan of the catalog (SPEC §7). Prices are in cents. */
export const Plan = Schema.Struct({
  name: Schema.String,
  priceCents: Schema.Int,
  includedEvents: Schema.Int,
  retentionDays: Schema.Int,
  maxPayloadBytes: Schema.Int,
  overageUnitEvents: Schema.Int,
  overageUnitPriceCents: Schema.Int
})
export type Plan = typeof Plan.Type

/** A tenant. */
export const Organization = Schema.Struct({
  id: OrganizationId,
  name: Schema.String,
  plan: Schema.String,
  createdAt: Millis
})
export type Organization = typeof Organization.Type

/** An API key record. The key itself is never stored: only its SHA-256 hash and a display prefix. */
export const ApiKey = Schema.Struct({
  id: ApiKeyId,
  organizationId: OrganizationId,
  name: Schema.String,
  prefix: Schema.String,
  keyHash: Schema.String,
  createdAt: Millis,
  lastUsedAt: Schema.NullOr(Millis),
  revokedAt: Schema.NullOr(Millis)
})
export type ApiKey = typeof ApiKey.Type

/** A delivery target. `previousSecret` keeps signing until `previousSecretExpiresAt` after a rotation. */
export const Endpoint = Schema.Struct({
  id: EndpointId,
  organizationId: OrganizationId,
  url: Schema.String,
  description: Schema.String,
  secret: Schema.String,
  previousSecret: Schema.NullOr(Schema.String),
  previousSecretExpiresAt: Schema.NullOr(Millis),
  eventTypes: Schema.Array(Schema.String),
  enabled: Schema.Boolean,
  requireSignature: Schema.Boolean,
  headers: Schema.Record(Schema.String, Schema.String),
  /** Retry delays in milliseconds for this endpoint; `null` uses the engine's schedule. */
  retryDelays: Schema.NullOr(Schema.Array(Schema.Int)),
  createdAt: Millis,
  updatedAt: Millis
})
export type Endpoint = typeof Endpoint.Type

/** The states of SPEC §5. */
export const EventStatus = Schema.Literals(["QUEUED", "RETRYING", "DELIVERED", "EXPIRED", "FAILED"])
export type EventStatus = typeof EventStatus.Type

/** Statuses an event leaves only through a replay. */
export const isFinal = (status: EventStatus): boolean =>
  status === "DELIVERED" || status === "EXPIRED" || status === "FAILED"

/**
 * The delivery state of an event: what the state machine folds.
 * `cycle` starts at 1 and grows by one per replay; `attemptCount` counts the
 * attempts of the current cycle.
 */
export const EventState = Schema.Struct({
  status: EventStatus,
  cycle: Schema.Int,
  attemptCount: Schema.Int,
  nextAttemptAt: Schema.NullOr(Millis),
  updatedAt: Millis
})
export type EventState = typeof EventState.Type

/** One payload sent to one endpoint, with its delivery state. */
export const Event = Schema.Struct({
  id: EventId,
  organizationId: OrganizationId,
  endpointId: EndpointId,
  eventType: Schema.NullOr(Schema.String),
  /** The exact bytes received at ingest, delivered as they are. */
  body: Schema.Uint8Array,
  ...EventState.fields,
  createdAt: Millis
})
export type Event = typeof Event.Type

/** Why an attempt got no usable response. */
export const AttemptError = Schema.Literals([
  "timeout",
  "connection_refused",
  "connection_reset",
  "dns",
  "tls",
  "blocked_address",
  "network"
])
export type AttemptError = typeof AttemptError.Type

/** One HTTP delivery try. */
export const Attempt = Schema.Struct({
  id: AttemptId,
  eventId: EventId,
  organizationId: OrganizationId,
  endpointId: EndpointId,
  cycle: Schema.Int,
  number: Schema.Int,
  statusCode: Schema.NullOr(Schema.Int),
  responseBody: Schema.NullOr(Schema.String),
  durationMs: Schema.Int,
  error: Schema.NullOr(AttemptError),
  succeeded: Schema.Boolean,
  createdAt: Millis
})
export type Attempt = typeof Attempt.Type

/** The JSON value of an event's body, for display (`null` when the bytes are not JSON). */
export const payloadOf = (event: Pick<Event, "body">): unknown => {
  try {
    return JSON.parse(textDecoder.decode(event.body))
  } catch {
    return null
  }
}

const textDecoder = new TextDecoder()
