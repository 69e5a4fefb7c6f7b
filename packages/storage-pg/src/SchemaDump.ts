/**
 * A readable, deterministic description of the database schema, read from
 * the catalogs (no `pg_dump`, which PGlite does not have). `schema.sql`
 * beside this package is this text for a freshly migrated database, and a
 * test keeps it in sync with the migrations.
 *
 * @example
 * ```ts
 * const text = yield* SchemaDump.describeSchema // "CREATE TABLE api_keys (\n  id text NOT NULL, ..."
 * ```
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

/** The Migrator's own bookkeeping, not part of the schema. */
const MIGRATIONS_TABLE = "effect_sql_migrations"

interface TableRow {
  readonly table_name: string
  /** The name as SQL would spell it (quoted when it must be). */
  readonly name: string
}

interface ColumnRow {
  readonly table_name: string
  readonly position: number
  readonly name: string
  readonly type: string
  readonly not_null: boolean
  readonly default_value: string | null
}

interface ConstraintRow {
  readonly table_name: string
  readonly name: string
  readonly kind: string
  readonly definition: string
}

interface IndexRow {
  readonly table_name: string
  readonly name: string
  readonly definition: string
}

// Primary key first, then unique, exclusion, check and foreign keys: the order a reader expects.
const CONSTRAINT_ORDER: ReadonlyArray<string> = ["p", "u", "x", "c", "f"]

// Code-unit order, the same on every server whatever its collation.
const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

const renderColumn = (column: ColumnRow): string =>
  [
    column.name,
    column.type,
    ...(column.not_null ? ["NOT NULL"] : []),
    ...(column.default_value === null ? [] : [`DEFAULT ${column.default_value}`])
  ].join(" ")

/**
 * The `public` schema of the connected database as SQL-like text: each table (by name, without the
 * migrations table) as a `CREATE TABLE` with its columns in order and its constraints, followed by the
 * indexes on it that do not back a constraint, by name.
 */
export const describeSchema: Effect.Effect<string, SqlError.SqlError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const tables = yield* sql<TableRow>`
    SELECT c.relname::text AS table_name, quote_ident(c.relname) AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> ${MIGRATIONS_TABLE}`
  const columns = yield* sql<ColumnRow>`
    SELECT c.relname::text AS table_name, a.attnum::int4 AS position, quote_ident(a.attname) AS name,
           format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
           pg_get_expr(d.adbin, d.adrelid) AS default_value
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`
  const constraints = yield* sql<ConstraintRow>`
    SELECT c.relname::text AS table_name, quote_ident(k.conname) AS name, k.contype::text AS kind,
           pg_get_constraintdef(k.oid) AS definition
    FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND k.contype IN ('p', 'u', 'x', 'c', 'f')`
  // Indexes created by a primary key, unique or exclusion constraint are shown by that constraint.
  const indexes = yield* sql<IndexRow>`
    SELECT i.tablename::text AS table_name, i.indexname::text AS name, i.indexdef AS definition
    FROM pg_indexes i
    WHERE i.schemaname = 'public' AND NOT EXISTS (
      SELECT 1 FROM pg_constraint k
      JOIN pg_class ic ON ic.oid = k.conindid
      JOIN pg_namespace n ON n.oid = ic.relnamespace
      WHERE n.nspname = 'public' AND ic.relname = i.indexname AND k.contype IN ('p', 'u', 'x')
    )`

  const sortedTables = [...tables].sort((a, b) => byText(a.table_name, b.table_name))
  const blocks = sortedTables.map((table) => {
    const lines = [
      ...columns
        .filter((column) => column.table_name === table.table_name)
        .sort((a, b) => a.position - b.position)
        .map(renderColumn),
      ...constraints
        .filter((constraint) => constraint.table_name === table.table_name)
        .sort((a, b) => CONSTRAINT_ORDER.indexOf(a.kind) - CONSTRAINT_ORDER.indexOf(b.kind) || byText(a.name, b.name))
        .map((constraint) => `CONSTRAINT ${constraint.name} ${constraint.definition}`)
    ]
    const tableIndexes = indexes
      .filter((index) => index.table_name === table.table_name)
      .sort((a, b) => byText(a.name, b.name))
      .map((index) => `${index.definition};`)
    return [`CREATE TABLE ${table.name} (`, lines.map((line) => `  ${line}`).join(",\n"), ");", ...tableIndexes]
      .join("\n")
  })
  return blocks.map((block) => `${block}\n`).join("\n")
})

/** The comment at the top of `schema.sql`. */
export const SNAPSHOT_HEADER: string =
  `-- The schema the migrations in src/Migrations.ts build, read from the catalogs of a migrated database.
-- Generated by \`npm run schema -w @promptjang/storage-pg\`: do not edit by hand, change a migration and run it again.
`

/** The text of `schema.sql` for the connected (migrated) database: the header, then {@link describeSchema}. */
export const snapshot: Effect.Effect<string, SqlError.SqlError, SqlClient.SqlClient> = Effect.map(
  describeSchema,
  (schema) => `${SNAPSHOT_HEADER}\n${schema}`
)
