import { assert, describe, it } from "@effect/vitest"
import { Accounts, Endpoints, Events, Ingestion, Retention } from "@promptjang/core"
import type { EventId, OrganizationId } from "@promptjang/core/Ids"
import { Effect } from "effect"
import { makeTestHost, type TestHost } from "../src/index.ts"

const encoder = new TextEncoder()
const DAY = 24 * 60 * 60 * 1000

const purge = (host: TestHost) => host.run(Retention.Retention.use((retention) => retention.purge))

/** Moves the clock to `millis` after the host started. */
const advanceTo = (host: TestHost, millis: number) =>
  Effect.flatMap(host.elapsed, (elapsed) => host.advance(millis - elapsed))

const isGone = (host: TestHost, organizationId: OrganizationId, id: EventId) =>
  host.run(Events.Events.use((events) => events.get(organizationId, id))).pipe(
    Effect.as(false),
    Effect.catchTag("NotFound", () => Effect.succeed(true))
  )

describe("Retention", () => {
  it.effect("on starter, events older than 7 days are purged with their attempts; newer ones are kept", () =>
    Effect.gen(function*() {
      // Early in a month, so that the whole test stays in one billing period.
      const host = yield* makeTestHost({ startAt: Date.UTC(2026, 4, 1, 9, 0, 0) })
      const endpoint = yield* host.createEndpoint()
      host.receiver.script(endpoint.url, { status: 500 }, { status: 200 })
      const old1 = yield* host.send(endpoint.id, { event: "order.created", n: 1 })
      const old2 = yield* host.send(endpoint.id, { event: "order.created", n: 2 })
      yield* host.advance("1 minute")
      assert.strictEqual((yield* host.attemptsOf(old1.id)).length + (yield* host.attemptsOf(old2.id)).length, 3)
      yield* host.advance("3 days")
      const recent = yield* host.send(endpoint.id, { event: "order.created", n: 3 })
      yield* host.settle
      // 7 days after the first two, to the millisecond: not yet past retention.
      yield* advanceTo(host, 7 * DAY)
      assert.strictEqual(yield* purge(host), 0)
      assert.strictEqual((yield* host.events()).length, 3)

      yield* host.advance("1 millis")
      assert.strictEqual(yield* purge(host), 2)
      assert.deepStrictEqual((yield* host.events()).map((e) => e.id), [recent.id])
      assert.isTrue(yield* isGone(host, host.organization.id, old1.id))
      assert.isTrue(yield* isGone(host, host.organization.id, old2.id))
      assert.strictEqual((yield* host.attemptsOf(recent.id)).length, 1)
      // Nothing more is due: a second purge deletes nothing.
      assert.strictEqual(yield* purge(host), 0)
      // Purging does not touch the usage of the period.
      const usage = yield* host.run(Accounts.Accounts.use((accounts) => accounts.usage(host.organization.id)))
      assert.strictEqual(usage.events, 3)
    }))

  it.effect("a pro organization keeps its events until 30 days while a starter one loses them after 7", () =>
    Effect.gen(function*() {
      const host = yield* makeTestHost()
      const starterEndpoint = yield* host.createEndpoint()
      const pro = yield* host.run(
        Accounts.Accounts.use((accounts) => accounts.createOrganization({ name: "Pro org", plan: "pro" }))
      )
      const proEndpoint = yield* host.run(
        Endpoints.Endpoints.use((endpoints) => endpoints.create(pro.organization.id, { url: "https://pro.test/hooks" }))
      )
      const starterEvent = yield* host.send(starterEndpoint.id, { event: "order.created" })
      const proEvent = yield* host.run(Ingestion.Ingestion.use((ingestion) =>
        ingestion.ingest(pro.apiKey.key, {
          endpointId: proEndpoint.id,
          body: encoder.encode("{\"event\":\"order.created\"}")
        })
      ))
      yield* host.settle

      yield* host.advance("8 days")
      assert.strictEqual(yield* purge(host), 1)
      assert.isTrue(yield* isGone(host, host.organization.id, starterEvent.id))
      assert.isFalse(yield* isGone(host, pro.organization.id, proEvent.id))

      yield* advanceTo(host, 30 * DAY)
      assert.strictEqual(yield* purge(host), 0)
      assert.isFalse(yield* isGone(host, pro.organization.id, proEvent.id))

      yield* host.advance("1 millis")
      assert.strictEqual(yield* purge(host), 1)
      assert.isTrue(yield* isGone(host, pro.organization.id, proEvent.id))
    }))
})
