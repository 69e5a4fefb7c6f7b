/**
 * Replay: a DELIVERED, EXPIRED or FAILED event starts a new delivery cycle
 * (QUEUED, attempts numbered from 1 again, earlier attempts kept). Replaying
 * an event still in flight is refused. Replays are not metered.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Option, Result } from "effect"
import type { Event } from "./Domain.ts"
import { EventInFlight, type NotFound, type StorageError } from "./Errors.ts"
import { eventNotFound } from "./Events.ts"
import * as EventStateMachine from "./EventStateMachine.ts"
import type { EventId, OrganizationId } from "./Ids.ts"
import { Queue } from "./Queue.ts"
import { Storage } from "./Storage.ts"

const inFlight = (id: string, status: string) =>
  new EventInFlight({
    eventId: id,
    status,
    message: `Event ${id} is ${status} and still being delivered; replay it once it is DELIVERED, EXPIRED or FAILED.`
  })

/** Replay. */
export class Replay extends Context.Service<Replay, {
  /** Starts a new cycle; returns the event as now QUEUED. */
  readonly replay: (
    organizationId: OrganizationId,
    id: EventId
  ) => Effect.Effect<Event, NotFound | EventInFlight | StorageError>
}>()("@promptjang/core/Replay") {}

/** Replay over Storage and Queue. */
export const make = Effect.gen(function*() {
  const storage = yield* Storage
  const queue = yield* Queue
  return Replay.of({
    replay: Effect.fn("Replay.replay")(function*(organizationId, id) {
      const found = yield* storage.getEvent(organizationId, id)
      if (Option.isNone(found)) return yield* eventNotFound(id)
      const event = found.value
      const now = yield* Clock.currentTimeMillis
      const decided = EventStateMachine.transition(event, { _tag: "Replay", at: now })
      if (Result.isFailure(decided)) return yield* inFlight(id, event.status)
      const state = decided.success.state
      const scheduled = yield* queue.schedule({
        organizationId,
        eventId: event.id,
        expected: { status: event.status, cycle: event.cycle },
        state
      })
      // Someone else replayed it first: it is in flight now.
      if (!scheduled) return yield* inFlight(id, "QUEUED")
      return { ...event, ...state }
    })
  })
})

/** Replay over Storage and Queue. */
export const layer: Layer.Layer<Replay, never, Storage | Queue> = Layer.effect(Replay, make)
