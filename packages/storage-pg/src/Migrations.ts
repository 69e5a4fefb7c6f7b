/**
 * Numbered migrations, in code, applied in order by effect's Migrator (table
 * `effect_sql_migrations`). `schema.sql` beside this package is the readable
 * snapshot of the result; a test keeps it in sync.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { Migrator, SqlClient } from "effect/sql"
import { createHash } from "node:crypto"

/** The first schema: tenants, keys, endpoints, events, attempts, the delivery queue, usage and idempotency. */
const initial: ReadonlyArray<string> = [
  `
    CREATE TABLE organizations (
      id text PRIMARY KEY,
      name text NOT NULL,
      plan text NOT NULL,
      created_at timestamptz NOT NULL
    )`,
  `
    CREATE TABLE api_keys (
      id text PRIMARY KEY,
      organization_id text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
      name text NOT NULL,
      prefix text NOT NULL,
      key_hash text NOT NULL UNIQUE,
      created_at timestamptz NOT NULL,
      last_used_at timestamptz,
      revoked_at timestamptz
    )`,
  `CREATE INDEX api_keys_organization ON api_keys (organization_id, id)`,
  `
    CREATE TABLE endpoints (
      id text PRIMARY KEY,
      organization_id text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
      url text NOT NULL,
      description text NOT NULL,
      secret text NOT NULL,
      previous_secret text,
      previous_secret_expires_at timestamptz,
      event_types text[] NOT NULL,
      enabled boolean NOT NULL,
      require_signature boolean NOT NULL,
      headers jsonb NOT NULL,
      retry_delays integer[],
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL
    )`,
  `CREATE INDEX endpoints_organization ON endpoints (organization_id, id)`,
  // Events keep their endpoint id after the endpoint is deleted (they are FAILED then), so no foreign key.
  // No index covers the delivery state (status, attempt_count, ...), and pages keep room, so that the
  // one or two updates of each event are HOT: no new index entries, no copy of the body into indexes.
  `
    CREATE TABLE events (
      id text PRIMARY KEY,
      organization_id text NOT NULL,
      endpoint_id text NOT NULL,
      event_type text,
      body bytea NOT NULL,
      payload jsonb,
      status text NOT NULL,
      cycle integer NOT NULL,
      attempt_count integer NOT NULL,
      next_attempt_at timestamptz,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL
    ) WITH (fillfactor = 75)`,
  `CREATE INDEX events_organization ON events (organization_id, id)`,
  `CREATE INDEX events_endpoint ON events (endpoint_id, id)`,
  // Append-only.
  `
    CREATE TABLE attempts (
      id text PRIMARY KEY,
      event_id text NOT NULL,
      organization_id text NOT NULL,
      endpoint_id text NOT NULL,
      cycle integer NOT NULL,
      number integer NOT NULL,
      status_code integer,
      response_body text,
      duration_ms integer NOT NULL,
      error text,
      succeeded boolean NOT NULL,
      created_at timestamptz NOT NULL,
      UNIQUE (event_id, cycle, number)
    )`,
  // The queue: one narrow row per pending delivery, deleted when the event is final, so the index on
  // available_at only ever holds pending deliveries. available_at is the due time, or the lease expiry
  // while a worker holds the delivery, so an expired lease is claimable like any due delivery.
  `
    CREATE TABLE deliveries (
      event_id text PRIMARY KEY,
      endpoint_id text NOT NULL,
      available_at timestamptz NOT NULL,
      lease text
    )`,
  `CREATE INDEX deliveries_available ON deliveries (available_at)`,
  // Counters are sharded so that concurrent ingest transactions do not queue on one row; the sum is exact.
  `
    CREATE TABLE usage_counters (
      organization_id text NOT NULL,
      period_start timestamptz NOT NULL,
      shard smallint NOT NULL,
      events bigint NOT NULL,
      PRIMARY KEY (organization_id, period_start, shard)
    )`,
  `
    CREATE TABLE idempotency_keys (
      organization_id text NOT NULL,
      key text NOT NULL,
      event_id text NOT NULL,
      body_hash text NOT NULL,
      expires_at timestamptz NOT NULL,
      PRIMARY KEY (organization_id, key)
    )`,
  `CREATE INDEX idempotency_keys_expiry ON idempotency_keys (organization_id, expires_at)`
]

/**
 * Drops `events.payload`, a jsonb copy of the body that nothing read: every reader parses `body`, the exact
 * bytes received. Writing it cost PostgreSQL a jsonb parse and a second copy of every body in the WAL, and
 * the server a second decode and parse per event (about a quarter of PostgreSQL's CPU per ingested event).
 */
const dropEventPayload: ReadonlyArray<string> = [`ALTER TABLE events DROP COLUMN payload`]

/** The statements of every migration, by `<number>_<name>`. */
export const statements: Readonly<Record<string, ReadonlyArray<string>>> = {
  "0001_initial": initial,
  "0002_drop_event_payload": dropEventPayload
}

/** The migrations up to and including `last` (all of them by default), as the Migrator loads them. */
const loaderThrough = (last?: string) =>
  Migrator.fromRecord(
    Object.fromEntries(
      Object.entries(statements).filter(([name]) => last === undefined || name <= last).map(([name, list]) => [
        name,
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          for (const statement of list) yield* sql.unsafe(statement)
        })
      ])
    )
  )

/** Every migration as the Migrator loads it. */
export const loader = loaderThrough()

/** A hash of every migration: it changes whenever one is added or edited (test templates are keyed by it). */
export const fingerprint: string = createHash("sha256").update(JSON.stringify(statements)).digest("hex").slice(0, 16)

/** Applies the migrations not yet applied; returns the ones it ran. */
export const run = Migrator.make({})({ loader })

/** Applies the migrations not yet applied up to and including `last` (upgrade tests start from an old schema). */
export const runThrough = (last: string) => Migrator.make({})({ loader: loaderThrough(last) })
