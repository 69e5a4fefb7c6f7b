/**
 * The engine, composed: every engine service over the Storage and Queue ports
 * and effect's `HttpClient`. Hosts provide the ports and add
 * {@link layerWorkers} where deliveries and retention should run.
 *
 * @example
 * ```ts
 * const Live = Engine.layerRunning.pipe(Layer.provide([Memory.layer, FetchHttpClient.layer]))
 * ```
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import type { HttpClient } from "effect/http"
import * as Accounts from "./Accounts.ts"
import * as Dispatcher from "./Dispatcher.ts"
import * as Endpoints from "./Endpoints.ts"
import * as Events from "./Events.ts"
import * as Ingestion from "./Ingestion.ts"
import * as Lifecycle from "./Lifecycle.ts"
import type * as Queue from "./Queue.ts"
import * as Replay from "./Replay.ts"
import * as Retention from "./Retention.ts"
import type * as Storage from "./Storage.ts"

/** Every engine service. */
export type Services =
  | Accounts.Accounts
  | Dispatcher.Dispatcher
  | Endpoints.Endpoints
  | Events.Events
  | Ingestion.Ingestion
  | Lifecycle.Lifecycle
  | Replay.Replay
  | Retention.Retention

/** The engine's services; the dispatcher and retention do not run until {@link layerWorkers} starts them. */
export const layer: Layer.Layer<Services, never, Storage.Storage | Queue.Queue | HttpClient.HttpClient> = Layer
  .mergeAll(
    Ingestion.layer,
    Dispatcher.layer,
    Endpoints.layer,
    Events.layer,
    Replay.layer,
    Retention.layer
  ).pipe(Layer.provideMerge(Accounts.layer), Layer.provideMerge(Lifecycle.layer))

/** Runs the dispatcher and the retention job while the layer lives. */
export const layerWorkers: Layer.Layer<never, never, Dispatcher.Dispatcher | Retention.Retention> = Layer.mergeAll(
  Dispatcher.layerWorker,
  Retention.layerWorker
)

/** The engine's services with the dispatcher and retention running: what an embedding app usually wants. */
export const layerRunning: Layer.Layer<Services, never, Storage.Storage | Queue.Queue | HttpClient.HttpClient> =
  layerWorkers.pipe(Layer.provideMerge(layer))
