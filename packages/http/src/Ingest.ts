/**
 * The ingest route (`POST /e/:endpoint_id` and `POST /api/v1/e/:endpoint_id`) as one function from the
 * parts of a request to a plain `Answer`. The router serves it, and so does the Node server's direct
 * ingest path (which skips effect's HTTP server for the hottest route): both give the same answers
 * because both run this.
 *
 * @since 0.1.0
 */
import { Accounts, Ingestion, Quota } from "@promptjang/core"
import type { Principal } from "@promptjang/core/Accounts"
import type { Plan } from "@promptjang/core/Domain"
import type { IngestResult } from "@promptjang/core/Ingestion"
import { Effect } from "effect"
import * as ApiError from "./ApiError.ts"

/** What the route reads of a request. */
export interface IngestRequest {
  /** The `:endpoint_id` of the path, as sent. */
  readonly endpointId: string
  /** A request header by its lowercase name. */
  readonly header: (name: string) => string | undefined
  /** The body, at most `limit` bytes: undefined when it is larger (and then it is not read in full). */
  readonly body: (limit: number) => Effect.Effect<Uint8Array | undefined>
}

/** The token of `Authorization: Bearer <token>`. */
export const bearerOf = (authorization: string | undefined): string | undefined => {
  if (authorization === undefined) return undefined
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
  return match?.[1]
}

/** Whether a `Content-Type` names JSON (`application/json` or any `+json` type). */
export const isJsonType = (contentType: string | undefined): boolean => {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? ""
  return type === "application/json" || type.endsWith("+json")
}

/** The 415 answer for a body not declared as JSON. */
export const unsupportedMediaType = (contentType: string | undefined): ApiError.Answer =>
  ApiError.answer(
    415,
    "unsupported_media_type",
    `Send the body as JSON with "Content-Type: application/json" (got ${contentType ?? "no Content-Type"}).`
  )

const accepted = (result: IngestResult): ApiError.Answer =>
  ApiError.answerJson(202, { id: result.id, status: result.status, message: "Event received and queued for delivery" })

/** The ingest route over the engine: every outcome, failures included, is an answer. */
export const make = Effect.gen(function*() {
  const accounts = yield* Accounts.Accounts
  const ingestion = yield* Ingestion.Ingestion
  const plans = yield* Quota.Plans

  const acceptOnPlan = (request: IngestRequest, principal: Principal, plan: Plan) =>
    Effect.flatMap(request.body(plan.maxPayloadBytes), (body) =>
      body === undefined
        ? Effect.fail(Quota.payloadTooLarge(plan, undefined))
        : Effect.map(
          ingestion.accept(principal, {
            endpointId: request.endpointId,
            body,
            signature: request.header("x-pj-signature"),
            timestamp: request.header("x-pj-timestamp"),
            idempotencyKey: request.header("idempotency-key")
          }),
          accepted
        ))

  // Every event's path, in plain steps rather than a generator (see Ingestion.accept). Suspended, so that
  // nothing runs before the answer is asked for and anything thrown is a defect answered with a 500.
  return (request: IngestRequest): Effect.Effect<ApiError.Answer> =>
    Effect.suspend(() =>
      Effect.flatMap(
        // The key is checked again in the write that stores the event, so a cached principal is safe here.
        accounts.authenticateForIngest(bearerOf(request.header("authorization"))),
        (principal) => {
          const contentType = request.header("content-type")
          if (!isJsonType(contentType)) return Effect.succeed(unsupportedMediaType(contentType))
          return Quota.withEffectivePlan(
            plans,
            principal.organization.plan,
            (plan) => acceptOnPlan(request, principal, plan)
          )
        }
      )
    ).pipe(
      Effect.catch(ApiError.answerEngineError),
      Effect.catchCause(ApiError.answerDefect)
    )
})
