/**
 * The API definition with effect's `HttpApi`: the schema of every route of
 * SPEC §2, from which the OpenAPI document (`/api/v1/openapi.json`), the docs
 * UI (`/docs`) and the typed client are derived. The handlers serving these
 * routes are in `Routes.ts`; a test checks that both agree.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"

/** The body of every error. */
export const ErrorBody = Schema.Struct({
  error: Schema.Struct({
    code: Schema.String,
    message: Schema.String,
    details: Schema.optionalKey(Schema.Array(Schema.Struct({ path: Schema.String, message: Schema.String })))
  })
})

const errors = (...statuses: ReadonlyArray<number>) =>
  statuses.map((status) => ErrorBody.pipe(HttpApiSchema.status(status)))

const Timestamp = Schema.String.annotate({ description: "ISO 8601 time (UTC)" })
const Status = Schema.Literals(["QUEUED", "RETRYING", "DELIVERED", "EXPIRED", "FAILED"])

/** An endpoint (`secret` only in the answer to its creation). */
export const Endpoint = Schema.Struct({
  id: Schema.String,
  url: Schema.String,
  secret: Schema.optionalKey(Schema.String),
  description: Schema.String,
  event_types: Schema.Array(Schema.String),
  enabled: Schema.Boolean,
  require_signature: Schema.Boolean,
  headers: Schema.Record(Schema.String, Schema.String),
  created_at: Timestamp,
  updated_at: Timestamp
})

/** One delivery attempt. */
export const Attempt = Schema.Struct({
  id: Schema.String,
  attempt: Schema.Int,
  cycle: Schema.Int,
  status_code: Schema.NullOr(Schema.Int),
  response_body: Schema.NullOr(Schema.String),
  duration_ms: Schema.Int,
  error: Schema.NullOr(Schema.String),
  succeeded: Schema.Boolean,
  created_at: Timestamp
})

/** An event (`attempts` on the single-event read). */
export const Event = Schema.Struct({
  id: Schema.String,
  endpoint_id: Schema.String,
  event_type: Schema.NullOr(Schema.String),
  status: Status,
  payload: Schema.Unknown,
  attempts: Schema.optionalKey(Schema.Array(Attempt)),
  attempt_count: Schema.Int,
  next_attempt_at: Schema.NullOr(Timestamp),
  created_at: Timestamp,
  updated_at: Timestamp
})

const page = <S extends Schema.Top>(item: S) =>
  Schema.Struct({ data: Schema.Array(item), next_cursor: Schema.NullOr(Schema.String) })

/** The body of `POST /api/v1/endpoints`. */
export const EndpointInput = Schema.Struct({
  url: Schema.String,
  description: Schema.optionalKey(Schema.String),
  event_types: Schema.optionalKey(Schema.Array(Schema.String)),
  enabled: Schema.optionalKey(Schema.Boolean),
  require_signature: Schema.optionalKey(Schema.Boolean),
  headers: Schema.optionalKey(Schema.Record(Schema.String, Schema.String))
})
/** The body of `PATCH /api/v1/endpoints/:id`: any field of an endpoint. */
export const EndpointPatch = Schema.Struct({
  url: Schema.optionalKey(Schema.String),
  description: Schema.optionalKey(Schema.String),
  event_types: Schema.optionalKey(Schema.Array(Schema.String)),
  enabled: Schema.optionalKey(Schema.Boolean),
  require_signature: Schema.optionalKey(Schema.Boolean),
  headers: Schema.optionalKey(Schema.Record(Schema.String, Schema.String))
})
const Id = { id: Schema.String }
const PageQuery = { limit: Schema.optionalKey(Schema.String), cursor: Schema.optionalKey(Schema.String) }

/** The answer to an accepted event. */
export const Accepted = Schema.Struct({
  id: Schema.String,
  status: Schema.Literal("QUEUED"),
  message: Schema.String
})

/** The body of `POST /api/v1/api-keys`. */
export const ApiKeyInput = Schema.Struct({ name: Schema.optionalKey(Schema.String) })

/** The body of `POST /api/v1/organizations`. */
export const OrganizationInput = Schema.Struct({ name: Schema.String, plan: Schema.optionalKey(Schema.String) })

/** An API key record (never the key itself). */
export const ApiKeyItem = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  prefix: Schema.String,
  created_at: Timestamp,
  last_used_at: Schema.NullOr(Timestamp),
  revoked_at: Schema.NullOr(Timestamp)
})
/** The answer to creating an API key: the only time `key` is shown. */
export const ApiKeyCreated = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  key: Schema.String,
  prefix: Schema.String,
  created_at: Timestamp
})
/** Usage of the current billing period against the plan. */
export const Usage = Schema.Struct({
  plan: Schema.String,
  period_start: Timestamp,
  period_end: Timestamp,
  events: Schema.Int,
  included_events: Schema.Int,
  overage_units: Schema.Int,
  overage_cents: Schema.Int,
  retention_days: Schema.Int,
  max_payload_bytes: Schema.Int
})

const ingest = <const Name extends string, const Path extends `/${string}`>(name: Name, path: Path) =>
  HttpApiEndpoint.post(name, path, {
    params: { endpoint_id: Schema.String },
    headers: {
      "x-pj-signature": Schema.optionalKey(Schema.String),
      "x-pj-timestamp": Schema.optionalKey(Schema.String),
      "idempotency-key": Schema.optionalKey(Schema.String)
    },
    payload: Schema.Record(Schema.String, Schema.Unknown),
    success: Accepted.pipe(HttpApiSchema.status(202)),
    error: errors(400, 401, 404, 409, 413, 415, 422, 503)
  })

/** Endpoints. */
export class EndpointsGroup extends HttpApiGroup.make("endpoints").add(
  HttpApiEndpoint.post("create", "/api/v1/endpoints", {
    payload: EndpointInput,
    success: Endpoint.pipe(HttpApiSchema.status(201)),
    error: errors(400, 401, 415)
  }),
  HttpApiEndpoint.get("list", "/api/v1/endpoints", {
    query: PageQuery,
    success: page(Endpoint),
    error: errors(400, 401)
  }),
  HttpApiEndpoint.get("get", "/api/v1/endpoints/:id", { params: Id, success: Endpoint, error: errors(401, 404) }),
  HttpApiEndpoint.get("secret", "/api/v1/endpoints/:id/secret", {
    params: Id,
    success: Schema.Struct({ secret: Schema.String }),
    error: errors(401, 404)
  }),
  HttpApiEndpoint.post("rotateSecret", "/api/v1/endpoints/:id/secret/rotate", {
    params: Id,
    success: Schema.Struct({ secret: Schema.String }),
    error: errors(401, 404)
  }),
  HttpApiEndpoint.patch("update", "/api/v1/endpoints/:id", {
    params: Id,
    payload: EndpointPatch,
    success: Endpoint,
    error: errors(400, 401, 404, 415)
  }),
  HttpApiEndpoint.delete("remove", "/api/v1/endpoints/:id", { params: Id, error: errors(401, 404) })
) {}

/** Sending events. */
export class IngestGroup extends HttpApiGroup.make("ingest").add(
  ingest("post", "/e/:endpoint_id"),
  ingest("postV1", "/api/v1/e/:endpoint_id")
) {}

/** Events. */
export class EventsGroup extends HttpApiGroup.make("events").add(
  HttpApiEndpoint.get("list", "/api/v1/events", {
    query: {
      ...PageQuery,
      endpoint_id: Schema.optionalKey(Schema.String),
      status: Schema.optionalKey(Status),
      event_type: Schema.optionalKey(Schema.String)
    },
    success: page(Event),
    error: errors(400, 401)
  }),
  HttpApiEndpoint.get("get", "/api/v1/events/:id", { params: Id, success: Event, error: errors(401, 404) }),
  HttpApiEndpoint.post("replay", "/api/v1/events/:id/replay", {
    params: Id,
    success: Event.pipe(HttpApiSchema.status(202)),
    error: errors(401, 404, 409)
  })
) {}

/** API keys and usage. */
export class AccountGroup extends HttpApiGroup.make("account").add(
  HttpApiEndpoint.post("createApiKey", "/api/v1/api-keys", {
    payload: ApiKeyInput,
    success: ApiKeyCreated.pipe(HttpApiSchema.status(201)),
    error: errors(400, 401)
  }),
  HttpApiEndpoint.get("listApiKeys", "/api/v1/api-keys", { success: page(ApiKeyItem), error: errors(401) }),
  HttpApiEndpoint.delete("revokeApiKey", "/api/v1/api-keys/:id", { params: Id, error: errors(401, 404) }),
  HttpApiEndpoint.get("usage", "/api/v1/usage", { success: Usage, error: errors(401) })
) {}

/** Operators: organizations (with `PROMPTJANG_ADMIN_TOKEN`) and health. */
export class OperatorGroup extends HttpApiGroup.make("operator").add(
  HttpApiEndpoint.post("createOrganization", "/api/v1/organizations", {
    payload: OrganizationInput,
    success: Schema.Struct({ id: Schema.String, name: Schema.String, plan: Schema.String, api_key: Schema.String })
      .pipe(
        HttpApiSchema.status(201)
      ),
    error: errors(400, 401, 404)
  }),
  HttpApiEndpoint.get("healthz", "/healthz", { success: Schema.Struct({ status: Schema.String }) }),
  HttpApiEndpoint.get("readyz", "/readyz", { success: Schema.Struct({ status: Schema.String }), error: errors(503) })
) {}

/** The whole API. */
export class Api extends HttpApi.make("promptjang")
  .add(EndpointsGroup)
  .add(IngestGroup)
  .add(EventsGroup)
  .add(AccountGroup)
  .add(OperatorGroup)
  .annotateMerge(OpenApi.annotations({
    title: "PromptJang API",
    version: "0.1.0",
    description:
      "Webhook delivery: endpoints, events, attempts, replays, API keys and usage. Authenticate with `Authorization: Bearer pj_live_…`."
  }))
{}

/** The OpenAPI document of the API. */
export const openApi = () => OpenApi.fromApi(Api)
