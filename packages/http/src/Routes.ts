/**
 * The routes of SPEC §2 on effect's `HttpRouter`, over the engine services.
 *
 * Every response is JSON; every failure is `{"error": {"code", "message"}}`
 * with the status SPEC §2 names, including unknown routes (404), wrong
 * methods (405), wrong content types (415) and bodies that fail validation
 * (400 with `details`). Ingest reads the exact bytes and stops reading past the
 * plan's payload limit (413).
 *
 * @since 0.1.0
 */
import { Accounts, Endpoints, Events, Replay } from "@promptjang/core"
import type { EventStatus } from "@promptjang/core/Domain"
import type { ApiKeyId, EndpointId, EventId, OrganizationId } from "@promptjang/core/Ids"
import { ByteSize, Context, Data, Effect, Layer, Redacted, Schema, SchemaIssue } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiScalar } from "effect/http-api"
import * as Api from "./Api.ts"
import * as ApiError from "./ApiError.ts"
import * as Ingest from "./Ingest.ts"
import * as Json from "./Json.ts"

/** Settings of the API. */
export interface ApiOptions {
  /** The token of `POST /api/v1/organizations`; without one that route answers 404. */
  readonly adminToken: Redacted.Redacted<string> | undefined
}

/** The current settings (no admin token). */
export const Options = Context.Reference<ApiOptions>("@promptjang/http/Routes/Options", {
  defaultValue: () => ({ adminToken: undefined })
})

/** The most a JSON request body of the management API may weigh. */
const MAX_API_BODY = 1024 * 1024

type Handler<R> = Effect.Effect<HttpServerResponse.HttpServerResponse, never, R | HttpServerRequest.HttpServerRequest>

const json = (body: unknown, status = 200) => HttpServerResponse.jsonUnsafe(body, { status })

/** Runs a handler, turning every failure into the JSON error of SPEC §2; defects are logged and answered 500. */
const guarded = <R>(
  effect: Effect.Effect<HttpServerResponse.HttpServerResponse, ApiError.EngineError | Reply, R>
): Handler<R> =>
  effect.pipe(
    Effect.catch((
      error
    ) => (error._tag === "Reply" ? Effect.succeed(error.response) : ApiError.fromEngineError(error))),
    Effect.catchCause((cause) => Effect.map(ApiError.answerDefect(cause), ApiError.toResponse))
  )

/** A ready answer that short-circuits a handler (a refusal of the HTTP layer itself). */
class Reply extends Data.TaggedError("Reply")<{ readonly response: HttpServerResponse.HttpServerResponse }> {}
const reply = (
  status: number,
  code: string,
  message: string,
  details?: ReadonlyArray<{ path: string; message: string }>
) => Effect.fail(new Reply({ response: ApiError.respond(status, code, message, { details }) }))

const bearerOf = (request: HttpServerRequest.HttpServerRequest) => Ingest.bearerOf(request.headers["authorization"])

const unsupportedMediaType = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.fail(
    new Reply({ response: ApiError.toResponse(Ingest.unsupportedMediaType(request.headers["content-type"])) })
  )

/** Reads a request body of at most `limit` bytes; undefined when it is larger. */
const readBytes = (request: HttpServerRequest.HttpServerRequest, limit: number) => {
  const declared = Number(request.headers["content-length"] ?? Number.NaN)
  if (Number.isFinite(declared) && declared > limit) return Effect.succeed(undefined)
  return request.arrayBuffer.pipe(
    Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(limit)),
    Effect.map((buffer): Uint8Array | undefined => new Uint8Array(buffer)),
    Effect.catch((error) =>
      "reason" in error && error.reason._tag === "RequestParseError" && error.reason.reason === "BodyTooLarge"
        ? Effect.succeed(undefined)
        : Effect.die(error)
    )
  )
}

const issuesOf = (error: Schema.SchemaError) =>
  SchemaIssue.makeFormatterStandardSchemaV1()(error.issue).issues.map((issue) => ({
    path: (issue.path ?? []).map((segment) => String(typeof segment === "object" ? segment.key : segment)).join(".") ||
      "(body)",
    message: issue.message
  }))

/** Reads and validates a JSON body against `schema`. */
const readJson = <S extends Schema.Top>(schema: S) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (!Ingest.isJsonType(request.headers["content-type"])) return yield* unsupportedMediaType(request)
    const bytes = yield* readBytes(request, MAX_API_BODY)
    if (bytes === undefined) {
      return yield* reply(413, "payload_too_large", `Request bodies of this API are limited to ${MAX_API_BODY} bytes.`)
    }
    let value: unknown
    try {
      value = JSON.parse(new TextDecoder().decode(bytes))
    } catch (error) {
      return yield* reply(
        400,
        "invalid_json",
        `The body is not valid JSON (${String(error instanceof Error ? error.message : error)}).`
      )
    }
    return yield* Schema.decodeUnknownEffect(schema)(value, { errors: "all" }).pipe(
      Effect.catchTag("SchemaError", (error) => {
        const details = issuesOf(error)
        const first = details[0]
        return reply(
          400,
          "validation_failed",
          first === undefined ? "The body is not valid." : `Invalid ${first.path}: ${first.message}.`,
          details
        )
      })
    )
  })

const queryOf = (request: HttpServerRequest.HttpServerRequest) => new URL(request.url, "http://localhost").searchParams

/** `limit` (1..100, default 20) and `cursor`. */
const pageOf = (request: HttpServerRequest.HttpServerRequest) => {
  const query = queryOf(request)
  const limitText = query.get("limit")
  const limit = limitText === null ? 20 : Number(limitText)
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    return reply(400, "validation_failed", "limit must be a whole number from 1 to 100.", [
      { path: "limit", message: "must be a whole number from 1 to 100" }
    ])
  }
  const cursor = query.get("cursor") ?? undefined
  return Effect.succeed({ limit, cursor })
}

const paramOf = (name: string) => Effect.map(HttpRouter.params, (params) => params[name] ?? "")

const READINESS_PROBE = "org_0000000000000000000000000000" as OrganizationId

const STATUSES: ReadonlyArray<EventStatus> = ["QUEUED", "RETRYING", "DELIVERED", "EXPIRED", "FAILED"]

// -- routes ----------------------------------------------------------------------------------------------------

/** The patterns served, for 405 answers on known paths. */
const KNOWN: ReadonlyArray<readonly [string, RegExp]> = [
  ["GET, POST", /^\/api\/v1\/endpoints$/],
  ["GET, PATCH, DELETE", /^\/api\/v1\/endpoints\/[^/]+$/],
  ["GET", /^\/api\/v1\/endpoints\/[^/]+\/secret$/],
  ["POST", /^\/api\/v1\/endpoints\/[^/]+\/secret\/rotate$/],
  ["POST", /^\/e\/[^/]+$/],
  ["POST", /^\/api\/v1\/e\/[^/]+$/],
  ["GET", /^\/api\/v1\/events$/],
  ["GET", /^\/api\/v1\/events\/[^/]+$/],
  ["POST", /^\/api\/v1\/events\/[^/]+\/replay$/],
  ["GET, POST", /^\/api\/v1\/api-keys$/],
  ["DELETE", /^\/api\/v1\/api-keys\/[^/]+$/],
  ["GET", /^\/api\/v1\/usage$/],
  ["POST", /^\/api\/v1\/organizations$/],
  ["GET", /^\/healthz$/],
  ["GET", /^\/readyz$/],
  ["GET", /^\/metrics$/],
  ["GET", /^\/api\/v1\/openapi\.json$/],
  ["GET", /^\/docs$/]
]

/** The API routes (SPEC §2) with the OpenAPI document and the docs UI, without the answer for other paths. */
export const api = Layer.merge(
  HttpApiScalar.layer(Api.Api, { path: "/docs" }),
  HttpRouter.use(Effect.fnUntraced(function*(router) {
    const endpoints = yield* Endpoints.Endpoints
    const events = yield* Events.Events
    const replay = yield* Replay.Replay
    const accounts = yield* Accounts.Accounts
    const options = yield* Options

    /** The caller's organization, from the API key. */
    const authenticate = Effect.flatMap(
      HttpServerRequest.HttpServerRequest,
      (request) => accounts.authenticate(bearerOf(request))
    )

    const answerIngest = yield* Ingest.make
    const ingest = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const answer = yield* answerIngest({
        endpointId: yield* paramOf("endpoint_id"),
        header: (name) => request.headers[name],
        body: (limit) => readBytes(request, limit)
      })
      return ApiError.toResponse(answer)
    })
    yield* router.add("POST", "/e/:endpoint_id", ingest)
    yield* router.add("POST", "/api/v1/e/:endpoint_id", ingest)

    yield* router.add(
      "POST",
      "/api/v1/endpoints",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        const body = yield* readJson(Api.EndpointInput)
        const created = yield* endpoints.create(organization.id, {
          url: body.url,
          description: body.description,
          eventTypes: body.event_types,
          enabled: body.enabled,
          requireSignature: body.require_signature,
          headers: body.headers
        })
        return json(Json.endpoint(created, { withSecret: true }), 201)
      }))
    )
    yield* router.add(
      "GET",
      "/api/v1/endpoints",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        const page = yield* pageOf(yield* HttpServerRequest.HttpServerRequest)
        const result = yield* endpoints.list(organization.id, page)
        return json({ data: result.data.map((e) => Json.endpoint(e)), next_cursor: result.nextCursor })
      }))
    )
    yield* router.add(
      "GET",
      "/api/v1/endpoints/:id",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        return json(Json.endpoint(yield* endpoints.get(organization.id, (yield* paramOf("id")) as EndpointId)))
      }))
    )
    yield* router.add(
      "GET",
      "/api/v1/endpoints/:id/secret",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        const endpoint = yield* endpoints.get(organization.id, (yield* paramOf("id")) as EndpointId)
        return json({ secret: endpoint.secret })
      }))
    )
    yield* router.add(
      "POST",
      "/api/v1/endpoints/:id/secret/rotate",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        const endpoint = yield* endpoints.rotateSecret(organization.id, (yield* paramOf("id")) as EndpointId)
        return json({ secret: endpoint.secret })
      }))
    )
    yield* router.add(
      "PATCH",
      "/api/v1/endpoints/:id",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        const body = yield* readJson(Api.EndpointPatch)
        const updated = yield* endpoints.update(organization.id, (yield* paramOf("id")) as EndpointId, {
          ...(body.url === undefined ? {} : { url: body.url }),
          ...(body.description === undefined ? {} : { description: body.description }),
          ...(body.event_types === undefined ? {} : { eventTypes: body.event_types }),
          ...(body.enabled === undefined ? {} : { enabled: body.enabled }),
          ...(body.require_signature === undefined ? {} : { requireSignature: body.require_signature }),
          ...(body.headers === undefined ? {} : { headers: body.headers })
        })
        return json(Json.endpoint(updated))
      }))
    )
    yield* router.add(
      "DELETE",
      "/api/v1/endpoints/:id",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        yield* endpoints.remove(organization.id, (yield* paramOf("id")) as EndpointId)
        return HttpServerResponse.empty({ status: 204 })
      }))
    )

    yield* router.add(
      "GET",
      "/api/v1/events",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        const request = yield* HttpServerRequest.HttpServerRequest
        const page = yield* pageOf(request)
        const query = queryOf(request)
        const status = query.get("status") ?? undefined
        if (status !== undefined && !STATUSES.includes(status as EventStatus)) {
          return yield* reply(400, "validation_failed", `status must be one of ${STATUSES.join(", ")}.`, [
            { path: "status", message: `must be one of ${STATUSES.join(", ")}` }
          ])
        }
        const result = yield* events.list(organization.id, {
          endpointId: (query.get("endpoint_id") ?? undefined) as EndpointId | undefined,
          status: status as EventStatus | undefined,
          eventType: query.get("event_type") ?? undefined
        }, page)
        return json({ data: result.data.map((e) => Json.event(e)), next_cursor: result.nextCursor })
      }))
    )
    yield* router.add(
      "GET",
      "/api/v1/events/:id",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        const { attempts, event } = yield* events.get(organization.id, (yield* paramOf("id")) as EventId)
        return json(Json.event(event, attempts))
      }))
    )
    yield* router.add(
      "POST",
      "/api/v1/events/:id/replay",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        const event = yield* replay.replay(organization.id, (yield* paramOf("id")) as EventId)
        return json(Json.event(event), 202)
      }))
    )

    yield* router.add(
      "POST",
      "/api/v1/api-keys",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        const request = yield* HttpServerRequest.HttpServerRequest
        const hasBody = (request.headers["content-length"] ?? "0") !== "0" ||
          request.headers["transfer-encoding"] !== undefined
        const body = hasBody ? yield* readJson(Api.ApiKeyInput) : {}
        const created = yield* Effect.catchTag(
          accounts.createApiKey(organization.id, body.name ?? "API key"),
          "NotFound",
          (e) => Effect.die(e)
        )
        return json({
          id: created.record.id,
          name: created.record.name,
          key: created.key,
          prefix: created.record.prefix,
          created_at: new Date(created.record.createdAt).toISOString()
        }, 201)
      }))
    )
    yield* router.add(
      "GET",
      "/api/v1/api-keys",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        const keys = yield* accounts.listApiKeys(organization.id)
        return json({ data: keys.map(Json.apiKey), next_cursor: null })
      }))
    )
    yield* router.add(
      "DELETE",
      "/api/v1/api-keys/:id",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        yield* accounts.revokeApiKey(organization.id, (yield* paramOf("id")) as ApiKeyId)
        return HttpServerResponse.empty({ status: 204 })
      }))
    )
    yield* router.add(
      "GET",
      "/api/v1/usage",
      guarded(Effect.gen(function*() {
        const { organization } = yield* authenticate
        return json(Json.usage(yield* accounts.usage(organization.id)))
      }))
    )

    yield* router.add(
      "POST",
      "/api/v1/organizations",
      guarded(Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (options.adminToken === undefined) {
          return yield* reply(
            404,
            "not_found",
            "No route POST /api/v1/organizations: set PROMPTJANG_ADMIN_TOKEN to enable it."
          )
        }
        const token = bearerOf(request)
        if (token === undefined || !constantTimeEquals(token, Redacted.value(options.adminToken))) {
          return yield* reply(
            401,
            "unauthorized",
            "Send `Authorization: Bearer <PROMPTJANG_ADMIN_TOKEN>` to create organizations."
          )
        }
        const body = yield* readJson(Api.OrganizationInput)
        const { apiKey, organization } = yield* accounts.createOrganization({ name: body.name, plan: body.plan })
        return json({ id: organization.id, name: organization.name, plan: organization.plan, api_key: apiKey.key }, 201)
      }))
    )

    const openApiDocument = Api.openApi()
    yield* router.add("GET", "/api/v1/openapi.json", Effect.sync(() => json(openApiDocument)))
    yield* router.add("GET", "/healthz", json({ status: "ok" }))
    yield* router.add(
      "GET",
      "/readyz",
      guarded(Effect.gen(function*() {
        // A lookup by primary key: proves the database answers, without load.
        yield* accounts.getOrganization(READINESS_PROBE).pipe(Effect.catchTag("NotFound", () => Effect.void))
        return json({ status: "ready" })
      }))
    )
  }))
)

/**
 * Anything else: 405 on a known path with another method, 404 otherwise, always as JSON. The router takes
 * the first route registered for `/`, and this one claims `/` too, so it goes after every other route.
 */
export const fallback = HttpRouter.use(Effect.fnUntraced(function*(router) {
  yield* router.add("*", "/*", (request) => {
    const path = new URL(request.url, "http://localhost").pathname
    const known = KNOWN.find(([, pattern]) => pattern.test(path))
    return Effect.succeed(
      known === undefined
        ? ApiError.respond(404, "not_found", `No route ${request.method} ${path}; see /docs for the API.`)
        : ApiError.respond(405, "method_not_allowed", `${path} accepts ${known[0]}, not ${request.method}.`, {
          headers: { allow: known[0] }
        })
    )
  })
}))

/**
 * The API routes, then `extra` routes (a host's own, such as `/metrics` or the dashboard at `/`), then the
 * JSON 404/405 answer for every other path.
 */
export const layerWith = <E, R>(extra: Layer.Layer<never, E, R>) =>
  fallback.pipe(Layer.provide(Layer.merge(api, extra)))

/** The API routes and the JSON 404/405 answer for every other path. */
export const layer = layerWith(Layer.empty)

const encoder = new TextEncoder()
const constantTimeEquals = (a: string, b: string): boolean => {
  const left = encoder.encode(a)
  const right = encoder.encode(b)
  let diff = left.length ^ right.length
  for (let i = 0; i < Math.max(left.length, right.length); i++) diff |= (left[i] ?? 0) ^ (right[i] ?? 0)
  return diff === 0
}
