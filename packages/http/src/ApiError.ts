/**
 * Every error the API answers with: a status code and
 * `{"error": {"code": "<snake_case>", "message": "<sentence>", "details"?: [...]}}` (SPEC §2).
 * Never a stack trace, never an empty body.
 *
 * @since 0.1.0
 */
import type { Errors } from "@promptjang/core"
import { Effect } from "effect"
import { HttpServerResponse } from "effect/http"

/** The body of every error response. */
export interface ErrorBody {
  readonly error: {
    readonly code: string
    readonly message: string
    readonly details?: ReadonlyArray<{ readonly path: string; readonly message: string }>
  }
}

/** An error response. */
export const respond = (
  status: number,
  code: string,
  message: string,
  options: {
    readonly details?: ReadonlyArray<{ readonly path: string; readonly message: string }> | undefined
    readonly headers?: Record<string, string> | undefined
  } = {}
): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.jsonUnsafe(
    {
      error: { code, message, ...(options.details === undefined ? {} : { details: options.details }) }
    } satisfies ErrorBody,
    { status, headers: options.headers ?? {} }
  )

/** Seconds a client should wait before retrying while the database is unreachable. */
export const RETRY_AFTER_SECONDS = 5

/** Every error the engine can fail a request with. */
export type EngineError =
  | Errors.Unauthorized
  | Errors.InvalidSignature
  | Errors.TimestampOutOfRange
  | Errors.NotFound
  | Errors.EventInFlight
  | Errors.IdempotencyConflict
  | Errors.PayloadTooLarge
  | Errors.InvalidJson
  | Errors.ValidationFailed
  | Errors.EventTypeNotSubscribed
  | Errors.StorageError

/** The response for an engine error. Storage failures are logged (without bodies or keys). */
export const fromEngineError = (error: EngineError): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  switch (error._tag) {
    case "Unauthorized":
      return Effect.succeed(respond(401, "unauthorized", error.message))
    case "InvalidSignature":
      return Effect.succeed(respond(401, "invalid_signature", error.message))
    case "TimestampOutOfRange":
      return Effect.succeed(respond(401, "timestamp_out_of_range", error.message))
    case "NotFound":
      return Effect.succeed(respond(404, "not_found", error.message))
    case "EventInFlight":
      return Effect.succeed(respond(409, "event_in_flight", error.message))
    case "IdempotencyConflict":
      return Effect.succeed(respond(409, "idempotency_conflict", error.message))
    case "PayloadTooLarge":
      return Effect.succeed(respond(413, "payload_too_large", error.message))
    case "InvalidJson":
      return Effect.succeed(respond(400, "invalid_json", error.message))
    case "ValidationFailed":
      return Effect.succeed(respond(400, "validation_failed", error.message, { details: error.details }))
    case "EventTypeNotSubscribed":
      return Effect.succeed(respond(422, "event_type_not_subscribed", error.message))
    case "StorageError":
      return Effect.as(
        Effect.logError("Database error while serving a request").pipe(
          Effect.annotateLogs({ reason: error.reason, cause: error.message })
        ),
        error.isRetryable
          ? respond(503, "unavailable", "The database is unreachable right now; retry shortly.", {
            headers: { "retry-after": String(RETRY_AFTER_SECONDS) }
          })
          : respond(500, "internal_error", "The server failed to complete the request; it has been logged.")
      )
  }
}
