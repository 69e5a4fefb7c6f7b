/**
 * The dispatcher: claims due deliveries, signs and POSTs them, records each
 * attempt and moves the event along the state machine.
 *
 * Concurrency is bounded globally and per endpoint, and claims skip endpoints
 * whose share is full, so one slow endpoint never holds back the others. When
 * there is nothing to claim the loop sleeps until new work is signalled, a
 * delivery of its own finishes, or the next delivery falls due (with a slow
 * fallback poll for lost signals); it never polls in a tight loop. A receiver
 * that fails is data on the attempt, not an engine error.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Duration, Effect, FiberSet, Layer, Option, Result, Stream } from "effect"
import { constTrue } from "effect/Function"
import { FetchHttpClient, HttpClient, HttpClientRequest, type HttpClientResponse } from "effect/http"
import * as Backoff from "./Backoff.ts"
import type { Attempt, AttemptError, Endpoint, Event } from "./Domain.ts"
import * as Endpoints from "./Endpoints.ts"
import * as Entropy from "./Entropy.ts"
import type { StorageError } from "./Errors.ts"
import * as EventStateMachine from "./EventStateMachine.ts"
import * as Ids from "./Ids.ts"
import type { EndpointId } from "./Ids.ts"
import { Lifecycle } from "./Lifecycle.ts"
import * as Metrics from "./Metrics.ts"
import { type Claim, Queue } from "./Queue.ts"
import * as ReadCache from "./ReadCache.ts"
import * as Signal from "./Signal.ts"
import * as Signing from "./Signing.ts"
import { Storage } from "./Storage.ts"

/** The engine version sent in `User-Agent`. */
export const VERSION = "0.1.0"

/** Tuning of the dispatcher. */
export interface DispatcherOptions {
  /** Requests to endpoints in flight at once in this process. */
  readonly concurrency: number
  /** Deliveries in flight at once to one endpoint. */
  readonly perEndpointConcurrency: number
  /**
   * Deliveries started and not finished: their request in flight (at most `concurrency`) or their attempt
   * being recorded. Recording holds no request slot, so a slow commit does not stop new requests; at this
   * many, no new one starts until some are recorded. With `maxHeld`, this bounds the leases a crash of this
   * process strands (they come back when their lease ends).
   */
  readonly maxUnfinished: number
  /** Most deliveries claimed per round trip. */
  readonly batchSize: number
  /** The limit of one whole attempt (connect, send, response, body). */
  readonly timeoutMs: number
  /** Added to the timeout to make the lease: a crashed worker's deliveries come back after it. */
  readonly leaseMarginMs: number
  /** The part of a response body kept on the attempt. */
  readonly maxResponseBytes: number
  /** The longest sleep without a signal (covers lost wake-ups). */
  readonly fallbackPollMs: number
  /** How long a delivery to a disabled endpoint waits before it is looked at again. */
  readonly disabledRecheckMs: number
  /** How long an endpoint read for a delivery is reused (0: read it for every delivery). */
  readonly endpointCacheMs: number
  /**
   * Deliveries handed over in-process (see `Queue.attachWorker`) that may wait in memory for a free slot,
   * per process and per endpoint; beyond these they stay in the queue and are claimed as usual. One endpoint
   * may take half of the process's room (512 of 1,024): at 2,000 events/s to it, a quarter-second stall.
   */
  readonly maxHeld: number
  readonly maxHeldPerEndpoint: number
  /** How long a handed-over delivery may wait in memory before it is given back to the queue. */
  readonly holdMs: number
  readonly userAgent: string
}

/**
 * The defaults: 15 s timeout (SPEC §4), 64 requests in flight, half of them (32) to one endpoint, so that a
 * stuck endpoint leaves the other half to the rest. One endpoint gets at most `perEndpointConcurrency` divided
 * by its response time, in deliveries per second: 16 capped an endpoint receiving 2,000 events/s as soon as
 * its requests took 8 ms, which a loaded two-core machine reached.
 */
export const defaultOptions: DispatcherOptions = {
  concurrency: 64,
  perEndpointConcurrency: 32,
  maxUnfinished: 1_024,
  batchSize: 100,
  timeoutMs: 15_000,
  leaseMarginMs: 30_000,
  maxResponseBytes: 64 * 1024,
  fallbackPollMs: 30_000,
  disabledRecheckMs: 60_000,
  endpointCacheMs: 1_000,
  maxHeld: 1_024,
  maxHeldPerEndpoint: 512,
  holdMs: 2_000,
  userAgent: `PromptJang/${VERSION}`
}

/** How soon the loop looks again at due work that another worker was claiming when it looked. */
const CONTENDED_RETRY_MS = 10

/** The current options. */
export const Options = Context.Reference<DispatcherOptions>("@promptjang/core/Dispatcher/Options", {
  defaultValue: () => defaultOptions
})

/** How an HTTP client reports that the SSRF guard refused the resolved address (see `Targets`). */
const isBlocked = (cause: unknown): boolean => {
  for (let current = cause, depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    if (typeof current === "object" && "_tag" in current && current._tag === "BlockedAddress") return true
    current = typeof current === "object" && "cause" in current ? current.cause : undefined
  }
  return false
}

/** The attempt error of a transport failure, read from the Node error codes in its cause chain. */
export const classifyTransportError = (cause: unknown): AttemptError => {
  if (isBlocked(cause)) return "blocked_address"
  for (let current = cause, depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    if (typeof current === "object" && "code" in current && typeof current.code === "string") {
      const code = current.code
      if (code === "ECONNREFUSED") return "connection_refused"
      if (code === "ECONNRESET" || code === "EPIPE" || code === "UND_ERR_SOCKET") return "connection_reset"
      if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME") return "dns"
      if (code === "ETIMEDOUT" || code === "UND_ERR_CONNECT_TIMEOUT" || code === "UND_ERR_HEADERS_TIMEOUT") {
        return "timeout"
      }
      if (code.startsWith("ERR_TLS") || code.startsWith("CERT_") || code.includes("SSL")) return "tls"
    }
    current = typeof current === "object" && "cause" in current ? current.cause : undefined
  }
  return "network"
}

/** The headers of one attempt (custom headers first; ours cannot be overridden). */
export const deliveryHeaders = (
  endpoint: Endpoint,
  event: Event,
  attempt: number,
  nowMillis: number,
  userAgent: string
): Record<string, string> => {
  const timestamp = Math.floor(nowMillis / 1000)
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(endpoint.headers)) {
    if (!Endpoints.RESERVED_HEADERS.has(name.toLowerCase())) headers[name.toLowerCase()] = value
  }
  headers["content-type"] = "application/json"
  headers["user-agent"] = userAgent
  headers["x-promptjang-signature"] = Signing.signPayload(endpoint.secret, event.body)
  headers["x-promptjang-event-id"] = event.id
  headers["x-promptjang-event-type"] = event.eventType ?? ""
  headers["x-promptjang-attempt"] = String(attempt)
  headers["webhook-id"] = event.id
  headers["webhook-timestamp"] = String(timestamp)
  headers["webhook-signature"] = Signing.standardWebhooksSignature(
    Endpoints.activeSecrets(endpoint, nowMillis),
    event.id,
    timestamp,
    event.body
  )
  return headers
}

const textDecoder = new TextDecoder()

/** One delivery as it goes over the wire: a POST of `body` to `url` with `headers`. */
export interface Delivery {
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

/**
 * What a delivery got back: the status and the response body as text (its first `maxResponseBytes`; null
 * when it could not be read), or no status and the transport error.
 */
export interface DeliveryResponse {
  readonly statusCode: number | null
  readonly responseBody: string | null
  readonly error: AttemptError | null
}

/**
 * Sends one delivery and reads at most `maxResponseBytes` of the answer. A transport never fails: it
 * reports transport failures in the response (`classifyTransportError` names them). It must not follow
 * redirects, and it must abort the request when interrupted: the dispatcher's timeout interrupts it.
 */
export type Transport = (delivery: Delivery, maxResponseBytes: number) => Effect.Effect<DeliveryResponse>

/**
 * The transport of deliveries. Unset (the default), deliveries go through the `HttpClient` in context; a
 * host may set a leaner one for its platform (the Node server's calls undici directly).
 */
export const CurrentTransport = Context.Reference<Transport | undefined>("@promptjang/core/Dispatcher/Transport", {
  defaultValue: () => undefined
})

/** A snapshot of the dispatcher, for health checks, metrics and test hosts. */
export interface DispatcherStatus {
  /** Deliveries claimed or handed over and not yet finished: requests in flight and attempts being recorded. */
  readonly inFlight: number
  /** True while the loop sleeps waiting for work (a signal, a freed slot or the next due time). */
  readonly waiting: boolean
  /** Deliveries finished (or given back) since start. */
  readonly finished: number
}

/** The dispatcher. */
export class Dispatcher extends Context.Service<Dispatcher, {
  /** Claims and delivers until interrupted; in-flight claims are released on interruption. */
  readonly run: Effect.Effect<never, StorageError>
  /** What the loop is doing now: deliveries in flight, whether it is asleep, deliveries finished so far. */
  readonly status: Effect.Effect<DispatcherStatus>
}>()("@promptjang/core/Dispatcher") {}

/** The dispatcher over Storage, Queue, Lifecycle and an HttpClient. */
export const make = Effect.gen(function*() {
  const storage = yield* Storage
  const queue = yield* Queue
  const lifecycle = yield* Lifecycle
  const client = yield* HttpClient.HttpClient
  const options = yield* Options
  const engineSchedule = yield* Backoff.CurrentSchedule
  const entropy = yield* Entropy.Entropy
  const leaseMs = options.timeoutMs + options.leaseMarginMs
  // Claim in batches: with deliveries in flight, wait until a quarter of a batch is free rather than
  // paying one claim round trip per finished delivery.
  const refillAt = Math.max(1, Math.floor(Math.min(options.batchSize, options.concurrency) / 4))

  // Endpoints change rarely and every delivery needs one: keep what was read (found or not) for a moment.
  const endpoints = yield* ReadCache.make<EndpointId, Option.Option<Endpoint>, StorageError>({
    ttlMs: options.endpointCacheMs
  })
  const findEndpoint = (id: EndpointId, now: number) => endpoints.get(id, now, () => storage.findEndpoint(id))

  // Requests in flight, per endpoint (the cap that protects a receiver) and in this process, end when the HTTP
  // exchange ends. Recording the attempt waits for a group commit: holding a request slot through it would
  // cap one endpoint at perEndpointConcurrency / commit time, and let one slow commit (a stalled fsync)
  // stop every delivery. Deliveries not yet finished (`inFlight`: sending or recording) have a bound of
  // their own (`maxUnfinished`), which also bounds how many leases a crash can strand.
  const perEndpoint = new Map<EndpointId, number>()
  let sending = 0
  let inFlight = 0
  let finished = 0
  let waiting = false
  // Wakes the loop when a delivery of ours frees a slot (of its endpoint or of the process).
  const slotFreed = Signal.make()
  // Wakes the loop when a delivery of ours is due again later (a retry), which may be sooner than its timer.
  const dueLater = Signal.make()
  /** Whether a new request may start now, as far as this process's bounds go (not its endpoint's). */
  const roomToSend = (limit: number) => sending < limit && inFlight < options.maxUnfinished
  /** One claimed delivery's hold on the slots; each is given back once. */
  interface Slot {
    readonly endpointId: EndpointId
    /** Whether it still holds a request slot (of the process and of its endpoint). */
    sending: boolean
  }
  /** Gives back the request slot of `slot`, if it still holds it; true when it did. */
  const dropRequestSlot = (slot: Slot): boolean => {
    if (!slot.sending) return false
    slot.sending = false
    sending--
    const count = (perEndpoint.get(slot.endpointId) ?? 1) - 1
    if (count === 0) perEndpoint.delete(slot.endpointId)
    else perEndpoint.set(slot.endpointId, count)
    return true
  }
  // Starts handed-over deliveries held in memory that a freed slot lets go (set while `run` runs).
  let startHeld = () => {}
  const requestEnded = (slot: Slot) => {
    if (dropRequestSlot(slot)) {
      slotFreed.bump()
      startHeld()
    }
  }
  const freeSlot = (slot: Slot) => {
    dropRequestSlot(slot)
    inFlight--
    finished++
    slotFreed.bump()
    startHeld()
  }

  const readBody = (stream: Stream.Stream<Uint8Array, unknown>, maxResponseBytes: number) =>
    Effect.gen(function*() {
      const chunks: Array<Uint8Array> = []
      let size = 0
      yield* Stream.runForEachWhile(stream, (chunk) =>
        Effect.sync(() => {
          const room = maxResponseBytes - size
          const part = chunk.byteLength > room ? chunk.subarray(0, room) : chunk
          chunks.push(part)
          size += part.byteLength
          return size < maxResponseBytes
        }))
      const all = new Uint8Array(size)
      let offset = 0
      for (const chunk of chunks) {
        all.set(chunk, offset)
        offset += chunk.byteLength
      }
      return textDecoder.decode(all)
    })

  // Most receivers answer a few bytes with a Content-Length: read those whole, and stream only bodies
  // that are large or of unknown length, stopping at the limit.
  const readBodyOf = (response: HttpClientResponse.HttpClientResponse, maxResponseBytes: number) => {
    const length = Number(response.headers["content-length"] ?? Number.NaN)
    return Number.isFinite(length) && length <= maxResponseBytes
      ? response.text
      : readBody(response.stream, maxResponseBytes)
  }

  /** The default transport: the `HttpClient` in context. */
  const viaHttpClient: Transport = (delivery, maxResponseBytes) =>
    client.execute(
      HttpClientRequest.post(delivery.url).pipe(
        HttpClientRequest.setHeaders(delivery.headers),
        HttpClientRequest.bodyUint8Array(delivery.body, "application/json")
      )
    ).pipe(
      Effect.flatMap((response) =>
        readBodyOf(response, maxResponseBytes).pipe(
          Effect.map((body): DeliveryResponse => ({ statusCode: response.status, responseBody: body, error: null })),
          // A body cut off by a broken connection still leaves the status code.
          Effect.catch(() =>
            Effect.succeed<DeliveryResponse>({ statusCode: response.status, responseBody: null, error: null })
          )
        )
      ),
      // Redirects are failures (SPEC §4): fetch follows them unless told not to; other clients ignore this.
      Effect.provideService(FetchHttpClient.RequestInit, { redirect: "manual" }),
      // No client span per delivery, and no trace headers sent to customers' endpoints.
      Effect.provideService(HttpClient.TracerDisabledWhen, constTrue),
      Effect.catch((error) =>
        Effect.succeed<DeliveryResponse>({
          statusCode: null,
          responseBody: null,
          error: classifyTransportError("reason" in error ? error.reason : error)
        })
      )
    )
  const transport = (yield* CurrentTransport) ?? viaHttpClient

  const send = (endpoint: Endpoint, event: Event, attempt: number, now: number): Effect.Effect<DeliveryResponse> =>
    transport({
      url: endpoint.url,
      headers: deliveryHeaders(endpoint, event, attempt, now, options.userAgent),
      body: event.body
    }, options.maxResponseBytes).pipe(
      Effect.timeoutOrElse({
        duration: Duration.millis(options.timeoutMs),
        orElse: () => Effect.succeed<DeliveryResponse>({ statusCode: null, responseBody: null, error: "timeout" })
      }),
      Effect.catchDefect((defect) =>
        Effect.succeed<DeliveryResponse>({
          statusCode: null,
          responseBody: null,
          error: classifyTransportError(defect)
        })
      )
    )

  const finish = Effect.fnUntraced(
    function*(claim: Claim, command: EventStateMachine.Command, attempt: Attempt | null) {
      const decided = EventStateMachine.transition(claim.event, command)
      if (Result.isFailure(decided)) {
        // The claim came with a final state: another worker finished it. Drop the delivery.
        yield* Effect.logWarning("Dropping a delivery whose event is already final").pipe(
          Effect.annotateLogs({ event_id: claim.event.id, status: claim.event.status })
        )
        yield* queue.complete(claim, { attempt: null, state: claim.event })
        return
      }
      // Once the request has been made, its record is written even if the dispatcher is being stopped: an
      // interrupted record would leave the delivery to be sent again after a restart.
      const completed = yield* Effect.uninterruptible(queue.complete(claim, { attempt, state: decided.success.state }))
      if (completed && decided.success.state.nextAttemptAt !== null) dueLater.bump()
      if (!completed) {
        yield* Effect.logDebug("Lease lost before completion; another worker owns this delivery").pipe(
          Effect.annotateLogs({ event_id: claim.event.id })
        )
        return
      }
      const event: Event = { ...claim.event, ...decided.success.state }
      if (attempt !== null) yield* lifecycle.emit({ _tag: "Attempted", event, attempt })
      for (const fact of decided.success.facts) {
        if (fact._tag === "Delivered") yield* lifecycle.emit({ _tag: "Delivered", event })
        else if (fact._tag === "Expired") yield* lifecycle.emit({ _tag: "Expired", event })
        else if (fact._tag === "Failed") yield* lifecycle.emit({ _tag: "Failed", event, reason: fact.reason })
      }
    }
  )

  const deliver = Effect.fnUntraced(function*(claim: Claim, slot: Slot) {
    const event = claim.event
    const start = yield* Clock.currentTimeMillis
    const found = yield* findEndpoint(event.endpointId, start)
    if (Option.isNone(found)) {
      return yield* finish(claim, { _tag: "Fail", at: start, reason: "the endpoint was deleted" }, null)
    }
    const endpoint = found.value
    if (!endpoint.enabled) {
      yield* queue.reschedule(claim, start + options.disabledRecheckMs)
      dueLater.bump()
      return
    }
    const number = event.attemptCount + 1
    const startedAt = yield* Clock.currentTimeMillis
    const response = yield* send(endpoint, event, number, start)
    const end = yield* Clock.currentTimeMillis
    requestEnded(slot)
    const succeeded = response.statusCode !== null && response.statusCode >= 200 && response.statusCode < 300
    const attempt: Attempt = {
      id: yield* Ids.makeAttemptIdWith(entropy),
      eventId: event.id,
      organizationId: event.organizationId,
      endpointId: event.endpointId,
      cycle: event.cycle,
      number,
      statusCode: response.statusCode,
      responseBody: response.responseBody,
      durationMs: Math.max(0, end - startedAt),
      error: response.error,
      succeeded,
      createdAt: start
    }
    yield* Metrics.recordAttempt(
      succeeded ? "success" : response.error === "blocked_address" ? "blocked" : "failure",
      attempt.durationMs
    )
    const schedule = endpoint.retryDelays === null ? engineSchedule : Backoff.make(endpoint.retryDelays)
    yield* finish(claim, {
      _tag: "RecordAttempt",
      at: end,
      outcome: succeeded ? "succeeded" : response.error === "blocked_address" ? "fatal" : "failed",
      schedule
    }, attempt)
  })

  const deliverSafely = (claim: Claim, slot: Slot) =>
    deliver(claim, slot).pipe(
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.interrupt
          : Effect.logError("Delivery failed inside the engine; the lease will expire and it will be retried").pipe(
            Effect.annotateLogs({ event_id: claim.event.id, endpoint_id: claim.event.endpointId, cause })
          )
      ),
      Effect.onInterrupt(() => Effect.ignore(queue.release([claim]))),
      Effect.ensuring(Effect.sync(() => freeSlot(slot)))
    )

  const run = Effect.gen(function*() {
    const fork = yield* FiberSet.makeRuntime<never, void, never>()
    /** Starts a delivery, taking a request slot of the process and of its endpoint (given back by the slot). */
    const start = (claim: Claim) => {
      const endpointId = claim.event.endpointId
      perEndpoint.set(endpointId, (perEndpoint.get(endpointId) ?? 0) + 1)
      sending++
      inFlight++
      fork(deliverSafely(claim, { endpointId, sending: true }))
    }
    // Events ingested in this process come straight here: leased in the ingest write, handed over after its
    // commit, with no claim round trip. They leave a quarter of the process's slots to claims, so that older
    // due work (a backlog, retries, other endpoints) is never starved. One that finds no free slot waits in
    // memory (bounded, in order per endpoint) and starts when a delivery ends; one that waited holdMs goes
    // back to the queue. A burst or a stall then drains at the cost of the handoff, not of claims.
    const handoffLimit = options.concurrency - refillAt
    // Holds claimed deliveries whose endpoint filled up meanwhile, behind those already held (set when a local
    // worker is attached; without one they go back to the queue).
    let holdClaimed: ((claims: ReadonlyArray<Claim>) => void) | undefined
    // Endpoints whose handoff was refused (their room in memory was full), so that some of their deliveries
    // wait in the queue: new ones go to the queue too, behind them, until a claim finds none left. Otherwise the
    // handed-over newer ones would keep the endpoint's slots and the queued older ones would wait for seconds.
    const backlogged = new Set<EndpointId>()
    if (queue.attachWorker !== undefined) {
      const held = new Map<EndpointId, Array<Claim>>()
      let heldCount = 0
      let reserved = 0
      // Reserved and held deliveries per endpoint, against maxHeldPerEndpoint.
      const waitingFor = new Map<EndpointId, number>()
      const count = (endpointId: EndpointId, delta: number) => {
        const n = (waitingFor.get(endpointId) ?? 0) + delta
        if (n === 0) waitingFor.delete(endpointId)
        else waitingFor.set(endpointId, n)
      }
      const canStart = (endpointId: EndpointId) =>
        roomToSend(handoffLimit) && (perEndpoint.get(endpointId) ?? 0) < options.perEndpointConcurrency
      const startNow = (claim: Claim) => {
        count(claim.event.endpointId, -1)
        start(claim)
      }
      const hold = (claim: Claim) => {
        const endpointId = claim.event.endpointId
        heldCount++
        const queued = held.get(endpointId)
        if (queued === undefined) held.set(endpointId, [claim])
        else queued.push(claim)
      }
      holdClaimed = (claims) => {
        for (const claim of claims) {
          count(claim.event.endpointId, 1)
          hold(claim)
        }
        startHeld()
      }
      startHeld = () => {
        if (heldCount === 0) return
        for (const [endpointId, claims] of held) {
          if (!roomToSend(handoffLimit)) return
          while (canStart(endpointId)) {
            const claim = claims.shift()
            if (claim === undefined) break
            heldCount--
            startNow(claim)
          }
          if (claims.length === 0) held.delete(endpointId)
        }
      }
      /** Takes out the held deliveries that were handed over at or before `cutoff`. */
      const takeHeldSince = (cutoff: number): Array<Claim> => {
        const out: Array<Claim> = []
        for (const [endpointId, claims] of held) {
          // Each list is in hand-over order: the old ones are at its head.
          const fresh = claims.findIndex((claim) => claim.leaseExpiresAt - leaseMs > cutoff)
          const n = fresh === -1 ? claims.length : fresh
          if (n === 0) continue
          out.push(...claims.splice(0, n))
          if (claims.length === 0) held.delete(endpointId)
          heldCount -= n
          count(endpointId, -n)
        }
        return out
      }
      const giveBack = (claims: ReadonlyArray<Claim>) =>
        claims.length === 0 ? Effect.void : queue.release(claims).pipe(
          Effect.catchCause((cause) =>
            Effect.logWarning("Could not give held deliveries back to the queue; they return when their lease ends")
              .pipe(Effect.annotateLogs({ cause, deliveries: claims.length }))
          )
        )
      // After the loop stops, nothing more is taken: a delivery reserved before and stored after goes straight
      // back to the queue.
      let closed = false
      yield* Effect.addFinalizer(() =>
        Effect.suspend(() => {
          closed = true
          startHeld = () => {}
          holdClaimed = undefined
          return giveBack(takeHeldSince(Number.POSITIVE_INFINITY))
        })
      )
      yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
        yield* Effect.sleep(Duration.millis(Math.max(1, options.holdMs / 4)))
        if (heldCount > 0) yield* giveBack(takeHeldSince((yield* Clock.currentTimeMillis) - options.holdMs))
      })))
      yield* queue.attachWorker({
        leaseMs,
        reserve: (endpointId) => {
          if (closed || backlogged.has(endpointId)) return false
          if (
            reserved + heldCount >= options.maxHeld || (waitingFor.get(endpointId) ?? 0) >= options.maxHeldPerEndpoint
          ) {
            backlogged.add(endpointId)
            return false
          }
          reserved++
          count(endpointId, 1)
          return true
        },
        take: (claim) => {
          reserved--
          const endpointId = claim.event.endpointId
          if (closed) {
            count(endpointId, -1)
            return void Effect.runFork(giveBack([claim]))
          }
          if (!held.has(endpointId) && canStart(endpointId)) return startNow(claim)
          hold(claim)
        },
        cancel: (endpointId) => {
          reserved--
          count(endpointId, -1)
        }
      })
    }
    while (true) {
      const signal = yield* queue.signalVersion
      const local = slotFreed.version()
      const later = dueLater.version()
      const free = options.concurrency - sending
      const worthClaiming = roomToSend(options.concurrency) && (sending === 0 || free >= refillAt)
      // Whether our own capacity (not the queue) held work back: only then can a freed slot make more claimable.
      let heldBack = !worthClaiming
      if (worthClaiming) {
        const excludeEndpoints: Array<EndpointId> = []
        const endpointLimits = new Map<EndpointId, number>()
        for (const [id, n] of perEndpoint) {
          if (n >= options.perEndpointConcurrency) excludeEndpoints.push(id)
          else endpointLimits.set(id, options.perEndpointConcurrency - n)
        }
        const now = yield* Clock.currentTimeMillis
        const limit = Math.min(free, options.batchSize, options.maxUnfinished - inFlight)
        const claims = yield* queue.claimDue({
          now,
          limit,
          leaseMs,
          excludeEndpoints,
          maxPerEndpoint: options.perEndpointConcurrency,
          endpointLimits
        })
        // An endpoint that got as many as it was allowed may have more due: a freed slot of its own must wake us.
        const got = new Map<EndpointId, number>()
        for (const claim of claims) {
          const id = claim.event.endpointId
          const n = (got.get(id) ?? 0) + 1
          got.set(id, n)
          if (n >= (endpointLimits.get(id) ?? options.perEndpointConcurrency)) heldBack = true
        }
        const taken: Array<Claim> = []
        for (const claim of claims) {
          if ((perEndpoint.get(claim.event.endpointId) ?? 0) >= options.perEndpointConcurrency) {
            // The endpoint filled up meanwhile (handed-over deliveries started): hold the excess in memory with
            // them, or without a local worker hand it back for a later round.
            taken.push(claim)
            continue
          }
          start(claim)
        }
        if (taken.length > 0) {
          if (holdClaimed === undefined) yield* queue.release(taken)
          else holdClaimed(taken)
        }
        // A backlogged endpoint that this claim looked at in full (not excluded, not cut short by the batch
        // limit) and found fewer due than it could take has no more waiting in the queue: hand over again.
        if (backlogged.size > 0 && claims.length < limit) {
          for (const id of backlogged) {
            if (
              !excludeEndpoints.includes(id) &&
              (got.get(id) ?? 0) < (endpointLimits.get(id) ?? options.perEndpointConcurrency)
            ) {
              backlogged.delete(id)
            }
          }
        }
        if (claims.length > 0 && taken.length === 0 && claims.length === limit) {
          yield* Effect.yieldNow
          continue
        }
        if (excludeEndpoints.length > 0 || taken.length > 0) heldBack = true
      }
      if (!worthClaiming) {
        waiting = true
        // Too few free slots to be worth a claim (requests in flight, or too many attempts being recorded): the
        // next request or record to end wakes us.
        yield* slotFreed.await(local).pipe(Effect.ensuring(Effect.sync(() => {
          waiting = false
        })))
        continue
      }
      const now = yield* Clock.currentTimeMillis
      const next = yield* queue.nextDueAt
      // Due work that neither our claim took nor our capacity held back is being claimed by another worker
      // (rows it locked were skipped), or fell due just now: look again shortly instead of sleeping on it.
      const contended = !heldBack && Option.isSome(next) && next.value <= now
      const wait = Option.isSome(next) && next.value > now
        ? Math.min(next.value - now, options.fallbackPollMs)
        : contended
        ? Math.min(CONTENDED_RETRY_MS, options.fallbackPollMs)
        : options.fallbackPollMs
      waiting = true
      yield* Effect.raceAll([
        queue.awaitSignal(signal),
        dueLater.await(later),
        ...(heldBack || contended ? [slotFreed.await(local)] : []),
        Effect.sleep(Duration.millis(wait))
      ]).pipe(Effect.ensuring(Effect.sync(() => {
        waiting = false
      })))
    }
  })

  return Dispatcher.of({
    run: Effect.scoped(run),
    status: Effect.sync(() => ({ inFlight, waiting, finished }))
  })
})

/** The dispatcher (it does not run until {@link layerWorker} or `run` starts it). */
export const layer: Layer.Layer<Dispatcher, never, Storage | Queue | Lifecycle | HttpClient.HttpClient> = Layer
  .effect(Dispatcher, make)

/** Runs the dispatcher in the background while the layer lives; storage failures are logged and retried. */
export const layerWorker: Layer.Layer<never, never, Dispatcher> = Layer.effectDiscard(
  Effect.gen(function*() {
    const dispatcher = yield* Dispatcher
    yield* dispatcher.run.pipe(
      Effect.catchCause((cause) =>
        Effect.logError("The dispatcher stopped on a storage failure; restarting in 1 second").pipe(
          Effect.annotateLogs({ cause }),
          Effect.andThen(Effect.sleep("1 second"))
        )
      ),
      Effect.forever,
      Effect.forkScoped
    )
  })
)
