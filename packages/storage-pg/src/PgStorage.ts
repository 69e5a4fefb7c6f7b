/**
 * The layers of `@promptjang/storage-pg`: the Storage and Queue ports over
 * PostgreSQL or embedded PGlite, with migrations applied on start.
 *
 * @example
 * ```ts
 * // production: a PostgreSQL server
 * const Store = PgStorage.layerPostgres("postgres://user@db/promptjang")
 * // the embedded default: PGlite with its data on disk
 * const Embedded = PgStorage.layerPglite("./.promptjang")
 * ```
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { Queue, Storage } from "@promptjang/core"
import { Context, Effect, Layer, Queue as EffectQueue, type Redacted, Schedule } from "effect"
import type { Migrator, SqlClient, SqlError } from "effect/sql"
import * as Database from "./Database.ts"
import * as Migrations from "./Migrations.ts"
import * as PgBackend from "./PgBackend.ts"

/**
 * Tuning for a PostgreSQL server: two ingest writers that overlap only under load, one completion writer,
 * NOTIFY on. Each batch takes everything that arrived during the previous commit. A second ingest writer
 * starts while a batch commits only once 32 events wait: at moderate rates batches stay large and round trips
 * few (on a small machine a round trip costs ~100 µs of CPU), and under heavy ingest the commits overlap
 * (measured with `bench:http`: 64 connections reached ~9.8k events/s with two writers against 6.8k–9.0k with
 * one; `bench:latency` showed no difference at 1,000 and 2,000 events/s). Starting the second writer at 32
 * rather than 16 waiting events made batches ~16 events instead of ~13 under that load: 19.7–21.1k against
 * 18.4–20.1k events/s (more in 5 of 6 interleaved pairs), with ~10% less CPU per event in the server and in
 * PostgreSQL and a lower p99; at 64 (the second writer hardly ever starts) it fell to 17.6–18.6k. The
 * completion writer waits 5 ms for more before each batch: `bench:latency` (500, 1,000 and 2,000 events/s)
 * then cost PostgreSQL about 20% less CPU (8.4–10.9 s against 11.2–16.1 s per run, five runs of each in turn).
 */
export const serverOptions: PgBackend.PgBackendOptions = {
  ingestWriters: 2,
  ingestOverlapAt: 32,
  completionWriters: 1,
  completionLingerMs: 5,
  maxIngestBatch: 500,
  gatherIngest: false,
  notify: true,
  vacuumDeliveriesAfter: 5_000,
  vacuumCheckMs: 5_000,
  vacuumDatabaseEveryMs: 0
}

/**
 * Tuning for PGlite: one writer that gathers a macrotask's worth of requests, completions that wait 5 ms for
 * more (as on a server: fewer statements on its one connection), no NOTIFY, and a vacuum of the whole database
 * every hour, as PGlite runs no autovacuum (it blocks PGlite's one connection while it runs).
 */
export const pgliteOptions: PgBackend.PgBackendOptions = {
  ingestWriters: 1,
  ingestOverlapAt: 1,
  completionWriters: 1,
  completionLingerMs: 5,
  maxIngestBatch: 500,
  gatherIngest: true,
  notify: false,
  vacuumDeliveriesAfter: 5_000,
  vacuumCheckMs: 5_000,
  vacuumDatabaseEveryMs: 60 * 60 * 1000
}

/** Both ports over one backend (one signal, one group commit). */
const ports = (
  options: PgBackend.PgBackendOptions,
  signal: PgBackend.Signal
): Layer.Layer<Storage.Storage | Queue.Queue, never, SqlClient.SqlClient> =>
  Layer.effectContext(
    Effect.map(PgBackend.make(options, signal), ({ queue, storage }) =>
      Context.make(Storage.Storage, storage).pipe(Context.add(Queue.Queue, queue)))
  )

/**
 * Wakes this process's workers on every NOTIFY of new work from other processes. The first LISTEN is
 * confirmed while the layer is built, so no notification after start-up is missed; after a lost connection
 * it listens again (with backoff) and looks for work committed meanwhile.
 */
const listen = (signal: PgBackend.Signal): Layer.Layer<never, SqlError.SqlError, PgClient.PgClient> =>
  Layer.effectDiscard(
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      const relay = (notifications: EffectQueue.Dequeue<{ readonly payload: string }, SqlError.SqlError>) =>
        Effect.forever(
          Effect.tap(EffectQueue.take(notifications), (notification) =>
            Effect.sync(() => {
              // This process's own commits already woke its workers.
              if (notification.payload !== signal.instance) signal.bump()
            }))
        )
      const relistening = Effect.scoped(
        Effect.gen(function*() {
          const notifications = yield* pg.listen(PgBackend.CHANNEL)
          signal.bump()
          return yield* relay(notifications)
        })
      ).pipe(
        Effect.tapCause((cause) =>
          Effect.logWarning("LISTEN connection lost; reconnecting").pipe(Effect.annotateLogs({ cause }))
        ),
        Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("10 seconds")]))
      )
      const first = yield* pg.listen(PgBackend.CHANNEL)
      yield* relay(first).pipe(
        Effect.tapCause((cause) =>
          Effect.logWarning("LISTEN connection lost; reconnecting").pipe(Effect.annotateLogs({ cause }))
        ),
        Effect.catchCause(() => relistening),
        Effect.forkScoped
      )
    })
  )

/** Applies pending migrations when built. */
export const layerMigrations: Layer.Layer<never, Migrator.MigrationError | SqlError.SqlError, SqlClient.SqlClient> =
  Layer
    .effectDiscard(Migrations.run)

/** Storage and Queue over the `SqlClient` in context (migrated), with an in-process signal only. */
export const layer = (
  options: PgBackend.PgBackendOptions
): Layer.Layer<Storage.Storage | Queue.Queue, never, SqlClient.SqlClient> => ports(options, PgBackend.makeSignal())

/** Storage and Queue over the `PgClient` in context (migrated), woken across processes by LISTEN/NOTIFY. */
export const layerListening = (
  options: PgBackend.PgBackendOptions
): Layer.Layer<Storage.Storage | Queue.Queue, SqlError.SqlError, PgClient.PgClient | SqlClient.SqlClient> => {
  const signal = PgBackend.makeSignal()
  return Layer.merge(ports(options, signal), listen(signal))
}

/** A PostgreSQL server by URL: migrated on start, LISTEN/NOTIFY on. */
export const layerPostgres = (
  url: Redacted.Redacted<string> | string,
  options: Partial<PgBackend.PgBackendOptions> & { readonly maxConnections?: number | undefined } = {}
): Layer.Layer<Storage.Storage | Queue.Queue, SqlError.SqlError | Migrator.MigrationError> =>
  layerListening({ ...serverOptions, ...options }).pipe(
    Layer.provideMerge(layerMigrations),
    Layer.provide(Database.layerPostgres(url, { maxConnections: options.maxConnections }))
  )

/** Embedded PGlite with its data in `dataDir` (in memory when undefined): migrated on start. */
export const layerPglite = (
  dataDir: string | undefined,
  options: Partial<PgBackend.PgBackendOptions> = {}
): Layer.Layer<Storage.Storage | Queue.Queue, SqlError.SqlError | Migrator.MigrationError> =>
  layer({ ...pgliteOptions, ...options }).pipe(
    Layer.provideMerge(layerMigrations),
    Layer.provide(Database.layerPglite(dataDir))
  )
