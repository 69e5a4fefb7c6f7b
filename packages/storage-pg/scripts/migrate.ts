/**
 * Applies the pending migrations: to the PostgreSQL server at
 * `PROMPTJANG_DATABASE_URL` when it is set, otherwise to the embedded PGlite
 * database in `PROMPTJANG_DATA_DIR` (default `./.promptjang`). Prints the
 * migrations it applied; on failure prints why and exits with status 1.
 *
 *     npm run migrate -w @promptjang/storage-pg
 *     PROMPTJANG_DATABASE_URL=postgres://user@db/promptjang node scripts/migrate.ts
 */
import { Cause, Effect, Predicate } from "effect"
import { resolve } from "node:path"
import * as Database from "../src/Database.ts"
import * as Migrations from "../src/Migrations.ts"

const url = process.env["PROMPTJANG_DATABASE_URL"] || undefined
const dataDir = resolve(process.env["PROMPTJANG_DATA_DIR"] || "./.promptjang")

/** Where the migrations go, without the password. */
const describeTarget = (): string => {
  if (url === undefined) return `the embedded database in ${dataDir}`
  try {
    const parsed = new URL(url)
    return `PostgreSQL database ${decodeURIComponent(parsed.pathname.slice(1)) || "(default)"} on ${
      parsed.host || "localhost"
    }`
  } catch {
    return "PostgreSQL (PROMPTJANG_DATABASE_URL)"
  }
}

const messageOf = (value: unknown): string | undefined =>
  Predicate.hasProperty(value, "message") && typeof value.message === "string" ? value.message : undefined

/** What went wrong, with the driver's or server's own words when there are any; never a stack trace. */
const reasonOf = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const message = messageOf(error) ?? String(error)
  // A SqlError keeps the underlying failure (ECONNREFUSED, "database ... does not exist") on its reason.
  const underlying = Predicate.hasProperty(error, "reason") && Predicate.hasProperty(error.reason, "cause")
    ? error.reason.cause
    : Predicate.hasProperty(error, "cause")
    ? error.cause
    : undefined
  const detail = messageOf(underlying)
  return detail === undefined || message.includes(detail) ? message : `${message}: ${detail}`
}

const database = url === undefined ? Database.layerPglite(dataDir) : Database.layerPostgres(url, { maxConnections: 2 })

console.log(`Migrating ${describeTarget()}`)
const exit = await Effect.runPromiseExit(Migrations.run.pipe(Effect.provide(database)))
if (exit._tag === "Success") {
  for (const [id, name] of exit.value) console.log(`Applied ${String(id).padStart(4, "0")}_${name}`)
  console.log(
    exit.value.length === 0
      ? "Nothing to apply: the database is up to date."
      : `Done: ${exit.value.length} migration(s) applied.`
  )
} else {
  console.error(`Migration failed: ${reasonOf(exit.cause)}`)
  process.exitCode = 1
}
