/**
 * An acknowledged ingest survives a crash (SPEC §3.6): a process ingests
 * continuously and is killed with SIGKILL; every event it acknowledged is
 * then in the database, QUEUED with its delivery scheduled, and counted.
 */
import { assert, describe, it } from "@effect/vitest"
import { Accounts } from "@promptjang/core"
import type { OrganizationId } from "@promptjang/core/Ids"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freshPostgresUrl, postgresUrl } from "../../packages/storage-pg/test/harness.ts"
import {
  type Child,
  createTenant,
  describeExit,
  engineLayer,
  ensureRunning,
  killNow,
  spawnWorker,
  type Target,
  targetArgs,
  waitUntil
} from "./harness.ts"

const ACKS_BEFORE_KILL = 500
// Never delivered: the ingesting process runs no dispatcher.
const ENDPOINT_URL = "https://receiver.example.com/webhooks"

const isEventId = (line: string) => /^evt_[0-9a-z]+$/.test(line)

/** The event ids a child acknowledged (printed) so far. */
const acknowledged = (child: Child): ReadonlyArray<string> => child.lines.filter(isEventId)

interface StoredEvent {
  readonly id: string
  readonly status: string
  readonly scheduled: boolean
}

/** What the database holds for `ids`, and the organization's usage, read through the engine. */
const readBack = (ids: ReadonlyArray<string>, organizationId: OrganizationId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const stored = yield* sql<StoredEvent>`
      SELECT e.id, e.status, (d.event_id IS NOT NULL) AS scheduled
      FROM events e LEFT JOIN deliveries d ON d.event_id = e.id
      WHERE e.id = ANY(${ids}::text[])`
    const usage = yield* Accounts.Accounts.use((a) => a.usage(organizationId))
    return { stored, usage: usage.events }
  })

/**
 * Ingests continuously in a child process against `target` (whose tenant exists), kills it after
 * {@link ACKS_BEFORE_KILL} acknowledgements, and returns every id it acknowledged before it died.
 */
const ingestUntilKilled = (target: Target, tenant: { readonly apiKey: string; readonly endpointId: string }) =>
  Effect.scoped(
    Effect.gen(function*() {
      const child = yield* spawnWorker(
        [...targetArgs(target), "--role", "ingest", "--endpoint", tenant.endpointId, "--ingest-concurrency", "16"],
        { PROMPTJANG_API_KEY: tenant.apiKey }
      )
      yield* waitUntil(
        `${ACKS_BEFORE_KILL} acknowledged ingests`,
        ensureRunning([child]).pipe(
          Effect.map(() => (acknowledged(child).length >= ACKS_BEFORE_KILL ? true : undefined))
        ),
        { timeoutMs: 60_000, everyMs: 20, describe: () => `${acknowledged(child).length} so far.` }
      )
      yield* killNow(child)
      assert.strictEqual(child.process.signalCode, "SIGKILL", describeExit(child))
      // Read after the pipe is drained: a line written before the kill is an acknowledgement too.
      return acknowledged(child)
    })
  )

const assertDurable = (
  acked: ReadonlyArray<string>,
  found: { readonly stored: ReadonlyArray<StoredEvent>; readonly usage: number }
) => {
  assert.isAtLeast(acked.length, ACKS_BEFORE_KILL)
  assert.strictEqual(new Set(acked).size, acked.length, "an event id was acknowledged twice")
  const stored = new Map(found.stored.map((event) => [event.id, event]))
  assert.deepStrictEqual(acked.filter((id) => !stored.has(id)), [], "acknowledged events missing after the crash")
  assert.deepStrictEqual(
    found.stored.filter((event) => event.status !== "QUEUED" || !event.scheduled),
    [],
    "acknowledged events without a scheduled delivery"
  )
  assert.isAtLeast(found.usage, acked.length, "usage counts fewer events than were acknowledged")
}

describe("Ingest durability across a crash", () => {
  it.live(
    "on PGlite, every event acknowledged before SIGKILL is stored, queued and counted",
    () =>
      Effect.gen(function*() {
        const dir = yield* Effect.acquireRelease(
          Effect.promise(() => mkdtemp(join(tmpdir(), "promptjang-ingest-crash-"))),
          (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
        )
        const target: Target = { _tag: "Pglite", dir }
        // PGlite has one owner at a time: this process opens it, then the child, then this process again.
        const tenant = yield* createTenant(ENDPOINT_URL).pipe(Effect.provide(engineLayer(target)))
        const acked = yield* ingestUntilKilled(target, tenant)
        const found = yield* readBack(acked, tenant.organizationId).pipe(Effect.provide(engineLayer(target)))
        assertDurable(acked, found)
      }),
    120_000
  )

  if (postgresUrl === undefined) {
    it("on PostgreSQL: not run, set PROMPTJANG_TEST_DATABASE_URL to a PostgreSQL server to run it", () => {
      console.warn("PostgreSQL ingest crash test not run: PROMPTJANG_TEST_DATABASE_URL is not set")
      assert.isUndefined(postgresUrl)
    })
  } else {
    const databaseUrl = postgresUrl
    it.live(
      "on PostgreSQL, every event acknowledged before SIGKILL is stored, queued and counted",
      () =>
        Effect.gen(function*() {
          const db = yield* freshPostgresUrl(databaseUrl)
          const target: Target = { _tag: "Postgres", url: db.url }
          const context = yield* Layer.build(engineLayer(target))
          const tenant = yield* createTenant(ENDPOINT_URL).pipe(Effect.provide(context))
          const acked = yield* ingestUntilKilled(target, tenant)
          const found = yield* readBack(acked, tenant.organizationId).pipe(Effect.provide(context))
          assertDurable(acked, found)
        }),
      120_000
    )
  }
})
