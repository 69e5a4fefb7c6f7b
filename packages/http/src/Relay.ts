/**
 * A Promise-based facade over the engine for apps that do not use Effect.
 *
 * @example
 * ```ts
 * const relay = await createRelay()
 * const { id } = await relay.ingest(apiKey, endpointId, JSON.stringify({ event: "order.created" }))
 * const event = await relay.getEvent(apiKey, id)
 * await relay.close()
 * ```
 *
 * @since 0.1.0
 */
import {
  Accounts,
  Backoff,
  Endpoints,
  Engine,
  Events,
  Ingestion,
  Memory,
  type Queue,
  Replay,
  type Storage,
  Targets
} from "@promptjang/core"
import type { EventStatus } from "@promptjang/core/Domain"
import type { EndpointId, EventId } from "@promptjang/core/Ids"
import type { IngestResult } from "@promptjang/core/Ingestion"
import { Effect, Layer, ManagedRuntime, Result } from "effect"
import { FetchHttpClient, type HttpClient } from "effect/http"
import * as Json from "./Json.ts"

/** How to build a relay; every field is optional. */
export interface RelayOptions {
  /** Storage and Queue (default: in memory). Use `PgStorage.layerPostgres(url)` or `layerPglite(dir)` to persist. */
  readonly storage?: Layer.Layer<Storage.Storage | Queue.Queue, unknown> | undefined
  /**
   * The client deliveries go through (default: fetch, with redirects not followed). On Node,
   * `DeliveryClient.layer(...)` of `@promptjang/node` adds the SSRF guard at send time and is faster.
   */
  readonly httpClient?: Layer.Layer<HttpClient.HttpClient, unknown> | undefined
  /** Retry delays such as `"60s,2m,4m"` (default: the FAQ's schedule). */
  readonly retrySchedule?: string | undefined
  /** Allow endpoints on loopback and private addresses (default false). */
  readonly allowPrivateTargets?: boolean | undefined
}

/** Headers of an ingest. */
export interface IngestHeaders {
  readonly signature?: string | undefined
  readonly timestamp?: string | undefined
  readonly idempotencyKey?: string | undefined
}

/** An event as the API renders it. */
export type EventJson = ReturnType<typeof Json.event>

/** The relay. Every method rejects with the engine's tagged error (`_tag`, `message`) on refusal. */
export interface Relay {
  /** Creates an organization with its first API key (shown this once). */
  readonly createOrganization: (
    name: string,
    plan?: string
  ) => Promise<{ readonly id: string; readonly name: string; readonly plan: string; readonly api_key: string }>
  /** Creates an endpoint; the answer carries its signing `secret`. */
  readonly createEndpoint: (
    apiKey: string,
    input: { readonly url: string; readonly description?: string; readonly event_types?: ReadonlyArray<string> }
  ) => Promise<ReturnType<typeof Json.endpoint>>
  readonly ingest: (
    apiKey: string,
    endpointId: string,
    body: string | Uint8Array,
    headers?: IngestHeaders
  ) => Promise<IngestResult>
  readonly getEvent: (apiKey: string, eventId: string) => Promise<EventJson>
  readonly listEvents: (
    apiKey: string,
    filter?: {
      readonly endpointId?: string
      readonly status?: EventStatus
      readonly limit?: number
      readonly cursor?: string
    }
  ) => Promise<{ readonly data: ReadonlyArray<EventJson>; readonly next_cursor: string | null }>
  readonly replay: (apiKey: string, eventId: string) => Promise<EventJson>
  /** Stops deliveries and closes the storage. */
  readonly close: () => Promise<void>
}

const encoder = new TextEncoder()

/** Starts an engine (dispatcher running) and returns its Promise facade. */
export const createRelay = async (options: RelayOptions = {}): Promise<Relay> => {
  const schedule = options.retrySchedule === undefined
    ? Backoff.defaultSchedule
    : Result.getOrThrow(Backoff.parse(options.retrySchedule))
  const runtime = ManagedRuntime.make(
    Engine.layerRunning.pipe(
      Layer.provide([options.storage ?? Memory.layer, options.httpClient ?? FetchHttpClient.layer]),
      Layer.provide([
        Layer.succeed(Backoff.CurrentSchedule, schedule),
        Layer.succeed(Targets.TargetPolicy, { allowPrivateTargets: options.allowPrivateTargets ?? false })
      ])
    )
  )
  const run = <A, E>(effect: Effect.Effect<A, E, Engine.Services>) => runtime.runPromise(effect)
  const as = (apiKey: string) => Effect.flatMap(Effect.service(Accounts.Accounts), (a) => a.authenticate(apiKey))
  await runtime.runPromise(Effect.void)
  return {
    createOrganization: (name, plan) =>
      run(Effect.gen(function*() {
        const accounts = yield* Accounts.Accounts
        const { apiKey, organization } = yield* accounts.createOrganization({ name, plan })
        return { id: organization.id, name: organization.name, plan: organization.plan, api_key: apiKey.key }
      })),
    createEndpoint: (apiKey, input) =>
      run(Effect.gen(function*() {
        const { organization } = yield* as(apiKey)
        const endpoints = yield* Endpoints.Endpoints
        const endpoint = yield* endpoints.create(organization.id, {
          url: input.url,
          description: input.description,
          eventTypes: input.event_types
        })
        return Json.endpoint(endpoint, { withSecret: true })
      })),
    ingest: (apiKey, endpointId, body, headers = {}) =>
      run(Effect.flatMap(Effect.service(Ingestion.Ingestion), (ingestion) =>
        ingestion.ingest(apiKey, {
          endpointId,
          body: typeof body === "string" ? encoder.encode(body) : body,
          signature: headers.signature,
          timestamp: headers.timestamp,
          idempotencyKey: headers.idempotencyKey
        }))),
    getEvent: (apiKey, eventId) =>
      run(Effect.gen(function*() {
        const { organization } = yield* as(apiKey)
        const events = yield* Events.Events
        const { attempts, event } = yield* events.get(organization.id, eventId as EventId)
        return Json.event(event, attempts)
      })),
    listEvents: (apiKey, filter = {}) =>
      run(Effect.gen(function*() {
        const { organization } = yield* as(apiKey)
        const events = yield* Events.Events
        const page = yield* events.list(
          organization.id,
          { endpointId: filter.endpointId as EndpointId | undefined, status: filter.status },
          { limit: Math.min(Math.max(filter.limit ?? 20, 1), 100), cursor: filter.cursor }
        )
        return { data: page.data.map((e) => Json.event(e)), next_cursor: page.nextCursor }
      })),
    replay: (apiKey, eventId) =>
      run(Effect.gen(function*() {
        const { organization } = yield* as(apiKey)
        const replay = yield* Replay.Replay
        return Json.event(yield* replay.replay(organization.id, eventId as EventId))
      })),
    close: () => runtime.dispose()
  }
}
