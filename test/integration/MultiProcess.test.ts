/**
 * Two worker processes share one PostgreSQL database: deliveries are split
 * between them without duplicates, and when one is killed mid-flight its
 * leases expire and the survivor finishes its work.
 */
import { assert, describe, it } from "@effect/vitest"
import { Ingestion } from "@promptjang/core"
import { Clock, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { freshPostgresUrl, postgresUrl } from "../../packages/storage-pg/test/harness.ts"
import {
  awaitReady,
  type Child,
  createTenant,
  describeExit,
  engineLayer,
  ensureRunning,
  running,
  spawnWorker,
  targetArgs,
  waitUntil
} from "./harness.ts"
import * as Receiver from "./receiver.ts"

const EVENTS = 5_000

/** A fresh database, the engine on it in this process (no dispatcher), and a tenant delivering to `url`. */
const setup = (databaseUrl: string, receiverUrl: string) =>
  Effect.gen(function*() {
    const db = yield* freshPostgresUrl(databaseUrl)
    const target = { _tag: "Postgres", url: db.url } as const
    const context = yield* Layer.build(engineLayer(target))
    const tenant = yield* createTenant(receiverUrl).pipe(Effect.provide(context))
    return { target, context, tenant }
  })

/** Ingests `count` events through the engine (as `POST /e/:id` would), 64 at a time; returns their ids. */
const ingestEvents = (apiKey: string, endpointId: string, count: number) =>
  Effect.gen(function*() {
    const ingestion = yield* Ingestion.Ingestion
    const encoder = new TextEncoder()
    return yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (n) =>
        ingestion.ingest(apiKey, {
          endpointId,
          body: encoder.encode(JSON.stringify({ event: "order.created", data: { n } }))
        }).pipe(Effect.map((accepted) => accepted.id)),
      { concurrency: 64 }
    )
  })

const deliveredCount = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ delivered: number; total: number }>`
    SELECT count(*) FILTER (WHERE status = 'DELIVERED')::int AS delivered, count(*)::int AS total FROM events`
  return row ?? { delivered: 0, total: 0 }
})

/** Polls the database until every event is DELIVERED, failing early if a worker that should run died. */
const awaitAllDelivered = (expected: number, mustRun: ReadonlyArray<Child>) => {
  let last = { delivered: 0, total: 0 }
  return waitUntil(
    `${expected} events to be DELIVERED`,
    Effect.gen(function*() {
      yield* ensureRunning(mustRun)
      last = yield* deliveredCount
      return last.delivered >= expected ? last : undefined
    }),
    { timeoutMs: 60_000, everyMs: 150, describe: () => `Delivered ${last.delivered} of ${last.total}.` }
  )
}

interface AttemptSummary {
  readonly id: string
  readonly status: string
  readonly attempt_count: number
  readonly attempts: number
  readonly distinct_numbers: number
  readonly lowest: number | null
  readonly highest: number | null
  readonly last_succeeded: boolean | null
}

/** Per event: its status and a summary of the attempts of its current cycle. */
const attemptSummaries = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<AttemptSummary>`
    SELECT e.id, e.status, e.attempt_count,
      count(a.id)::int AS attempts, count(DISTINCT a.number)::int AS distinct_numbers,
      min(a.number) AS lowest, max(a.number) AS highest,
      bool_or(a.succeeded) FILTER (WHERE a.number = e.attempt_count) AS last_succeeded
    FROM events e LEFT JOIN attempts a ON a.event_id = e.id AND a.cycle = e.cycle
    GROUP BY e.id, e.status, e.attempt_count
    ORDER BY e.id`
})

const sentBy = (name: string) => (delivery: Receiver.ReceivedDelivery) => delivery.userAgent.endsWith(`(${name})`)

if (postgresUrl === undefined) {
  describe("Workers in several processes on PostgreSQL", () => {
    it("is not run: set PROMPTJANG_TEST_DATABASE_URL to a PostgreSQL server to run it", () => {
      console.warn("Multi-process suite not run: PROMPTJANG_TEST_DATABASE_URL is not set")
      assert.isUndefined(postgresUrl)
    })
  })
} else {
  const databaseUrl = postgresUrl

  describe("Workers in several processes on PostgreSQL", () => {
    it.live(
      "two workers deliver 5,000 events between them, each event exactly once",
      () =>
        Effect.gen(function*() {
          const receiver = yield* Receiver.make()
          const { context, target, tenant } = yield* setup(databaseUrl, receiver.url)
          const a = yield* spawnWorker([...targetArgs(target), "--name", "a"])
          const b = yield* spawnWorker([...targetArgs(target), "--name", "b"])
          yield* awaitReady(a)
          yield* awaitReady(b)

          const started = yield* Clock.currentTimeMillis
          const ids = yield* ingestEvents(tenant.apiKey, tenant.endpointId, EVENTS).pipe(Effect.provide(context))
          const ingested = yield* Clock.currentTimeMillis
          yield* awaitAllDelivered(EVENTS, [a, b]).pipe(Effect.provide(context))
          const finished = yield* Clock.currentTimeMillis
          console.info(
            `${EVENTS} events ingested in ${((ingested - started) / 1000).toFixed(2)} s and delivered by two workers ` +
              `${((finished - started) / 1000).toFixed(2)} s after the first ingest ` +
              `(a: ${receiver.deliveries.filter(sentBy("a")).length}, b: ${
                receiver.deliveries.filter(sentBy("b")).length
              })`
          )

          // The receiver saw every event once, as attempt 1.
          const counts = Receiver.countById(receiver.deliveries)
          assert.strictEqual(receiver.deliveries.length, EVENTS)
          assert.deepStrictEqual([...counts.keys()].sort(), [...ids].sort())
          assert.deepStrictEqual([...counts.entries()].filter(([, n]) => n !== 1), [])
          assert.deepStrictEqual(receiver.deliveries.filter((d) => d.attempt !== 1), [])

          // Both workers did part of the work, and nobody else did any.
          const byA = receiver.deliveries.filter(sentBy("a")).length
          const byB = receiver.deliveries.filter(sentBy("b")).length
          assert.isAbove(byA, 0, "worker a delivered nothing")
          assert.isAbove(byB, 0, "worker b delivered nothing")
          assert.strictEqual(byA + byB, EVENTS)

          // The database agrees: one successful attempt per event, every event DELIVERED.
          const summaries = yield* attemptSummaries.pipe(Effect.provide(context))
          assert.strictEqual(summaries.length, EVENTS)
          assert.deepStrictEqual(
            summaries.filter((s) =>
              s.status !== "DELIVERED" || s.attempt_count !== 1 || s.attempts !== 1 || s.last_succeeded !== true
            ),
            []
          )
        }),
      120_000
    )

    it.live(
      "when a worker is killed mid-delivery the other takes over its leases: every event is delivered, attempts stay contiguous",
      () =>
        Effect.gen(function*() {
          const perEndpointConcurrency = 16
          // Deliveries a worker may have sent and not yet recorded: its most that can arrive twice after a crash.
          const maxUnfinished = 32
          // Set once the worker to kill is running; the receiver kills it on a request of its own.
          let victim: Child | undefined
          let killedWhileDelivering: string | undefined
          const receiver = yield* Receiver.make({
            delayMs: 5,
            onDelivery: (delivery, seen) => {
              if (victim === undefined || killedWhileDelivering !== undefined) return
              if (seen >= 1_000 && sentBy("a")(delivery)) {
                // Synchronously, before this request is answered: it is in flight when worker a dies.
                if (running(victim)) process.kill(victim.pid, "SIGKILL")
                killedWhileDelivering = delivery.eventId
              }
            }
          })
          const { context, target, tenant } = yield* setup(databaseUrl, receiver.url)
          const workerArgs = [
            ...targetArgs(target),
            "--timeout-ms",
            "2000",
            "--lease-margin-ms",
            "1000",
            "--concurrency",
            String(perEndpointConcurrency),
            "--per-endpoint-concurrency",
            String(perEndpointConcurrency),
            "--max-unfinished",
            String(maxUnfinished)
          ]
          const a = yield* spawnWorker([...workerArgs, "--name", "a"])
          const b = yield* spawnWorker([...workerArgs, "--name", "b"])
          yield* awaitReady(a)
          yield* awaitReady(b)
          victim = a

          const started = yield* Clock.currentTimeMillis
          const ids = yield* ingestEvents(tenant.apiKey, tenant.endpointId, EVENTS).pipe(Effect.provide(context))
          const killedId = yield* waitUntil(
            "the receiver to kill worker a after 1,000 requests",
            Effect.sync(() => killedWhileDelivering),
            { timeoutMs: 60_000, describe: () => `The receiver saw ${receiver.deliveries.length} requests.` }
          )
          yield* Effect.promise(() => a.closed)
          assert.strictEqual(a.process.signalCode, "SIGKILL", describeExit(a))
          yield* awaitAllDelivered(EVENTS, [b]).pipe(Effect.provide(context))
          const finished = yield* Clock.currentTimeMillis
          const counts = Receiver.countById(receiver.deliveries)
          const duplicated = [...counts.entries()].filter(([, n]) => n > 1).map(([id]) => id)
          console.info(
            `${EVENTS} events delivered in ${((finished - started) / 1000).toFixed(2)} s with worker a killed ` +
              `after ${receiver.deliveries.filter(sentBy("a")).length} of its requests; ` +
              `${duplicated.length} delivered again by worker b`
          )

          // Every event arrived at least once.
          assert.deepStrictEqual([...counts.keys()].sort(), [...ids].sort())

          // Only deliveries worker a held when it died arrived twice: first from a, then once from b.
          for (const id of duplicated) {
            const senders = receiver.deliveries.filter((d) => d.eventId === id).map((d) =>
              sentBy("a")(d) ? "a" : sentBy("b")(d) ? "b" : d.userAgent
            )
            assert.deepStrictEqual(senders, ["a", "b"], `event ${id} arrived from ${senders.join(", ")}`)
          }
          assert.isAtMost(duplicated.length, maxUnfinished, "more duplicates than worker a could hold")
          // The request in flight when a died was taken over by b once a's lease expired.
          assert.include(duplicated, killedId)

          // Every event is DELIVERED, and its attempts are numbered 1..n with no gap or repeat.
          const summaries = yield* attemptSummaries.pipe(Effect.provide(context))
          assert.strictEqual(summaries.length, EVENTS)
          assert.deepStrictEqual(summaries.filter((s) => s.status !== "DELIVERED"), [])
          assert.deepStrictEqual(
            summaries.filter((s) =>
              s.attempts < 1 || s.lowest !== 1 || s.highest !== s.attempts || s.distinct_numbers !== s.attempts ||
              s.attempt_count !== s.attempts || s.last_succeeded !== true
            ),
            []
          )
        }),
      120_000
    )
  })
}
