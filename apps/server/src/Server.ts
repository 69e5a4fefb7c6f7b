/**
 * The Node host: composes the engine, its storage (PostgreSQL or embedded
 * PGlite), the delivery HTTP client, the HTTP API and the first-start
 * bootstrap from a `ServerConfig`. A host composes layers and holds no
 * business logic.
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Accounts, Backoff, Dispatcher, Engine, Metrics, Queue, Storage, Targets } from "@promptjang/core"
import { Dashboard } from "@promptjang/dashboard"
import { Routes } from "@promptjang/http"
import { DeliveryClient } from "@promptjang/node"
import { PgStorage } from "@promptjang/storage-pg"
import { Clock, Effect, Layer, Logger, Redacted, References } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import type { ServerConfig } from "./Config.ts"
import * as EmbeddedLock from "./EmbeddedLock.ts"
import * as FastIngest from "./FastIngest.ts"

/** Where the data lives, in words (never the password). */
export const describeDatabase = (config: ServerConfig): string => {
  if (config.databaseUrl === undefined) return `embedded PGlite in ${config.dataDir}`
  const url = new URL(config.databaseUrl)
  return `PostgreSQL at ${url.hostname}:${url.port || "5432"}${url.pathname}`
}

/** Storage and Queue for the configuration, migrated on start. */
export const storageLayer = (config: ServerConfig) =>
  config.databaseUrl === undefined
    ? PgStorage.layerPglite(config.dataDir)
    : PgStorage.layerPostgres(Redacted.make(config.databaseUrl))

/** The delivery client's settings: one connection per request the dispatcher may have in flight to an endpoint. */
export const deliveryClientOptions = (config: ServerConfig): DeliveryClient.Options => ({
  allowPrivateTargets: config.allowPrivateTargets,
  connections: config.endpointConcurrency
})

/** The engine's settings from the configuration. */
export const settingsLayer = (config: ServerConfig) =>
  Layer.mergeAll(
    Layer.succeed(Backoff.CurrentSchedule, config.retrySchedule),
    Layer.succeed(Dispatcher.Options, {
      ...Dispatcher.defaultOptions,
      timeoutMs: config.deliveryTimeoutMs,
      concurrency: config.workerConcurrency,
      perEndpointConcurrency: config.endpointConcurrency,
      // As the defaults (64 and 1,024): attempts waiting for a commit do not hold back requests.
      maxUnfinished: 16 * config.workerConcurrency
    }),
    Layer.succeed(Targets.TargetPolicy, { allowPrivateTargets: config.allowPrivateTargets })
  )

/** The logger of LOG_FORMAT and LOG_LEVEL. */
export const loggerLayer = (config: ServerConfig) =>
  Layer.mergeAll(
    Logger.layer([config.logFormat === "json" ? Logger.consoleJson : Logger.consolePretty()]),
    Layer.succeed(References.MinimumLogLevel, config.logLevel)
  )

/** On an empty database: creates an organization and prints its id and API key, once. */
export const bootstrap = (print: (line: string) => void) =>
  Layer.effectDiscard(
    Effect.gen(function*() {
      const storage = yield* Storage.Storage
      const accounts = yield* Accounts.Accounts
      if ((yield* storage.listOrganizations).length > 0) return
      // Uninterruptible: a start that fails meanwhile (the port is taken) must not store a key it never shows.
      yield* Effect.uninterruptible(Effect.gen(function*() {
        const { apiKey, organization } = yield* accounts.createOrganization({ name: "Default organization" })
        print("")
        print("  PromptJang created your organization. The API key is shown this once: keep it now.")
        print(`  organization id: ${organization.id}`)
        print(`  API key:         ${apiKey.key}`)
        print("")
      }))
    })
  )

/** `GET /metrics`: the engine's metrics in Prometheus text, with the queue gauges read at scrape time. */
export const metricsRoute = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const queue = yield* Queue.Queue
  yield* router.add(
    "GET",
    "/metrics",
    Effect.gen(function*() {
      const stats = yield* queue.stats.pipe(Effect.option)
      if (stats._tag === "Some") yield* Metrics.recordQueue(stats.value, yield* Clock.currentTimeMillis)
      return HttpServerResponse.text(yield* PrometheusMetrics.format(), {
        contentType: "text/plain; version=0.0.4; charset=utf-8"
      })
    })
  )
}))

/**
 * The node:http server of the configuration, with the direct ingest path in front of the router. The direct
 * path is built first, so it closes after the server has stopped taking requests and before the engine.
 */
export const nodeServerLayer = (config: Pick<ServerConfig, "port" | "host">) =>
  Layer.unwrap(Effect.map(FastIngest.make, (direct) =>
    NodeHttpServer.layer(() => FastIngest.server(direct), {
      port: config.port,
      host: config.host,
      gracefulShutdownTimeout: "10 seconds"
    })))

/** The whole server of the configuration; `print` shows the first-start credentials. */
export const layer = (config: ServerConfig, print: (line: string) => void) => {
  // The embedded database is single-process: its directory is locked before it is opened (and after it is closed).
  const storage = storageLayer(config).pipe(Layer.provide(EmbeddedLock.layerFor(config, "server")))
  const engine = (config.role === "api" ? Engine.layer : Engine.layerRunning).pipe(
    Layer.provideMerge(storage),
    Layer.provide(DeliveryClient.layer(deliveryClientOptions(config))),
    Layer.provide(settingsLayer(config))
  )
  const http = HttpRouter.serve(Routes.layerWith(Layer.merge(metricsRoute, Dashboard.layer)), {
    disableLogger: true,
    disableListenLog: true
  }).pipe(
    Layer.provide(Layer.succeed(Routes.Options, {
      adminToken: config.adminToken === undefined ? undefined : Redacted.make(config.adminToken)
    })),
    Layer.provide(nodeServerLayer(config))
  )
  const parts = config.bootstrap
    ? Layer.merge(bootstrap(print), config.role === "worker" ? Layer.empty : http)
    : config.role === "worker"
    ? Layer.empty
    : http
  return parts.pipe(Layer.provide(engine), Layer.provide(loggerLayer(config)))
}
