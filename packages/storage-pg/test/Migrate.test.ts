import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Database from "../src/Database.ts"
import * as SchemaDump from "../src/SchemaDump.ts"
import { postgresUrl } from "./harness.ts"

const script = fileURLToPath(new URL("../scripts/migrate.ts", import.meta.url))
const committed = readFileSync(fileURLToPath(new URL("../schema.sql", import.meta.url)), "utf8")

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs `scripts/migrate.ts` in a child process with only the given PromptJang variables set. */
const migrate = (env: Readonly<Record<string, string>>): Effect.Effect<Run> =>
  Effect.callback<Run>((resume) => {
    const {
      PROMPTJANG_DATABASE_URL: _url,
      PROMPTJANG_DATA_DIR: _dir,
      ...inherited
    } = process.env
    const child = execFile(
      process.execPath,
      [script],
      { env: { ...inherited, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resume(Effect.succeed({ code, stdout, stderr }))
      }
    )
    return Effect.sync(() => {
      child.kill()
    })
  })

/** A temporary directory, removed with the scope. */
const temporaryDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "promptjang-migrate-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const noStackTrace = (run: Run) => {
  assert.notMatch(run.stdout + run.stderr, /^\s+at /m, "printed a stack trace")
}

describe("scripts/migrate.ts", () => {
  it.live(
    "migrates the embedded database in PROMPTJANG_DATA_DIR, then finds nothing to apply",
    () =>
      Effect.gen(function*() {
        const dir = yield* temporaryDir
        const first = yield* migrate({ PROMPTJANG_DATA_DIR: dir })
        assert.strictEqual(first.code, 0, first.stderr)
        assert.include(first.stdout, `the embedded database in ${dir}`)
        assert.include(first.stdout, "Applied 0001_initial")

        const second = yield* migrate({ PROMPTJANG_DATA_DIR: dir })
        assert.strictEqual(second.code, 0, second.stderr)
        assert.notInclude(second.stdout, "Applied")
        assert.include(second.stdout, "Nothing to apply")

        const schema = yield* SchemaDump.snapshot.pipe(Effect.provide(Database.layerPglite(dir)))
        assert.strictEqual(schema, committed)
      }),
    120_000
  )

  it.live("fails with a one-line reason and status 1 when the URL is not a database URL", () =>
    Effect.gen(function*() {
      const run = yield* migrate({ PROMPTJANG_DATABASE_URL: "not a url" })
      assert.strictEqual(run.code, 1)
      assert.include(run.stderr, "Migration failed: PgConnection: Invalid connection URL")
      noStackTrace(run)
    }), 60_000)

  it.live("fails with a one-line reason and status 1 when nothing listens at the URL", () =>
    Effect.gen(function*() {
      const run = yield* migrate({ PROMPTJANG_DATABASE_URL: "postgres://postgres@127.0.0.1:1/promptjang" })
      assert.strictEqual(run.code, 1)
      assert.include(run.stderr, "Migration failed")
      assert.include(run.stderr, "ECONNREFUSED")
      noStackTrace(run)
    }), 60_000)
})

if (postgresUrl === undefined) {
  describe("scripts/migrate.ts on PostgreSQL", () => {
    // oxlint-disable-next-line vitest/expect-expect -- a report that the checks did not run, not a check
    it("is not run: set PROMPTJANG_TEST_DATABASE_URL to a PostgreSQL database to run it", () => {
      console.warn("PostgreSQL migrate command checks not run: PROMPTJANG_TEST_DATABASE_URL is not set")
    })
  })
} else {
  const server = postgresUrl
  const withDatabase = (database: string): string => {
    const parsed = new URL(server)
    parsed.pathname = `/${database}`
    return parsed.toString()
  }
  const admin = PgClient.layer({ url: Redacted.make(server), maxConnections: 1 })

  /** An empty database (not cloned from the migrated template), dropped with the scope. */
  const emptyDatabase = Effect.acquireRelease(
    Effect.gen(function*() {
      const name = `promptjang_migrate_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`CREATE DATABASE ${name}`)
      return { name, url: withDatabase(name) }
    }).pipe(Effect.provide(admin)),
    ({ name }) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      }).pipe(Effect.provide(admin), Effect.orDie)
  )

  describe("scripts/migrate.ts on PostgreSQL", () => {
    it.live(
      "migrates an empty database at PROMPTJANG_DATABASE_URL to schema.sql, then finds nothing to apply",
      () =>
        Effect.gen(function*() {
          const db = yield* emptyDatabase
          const first = yield* migrate({ PROMPTJANG_DATABASE_URL: db.url })
          assert.strictEqual(first.code, 0, first.stderr)
          assert.include(first.stdout, `PostgreSQL database ${db.name}`)
          assert.include(first.stdout, "Applied 0001_initial")

          const second = yield* migrate({ PROMPTJANG_DATABASE_URL: db.url })
          assert.strictEqual(second.code, 0, second.stderr)
          assert.notInclude(second.stdout, "Applied")
          assert.include(second.stdout, "Nothing to apply")

          const schema = yield* SchemaDump.snapshot.pipe(Effect.provide(Database.layerPostgres(db.url)))
          assert.strictEqual(schema, committed)
        }),
      60_000
    )

    it.live(
      "fails with the server's reason and status 1 when the database does not exist",
      () =>
        Effect.gen(function*() {
          const run = yield* migrate({ PROMPTJANG_DATABASE_URL: withDatabase("promptjang_no_such_database") })
          assert.strictEqual(run.code, 1)
          assert.include(run.stderr, "database \"promptjang_no_such_database\" does not exist")
          noStackTrace(run)
        }),
      60_000
    )
  })
}
