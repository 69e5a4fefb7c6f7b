/**
 * Lifecycle observers: plugins subscribe to what happens to events (accepted,
 * attempt made, delivered, expired, failed), for metrics, audit logs or
 * fan-out.
 *
 * Observers run after the change is committed, one after another. A failing
 * or crashing observer is logged and never affects delivery.
 *
 * @example
 * ```ts
 * const CountDelivered = Lifecycle.layerObserver((n) =>
 *   n._tag === "Delivered" ? Effect.sync(() => delivered++) : Effect.void
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, type Scope } from "effect"
import type { Attempt, Event } from "./Domain.ts"

/** What an observer is told. */
export type Notification =
  | { readonly _tag: "Accepted"; readonly event: Event }
  | { readonly _tag: "Attempted"; readonly event: Event; readonly attempt: Attempt }
  | { readonly _tag: "Delivered"; readonly event: Event }
  | { readonly _tag: "Expired"; readonly event: Event }
  | { readonly _tag: "Failed"; readonly event: Event; readonly reason: string }

/** A subscriber. */
export type Observer = (notification: Notification) => Effect.Effect<void, unknown>

/** The registry of observers. */
export class Lifecycle extends Context.Service<Lifecycle, {
  /** Adds an observer until the scope closes. */
  readonly subscribe: (observer: Observer) => Effect.Effect<void, never, Scope.Scope>
  /** Tells every observer; never fails. */
  readonly emit: (notification: Notification) => Effect.Effect<void>
}>()("@promptjang/core/Lifecycle") {}

/** A registry with no observers yet. */
export const make: Effect.Effect<Lifecycle["Service"]> = Effect.sync(() => {
  const observers = new Set<Observer>()
  return {
    subscribe: (observer) =>
      Effect.acquireRelease(
        Effect.sync(() => void observers.add(observer)),
        () => Effect.sync(() => void observers.delete(observer))
      ),
    emit: (notification) =>
      observers.size === 0 ? Effect.void : Effect.forEach(
        Array.from(observers),
        (observer) =>
          Effect.suspend(() => observer(notification)).pipe(
            Effect.catchCause((cause) =>
              Effect.logWarning("A lifecycle observer failed; delivery goes on").pipe(
                Effect.annotateLogs({ notification: notification._tag, event_id: notification.event.id, cause })
              )
            )
          ),
        { discard: true }
      )
  }
})

/** The registry. */
export const layer: Layer.Layer<Lifecycle> = Layer.effect(Lifecycle, make)

/** A layer that subscribes `observer` for as long as it lives. */
export const layerObserver = (observer: Observer): Layer.Layer<never, never, Lifecycle> =>
  Layer.effectDiscard(
    Effect.gen(function*() {
      const lifecycle = yield* Lifecycle
      yield* lifecycle.subscribe(observer)
    })
  )
