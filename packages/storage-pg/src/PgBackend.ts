/**
 * The Storage and Queue ports on PostgreSQL (and on PGlite, through the same
 * code), over effect's `SqlClient`.
 *
 * - Ingest is group-committed: concurrent ingests share one transaction, so
 *   the commit cost is paid once per batch; each caller resumes after the
 *   commit that holds its event.
 * - Claims take due rows with `FOR UPDATE SKIP LOCKED` and set a lease;
 *   completions check the lease, so a worker that lost its lease cannot
 *   record an attempt (attempt numbers never skip or repeat).
 * - Transactions are short and never span an HTTP call.
 * - New work wakes workers through an in-process signal and, on a real
 *   server, a `NOTIFY` after commits that add due work (ingest: at most one
 *   every few milliseconds, shared by the batches committed meanwhile).
 *
 * @since 0.1.0
 */
import { Domain, Errors, Ids, Signal as CoreSignal } from "@promptjang/core"
import type { ApiKey, Attempt, Endpoint, Event, EventStatus, Organization } from "@promptjang/core/Domain"
import type { ApiKeyId, EndpointId, EventId, OrganizationId } from "@promptjang/core/Ids"
import type { Claim, Completion, LocalWorker, Queue } from "@promptjang/core/Queue"
import type { IngestOutcome, IngestRecord, Page, PageRequest, Storage } from "@promptjang/core/Storage"
import { Clock, Duration, Effect, Option, Random, type Scope } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { randomUUID } from "node:crypto"
import * as GroupCommit from "./GroupCommit.ts"

/** The shortest time between two NOTIFYs of ingested work (the most other processes wait to hear of it). */
const NOTIFY_INTERVAL_MS = 5

/** The channel of new-work notifications. */
export const CHANNEL = "promptjang_work"

/** Tuning of the backend. */
export interface PgBackendOptions {
  /** Writers of the ingest group commit (see `PgStorage.serverOptions`). */
  readonly ingestWriters: number
  /** While an ingest batch commits, another writer starts only once this many events wait (see GroupCommit). */
  readonly ingestOverlapAt: number
  /**
   * Writers of the completion group commit. Nobody waits on a completion but the dispatcher's slot, so
   * fewer writers (larger batches, fewer commits) cost little.
   */
  readonly completionWriters: number
  /**
   * How long the completion writer waits for more before it takes a batch (its GroupCommit `gather`). A
   * recorded attempt holds no request slot (see the dispatcher's `maxUnfinished`), so a few milliseconds make
   * commits fewer and larger at little cost: a crash leaves the deliveries of those milliseconds to be sent again.
   */
  readonly completionLingerMs: number
  /** The most events in one ingest transaction. */
  readonly maxIngestBatch: number
  /** Waits one macrotask before taking a batch (PGlite: lets concurrent requests join it). */
  readonly gatherIngest: boolean
  /** Sends `NOTIFY` after commits that add due work (a real server; PGlite cannot deliver them). */
  readonly notify: boolean
  /**
   * Vacuums the deliveries table once this process has changed this many of its rows (claimed, completed,
   * released, rescheduled) since the last time; 0 never does. See the queue upkeep in `make`.
   */
  readonly vacuumDeliveriesAfter: number
  /** How often the count above is looked at, in milliseconds of wall-clock time. */
  readonly vacuumCheckMs: number
  /**
   * Vacuums the whole database this often, in milliseconds of wall-clock time (0: never), for a database
   * that has no autovacuum of its own (PGlite).
   */
  readonly vacuumDatabaseEveryMs: number
}

/** The in-process wake-up signal, with the instance id that marks this process's own NOTIFY payloads. */
export interface Signal extends CoreSignal.Signal {
  readonly instance: string
}

/** A fresh signal for one process. */
export const makeSignal = (): Signal => ({ ...CoreSignal.make(), instance: randomUUID() })

/** A delivery leased to the local worker in the ingest write. */
interface Handoff {
  readonly lease: string
  readonly leaseExpiresAt: number
}

const storageError = (error: SqlError.SqlError): Errors.StorageError =>
  new Errors.StorageError({
    reason: error.reason._tag === "ConnectionError" ? "Unavailable" : "Unknown",
    message: `The database failed: ${error.reason._tag}`,
    cause: error
  })

/** Maps the driver's errors to the port's. */
const orFail = <A, R>(effect: Effect.Effect<A, SqlError.SqlError, R>): Effect.Effect<A, Errors.StorageError, R> =>
  Effect.mapError(effect, storageError)

/** Waits `ms` milliseconds of wall-clock time (not the Effect clock, so a test clock never holds commits back). */
const wallClockSleep = (ms: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

const millis = (value: Date | null): number | null => (value === null ? null : value.getTime())
const date = (value: number | null): Date | null => (value === null ? null : new Date(value))
const time = (value: Date): number => value.getTime()

interface OrganizationRow {
  readonly id: string
  readonly name: string
  readonly plan: string
  readonly created_at: Date
}
const toOrganization = (row: OrganizationRow): Organization => ({
  id: row.id as OrganizationId,
  name: row.name,
  plan: row.plan,
  createdAt: time(row.created_at)
})

interface ApiKeyRow {
  readonly id: string
  readonly organization_id: string
  readonly name: string
  readonly prefix: string
  readonly key_hash: string
  readonly created_at: Date
  readonly last_used_at: Date | null
  readonly revoked_at: Date | null
}
const toApiKey = (row: ApiKeyRow): ApiKey => ({
  id: row.id as ApiKeyId,
  organizationId: row.organization_id as OrganizationId,
  name: row.name,
  prefix: row.prefix,
  keyHash: row.key_hash,
  createdAt: time(row.created_at),
  lastUsedAt: millis(row.last_used_at),
  revokedAt: millis(row.revoked_at)
})

interface EndpointRow {
  readonly id: string
  readonly organization_id: string
  readonly url: string
  readonly description: string
  readonly secret: string
  readonly previous_secret: string | null
  readonly previous_secret_expires_at: Date | null
  readonly event_types: ReadonlyArray<string>
  readonly enabled: boolean
  readonly require_signature: boolean
  readonly headers: Record<string, string>
  readonly retry_delays: ReadonlyArray<number> | null
  readonly created_at: Date
  readonly updated_at: Date
}
const toEndpoint = (row: EndpointRow): Endpoint => ({
  id: row.id as EndpointId,
  organizationId: row.organization_id as OrganizationId,
  url: row.url,
  description: row.description,
  secret: row.secret,
  previousSecret: row.previous_secret,
  previousSecretExpiresAt: millis(row.previous_secret_expires_at),
  eventTypes: row.event_types,
  enabled: row.enabled,
  requireSignature: row.require_signature,
  headers: row.headers,
  retryDelays: row.retry_delays,
  createdAt: time(row.created_at),
  updatedAt: time(row.updated_at)
})

interface EventRow {
  readonly id: string
  readonly organization_id: string
  readonly endpoint_id: string
  readonly event_type: string | null
  readonly body: Uint8Array
  readonly status: string
  readonly cycle: number
  readonly attempt_count: number
  readonly next_attempt_at: Date | null
  readonly created_at: Date
  readonly updated_at: Date
}
const toEvent = (row: EventRow): Event => ({
  id: row.id as EventId,
  organizationId: row.organization_id as OrganizationId,
  endpointId: row.endpoint_id as EndpointId,
  eventType: row.event_type,
  body: row.body,
  status: row.status as EventStatus,
  cycle: row.cycle,
  attemptCount: row.attempt_count,
  nextAttemptAt: millis(row.next_attempt_at),
  createdAt: time(row.created_at),
  updatedAt: time(row.updated_at)
})

interface AttemptRow {
  readonly id: string
  readonly event_id: string
  readonly organization_id: string
  readonly endpoint_id: string
  readonly cycle: number
  readonly number: number
  readonly status_code: number | null
  readonly response_body: string | null
  readonly duration_ms: number
  readonly error: string | null
  readonly succeeded: boolean
  readonly created_at: Date
}
const toAttempt = (row: AttemptRow): Attempt => ({
  id: row.id as Attempt["id"],
  eventId: row.event_id as EventId,
  organizationId: row.organization_id as OrganizationId,
  endpointId: row.endpoint_id as EndpointId,
  cycle: row.cycle,
  number: row.number,
  statusCode: row.status_code,
  responseBody: row.response_body,
  durationMs: row.duration_ms,
  error: row.error as Attempt["error"],
  succeeded: row.succeeded,
  createdAt: time(row.created_at)
})

const EVENT_COLUMNS =
  "e.id, e.organization_id, e.endpoint_id, e.event_type, e.body, e.status, e.cycle, e.attempt_count, e.next_attempt_at, e.created_at, e.updated_at"

const pageOf = <A extends { readonly id: string }>(rows: ReadonlyArray<A>, page: PageRequest): Page<A> => {
  const data = rows.slice(0, page.limit)
  const last = data[data.length - 1]
  return { data, nextCursor: rows.length > page.limit && last !== undefined ? last.id : null }
}

const USAGE_SHARDS = 16

// Ids sort by creation time: every id made before `t` sorts below format(prefix, t, zeros), so retention
// walks the (organization_id, id) index instead of needing one on created_at.
const ZERO_BYTES = new Uint8Array(13)

/**
 * An array parameter whose elements may all be null: the driver cannot type such an array, so send an
 * empty one instead; `unnest` pads the shorter arrays of a row set with nulls, which gives the same rows.
 */
const nullable = <A>(values: ReadonlyArray<A | null>): ReadonlyArray<A | null> =>
  values.every((value) => value === null) ? [] : values

/** Builds both ports over the `SqlClient` in context, sharing one signal and one ingest group commit. */
export const make = (options: PgBackendOptions, signal: Signal): Effect.Effect<
  { readonly storage: Storage["Service"]; readonly queue: Queue["Service"] },
  never,
  SqlClient.SqlClient | Scope.Scope
> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const notifySql = options.notify ? sql`SELECT pg_notify(${CHANNEL}, ${signal.instance})` : undefined
    const notify = notifySql === undefined ? Effect.void : Effect.asVoid(notifySql)

    // Other processes learn of ingested work from a NOTIFY sent after the commit, in its own statement, at
    // most one every NOTIFY_INTERVAL_MS: the batches committed meanwhile share the next one. A NOTIFY inside
    // each ingest transaction took PostgreSQL's global notify lock at every commit, and one per batch cost a
    // statement per event at moderate rates; this process's own workers are woken in-process at once.
    const ingested = CoreSignal.make()
    if (notifySql !== undefined) {
      let sent = 0
      yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
        yield* ingested.await(sent)
        sent = ingested.version()
        yield* notifySql.pipe(
          Effect.catchCause((cause) =>
            Effect.logWarning("Could not notify other processes of new work; they find it on their next poll").pipe(
              Effect.annotateLogs({ cause })
            )
          )
        )
        yield* Effect.sleep(Duration.millis(NOTIFY_INTERVAL_MS))
      })))
    }

    // -- ingest: one transaction per batch --------------------------------------------------------------------
    /**
     * Writes accepted events, their first deliveries and the usage increments in ONE statement:
     * data-modifying CTEs run once each, in one implicit transaction, so a batch costs one round trip and
     * one commit.
     */
    const insertAccepted = (accepted: ReadonlyArray<IngestRecord>, leases: ReadonlyMap<string, Handoff>) => {
      const events = accepted.map((r) => r.event)
      const handoffs = events.map((e) => leases.get(e.id))
      // The API key check, the inserts and the usage count read the same rows: `input` is materialized once.
      // Usage rows are upserted in (organization, period) order, so concurrent batches lock them in one order.
      return Effect.flatMap(Random.nextIntBetween(0, USAGE_SHARDS - 1), (shard) =>
        sql<{ id: string }>`
          WITH input AS (
            SELECT * FROM unnest(
              ${events.map((e) => e.id)}::text[], ${events.map((e) => e.organizationId)}::text[],
              ${events.map((e) => e.endpointId)}::text[], ${nullable(events.map((e) => e.eventType))}::text[],
              ${events.map((e) => e.body)}::bytea[],
              ${events.map((e) => e.status)}::text[], ${events.map((e) => e.cycle)}::int[],
              ${events.map((e) => e.attemptCount)}::int[],
              ${nullable(events.map((e) => date(e.nextAttemptAt)))}::timestamptz[],
              ${events.map((e) => new Date(e.createdAt))}::timestamptz[],
              ${events.map((e) => new Date(e.updatedAt))}::timestamptz[],
              ${accepted.map((r) => new Date(r.periodStart))}::timestamptz[],
              ${nullable(accepted.map((r) => r.apiKeyId ?? null))}::text[],
              ${nullable(handoffs.map((h) => h?.lease ?? null))}::text[],
              ${nullable(handoffs.map((h) => (h === undefined ? null : new Date(h.leaseExpiresAt))))}::timestamptz[]
            ) AS v(id, organization_id, endpoint_id, event_type, body, status, cycle, attempt_count,
                   next_attempt_at, created_at, updated_at, period_start, api_key_id, lease, lease_expires_at)
            WHERE v.api_key_id IS NULL
               OR EXISTS (SELECT 1 FROM api_keys k WHERE k.id = v.api_key_id AND k.revoked_at IS NULL)
          ), inserted AS (
            INSERT INTO events (id, organization_id, endpoint_id, event_type, body, status, cycle,
                                attempt_count, next_attempt_at, created_at, updated_at)
            SELECT id, organization_id, endpoint_id, event_type, body, status, cycle,
                   attempt_count, next_attempt_at, created_at, updated_at
            FROM input
            RETURNING id, endpoint_id, COALESCE(next_attempt_at, created_at) AS due_at
          ), scheduled AS (
            INSERT INTO deliveries (event_id, endpoint_id, available_at, lease)
            SELECT i.id, i.endpoint_id, COALESCE(v.lease_expires_at, i.due_at), v.lease
            FROM inserted i JOIN input v ON v.id = i.id
          ), counted AS (
            INSERT INTO usage_counters (organization_id, period_start, shard, events)
            SELECT organization_id, period_start, ${shard}, count(*) FROM input
            GROUP BY organization_id, period_start ORDER BY organization_id, period_start
            ON CONFLICT (organization_id, period_start, shard)
            DO UPDATE SET events = usage_counters.events + excluded.events
          )
          SELECT id FROM input`).pipe(Effect.map((rows) => new Set(rows.map((row) => row.id))))
    }

    /** The API keys of `records` that exist and are not revoked, locked until the transaction ends. */
    const liveKeys = (records: ReadonlyArray<IngestRecord>) => {
      const ids = Array.from(new Set(records.flatMap((r) => (r.apiKeyId === undefined ? [] : [r.apiKeyId]))))
      if (ids.length === 0) return Effect.succeed(new Set<string>())
      return Effect.map(
        sql<{ id: string }>`SELECT id FROM api_keys WHERE id = ANY(${ids}::text[]) AND revoked_at IS NULL FOR SHARE`,
        (rows) => new Set(rows.map((row) => row.id))
      )
    }

    /** Claims the idempotency keys of a batch one by one (rare), deciding which records go in. */
    const claimKeys = (records: ReadonlyArray<IngestRecord>) =>
      Effect.gen(function*() {
        const outcomes: Array<IngestOutcome> = []
        const accepted: Array<IngestRecord> = []
        const seenKeys = new Map<string, IngestRecord>()
        for (const record of records) {
          if (record.idempotency === null) {
            outcomes.push({ _tag: "Inserted" })
            accepted.push(record)
            continue
          }
          const key = `${record.event.organizationId}\u0000${record.idempotency.key}`
          const first = seenKeys.get(key)
          if (first !== undefined && first.idempotency !== null) {
            // The same key twice in one batch: the second is a duplicate of the first.
            outcomes.push({ _tag: "Duplicate", eventId: first.event.id, bodyHash: first.idempotency.bodyHash })
            continue
          }
          const claimed = yield* sql<{ event_id: string }>`
            INSERT INTO idempotency_keys (organization_id, key, event_id, body_hash, expires_at)
            VALUES (${record.event.organizationId}, ${record.idempotency.key}, ${record.event.id},
                    ${record.idempotency.bodyHash}, ${new Date(record.idempotency.expiresAt)})
            ON CONFLICT (organization_id, key) DO UPDATE
              SET event_id = excluded.event_id, body_hash = excluded.body_hash, expires_at = excluded.expires_at
              WHERE idempotency_keys.expires_at <= ${new Date(record.event.createdAt)}
            RETURNING event_id`
          if (claimed.length > 0) {
            seenKeys.set(key, record)
            outcomes.push({ _tag: "Inserted" })
            accepted.push(record)
          } else {
            const [existing] = yield* sql<{ event_id: string; body_hash: string }>`
              SELECT event_id, body_hash FROM idempotency_keys
              WHERE organization_id = ${record.event.organizationId} AND key = ${record.idempotency.key}`
            outcomes.push(
              existing === undefined
                ? { _tag: "Inserted" }
                : { _tag: "Duplicate", eventId: existing.event_id as EventId, bodyHash: existing.body_hash }
            )
          }
        }
        return { outcomes, accepted }
      })

    // This process's dispatcher, when attached: deliveries of events ingested here are leased to it in the
    // ingest write and handed over after the commit, without a claim round trip.
    let localWorker: LocalWorker | undefined
    const handoffToken = Effect.map(Random.nextIntBetween(0, Number.MAX_SAFE_INTEGER), (n) => n.toString(36))

    /** Reserves the local worker's slots for the records it can take now. */
    const reserveHandoffs = (records: ReadonlyArray<IngestRecord>) =>
      Effect.gen(function*() {
        const worker = localWorker
        const leases = new Map<string, Handoff>()
        if (worker === undefined) return { worker, leases }
        const now = yield* Clock.currentTimeMillis
        const token = yield* handoffToken
        for (const record of records) {
          const dueAt = record.event.nextAttemptAt ?? record.event.createdAt
          if (dueAt <= now && worker.reserve(record.event.endpointId)) {
            leases.set(record.event.id, {
              lease: `${token}:${record.event.id}`,
              leaseExpiresAt: now + worker.leaseMs
            })
          }
        }
        return { worker, leases }
      })

    const writeIngestBatch = (records: ReadonlyArray<IngestRecord>) =>
      Effect.flatMap(reserveHandoffs(records), ({ leases, worker }) =>
        writeRecords(records, leases).pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              if (worker === undefined || leases.size === 0) return
              records.forEach((record, i) => {
                const handoff = leases.get(record.event.id)
                if (handoff === undefined) return
                if (exit._tag === "Success" && exit.value[i]?._tag === "Inserted") {
                  worker.take({ event: record.event, ...handoff })
                } else worker.cancel(record.event.endpointId)
              })
            })
          )
        ))

    const writeRecords = (records: ReadonlyArray<IngestRecord>, leases: ReadonlyMap<string, Handoff>) => {
      const write = records.every((r) => r.idempotency === null)
        // The common case: one statement, its own transaction.
        ? Effect.map(insertAccepted(records, leases), (inserted) =>
          records.map((r): IngestOutcome =>
            inserted.has(r.event.id) ? { _tag: "Inserted" } : { _tag: "KeyRevoked" }
          ))
        : Effect.gen(function*() {
          // Keys first (locked against a concurrent revoke), so that no idempotency key is claimed for an
          // event that is then refused.
          const live = yield* liveKeys(records)
          const allowed = records.filter((r) => r.apiKeyId === undefined || live.has(r.apiKeyId))
          const { accepted, outcomes } = yield* claimKeys(allowed)
          if (accepted.length > 0) yield* insertAccepted(accepted, leases)
          const byEvent = new Map(allowed.map((r, i) => [r.event.id, outcomes[i]]))
          return records.map((r): IngestOutcome => byEvent.get(r.event.id) ?? { _tag: "KeyRevoked" })
        }).pipe(sql.withTransaction)
      return write.pipe(
        orFail,
        Effect.tap((outcomes) =>
          Effect.sync(() => {
            // Deliveries handed over in-process are leased: nobody else needs to look for them.
            if (records.some((r, i) => outcomes[i]?._tag === "Inserted" && !leases.has(r.event.id))) {
              signal.bump()
              ingested.bump()
            }
          })
        )
      )
    }

    const ingest = yield* GroupCommit.make({
      write: writeIngestBatch,
      maxBatch: options.maxIngestBatch,
      writers: options.ingestWriters,
      overlapAt: options.ingestOverlapAt,
      gather: options.gatherIngest
        ? Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
        : undefined
    })

    // -- storage -----------------------------------------------------------------------------------------------
    const storage: Storage["Service"] = {
      createOrganization: (o) =>
        orFail(sql`INSERT INTO organizations (id, name, plan, created_at)
                   VALUES (${o.id}, ${o.name}, ${o.plan}, ${new Date(o.createdAt)})`).pipe(Effect.asVoid),
      getOrganization: (id) =>
        orFail(sql<OrganizationRow>`SELECT * FROM organizations WHERE id = ${id}`).pipe(
          Effect.map((rows) => Option.map(Option.fromUndefinedOr(rows[0]), toOrganization))
        ),
      listOrganizations: orFail(sql<OrganizationRow>`SELECT * FROM organizations ORDER BY id`).pipe(
        Effect.map((rows) => rows.map(toOrganization))
      ),

      createApiKey: (k) =>
        orFail(
          sql`INSERT INTO api_keys (id, organization_id, name, prefix, key_hash, created_at, last_used_at, revoked_at)
                   VALUES (${k.id}, ${k.organizationId}, ${k.name}, ${k.prefix}, ${k.keyHash}, ${new Date(k.createdAt)},
                           ${date(k.lastUsedAt)}, ${date(k.revokedAt)})`
        ).pipe(Effect.asVoid),
      findApiKeyByHash: (hash) =>
        orFail(sql<ApiKeyRow>`SELECT * FROM api_keys WHERE key_hash = ${hash}`).pipe(
          Effect.map((rows) => Option.map(Option.fromUndefinedOr(rows[0]), toApiKey))
        ),
      findApiKeyWithOrganization: (hash) =>
        orFail(sql<ApiKeyRow & { readonly org_name: string; readonly org_plan: string; readonly org_created_at: Date }>`
          SELECT k.*, o.name AS org_name, o.plan AS org_plan, o.created_at AS org_created_at
          FROM api_keys k JOIN organizations o ON o.id = k.organization_id
          WHERE k.key_hash = ${hash}`).pipe(
          Effect.map((rows) =>
            Option.map(Option.fromUndefinedOr(rows[0]), (row) => ({
              apiKey: toApiKey(row),
              organization: toOrganization({
                id: row.organization_id,
                name: row.org_name,
                plan: row.org_plan,
                created_at: row.org_created_at
              })
            }))
          )
        ),
      listApiKeys: (organizationId) =>
        orFail(sql<ApiKeyRow>`SELECT * FROM api_keys WHERE organization_id = ${organizationId} ORDER BY id`).pipe(
          Effect.map((rows) => rows.map(toApiKey))
        ),
      revokeApiKey: (organizationId, id, at) =>
        orFail(sql<{ id: string }>`
          UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ${new Date(at)})
          WHERE id = ${id} AND organization_id = ${organizationId} RETURNING id`).pipe(
          Effect.map((rows) => rows.length > 0)
        ),
      touchApiKeys: (uses) =>
        uses.length === 0 ? Effect.void : orFail(sql`
          UPDATE api_keys k SET last_used_at = v.at
          FROM unnest(${uses.map((u) => u.id)}::text[], ${uses.map((u) => new Date(u.at))}::timestamptz[]) AS v(id, at)
          WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < v.at)`).pipe(Effect.asVoid),

      createEndpoint: (e) =>
        orFail(sql`
          INSERT INTO endpoints (id, organization_id, url, description, secret, previous_secret, previous_secret_expires_at,
                                 event_types, enabled, require_signature, headers, retry_delays, created_at, updated_at)
          VALUES (${e.id}, ${e.organizationId}, ${e.url}, ${e.description}, ${e.secret}, ${e.previousSecret},
                  ${date(e.previousSecretExpiresAt)}, ${e.eventTypes}::text[], ${e.enabled}, ${e.requireSignature},
                  ${JSON.stringify(e.headers)}::jsonb, ${e.retryDelays}::int[], ${new Date(e.createdAt)},
                  ${new Date(e.updatedAt)})`).pipe(Effect.asVoid),
      getEndpoint: (organizationId, id) =>
        orFail(sql<EndpointRow>`SELECT * FROM endpoints WHERE id = ${id} AND organization_id = ${organizationId}`).pipe(
          Effect.map((rows) => Option.map(Option.fromUndefinedOr(rows[0]), toEndpoint))
        ),
      findEndpoint: (id) =>
        orFail(sql<EndpointRow>`SELECT * FROM endpoints WHERE id = ${id}`).pipe(
          Effect.map((rows) => Option.map(Option.fromUndefinedOr(rows[0]), toEndpoint))
        ),
      listEndpoints: (organizationId, page) =>
        orFail(sql<EndpointRow>`
          SELECT * FROM endpoints WHERE organization_id = ${organizationId}
          ${page.cursor === undefined ? sql`` : sql`AND id < ${page.cursor}`}
          ORDER BY id DESC LIMIT ${page.limit + 1}`).pipe(Effect.map((rows) => pageOf(rows.map(toEndpoint), page))),
      updateEndpoint: (organizationId, id, patch) =>
        Effect.gen(function*() {
          const [current] = yield* sql<EndpointRow>`
            SELECT * FROM endpoints WHERE id = ${id} AND organization_id = ${organizationId} FOR UPDATE`
          if (current === undefined) return Option.none()
          const next: Endpoint = { ...toEndpoint(current), ...patch }
          yield* sql`
            UPDATE endpoints SET url = ${next.url}, description = ${next.description}, secret = ${next.secret},
              previous_secret = ${next.previousSecret}, previous_secret_expires_at = ${
            date(next.previousSecretExpiresAt)
          },
              event_types = ${next.eventTypes}::text[], enabled = ${next.enabled}, require_signature = ${next.requireSignature},
              headers = ${JSON.stringify(next.headers)}::jsonb, retry_delays = ${next.retryDelays}::int[],
              updated_at = ${new Date(next.updatedAt)}
            WHERE id = ${id}`
          if (patch.enabled === true && !current.enabled) {
            // Deliveries parked while the endpoint was disabled are due again at once.
            yield* sql`
              UPDATE deliveries d SET available_at = LEAST(d.available_at, ${new Date(patch.updatedAt)})
              FROM events e
              WHERE e.endpoint_id = ${id} AND e.status = 'QUEUED' AND d.event_id = e.id AND d.lease IS NULL`
            yield* notify
          }
          return Option.some(next)
        }).pipe(
          sql.withTransaction,
          orFail,
          Effect.tap((updated) =>
            Effect.sync(() => {
              if (Option.isSome(updated) && patch.enabled === true) signal.bump()
            })
          )
        ),
      deleteEndpoint: (organizationId, id, at) =>
        Effect.gen(function*() {
          const deleted =
            yield* sql`DELETE FROM endpoints WHERE id = ${id} AND organization_id = ${organizationId} RETURNING id`
          if (deleted.length === 0) return Option.none()
          const failed = yield* sql<EventRow>`
            UPDATE events e SET status = 'FAILED', next_attempt_at = NULL, updated_at = ${new Date(at)}
            WHERE e.endpoint_id = ${id} AND e.status IN ('QUEUED', 'RETRYING')
            RETURNING ${sql.unsafe(EVENT_COLUMNS)}`
          yield* sql`DELETE FROM deliveries WHERE event_id = ANY(${failed.map((e) => e.id)}::text[])`
          return Option.some(failed.map(toEvent))
        }).pipe(sql.withTransaction, orFail),

      ingest,
      getEvent: (organizationId, id) =>
        orFail(sql<EventRow>`SELECT ${sql.unsafe(EVENT_COLUMNS)} FROM events e
                             WHERE e.id = ${id} AND e.organization_id = ${organizationId}`).pipe(
          Effect.map((rows) => Option.map(Option.fromUndefinedOr(rows[0]), toEvent))
        ),
      listEvents: (organizationId, filter, page) =>
        orFail(sql<EventRow>`
          SELECT ${sql.unsafe(EVENT_COLUMNS)} FROM events e
          WHERE e.organization_id = ${organizationId}
          ${filter.endpointId === undefined ? sql`` : sql`AND e.endpoint_id = ${filter.endpointId}`}
          ${filter.status === undefined ? sql`` : sql`AND e.status = ${filter.status}`}
          ${filter.eventType === undefined ? sql`` : sql`AND e.event_type = ${filter.eventType}`}
          ${page.cursor === undefined ? sql`` : sql`AND e.id < ${page.cursor}`}
          ORDER BY e.id DESC LIMIT ${page.limit + 1}`).pipe(Effect.map((rows) => pageOf(rows.map(toEvent), page))),
      listAttempts: (organizationId, eventId) =>
        orFail(sql<AttemptRow>`
          SELECT * FROM attempts WHERE event_id = ${eventId} AND organization_id = ${organizationId}
          ORDER BY cycle, number`).pipe(Effect.map((rows) => rows.map(toAttempt))),

      usage: (organizationId, periodStart) =>
        orFail(sql<{ total: bigint | null }>`
          SELECT sum(events)::bigint AS total FROM usage_counters
          WHERE organization_id = ${organizationId} AND period_start = ${new Date(periodStart)}`).pipe(
          Effect.map((rows) => Number(rows[0]?.total ?? 0))
        ),

      purgeEvents: (organizationId, before, limit) =>
        Effect.gen(function*() {
          const doomed = yield* sql<{ id: string }>`
            DELETE FROM events WHERE id IN (
              SELECT id FROM events WHERE organization_id = ${organizationId} AND id < ${
            Ids.format("evt_", before, ZERO_BYTES)
          }
                AND created_at < ${new Date(before)}
              ORDER BY id LIMIT ${limit}
            ) RETURNING id`
          if (doomed.length > 0) {
            const ids = doomed.map((row) => row.id)
            yield* sql`DELETE FROM attempts WHERE event_id = ANY(${ids}::text[])`
            yield* sql`DELETE FROM deliveries WHERE event_id = ANY(${ids}::text[])`
          }
          yield* sql`
            DELETE FROM idempotency_keys WHERE ctid IN (
              SELECT ctid FROM idempotency_keys WHERE organization_id = ${organizationId} AND expires_at <= ${new Date(
            before
          )}
              LIMIT ${limit}
            )`
          return doomed.length
        }).pipe(sql.withTransaction, orFail)
    }

    // -- completions: one transaction per batch -------------------------------------------------------------
    /**
     * Applies a batch of completions in ONE statement: the lease check (delete or reschedule the delivery
     * rows still held with the given lease), then the attempts and event states of exactly those.
     */
    const writeCompletions = (items: ReadonlyArray<{ readonly claim: Claim; readonly completion: Completion }>) => {
      const states = items.map((i) => i.completion.state)
      const attempts = items.flatMap((i) => (i.completion.attempt === null ? [] : [i.completion.attempt]))
      return sql<{ event_id: string }>`
        WITH v AS (
          SELECT * FROM unnest(
            ${items.map((i) => i.claim.event.id)}::text[], ${items.map((i) => i.claim.lease)}::text[],
            ${states.map((st) => Domain.isFinal(st.status))}::bool[],
            ${states.map((st) => new Date(st.nextAttemptAt ?? st.updatedAt))}::timestamptz[],
            ${states.map((st) => st.status)}::text[], ${states.map((st) => st.cycle)}::int[],
            ${states.map((st) => st.attemptCount)}::int[],
            ${nullable(states.map((st) => date(st.nextAttemptAt)))}::timestamptz[],
            ${states.map((st) => new Date(st.updatedAt))}::timestamptz[]
          ) AS v(event_id, lease, final, due_at, status, cycle, attempt_count, next_attempt_at, updated_at)
        ), finished AS (
          DELETE FROM deliveries d USING v
          WHERE v.final AND d.event_id = v.event_id AND d.lease = v.lease
          RETURNING d.event_id
        ), retried AS (
          UPDATE deliveries d SET lease = NULL, available_at = v.due_at FROM v
          WHERE NOT v.final AND d.event_id = v.event_id AND d.lease = v.lease
          RETURNING d.event_id
        ), held AS (
          SELECT event_id FROM finished UNION ALL SELECT event_id FROM retried
        ), recorded AS (
          INSERT INTO attempts (id, event_id, organization_id, endpoint_id, cycle, number, status_code,
                                response_body, duration_ms, error, succeeded, created_at)
          SELECT a.* FROM unnest(
            ${attempts.map((a) => a.id)}::text[], ${attempts.map((a) => a.eventId)}::text[],
            ${attempts.map((a) => a.organizationId)}::text[], ${attempts.map((a) => a.endpointId)}::text[],
            ${attempts.map((a) => a.cycle)}::int[], ${attempts.map((a) => a.number)}::int[],
            ${nullable(attempts.map((a) => a.statusCode))}::int[],
            ${nullable(attempts.map((a) => a.responseBody))}::text[],
            ${attempts.map((a) => a.durationMs)}::int[], ${nullable(attempts.map((a) => a.error))}::text[],
            ${attempts.map((a) => a.succeeded)}::bool[], ${attempts.map((a) => new Date(a.createdAt))}::timestamptz[]
          ) AS a(id, event_id, organization_id, endpoint_id, cycle, number, status_code, response_body,
                 duration_ms, error, succeeded, created_at)
          WHERE a.event_id IN (SELECT event_id FROM held)
        ), updated AS (
          UPDATE events e SET status = v.status, cycle = v.cycle, attempt_count = v.attempt_count,
            next_attempt_at = v.next_attempt_at, updated_at = v.updated_at
          FROM v WHERE e.id = v.event_id AND v.event_id IN (SELECT event_id FROM held)
        )
        SELECT event_id FROM held`.pipe(
        orFail,
        Effect.map((rows) => {
          const held = new Set(rows.map((row) => row.event_id))
          return items.map((i) => held.has(i.claim.event.id))
        })
      )
    }

    // Rows of the deliveries table this process has changed since it was last vacuumed (see the upkeep below).
    let changedDeliveries = 0
    const complete = yield* GroupCommit.make({
      write: (items: ReadonlyArray<{ readonly claim: Claim; readonly completion: Completion }>) => {
        changedDeliveries += items.length
        return writeCompletions(items)
      },
      maxBatch: options.maxIngestBatch,
      writers: options.completionWriters,
      gather: options.completionLingerMs > 0 ? wallClockSleep(options.completionLingerMs) : undefined
    })

    // -- queue upkeep ----------------------------------------------------------------------------------------
    // The deliveries table is a queue: every delivery leaves dead rows behind (its claim, its deletion), and
    // until a vacuum every statement on the table reads past them. Autovacuum visits a database at most once a
    // minute, and never on PGlite (no background processes) or where it is turned off. Measured on a server
    // with autovacuum off, at 2,000 events/s for 90 s: the table grew to 2,752 pages holding 186k dead rows,
    // PostgreSQL's CPU rose from 32% to 55% of a core and the p99 from ack to delivery was 10.5 ms; with this
    // upkeep the table stayed at 115–162 pages, the CPU at 31–37% and the p99 5.0 ms. So the process that
    // changes the rows vacuums the table (and refreshes its statistics, which replans the statements on it)
    // once it has changed `vacuumDeliveriesAfter` of them. SKIP_LOCKED: when another process or autovacuum
    // is at it, this one lets it be.
    /** A vacuum whose failure is logged: the next one tries again. */
    const vacuum = (statement: Effect.Effect<unknown, SqlError.SqlError>, what: string) =>
      statement.pipe(
        Effect.catchCause((cause) =>
          Effect.logWarning(`Could not vacuum ${what}; will try again`).pipe(Effect.annotateLogs({ cause }))
        )
      )
    if (options.vacuumDeliveriesAfter > 0) {
      yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
        yield* wallClockSleep(options.vacuumCheckMs)
        if (changedDeliveries < options.vacuumDeliveriesAfter) return
        changedDeliveries = 0
        yield* vacuum(sql`VACUUM (ANALYZE, SKIP_LOCKED) deliveries`, "the deliveries table")
      })))
    }
    // Without autovacuum (PGlite), nothing else reclaims the space of purged events and old row versions.
    if (options.vacuumDatabaseEveryMs > 0) {
      yield* Effect.forkScoped(Effect.forever(Effect.andThen(
        wallClockSleep(options.vacuumDatabaseEveryMs),
        vacuum(sql`VACUUM (ANALYZE, SKIP_LOCKED)`, "the database")
      )))
    }

    // -- queue -------------------------------------------------------------------------------------------------
    const leaseToken = Effect.map(Random.nextIntBetween(0, Number.MAX_SAFE_INTEGER), (n) => n.toString(36))

    const queue: Queue["Service"] = {
      schedule: (request) =>
        Effect.gen(function*() {
          const updated = yield* sql<{ id: string; endpoint_id: string }>`
            UPDATE events SET status = ${request.state.status}, cycle = ${request.state.cycle},
              attempt_count = ${request.state.attemptCount}, next_attempt_at = ${date(request.state.nextAttemptAt)},
              updated_at = ${new Date(request.state.updatedAt)}
            WHERE id = ${request.eventId} AND organization_id = ${request.organizationId}
              AND status = ${request.expected.status} AND cycle = ${request.expected.cycle}
            RETURNING id, endpoint_id`
          const row = updated[0]
          if (row === undefined) return false
          yield* sql`
            INSERT INTO deliveries (event_id, endpoint_id, available_at)
            VALUES (${row.id}, ${row.endpoint_id}, ${new Date(request.state.nextAttemptAt ?? request.state.updatedAt)})
            ON CONFLICT (event_id) DO UPDATE SET available_at = excluded.available_at, lease = NULL`
          yield* notify
          return true
        }).pipe(
          sql.withTransaction,
          orFail,
          Effect.tap((scheduled) =>
            Effect.sync(() => {
              if (scheduled) signal.bump()
            })
          )
        ),

      claimDue: ({ endpointLimits, excludeEndpoints, leaseMs, limit, maxPerEndpoint, now }) =>
        Effect.gen(function*() {
          const token = yield* leaseToken
          const excluded = excludeEndpoints ?? []
          const perEndpoint = maxPerEndpoint ?? limit
          const limited = Array.from(endpointLimits ?? [])
          const due = sql`available_at <= ${new Date(now)}
              ${excluded.length === 0 ? sql`` : sql`AND endpoint_id <> ALL(${excluded}::text[])`}`
          // When no endpoint may take fewer than the whole claim, the per-endpoint caps cannot bind: take the
          // earliest due rows straight from the index, skipping (and replacing) rows other workers hold.
          // Otherwise rank a window of due rows per endpoint without locking, then lock what to take,
          // skipping rows that other workers hold; FOR UPDATE cannot sit beside a window function.
          const capsBind = perEndpoint < limit || limited.some(([, cap]) => cap < limit)
          const picked = !capsBind
            ? sql`picked AS (
              SELECT event_id FROM deliveries WHERE ${due}
              ORDER BY available_at LIMIT ${limit}
              FOR UPDATE SKIP LOCKED
            )`
            : sql`window_rows AS (
              SELECT event_id, endpoint_id, available_at FROM deliveries WHERE ${due}
              ORDER BY available_at LIMIT ${limit * 4}
            ), ranked AS (
              SELECT event_id, endpoint_id, available_at,
                row_number() OVER (PARTITION BY endpoint_id ORDER BY available_at) AS rank
              FROM window_rows
            ), chosen AS (
              SELECT event_id FROM ranked r
              ${
              limited.length === 0
                ? sql`WHERE r.rank <= ${perEndpoint}`
                : sql`LEFT JOIN unnest(${limited.map(([id]) => id)}::text[], ${limited.map(([, n]) => n)}::int[])
                      AS l(endpoint_id, cap) ON l.endpoint_id = r.endpoint_id
                    WHERE r.rank <= COALESCE(l.cap, ${perEndpoint})`
            }
              ORDER BY available_at LIMIT ${limit}
            ), picked AS (
              SELECT d.event_id FROM deliveries d
              WHERE d.event_id IN (SELECT event_id FROM chosen) AND d.available_at <= ${new Date(now)}
              FOR UPDATE SKIP LOCKED
            )`
          const rows = yield* sql<EventRow & { lease: string }>`
            WITH ${picked}, leased AS (
              UPDATE deliveries d SET lease = ${token} || ':' || d.event_id, available_at = ${new Date(now + leaseMs)}
              FROM picked p WHERE d.event_id = p.event_id
              RETURNING d.event_id, d.lease
            )
            SELECT ${sql.unsafe(EVENT_COLUMNS)}, l.lease FROM leased l JOIN events e ON e.id = l.event_id
            ORDER BY e.id`
          changedDeliveries += rows.length
          return rows.map((row): Claim => ({ event: toEvent(row), lease: row.lease, leaseExpiresAt: now + leaseMs }))
        }).pipe(orFail),

      complete: (claim, completion) => complete({ claim, completion }),

      reschedule: (claim, dueAt) =>
        orFail(sql`
          UPDATE deliveries SET lease = NULL, available_at = ${new Date(dueAt)}
          WHERE event_id = ${claim.event.id} AND lease = ${claim.lease} RETURNING event_id`).pipe(
          Effect.map((rows) => {
            changedDeliveries += rows.length
            return rows.length > 0
          })
        ),

      release: (claims) =>
        claims.length === 0 ? Effect.void : Effect.gen(function*() {
          changedDeliveries += claims.length
          yield* sql`
            UPDATE deliveries d SET lease = NULL, available_at = ${new Date(0)}
            FROM unnest(${claims.map((c) => c.event.id)}::text[], ${
            claims.map((c) => c.lease)
          }::text[]) AS v(event_id, lease)
            WHERE d.event_id = v.event_id AND d.lease = v.lease`
          yield* notify
        }).pipe(sql.withTransaction, orFail, Effect.tap(() => Effect.sync(signal.bump))),

      nextDueAt: orFail(sql<{ at: Date | null }>`SELECT min(available_at) AS at FROM deliveries`).pipe(
        Effect.map((rows) => Option.map(Option.fromNullishOr(rows[0]?.at), time))
      ),
      attachWorker: (worker) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            localWorker = worker
          }),
          () =>
            Effect.sync(() => {
              if (localWorker === worker) localWorker = undefined
            })
        ),
      signalVersion: Effect.sync(signal.version),
      awaitSignal: signal.await,
      stats: orFail(sql<{ pending: bigint; oldest: Date | null }>`
        SELECT count(*) AS pending, min(available_at) FILTER (WHERE lease IS NULL) AS oldest FROM deliveries`).pipe(
        Effect.map((rows) => ({ pending: Number(rows[0]?.pending ?? 0), oldestDueAt: millis(rows[0]?.oldest ?? null) }))
      )
    }

    return { storage, queue }
  })
