/**
 * Reading events and their delivery log, scoped by organization.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option } from "effect"
import type { Attempt, Event } from "./Domain.ts"
import { NotFound, type StorageError } from "./Errors.ts"
import type { EventId, OrganizationId } from "./Ids.ts"
import { type EventFilter, type Page, type PageRequest, Storage } from "./Storage.ts"

/** An event with every attempt, oldest first. */
export interface EventWithAttempts {
  readonly event: Event
  readonly attempts: ReadonlyArray<Attempt>
}

/** The NotFound of an event id (answered alike for another organization's event). */
export const eventNotFound = (id: string): NotFound =>
  new NotFound({ resource: "event", id, message: `No event ${id} in this organization.` })

/** Event queries. */
export class Events extends Context.Service<Events, {
  readonly get: (
    organizationId: OrganizationId,
    id: EventId
  ) => Effect.Effect<EventWithAttempts, NotFound | StorageError>
  readonly list: (
    organizationId: OrganizationId,
    filter: EventFilter,
    page: PageRequest
  ) => Effect.Effect<Page<Event>, StorageError>
}>()("@promptjang/core/Events") {}

/** Event queries over the Storage in context. */
export const make = Effect.gen(function*() {
  const storage = yield* Storage
  return Events.of({
    get: Effect.fn("Events.get")(function*(organizationId, id) {
      const event = yield* storage.getEvent(organizationId, id)
      if (Option.isNone(event)) return yield* eventNotFound(id)
      const attempts = yield* storage.listAttempts(organizationId, id)
      return { event: event.value, attempts }
    }),
    list: (organizationId, filter, page) => storage.listEvents(organizationId, filter, page)
  })
})

/** Event queries over the Storage in context. */
export const layer: Layer.Layer<Events, never, Storage> = Layer.effect(Events, make)
