import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as Database from "../src/Database.ts"
import * as Migrations from "../src/Migrations.ts"
import * as SchemaDump from "../src/SchemaDump.ts"
import { freshPostgresUrl, postgresUrl } from "./harness.ts"

const committed = readFileSync(fileURLToPath(new URL("../schema.sql", import.meta.url)), "utf8")
const OUT_OF_DATE =
  "schema.sql does not match the migrations: run `npm run schema -w @promptjang/storage-pg` and commit schema.sql"

const migrationNames = Object.keys(Migrations.statements).sort()
const namesOf = (applied: ReadonlyArray<readonly [id: number, name: string]>): Array<string> =>
  applied.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`)

describe("schema.sql", () => {
  it.effect("matches the schema a fresh PGlite has after the migrations", () =>
    Effect.gen(function*() {
      yield* Migrations.run
      assert.strictEqual(yield* SchemaDump.snapshot, committed, OUT_OF_DATE)
    }).pipe(Effect.provide(Database.layerPglite(undefined))), 60_000)

  it("says it is generated and must not be edited by hand", () => {
    assert.include(committed, "npm run schema -w @promptjang/storage-pg")
    assert.include(committed, "do not edit by hand")
  })

  it("lists every table with its constraints and indexes, but not the migrations' bookkeeping", () => {
    for (
      const table of [
        "organizations",
        "api_keys",
        "endpoints",
        "events",
        "attempts",
        "deliveries",
        "usage_counters",
        "idempotency_keys"
      ]
    ) assert.include(committed, `CREATE TABLE ${table} (`)
    assert.notInclude(committed, "effect_sql_migrations")
    assert.include(
      committed,
      "CONSTRAINT api_keys_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES organizations(id) ON DELETE CASCADE"
    )
    assert.include(committed, "CONSTRAINT attempts_event_id_cycle_number_key UNIQUE (event_id, cycle, number)")
    assert.include(committed, "CREATE INDEX deliveries_available ON public.deliveries USING btree (available_at);")
    // The index behind a primary key is shown as the constraint only.
    assert.notInclude(committed, "events_pkey ON")
  })
})

describe("Migrations", () => {
  it.effect("apply every migration once on a fresh database, and nothing when run again", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(namesOf(yield* Migrations.run), migrationNames)
      assert.deepStrictEqual(namesOf(yield* Migrations.run), [])
    }).pipe(Effect.provide(Database.layerPglite(undefined))), 60_000)

  it.effect(
    "0002 drops events.payload from a database at 0001 and keeps its events, bodies byte for byte",
    () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        assert.deepStrictEqual(namesOf(yield* Migrations.runThrough("0001_initial")), ["0001_initial"])
        // Bytes a jsonb copy could not hold: a NUL escape and a byte that is not UTF-8.
        const body = new Uint8Array([...new TextEncoder().encode(`{"event":"a","s":"\\u0000"}`), 0xff])
        const now = new Date()
        yield* sql`
        INSERT INTO events (id, organization_id, endpoint_id, event_type, body, payload, status, cycle,
                            attempt_count, next_attempt_at, created_at, updated_at)
        VALUES ('evt_old', 'org_old', 'ep_old', 'a', ${body}, NULL, 'QUEUED', 1, 0, ${now}, ${now}, ${now})`

        assert.deepStrictEqual(namesOf(yield* Migrations.run), ["0002_drop_event_payload"])
        const rows = yield* sql<{ body: Uint8Array }>`SELECT body FROM events WHERE id = 'evt_old'`
        assert.deepStrictEqual(Array.from(rows[0]?.body ?? []), Array.from(body))
        const columns = yield* sql<{ name: string }>`
        SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'events'`
        assert.notInclude(columns.map((c) => c.name), "payload")
        assert.include(columns.map((c) => c.name), "body")
      }).pipe(Effect.provide(Database.layerPglite(undefined))),
    60_000
  )
})

if (postgresUrl === undefined) {
  describe("schema on PostgreSQL", () => {
    // oxlint-disable-next-line vitest/expect-expect -- a report that the checks did not run, not a check
    it("is not run: set PROMPTJANG_TEST_DATABASE_URL to a PostgreSQL database to run it", () => {
      console.warn("PostgreSQL schema checks not run: PROMPTJANG_TEST_DATABASE_URL is not set")
    })
  })
} else {
  const url = postgresUrl
  describe("schema on PostgreSQL", () => {
    it.effect("is the schema PGlite has: PostgreSQL renders the same schema.sql", () =>
      Effect.gen(function*() {
        const db = yield* freshPostgresUrl(url)
        const rendered = yield* SchemaDump.snapshot.pipe(Effect.provide(Database.layerPostgres(db.url)))
        assert.strictEqual(rendered, committed, OUT_OF_DATE)
      }))

    it.effect("migrations applied to a migrated database apply nothing", () =>
      Effect.gen(function*() {
        const db = yield* freshPostgresUrl(url)
        const applied = yield* Migrations.run.pipe(Effect.provide(Database.layerPostgres(db.url)))
        assert.deepStrictEqual(namesOf(applied), [])
      }))
  })
}
