/**
 * Connections: a PostgreSQL server by URL, or PGlite (Postgres compiled to
 * WASM) embedded in the process with its data on disk, reached through a
 * loopback socket so that both run the same SQL through the same driver.
 *
 * PGlite runs one statement at a time and interleaves statements of different
 * connections, so the embedded database gets one connection; it keeps no
 * fsync of its own, so its data survives a crash of the process but not a
 * power loss.
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import type { PGlite } from "@electric-sql/pglite"
import { Effect, Layer, Redacted } from "effect"
import { SqlError } from "effect/sql"
import type { SqlClient } from "effect/sql"
import { mkdirSync } from "node:fs"

/** A PostgreSQL server. */
export const layerPostgres = (
  url: Redacted.Redacted<string> | string,
  options: { readonly maxConnections?: number | undefined } = {}
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError.SqlError> =>
  PgClient.layer({
    url: typeof url === "string" ? Redacted.make(url) : url,
    // Few connections, each pipelining the statements of many fibers: on a small machine fewer server
    // backends do more (measured: 6 multiplexed connections served ~2.5x the API requests of 10 plain ones).
    // Transactions and LISTEN still take a connection each.
    maxConnections: options.maxConnections ?? 6,
    multiplex: true,
    applicationName: "promptjang"
  })

/**
 * PGlite with its data in `dataDir` (created if missing), or in memory when
 * `dataDir` is undefined. The database lives as long as the layer.
 */
export const layerPglite = (
  dataDir: string | undefined
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError.SqlError> =>
  Layer.unwrap(
    Effect.gen(function*() {
      const db = yield* Effect.acquireRelease(
        Effect.tryPromise({
          // PGlite is loaded only here, so that a server on PostgreSQL never loads it (its JavaScript alone
          // is several MB to parse at every start).
          try: async (): Promise<PGlite> => {
            if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true })
            const { PGlite } = await import("@electric-sql/pglite")
            return PGlite.create(dataDir === undefined ? undefined : dataDir)
          },
          catch: (cause) =>
            new SqlError.SqlError({
              reason: new SqlError.ConnectionError({
                cause,
                message: `Could not open the embedded database${dataDir === undefined ? "" : ` in ${dataDir}`}`,
                operation: "connect"
              })
            })
        }),
        (db) => Effect.promise(() => db.close())
      )
      const server = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket")
            const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 1 })
            await server.start()
            return server
          },
          catch: (cause) =>
            new SqlError.SqlError({
              reason: new SqlError.ConnectionError({
                cause,
                message: "Could not start the embedded database",
                operation: "connect"
              })
            })
        }),
        (server) => Effect.promise(() => server.stop())
      )
      const [host, port] = server.getServerConn().split(":")
      return PgClient.layer({
        host: host ?? "127.0.0.1",
        port: Number(port),
        database: "postgres",
        username: "postgres",
        maxConnections: 1,
        applicationName: "promptjang"
      })
    })
  )
