/**
 * Writes `schema.sql`: the schema the migrations build, read from a freshly
 * migrated in-memory PGlite. Run it after changing a migration:
 * `npm run schema -w @promptjang/storage-pg`.
 */
import { Cause, Effect } from "effect"
import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as Database from "../src/Database.ts"
import * as Migrations from "../src/Migrations.ts"
import * as SchemaDump from "../src/SchemaDump.ts"

const target = fileURLToPath(new URL("../schema.sql", import.meta.url))

const program = Effect.gen(function*() {
  yield* Migrations.run
  return yield* SchemaDump.snapshot
}).pipe(Effect.provide(Database.layerPglite(undefined)))

const exit = await Effect.runPromiseExit(program)
if (exit._tag === "Success") {
  writeFileSync(target, exit.value)
  console.log(`Wrote ${target}`)
} else {
  const error = Cause.squash(exit.cause)
  console.error(`Could not render the schema: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
}
