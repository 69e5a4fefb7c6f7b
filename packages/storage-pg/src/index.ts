/**
 * `@promptjang/storage-pg`: the Storage and Queue ports on PostgreSQL, with
 * embedded PGlite as the default.
 *
 * @since 0.1.0
 */
export * as Database from "./Database.ts"
export * as GroupCommit from "./GroupCommit.ts"
export * as Migrations from "./Migrations.ts"
export * as PgBackend from "./PgBackend.ts"
export * as PgStorage from "./PgStorage.ts"
