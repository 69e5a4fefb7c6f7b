/**
 * Every refusal the engine can answer with, one tagged error per failure.
 *
 * Each error carries a `message` a human can act on; the HTTP layer maps the
 * tag to a status code and a snake_case `code`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** The API key is missing, malformed, unknown or revoked. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  message: Schema.String
}) {}

/** The `X-PJ-Signature` of an inbound event does not match, or is missing where it is required. */
export class InvalidSignature extends Schema.TaggedError<InvalidSignature>()("InvalidSignature", {
  message: Schema.String
}) {}

/** The `X-PJ-Timestamp` of an inbound event is not within the tolerance of the server's clock. */
export class TimestampOutOfRange extends Schema.TaggedError<TimestampOutOfRange>()("TimestampOutOfRange", {
  message: Schema.String,
  timestamp: Schema.String,
  toleranceSeconds: Schema.Number
}) {}

/** A resource that does not exist, or belongs to another organization (answered alike). */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  resource: Schema.Literals(["organization", "api_key", "endpoint", "event"]),
  id: Schema.String,
  message: Schema.String
}) {}

/** A replay of an event that is still QUEUED or RETRYING. */
export class EventInFlight extends Schema.TaggedError<EventInFlight>()("EventInFlight", {
  eventId: Schema.String,
  status: Schema.String,
  message: Schema.String
}) {}

/** The same `Idempotency-Key` was used within its window with a different body. */
export class IdempotencyConflict extends Schema.TaggedError<IdempotencyConflict>()("IdempotencyConflict", {
  key: Schema.String,
  message: Schema.String
}) {}

/** The payload is larger than the organization's plan allows. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  plan: Schema.String,
  maxPayloadBytes: Schema.Number,
  message: Schema.String
}) {}

/** The body is not valid JSON. */
export class InvalidJson extends Schema.TaggedError<InvalidJson>()("InvalidJson", {
  message: Schema.String
}) {}

/** One field of a validation failure. */
export const ValidationIssue = Schema.Struct({
  path: Schema.String,
  message: Schema.String
})
export type ValidationIssue = typeof ValidationIssue.Type

/** Input that is well-formed JSON but not what the operation accepts. */
export class ValidationFailed extends Schema.TaggedError<ValidationFailed>()("ValidationFailed", {
  message: Schema.String,
  details: Schema.Array(ValidationIssue)
}) {}

/** The event's type is not one the endpoint subscribes to. */
export class EventTypeNotSubscribed extends Schema.TaggedError<EventTypeNotSubscribed>()("EventTypeNotSubscribed", {
  eventType: Schema.NullOr(Schema.String),
  accepted: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** A retry schedule that cannot be parsed. */
export class InvalidBackoffSchedule extends Schema.TaggedError<InvalidBackoffSchedule>()("InvalidBackoffSchedule", {
  input: Schema.String,
  message: Schema.String
}) {}

/** A delivery target that the SSRF guard refuses (private, loopback, metadata addresses...). */
export class BlockedAddress extends Schema.TaggedError<BlockedAddress>()("BlockedAddress", {
  url: Schema.String,
  address: Schema.String,
  message: Schema.String
}) {}

/** Why a storage or queue operation failed; `Unavailable` is worth retrying, the others are not. */
export const StorageErrorReason = Schema.Literals(["Unavailable", "Conflict", "Unknown"])
export type StorageErrorReason = typeof StorageErrorReason.Type

/** An infrastructure failure of a Storage or Queue implementation. */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  reason: StorageErrorReason,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  /** Whether retrying the same operation later may succeed. */
  get isRetryable(): boolean {
    return this.reason === "Unavailable"
  }
}

/** Everything ingestion can refuse an event with. */
export type IngestError =
  | Unauthorized
  | NotFound
  | PayloadTooLarge
  | InvalidJson
  | ValidationFailed
  | EventTypeNotSubscribed
  | InvalidSignature
  | TimestampOutOfRange
  | IdempotencyConflict
  | StorageError
