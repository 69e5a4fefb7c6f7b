/**
 * Endpoints: create, read, update, delete, and the signing secret with its
 * rotation (the old secret keeps signing, as a second signature, for 24 hours).
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Option, Result } from "effect"
import type { Endpoint } from "./Domain.ts"
import * as Entropy from "./Entropy.ts"
import { NotFound, type StorageError, ValidationFailed, type ValidationIssue } from "./Errors.ts"
import * as Ids from "./Ids.ts"
import type { EndpointId, OrganizationId } from "./Ids.ts"
import { Lifecycle } from "./Lifecycle.ts"
import * as Signing from "./Signing.ts"
import { type EndpointPatch, type Page, type PageRequest, Storage } from "./Storage.ts"
import * as Targets from "./Targets.ts"

/** How long a rotated-out secret keeps signing. */
export const ROTATION_OVERLAP_MS = 24 * 60 * 60 * 1000

/** Fields of a new endpoint. */
export interface EndpointInput {
  readonly url: string
  readonly description?: string | undefined
  readonly eventTypes?: ReadonlyArray<string> | undefined
  readonly enabled?: boolean | undefined
  readonly requireSignature?: boolean | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Retry delays in milliseconds for this endpoint only (library use). */
  readonly retryDelays?: ReadonlyArray<number> | null | undefined
}

/** Fields an update may change. */
export type EndpointUpdate = Partial<EndpointInput>

/** Header names the engine sets itself; custom headers may not override them. */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  "content-type",
  "content-length",
  "user-agent",
  "host",
  "connection",
  "transfer-encoding",
  "x-promptjang-signature",
  "x-promptjang-event-id",
  "x-promptjang-event-type",
  "x-promptjang-attempt",
  "webhook-id",
  "webhook-timestamp",
  "webhook-signature"
])

const EVENT_TYPE = /^(\*|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(\.\*)?)$/
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** Whether an event type matches an endpoint's filter (empty = everything; `order.*` = a prefix). */
export const acceptsEventType = (eventTypes: ReadonlyArray<string>, eventType: string | null): boolean => {
  if (eventTypes.length === 0) return true
  if (eventType === null) return false
  return eventTypes.some((pattern) =>
    pattern === "*" || pattern === eventType ||
    (pattern.endsWith(".*") && eventType.startsWith(pattern.slice(0, -1)))
  )
}

/** The secrets that sign now: the current one, and the previous one while its overlap lasts. */
export const activeSecrets = (endpoint: Endpoint, now: number): ReadonlyArray<string> =>
  endpoint.previousSecret !== null && endpoint.previousSecretExpiresAt !== null &&
    endpoint.previousSecretExpiresAt > now
    ? [endpoint.secret, endpoint.previousSecret]
    : [endpoint.secret]

/** Checks the fields of an input (all optional, as in an update); every problem is reported. */
export const validate = (
  input: EndpointUpdate,
  policy: Targets.TargetPolicy
): Result.Result<void, ValidationFailed> => {
  const issues: Array<ValidationIssue> = []
  if (input.url !== undefined) {
    const url = Targets.validateUrl(input.url, policy)
    if (Result.isFailure(url)) issues.push(...url.failure.details)
  }
  if (input.description !== undefined && input.description.length > 1000) {
    issues.push({ path: "description", message: "must be at most 1000 characters" })
  }
  for (const [index, type] of (input.eventTypes ?? []).entries()) {
    if (!EVENT_TYPE.test(type)) {
      issues.push({
        path: `event_types.${index}`,
        message:
          `"${type}" is not an event type: use dotted names such as order.created, or a trailing wildcard such as order.*`
      })
    }
  }
  for (const [name, value] of Object.entries(input.headers ?? {})) {
    if (!HEADER_NAME.test(name)) issues.push({ path: `headers.${name}`, message: "is not a valid header name" })
    else if (RESERVED_HEADERS.has(name.toLowerCase())) {
      issues.push({ path: `headers.${name}`, message: "is set by PromptJang and cannot be overridden" })
    }
    if (/[\r\n\0]/.test(value)) issues.push({ path: `headers.${name}`, message: "may not contain line breaks" })
  }
  for (const [index, delay] of (input.retryDelays ?? []).entries()) {
    if (!Number.isInteger(delay) || delay <= 0) {
      issues.push({ path: `retry_delays.${index}`, message: "must be a positive whole number of milliseconds" })
    }
  }
  if (issues.length === 0) return Result.void
  return Result.fail(
    new ValidationFailed({
      message: issues.length === 1 && issues[0] !== undefined
        ? `Invalid ${issues[0].path}: ${issues[0].message.replace(/\.$/, "")}.`
        : `The endpoint has ${issues.length} invalid fields; see details.`,
      details: issues
    })
  )
}

const notFound = (id: string) =>
  new NotFound({ resource: "endpoint", id, message: `No endpoint ${id} in this organization.` })

/** Endpoint management. */
export class Endpoints extends Context.Service<Endpoints, {
  readonly create: (
    organizationId: OrganizationId,
    input: EndpointInput
  ) => Effect.Effect<Endpoint, ValidationFailed | StorageError>
  readonly get: (organizationId: OrganizationId, id: EndpointId) => Effect.Effect<Endpoint, NotFound | StorageError>
  readonly list: (organizationId: OrganizationId, page: PageRequest) => Effect.Effect<Page<Endpoint>, StorageError>
  readonly update: (
    organizationId: OrganizationId,
    id: EndpointId,
    update: EndpointUpdate
  ) => Effect.Effect<Endpoint, NotFound | ValidationFailed | StorageError>
  /** Deletes the endpoint; its QUEUED and RETRYING events become FAILED (observers are told). */
  readonly remove: (organizationId: OrganizationId, id: EndpointId) => Effect.Effect<void, NotFound | StorageError>
  /** Replaces the secret; the old one keeps signing for {@link ROTATION_OVERLAP_MS}. */
  readonly rotateSecret: (
    organizationId: OrganizationId,
    id: EndpointId
  ) => Effect.Effect<Endpoint, NotFound | StorageError>
}>()("@promptjang/core/Endpoints") {}

/** Endpoints over the Storage in context. */
export const make = Effect.gen(function*() {
  const storage = yield* Storage
  const lifecycle = yield* Lifecycle
  const policy = yield* Targets.TargetPolicy
  const withEntropy = Entropy.withSource(yield* Entropy.Entropy)

  const get = Effect.fn("Endpoints.get")(function*(organizationId: OrganizationId, id: EndpointId) {
    const found = yield* storage.getEndpoint(organizationId, id)
    if (Option.isNone(found)) return yield* notFound(id)
    return found.value
  })

  return Endpoints.of({
    create: Effect.fn("Endpoints.create")(function*(organizationId, input) {
      yield* Effect.fromResult(validate(input, policy))
      const now = yield* Clock.currentTimeMillis
      const endpoint: Endpoint = {
        id: yield* Ids.makeEndpointId,
        organizationId,
        url: input.url,
        description: input.description ?? "",
        secret: yield* Signing.generateSecret,
        previousSecret: null,
        previousSecretExpiresAt: null,
        eventTypes: input.eventTypes ?? [],
        enabled: input.enabled ?? true,
        requireSignature: input.requireSignature ?? false,
        headers: input.headers ?? {},
        retryDelays: input.retryDelays ?? null,
        createdAt: now,
        updatedAt: now
      }
      yield* storage.createEndpoint(endpoint)
      return endpoint
    }, withEntropy),
    get,
    list: (organizationId, page) => storage.listEndpoints(organizationId, page),
    update: Effect.fn("Endpoints.update")(function*(organizationId, id, update) {
      yield* Effect.fromResult(validate(update, policy))
      const patch: { -readonly [K in keyof EndpointPatch]: EndpointPatch[K] } = {
        updatedAt: yield* Clock.currentTimeMillis
      }
      if (update.url !== undefined) patch.url = update.url
      if (update.description !== undefined) patch.description = update.description
      if (update.eventTypes !== undefined) patch.eventTypes = update.eventTypes
      if (update.enabled !== undefined) patch.enabled = update.enabled
      if (update.requireSignature !== undefined) patch.requireSignature = update.requireSignature
      if (update.headers !== undefined) patch.headers = update.headers
      if (update.retryDelays !== undefined) patch.retryDelays = update.retryDelays
      const updated = yield* storage.updateEndpoint(organizationId, id, patch)
      if (Option.isNone(updated)) return yield* notFound(id)
      return updated.value
    }),
    remove: Effect.fn("Endpoints.remove")(function*(organizationId, id) {
      const failed = yield* storage.deleteEndpoint(organizationId, id, yield* Clock.currentTimeMillis)
      if (Option.isNone(failed)) return yield* notFound(id)
      for (const event of failed.value) {
        yield* lifecycle.emit({ _tag: "Failed", event, reason: "the endpoint was deleted" })
      }
    }),
    rotateSecret: Effect.fn("Endpoints.rotateSecret")(function*(organizationId, id) {
      const current = yield* get(organizationId, id)
      const now = yield* Clock.currentTimeMillis
      const updated = yield* storage.updateEndpoint(organizationId, id, {
        secret: yield* Signing.generateSecret,
        previousSecret: current.secret,
        previousSecretExpiresAt: now + ROTATION_OVERLAP_MS,
        updatedAt: now
      })
      if (Option.isNone(updated)) return yield* notFound(id)
      return updated.value
    }, withEntropy)
  })
})

/** Endpoints over the Storage in context. */
export const layer: Layer.Layer<Endpoints, never, Storage | Lifecycle> = Layer.effect(Endpoints, make)
