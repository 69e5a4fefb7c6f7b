/**
 * The in-memory test host: the whole engine over memory Storage and Queue, a
 * scripted receiver and the `TestClock`, so that a test runs a 31-minute
 * retry timeline in milliseconds.
 *
 * Use it inside `it.effect` (which provides the `TestClock` and a scope):
 *
 * ```ts
 * it.effect("delivers on the third attempt", () =>
 *   Effect.gen(function*() {
 *     const host = yield* makeTestHost()
 *     const endpoint = yield* host.createEndpoint({ url: "https://receiver.test/hooks" })
 *     host.receiver.script(endpoint.url, { status: 500 }, { status: 500 }, { status: 200 })
 *     const { id } = yield* host.send(endpoint.id, { event: "order.created" })
 *     yield* host.advance("3 minutes")
 *     assert.strictEqual((yield* host.event(id)).event.status, "DELIVERED")
 *   }))
 * ```
 *
 * @since 0.1.0
 */
import {
  Accounts,
  Backoff,
  Dispatcher,
  Endpoints,
  Engine,
  Entropy,
  Events,
  Ingestion,
  Lifecycle,
  Memory,
  Quota,
  Replay,
  Signing
} from "@promptjang/core"
import type { Attempt, Endpoint, Event, Organization } from "@promptjang/core/Domain"
import type { EndpointInput } from "@promptjang/core/Endpoints"
import type { IngestError } from "@promptjang/core/Errors"
import type { EventWithAttempts } from "@promptjang/core/Events"
import type { EventId } from "@promptjang/core/Ids"
import type { IngestResult } from "@promptjang/core/Ingestion"
import type { EventFilter } from "@promptjang/core/Storage"
import { Clock, Context, type Duration, Effect, Layer, type Scope } from "effect"
import { HttpClient } from "effect/http"
import { TestClock } from "effect/testing"
import * as Receiver from "./Receiver.ts"

/** How to build a host. */
export interface TestHostOptions {
  /** The retry schedule (default: the FAQ's). */
  readonly retrySchedule?: Backoff.Schedule | string | undefined
  /** Dispatcher tuning on top of the defaults. */
  readonly dispatcher?: Partial<Dispatcher.DispatcherOptions> | undefined
  /** The plan of the host's organization (default `starter`). */
  readonly plan?: string | undefined
  /** Replaces the plan catalog. */
  readonly plans?: Quota.PlanCatalog | undefined
  /** Lifecycle observers to subscribe. */
  readonly observers?: ReadonlyArray<Lifecycle.Observer> | undefined
  /** The test clock's start, epoch milliseconds (default 2026-05-26T12:00:00Z). */
  readonly startAt?: number | undefined
}

/** Options of one `send`. */
export interface SendOptions {
  /** Sign with the endpoint secret as the Quick Start does (default false). */
  readonly sign?: boolean | undefined
  readonly idempotencyKey?: string | undefined
}

/** A running host. */
export interface TestHost {
  readonly organization: Organization
  /** The organization's API key. */
  readonly apiKey: string
  readonly receiver: Receiver.Receiver
  /** Creates an endpoint (default URL `https://receiver.test/<n>`). */
  readonly createEndpoint: (input?: Partial<EndpointInput>) => Effect.Effect<Endpoint, unknown>
  /** Sends an event as the Quick Start does; a payload object is JSON-encoded, bytes and strings go as they are. */
  readonly send: (
    endpointId: string,
    payload: unknown,
    options?: SendOptions
  ) => Effect.Effect<IngestResult, IngestError>
  /** Moves the test clock forward and lets every delivery that falls due run to completion. */
  readonly advance: (duration: Duration.Input) => Effect.Effect<void>
  /** Lets the work that is due now run to completion, without moving the clock. */
  readonly settle: Effect.Effect<void>
  /** Milliseconds since the host started. */
  readonly elapsed: Effect.Effect<number>
  /** Every event of the organization, oldest first. */
  readonly events: (filter?: EventFilter) => Effect.Effect<ReadonlyArray<Event>>
  /** One event with its attempts. */
  readonly event: (id: EventId) => Effect.Effect<EventWithAttempts, unknown>
  /** The attempts of an event, oldest first. */
  readonly attemptsOf: (id: EventId) => Effect.Effect<ReadonlyArray<Attempt>>
  /** Replays an event. */
  readonly replay: (id: EventId) => Effect.Effect<Event, unknown>
  /** Runs any effect against the host's engine services. */
  readonly run: <A, E>(effect: Effect.Effect<A, E, Engine.Services>) => Effect.Effect<A, E>
}

const DEFAULT_START = Date.UTC(2026, 4, 26, 12, 0, 0)
const encoder = new TextEncoder()

const toBytes = (payload: unknown): Uint8Array =>
  payload instanceof Uint8Array
    ? payload
    : encoder.encode(typeof payload === "string" ? payload : JSON.stringify(payload))

/**
 * Builds a host in the current scope: an organization with an API key, the
 * engine with its dispatcher running, and the receiver. Needs the `TestClock`
 * (`it.effect` provides it).
 */
export const makeTestHost = (
  options: TestHostOptions = {}
): Effect.Effect<TestHost, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    yield* TestClock.setTime(options.startAt ?? DEFAULT_START)
    const startedAt = yield* Clock.currentTimeMillis
    const receiver = Receiver.make()
    const schedule = typeof options.retrySchedule === "string"
      ? yield* Effect.fromResult(Backoff.parse(options.retrySchedule))
      : options.retrySchedule ?? Backoff.defaultSchedule

    const settings = Layer.mergeAll(
      Layer.succeed(Backoff.CurrentSchedule, schedule),
      Layer.succeed(Dispatcher.Options, { ...Dispatcher.defaultOptions, ...options.dispatcher }),
      Layer.succeed(Quota.Plans, options.plans ?? Quota.defaultCatalog),
      Layer.succeed(Entropy.Entropy, Entropy.fromRandom)
    )
    // The engine's services capture their settings when they are built.
    const engine = Engine.layer.pipe(
      Layer.provide([Memory.layer, Layer.succeed(HttpClient.HttpClient, receiver.client)]),
      Layer.provide(settings)
    )
    const context = yield* Layer.build(engine)
    const provide = <A, E>(effect: Effect.Effect<A, E, Engine.Services>): Effect.Effect<A, E> =>
      Effect.provideContext(effect, context)
    const lifecycle = Context.get(context, Lifecycle.Lifecycle)
    for (const observer of options.observers ?? []) yield* lifecycle.subscribe(observer)

    const accounts = Context.get(context, Accounts.Accounts)
    const { apiKey, organization } = yield* accounts.createOrganization({ name: "Test host", plan: options.plan })

    const dispatcher = Context.get(context, Dispatcher.Dispatcher)
    yield* Effect.forkScoped(provide(dispatcher.run))

    // Quiet means: the dispatcher sleeps, every delivery in flight waits on the receiver (a delay or a
    // hang), and nothing changed over two scheduler turns.
    const snapshot = Effect.map(
      dispatcher.status,
      (s) => [s.waiting, s.inFlight, s.finished, receiver.requests().length]
    )
    const settle = Effect.gen(function*() {
      let previous = ""
      for (let turn = 0; turn < 100_000; turn++) {
        yield* Effect.yieldNow
        const [waiting, inFlight, finished, requests] = yield* snapshot
        const quiet = waiting === true && inFlight === receiver.pending()
        const current = `${inFlight}:${finished}:${requests}`
        if (quiet && current === previous) return
        previous = quiet ? current : ""
      }
      return yield* Effect.die(new Error("The test host did not settle: a delivery keeps running without waiting"))
    })

    let endpoints = 0
    const host: TestHost = {
      organization,
      apiKey: apiKey.key,
      receiver,
      createEndpoint: (input = {}) =>
        provide(Effect.gen(function*() {
          const service = Context.get(context, Endpoints.Endpoints)
          return yield* service.create(organization.id, { url: `https://receiver.test/${++endpoints}`, ...input })
        })),
      send: (endpointId, payload, sendOptions = {}) =>
        Effect.gen(function*() {
          const body = toBytes(payload)
          let signature: string | undefined
          let timestamp: string | undefined
          if (sendOptions.sign === true) {
            const endpoint = yield* Effect.orDie(
              Context.get(context, Endpoints.Endpoints).get(organization.id, endpointId as Endpoint["id"])
            )
            timestamp = String(Math.floor((yield* Clock.currentTimeMillis) / 1000))
            signature = Signing.signInbound(endpoint.secret, timestamp, body)
          }
          return yield* Context.get(context, Ingestion.Ingestion).ingest(apiKey.key, {
            endpointId,
            body,
            signature,
            timestamp,
            idempotencyKey: sendOptions.idempotencyKey
          })
        }),
      advance: (duration) => Effect.andThen(TestClock.adjust(duration), settle),
      settle,
      elapsed: Effect.map(Clock.currentTimeMillis, (now) => now - startedAt),
      events: (filter = {}) =>
        Effect.gen(function*() {
          const service = Context.get(context, Events.Events)
          const all: Array<Event> = []
          let cursor: string | undefined
          do {
            const page = yield* Effect.orDie(service.list(organization.id, filter, { limit: 100, cursor }))
            all.push(...page.data)
            cursor = page.nextCursor ?? undefined
          } while (cursor !== undefined)
          return all.reverse()
        }),
      event: (id) => Context.get(context, Events.Events).get(organization.id, id),
      attemptsOf: (id) =>
        Effect.map(Effect.orDie(Context.get(context, Events.Events).get(organization.id, id)), (e) => e.attempts),
      replay: (id) => Context.get(context, Replay.Replay).replay(organization.id, id),
      run: provide
    }
    return host
  })
