/**
 * Every error the API answers with: a status code and
 * `{"error": {"code": "<snake_case>", "message": "<sentence>", "details"?: [...]}}` (SPEC §2).
 * Never a stack trace, never an empty body.
 *
 * @since 0.1.0
 */
import type { Errors } from "@promptjang/core"
import { Cause, Effect } from "effect"
import { HttpServerResponse } from "effect/http"

/** The body of every error response. */
export interface ErrorBody {
  readonly error: {
    readonly code: string
    readonly message: string
    readonly details?: ReadonlyArray<{ readonly path: string; readonly message: string }>
  }
}

/**
 * A response as plain data: a status, extra headers and a JSON body. Every answer of the API is JSON, so
 * the content type is implied. Hosts that write to the socket themselves (the Node server's ingest path)
 * use it as it is; the router turns it into an `HttpServerResponse` with `toResponse`.
 */
export interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  /** JSON text. */
  readonly body: string
}

/** A JSON answer. */
export const answerJson = (status: number, body: unknown, headers: Record<string, string> = {}): Answer => ({
  status,
  headers,
  body: JSON.stringify(body)
})

/** An error answer. */
export const answer = (
  status: number,
  code: string,
  message: string,
  options: {
    readonly details?: ReadonlyArray<{ readonly path: string; readonly message: string }> | undefined
    readonly headers?: Record<string, string> | undefined
  } = {}
): Answer =>
  answerJson(
    status,
    {
      error: { code, message, ...(options.details === undefined ? {} : { details: options.details }) }
    } satisfies ErrorBody,
    options.headers
  )

/** The answer as effect's `HttpServerResponse`. */
export const toResponse = (answer: Answer): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(answer.body, {
    status: answer.status,
    headers: answer.headers,
    contentType: "application/json"
  })

/** An error response. */
export const respond = (...args: Parameters<typeof answer>): HttpServerResponse.HttpServerResponse =>
  toResponse(answer(...args))

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

/** The answer for an engine error. Storage failures are logged (without bodies or keys). */
export const answerEngineError = (error: EngineError): Effect.Effect<Answer> => {
  switch (error._tag) {
    case "Unauthorized":
      return Effect.succeed(answer(401, "unauthorized", error.message))
    case "InvalidSignature":
      return Effect.succeed(answer(401, "invalid_signature", error.message))
    case "TimestampOutOfRange":
      return Effect.succeed(answer(401, "timestamp_out_of_range", error.message))
    case "NotFound":
      return Effect.succeed(answer(404, "not_found", error.message))
    case "EventInFlight":
      return Effect.succeed(answer(409, "event_in_flight", error.message))
    case "IdempotencyConflict":
      return Effect.succeed(answer(409, "idempotency_conflict", error.message))
    case "PayloadTooLarge":
      return Effect.succeed(answer(413, "payload_too_large", error.message))
    case "InvalidJson":
      return Effect.succeed(answer(400, "invalid_json", error.message))
    case "ValidationFailed":
      return Effect.succeed(answer(400, "validation_failed", error.message, { details: error.details }))
    case "EventTypeNotSubscribed":
      return Effect.succeed(answer(422, "event_type_not_subscribed", error.message))
    case "StorageError":
      return Effect.as(
        Effect.logError("Database error while serving a request").pipe(
          Effect.annotateLogs({ reason: error.reason, cause: error.message })
        ),
        error.isRetryable
          ? answer(503, "unavailable", "The database is unreachable right now; retry shortly.", {
            headers: { "retry-after": String(RETRY_AFTER_SECONDS) }
          })
          : internalError
      )
  }
}

/** The response for an engine error. Storage failures are logged (without bodies or keys). */
export const fromEngineError = (error: EngineError): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.map(answerEngineError(error), toResponse)

const internalError = answer(500, "internal_error", "The server failed to complete the request; it has been logged.")

/**
 * The answer for a request that failed unexpectedly (a defect): logged, then 500 without details. An
 * interruption stays an interruption.
 */
export const answerDefect = (cause: Cause.Cause<unknown>): Effect.Effect<Answer> =>
  Cause.hasInterruptsOnly(cause) ? Effect.interrupt : Effect.as(
    Effect.logError("Unexpected failure while serving a request").pipe(
      Effect.annotateLogs({ cause: Cause.pretty(cause) })
    ),
    internalError
  )
