/**
 * A PromptJang process for the multi-process suites, run with `node test/integration/worker.ts`.
 *
 *   --url postgres://…         PostgreSQL (or PROMPTJANG_DATABASE_URL), or
 *   --pglite-dir DIR           embedded PGlite with its data in DIR
 *   --role worker              runs the engine with its dispatcher (Engine.layerRunning) and prints
 *                              "ready" once it is claiming deliveries
 *   --role ingest              ingests events (no dispatcher) and prints each acknowledged event id on
 *                              its own line as soon as the ingest returns (that line is a 202); needs
 *                              --endpoint and --api-key (or PROMPTJANG_API_KEY)
 *   --count N                  ingest: N events, then print "done" and exit (default 0: until stopped)
 *   --ingest-concurrency N     ingest: requests in flight at once (default 16)
 *   --name NAME                worker: added to User-Agent, so that a receiver can tell workers apart
 *   --concurrency, --per-endpoint-concurrency, --max-unfinished, --batch-size, --timeout-ms, --lease-margin-ms
 *                              worker: Dispatcher.Options
 *   --lifeline                 stop when stdin closes (the parent died)
 *
 * Private targets are allowed (receivers run on loopback). SIGTERM and SIGINT stop it gracefully.
 */
import { Dispatcher, Engine, Ingestion, Targets } from "@promptjang/core"
import { PgStorage } from "@promptjang/storage-pg"
import { Cause, Effect, Exit, Layer, Stream } from "effect"
import { FetchHttpClient } from "effect/http"
import { parseArgs } from "node:util"

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    "pglite-dir": { type: "string" },
    role: { type: "string", default: "worker" },
    name: { type: "string", default: "worker" },
    endpoint: { type: "string" },
    "api-key": { type: "string" },
    count: { type: "string", default: "0" },
    "ingest-concurrency": { type: "string", default: "16" },
    concurrency: { type: "string" },
    "per-endpoint-concurrency": { type: "string" },
    "max-unfinished": { type: "string" },
    "batch-size": { type: "string" },
    "timeout-ms": { type: "string" },
    "lease-margin-ms": { type: "string" },
    lifeline: { type: "boolean", default: false }
  }
})

const fail = (message: string): never => {
  console.error(`worker: ${message}`)
  process.exit(2)
}

const integer = (name: string, value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const n = Number(value)
  return Number.isInteger(n) && n >= 0 ? n : fail(`--${name} must be a whole number, got "${value}"`)
}

const url = args.url ?? process.env["PROMPTJANG_DATABASE_URL"]
const pgliteDir = args["pglite-dir"]
const storage = url !== undefined
  ? PgStorage.layerPostgres(url)
  : pgliteDir !== undefined
  ? PgStorage.layerPglite(pgliteDir)
  : fail("give --url (or PROMPTJANG_DATABASE_URL) or --pglite-dir")

const defaults = Dispatcher.defaultOptions
const options: Dispatcher.DispatcherOptions = {
  ...defaults,
  concurrency: integer("concurrency", args.concurrency) ?? defaults.concurrency,
  perEndpointConcurrency: integer("per-endpoint-concurrency", args["per-endpoint-concurrency"]) ??
    defaults.perEndpointConcurrency,
  maxUnfinished: integer("max-unfinished", args["max-unfinished"]) ?? defaults.maxUnfinished,
  batchSize: integer("batch-size", args["batch-size"]) ?? defaults.batchSize,
  timeoutMs: integer("timeout-ms", args["timeout-ms"]) ?? defaults.timeoutMs,
  leaseMarginMs: integer("lease-margin-ms", args["lease-margin-ms"]) ?? defaults.leaseMarginMs,
  userAgent: `PromptJang/${Dispatcher.VERSION} (${args.name})`
}

const platform = Layer.mergeAll(
  storage,
  FetchHttpClient.layer,
  Layer.succeed(Targets.TargetPolicy, { allowPrivateTargets: true }),
  Layer.succeed(Dispatcher.Options, options)
)

const work = Effect.sync(() => console.log("ready")).pipe(
  Effect.andThen(Effect.never),
  Effect.provide(Engine.layerRunning.pipe(Layer.provide(platform)))
)

const ingest = Effect.gen(function*() {
  const endpointId = args.endpoint ?? fail("--role ingest needs --endpoint")
  const apiKey = args["api-key"] ?? process.env["PROMPTJANG_API_KEY"] ?? fail("--role ingest needs --api-key")
  const count = integer("count", args.count) ?? 0
  const concurrency = integer("ingest-concurrency", args["ingest-concurrency"]) ?? 16
  const ingestion = yield* Ingestion.Ingestion
  const encoder = new TextEncoder()
  const numbers = count > 0 ? Stream.range(1, count) : Stream.iterate(1, (n) => n + 1)
  yield* numbers.pipe(
    Stream.mapEffect((n) =>
      ingestion.ingest(apiKey, {
        endpointId,
        body: encoder.encode(JSON.stringify({ event: "load.generated", data: { n } }))
      }).pipe(
        // Written synchronously (stdout is a pipe): once the line is out, the event was acknowledged.
        Effect.tap((accepted) => Effect.sync(() => process.stdout.write(`${accepted.id}\n`)))
      ), { concurrency, unordered: true }),
    Stream.runDrain
  )
  yield* Effect.sync(() => console.log("done"))
}).pipe(Effect.provide(Engine.layer.pipe(Layer.provide(platform))))

const program = args.role === "worker"
  ? work
  : args.role === "ingest"
  ? ingest
  : fail(`--role must be worker or ingest, got "${args.role}"`)

const fiber = Effect.runFork(program)
fiber.addObserver((exit) => {
  if (Exit.isFailure(exit) && !Exit.hasInterrupts(exit)) {
    console.error(`worker: stopped on a failure:\n${Cause.pretty(exit.cause)}`)
  }
  process.exit(Exit.isSuccess(exit) || Exit.hasInterrupts(exit) ? 0 : 1)
})
const stop = () => fiber.interruptUnsafe()
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
if (args.lifeline) {
  process.stdin.on("end", stop)
  process.stdin.resume()
}
