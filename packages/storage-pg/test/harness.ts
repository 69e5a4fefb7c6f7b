/**
 * Test databases: on PostgreSQL a database per test cloned from a migrated
 * template (fast, isolated, parallel across files, dropped afterwards); on
 * PGlite one in-memory instance per test file, emptied before each test.
 */
import { PgClient } from "@effect/sql-pg"
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import type { Queue, Storage } from "@promptjang/core"
import { Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import * as Database from "../src/Database.ts"
import * as Migrations from "../src/Migrations.ts"
import * as PgBackend from "../src/PgBackend.ts"
import * as PgStorage from "../src/PgStorage.ts"

/** The PostgreSQL server of the tests, when one is configured (CI sets it). */
export const postgresUrl: string | undefined = process.env["PROMPTJANG_TEST_DATABASE_URL"] || undefined

const withDatabase = (url: string, database: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

const admin = (url: string) => PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })

// The template's name follows the migrations' code, so a changed migration gets a new template.
const templateName = `promptjang_template_${Migrations.fingerprint}`

/** Creates (once per server, under an advisory lock) the migrated template database. */
const ensureTemplate = (url: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`SELECT pg_advisory_lock(hashtext(${templateName}))`
    yield* Effect.gen(function*() {
      const exists = yield* sql`SELECT 1 FROM pg_database WHERE datname = ${templateName}`
      if (exists.length > 0) return
      // Templates of earlier migrations are of no more use: drop them (nothing else uses them).
      const stale = yield* sql<{ datname: string }>`
        SELECT datname FROM pg_database WHERE datname LIKE 'promptjang_template_%' AND datname <> ${templateName}`
      for (const { datname } of stale) yield* sql.unsafe(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`)
      yield* sql.unsafe(`CREATE DATABASE ${templateName}`)
      yield* Migrations.run.pipe(Effect.provide(admin(withDatabase(url, templateName))))
    }).pipe(Effect.ensuring(Effect.orDie(sql`SELECT pg_advisory_unlock(hashtext(${templateName}))`)))
  }).pipe(Effect.provide(admin(url)))

/** A fresh migrated database on the test server for as long as the layer lives; yields its URL. */
export const freshPostgresUrl = (url: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      yield* ensureTemplate(url)
      const name = `promptjang_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`CREATE DATABASE ${name} TEMPLATE ${templateName}`)
      }).pipe(Effect.provide(admin(url)))
      return { name, url: withDatabase(url, name) }
    }),
    ({ name }) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      }).pipe(Effect.provide(admin(url)), Effect.orDie)
  )

/** Storage and Queue on a fresh PostgreSQL database (server options: NOTIFY and LISTEN on). */
export const postgresLayer = (url: string): Layer.Layer<Storage.Storage | Queue.Queue, unknown> =>
  Layer.unwrap(
    Effect.map(freshPostgresUrl(url), (db) =>
      PgStorage.layerListening(PgStorage.serverOptions).pipe(
        // The production connection settings (multiplexed pool).
        Layer.provide(Database.layerPostgres(db.url))
      ))
  )

const TABLES = "organizations, api_keys, endpoints, events, attempts, deliveries, usage_counters, idempotency_keys"

/** One in-memory PGlite for this test file, migrated; `layer` gives each test an emptied database. */
export const makePglite = () => {
  let started:
    | Promise<{ readonly host: string; readonly port: number; readonly close: () => Promise<void> }>
    | undefined
  const start = () =>
    started ??= (async () => {
      const db = await PGlite.create()
      // Each test opens its own single connection; the previous test's may still be closing.
      const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 8 })
      await server.start()
      const [host = "127.0.0.1", port = "0"] = server.getServerConn().split(":")
      return {
        host,
        port: Number(port),
        close: async () => {
          await server.stop()
          await db.close()
        }
      }
    })()
  const client = Layer.unwrap(
    Effect.map(
      Effect.promise(start),
      ({ host, port }) =>
        PgClient.layer({ host, port: Number(port), database: "postgres", username: "postgres", maxConnections: 1 })
    )
  )
  const emptied = Layer.effectDiscard(
    Effect.gen(function*() {
      yield* Migrations.run
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`TRUNCATE ${TABLES}`)
    })
  )
  const layer: Layer.Layer<Storage.Storage | Queue.Queue, unknown> = PgStorage.layer(PgStorage.pgliteOptions).pipe(
    Layer.provideMerge(emptied),
    Layer.provide(client)
  )
  return {
    layer,
    close: async () => {
      if (started !== undefined) await (await started).close()
    }
  }
}

/** Re-exported for tests that build a backend by hand. */
export { PgBackend }
