/**
 * Storage and Queue in memory, sharing one fresh store: the backend of the
 * test host and of tests.
 *
 * @example
 * ```ts
 * program.pipe(Effect.provide(Memory.layer))
 * ```
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import * as MemoryStore from "./MemoryStore.ts"
import * as Queue from "./Queue.ts"
import * as Storage from "./Storage.ts"

/** Storage and Queue over one fresh in-memory store. */
export const layer: Layer.Layer<Storage.Storage | Queue.Queue> = Layer.mergeAll(Storage.layerMemory, Queue.layerMemory)
  .pipe(Layer.provide(MemoryStore.layer))
