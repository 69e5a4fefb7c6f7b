/**
 * Storage benchmark (issue: Postgres storage and queue). Prints, in one run:
 *
 * - engine ingest throughput on PostgreSQL (events/s durable, through the engine API without HTTP) beside
 *   a baseline of plain single-row INSERTs from the same driver, measured in the same run;
 * - dispatch throughput (deliveries/s to a loopback receiver that answers 200 at once) with the server's
 *   delivery client (`DeliveryClient` of `@promptjang/node`), beside effect's `FetchHttpClient` draining a backlog
 *   of the same size in the same run;
 * - claim latency p50/p99 with 1,000,000 pending-but-not-due deliveries in the table;
 * - engine ingest throughput on PGlite.
 *
 * Run: `npm run bench:storage` (needs PostgreSQL; PROMPTJANG_BENCH_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/postgres). Creates and drops its own databases.
 */
import { PgClient } from "@effect/sql-pg"
import { Accounts, Dispatcher, Endpoints, Engine, Ingestion, Queue, Signing, Targets } from "@promptjang/core"
import type { Principal } from "@promptjang/core/Accounts"
import { DeliveryClient } from "@promptjang/node"
import { PgStorage } from "@promptjang/storage-pg"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { FetchHttpClient, type HttpClient } from "effect/http"
import { SqlClient } from "effect/sql"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { percentile } from "./stats.ts"

const SERVER = process.env["PROMPTJANG_BENCH_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"
const INGEST_EVENTS = Number(process.env["BENCH_INGEST_EVENTS"] ?? 50_000)
const BASELINE_ROWS = Number(process.env["BENCH_BASELINE_ROWS"] ?? 20_000)
const PGLITE_EVENTS = Number(process.env["BENCH_PGLITE_EVENTS"] ?? 20_000)
const BACKLOG = Number(process.env["BENCH_BACKLOG"] ?? 1_000_000)
const CONCURRENCY = 256

const withDatabase = (url: string, database: string) => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}
const admin = PgClient.layer({ url: Redacted.make(SERVER), maxConnections: 1 })
const runAdmin = (statement: string) =>
  Effect.runPromise(
    Effect.provide(Effect.flatMap(Effect.service(SqlClient.SqlClient), (sql) => sql.unsafe(statement)), admin)
  )

const payload = (i: number) => {
  const base = { event: "order.created", data: { order_id: `ORD-${i}`, note: "" } }
  const filler = 1024 - JSON.stringify(base).length
  base.data.note = "x".repeat(Math.max(0, filler))
  return new TextEncoder().encode(JSON.stringify(base))
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US")

/** Runs `count` tasks with at most `concurrency` at once; returns the elapsed seconds. */
const timed = async (count: number, concurrency: number, task: (i: number) => Promise<unknown>) => {
  let next = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await task(next++)
  }))
  return (performance.now() - started) / 1000
}

const AllowLoopback = Layer.succeed(Targets.TargetPolicy, { allowPrivateTargets: true })

const engineOn = (storage: Layer.Layer<Storage, unknown>) =>
  ManagedRuntime.make(
    Engine.layer.pipe(Layer.provideMerge(storage), Layer.provide([FetchHttpClient.layer, AllowLoopback]))
  )
type Storage = import("@promptjang/core").Storage.Storage | Queue.Queue

const seedTenant = (runtime: ReturnType<typeof engineOn>, url: string) =>
  runtime.runPromise(Effect.gen(function*() {
    const accounts = yield* Accounts.Accounts
    const { apiKey, organization } = yield* accounts.createOrganization({ name: "bench", plan: "pro" })
    const endpoint = yield* Endpoints.Endpoints.use((e) => e.create(organization.id, { url }))
    const principal: Principal = { organization, apiKey: apiKey.record }
    return { endpoint, principal }
  }))

const ingestMany = async (runtime: ReturnType<typeof engineOn>, url: string, count: number) => {
  const { endpoint, principal } = await seedTenant(runtime, url)
  const ingestion = await runtime.runPromise(Effect.service(Ingestion.Ingestion))
  const bodies = Array.from({ length: 64 }, (_, i) => payload(i))
  const seconds = await timed(count, CONCURRENCY, (i) => {
    const body = bodies[i % bodies.length] ?? payload(i)
    const timestamp = String(Math.floor(Date.now() / 1000))
    return runtime.runPromise(ingestion.accept(principal, {
      endpointId: endpoint.id,
      body,
      timestamp,
      signature: Signing.signInbound(endpoint.secret, timestamp, body)
    }))
  })
  return count / seconds
}

const sqlRuntime = (url: string, maxConnections: number) =>
  ManagedRuntime.make(PgClient.layer({ url: Redacted.make(url), maxConnections }))

/** Single-row INSERTs, one per statement (autocommit), from the same driver over 16 connections. */
const baselineInserts = async (url: string) => {
  const runtime = sqlRuntime(url, 16)
  const sql = await runtime.runPromise(Effect.service(SqlClient.SqlClient))
  await runtime.runPromise(
    sql`CREATE TABLE baseline (id text PRIMARY KEY, body bytea NOT NULL, created_at timestamptz NOT NULL)`
  )
  const body = payload(0)
  const seconds = await timed(
    BASELINE_ROWS,
    16,
    (i) => runtime.runPromise(sql`INSERT INTO baseline VALUES (${`row_${i}`}, ${body}, now())`)
  )
  await runtime.dispose()
  return BASELINE_ROWS / seconds
}

/**
 * Runs the dispatcher with `client` until the queue is empty; returns deliveries/s. The server's client
 * (`promptjang serve` delivers with it) uses undici's request API without effect's HttpClient in between. Through
 * effect's HttpClient over undici (NodeHttpClient.layerUndici), two runs in turn on the same machine made 2,688
 * deliveries/s against 5,944 with it: that path builds an abort error (a DOMException, with its stack) for every
 * response it reads, and streams the body.
 */
const dispatchAll = async (url: string, expected: number, client: Layer.Layer<HttpClient.HttpClient>) => {
  const runtime = ManagedRuntime.make(
    Engine.layerRunning.pipe(
      Layer.provide(PgStorage.layerPostgres(url)),
      Layer.provide([
        client,
        AllowLoopback,
        Layer.succeed(Dispatcher.Options, {
          ...Dispatcher.defaultOptions,
          concurrency: 256,
          perEndpointConcurrency: 256,
          batchSize: 256
        })
      ])
    )
  )
  const counter = sqlRuntime(url, 1)
  const sql = await counter.runPromise(Effect.service(SqlClient.SqlClient))
  const pending = async () =>
    Number((await counter.runPromise(sql<{ n: bigint }>`SELECT count(*) AS n FROM deliveries`))[0]?.n ?? 0)
  const started = performance.now()
  await runtime.runPromise(Effect.void) // builds the layer: the dispatcher starts
  const deadline = started + 300_000
  while ((await pending()) > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  const seconds = (performance.now() - started) / 1000
  const left = await pending()
  await runtime.dispose()
  await counter.dispose()
  return { perSecond: (expected - left) / seconds, left }
}

/** Claim latency of 100 due rows with a backlog of not-yet-due deliveries. */
const claimLatency = async (url: string) => {
  const runtime = ManagedRuntime.make(PgStorage.layerPostgres(url))
  const queue = await runtime.runPromise(Effect.service(Queue.Queue))
  const raw = sqlRuntime(url, 1)
  const sql = await raw.runPromise(Effect.service(SqlClient.SqlClient))
  const future = new Date(Date.now() + 86_400_000)
  await raw.runPromise(sql`
    INSERT INTO deliveries (event_id, endpoint_id, available_at)
    SELECT 'evt_backlog_' || g, 'ep_backlog_' || (g % 100), ${future}::timestamptz + (g || ' milliseconds')::interval
    FROM generate_series(1, ${BACKLOG}) AS g`)
  // 20,000 due deliveries with their events, to claim 100 at a time.
  const now = new Date()
  await raw.runPromise(sql`
    INSERT INTO events (id, organization_id, endpoint_id, event_type, body, status, cycle, attempt_count,
                        next_attempt_at, created_at, updated_at)
    SELECT 'evt_due_' || lpad(g::text, 6, '0'), 'org_bench', 'ep_due_' || (g % 10), 'order.created', '\\x7b7d'::bytea,
           'QUEUED', 1, 0, ${now}, ${now}, ${now}
    FROM generate_series(1, 20000) AS g`)
  await raw.runPromise(sql`
    INSERT INTO deliveries (event_id, endpoint_id, available_at)
    SELECT 'evt_due_' || lpad(g::text, 6, '0'), 'ep_due_' || (g % 10), ${now} FROM generate_series(1, 20000) AS g`)
  await raw.runPromise(sql`VACUUM ANALYZE deliveries`)
  const latencies: Array<number> = []
  for (let i = 0; i < 200; i++) {
    const started = performance.now()
    const claims = await runtime.runPromise(queue.claimDue({ now: Date.now(), limit: 100, leaseMs: 60_000 }))
    latencies.push(performance.now() - started)
    if (claims.length === 0) break
  }
  latencies.sort((a, b) => a - b)
  await runtime.dispose()
  await raw.dispose()
  return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), claims: latencies.length }
}

const main = async () => {
  const suffix = `${process.pid}`
  const mainDb = `promptjang_bench_${suffix}`
  const claimDb = `promptjang_bench_claims_${suffix}`
  const pgliteDir = mkdtempSync(join(tmpdir(), "promptjang-bench-"))
  const receiver = spawn(process.execPath, [join(import.meta.dirname, "receiver.ts"), "--seconds", "900"], {
    stdio: ["ignore", "pipe", "inherit"]
  })
  try {
    const port = await new Promise<string>((resolve) =>
      createInterface({ input: receiver.stdout }).once("line", resolve)
    )
    const receiverUrl = `http://127.0.0.1:${port}/hooks`
    console.log(`PromptJang storage benchmark, ${new Date().toISOString()}, Node ${process.version}`)
    await runAdmin(`CREATE DATABASE ${mainDb}`)
    await runAdmin(`CREATE DATABASE ${claimDb}`)
    const url = withDatabase(SERVER, mainDb)

    const baseline = await baselineInserts(url)
    console.log(`baseline: single-row INSERTs, 16 connections        ${fmt(baseline).padStart(8)} rows/s`)

    const pg = engineOn(PgStorage.layerPostgres(url))
    const ingest = await ingestMany(pg, receiverUrl, INGEST_EVENTS)
    await pg.dispose()
    console.log(
      `ingest on PostgreSQL: ${fmt(INGEST_EVENTS)} signed 1 KiB events     ${fmt(ingest).padStart(8)} events/s  (${
        (ingest / baseline).toFixed(1)
      }x baseline; target >= 20,000 and >= 2x)`
    )

    const undelivered = (left: number) => left > 0 ? `, ${left} left undelivered` : ""
    const dispatch = await dispatchAll(
      url,
      INGEST_EVENTS,
      DeliveryClient.layer({ allowPrivateTargets: true, connections: 256 })
    )
    console.log(
      `dispatch on PostgreSQL: backlog of ${fmt(INGEST_EVENTS)} to loopback   ${
        fmt(dispatch.perSecond).padStart(8)
      } deliveries/s (DeliveryClient; target >= 8,000)${undelivered(dispatch.left)}`
    )
    // The same backlog again, delivered through fetch: what an embedder gets with FetchHttpClient.layer.
    const again = engineOn(PgStorage.layerPostgres(url))
    await ingestMany(again, receiverUrl, INGEST_EVENTS)
    await again.dispose()
    const viaFetch = await dispatchAll(url, INGEST_EVENTS, FetchHttpClient.layer)
    console.log(
      `  the same through effect's FetchHttpClient            ${fmt(viaFetch.perSecond).padStart(8)} deliveries/s (${
        (dispatch.perSecond / viaFetch.perSecond).toFixed(1)
      }x as many with DeliveryClient)${undelivered(viaFetch.left)}`
    )

    const claims = await claimLatency(withDatabase(SERVER, claimDb))
    console.log(
      `claim 100 due rows, ${fmt(BACKLOG)} not-due rows queued    p50 ${claims.p50.toFixed(2)} ms, p99 ${
        claims.p99.toFixed(2)
      } ms over ${claims.claims} claims (target p99 <= 5 ms)`
    )

    const pglite = engineOn(PgStorage.layerPglite(pgliteDir))
    const pgliteIngest = await ingestMany(pglite, receiverUrl, PGLITE_EVENTS)
    await pglite.dispose()
    console.log(
      `ingest on PGlite: ${fmt(PGLITE_EVENTS)} signed 1 KiB events         ${
        fmt(pgliteIngest).padStart(8)
      } events/s  (target >= 5,000)`
    )
  } finally {
    receiver.kill("SIGTERM")
    await runAdmin(`DROP DATABASE IF EXISTS ${mainDb} WITH (FORCE)`).catch(() => undefined)
    await runAdmin(`DROP DATABASE IF EXISTS ${claimDb} WITH (FORCE)`).catch(() => undefined)
    rmSync(pgliteDir, { recursive: true, force: true })
  }
}

await main()
