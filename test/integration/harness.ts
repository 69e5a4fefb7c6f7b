/**
 * What the integration suites share: the engine over a database in the test
 * process, a tenant to ingest for, child processes running `worker.ts`, and
 * bounded polling.
 */
import { Accounts, Endpoints, Engine, Targets } from "@promptjang/core"
import { Database, PgStorage } from "@promptjang/storage-pg"
import { Clock, Effect, Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"

/** The worker script the suites start as child processes. */
export const workerScript = fileURLToPath(new URL("./worker.ts", import.meta.url))

/** Where a database lives: a PostgreSQL URL or a PGlite data directory. */
export type Target =
  | { readonly _tag: "Postgres"; readonly url: string }
  | { readonly _tag: "Pglite"; readonly dir: string }

/** The worker's arguments that point it at a target. */
export const targetArgs = (target: Target): ReadonlyArray<string> =>
  target._tag === "Postgres" ? ["--url", target.url] : ["--pglite-dir", target.dir]

/** Storage and Queue over a target, migrated, with its `SqlClient` for the suites' own queries. */
export const storeLayer = (target: Target) =>
  target._tag === "Postgres"
    ? PgStorage.layerListening(PgStorage.serverOptions).pipe(
      Layer.provideMerge(PgStorage.layerMigrations),
      Layer.provideMerge(Database.layerPostgres(target.url, { maxConnections: 4 }))
    )
    : PgStorage.layer(PgStorage.pgliteOptions).pipe(
      Layer.provideMerge(PgStorage.layerMigrations),
      Layer.provideMerge(Database.layerPglite(target.dir))
    )

/** The engine's services (no dispatcher running) over a target, private targets allowed. */
export const engineLayer = (target: Target) =>
  Engine.layer.pipe(
    Layer.provideMerge(storeLayer(target)),
    Layer.provide(
      Layer.merge(FetchHttpClient.layer, Layer.succeed(Targets.TargetPolicy, { allowPrivateTargets: true }))
    )
  )

/** An organization with one endpoint delivering to `url`. */
export const createTenant = (url: string) =>
  Effect.gen(function*() {
    const { apiKey, organization } = yield* Accounts.Accounts.use((a) => a.createOrganization({ name: "Integration" }))
    const endpoint = yield* Endpoints.Endpoints.use((e) => e.create(organization.id, { url }))
    return { organizationId: organization.id, apiKey: apiKey.key, endpointId: endpoint.id }
  })

/** A running `worker.ts`: its stdout lines so far, and how it ended. */
export interface Child {
  readonly pid: number
  readonly process: ChildProcess
  readonly lines: ReadonlyArray<string>
  readonly stderr: () => string
  /** Resolves once the process has exited and its output is read to the end. */
  readonly closed: Promise<void>
}

const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

/** Why a child is not running, with the end of its stderr. */
export const describeExit = (child: Child): string =>
  `worker ${child.pid} exited (code ${child.process.exitCode}, signal ${child.process.signalCode}); stderr:\n${
    child.stderr().slice(-2000)
  }`

/**
 * Starts `worker.ts` with `args`; the scope's end kills it (SIGKILL, by pid) if it still runs and waits
 * for it to close. It stops by itself if this process dies (`--lifeline`).
 */
export const spawnWorker = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}) =>
  Effect.acquireRelease(
    Effect.sync((): Child => {
      const child = spawn(process.execPath, [workerScript, "--lifeline", ...args], {
        env: { ...process.env, ...env },
        stdio: ["pipe", "pipe", "pipe"]
      })
      const pid = child.pid ?? -1
      const lines: Array<string> = []
      let stderr = ""
      child.stderr.setEncoding("utf8")
      child.stderr.on("data", (chunk: string) => {
        stderr += chunk
      })
      createInterface({ input: child.stdout }).on("line", (line) => lines.push(line))
      const closed = new Promise<void>((resolve) => child.on("close", () => resolve()))
      return { pid, process: child, lines, stderr: () => stderr, closed }
    }),
    (child) =>
      Effect.promise(async () => {
        if (isRunning(child.process) && child.pid > 0) process.kill(child.pid, "SIGKILL")
        await Promise.race([child.closed, new Promise((resolve) => setTimeout(resolve, 5_000))])
      })
  )

/** Kills a child with SIGKILL (by pid) and waits until it is gone and its output is read. */
export const killNow = (child: Child) =>
  Effect.promise(async () => {
    if (isRunning(child.process)) process.kill(child.pid, "SIGKILL")
    await child.closed
  })

/** Whether the child still runs. */
export const running = (child: Child): boolean => isRunning(child.process)

/**
 * Runs `check` every `everyMs` until it returns a value that is not undefined; fails with `what`
 * (and the last state `describe` gives) once `timeoutMs` have passed.
 */
export const waitUntil = <A, E, R>(
  what: string,
  check: Effect.Effect<A | undefined, E, R>,
  options: { readonly timeoutMs: number; readonly everyMs?: number; readonly describe?: () => string }
): Effect.Effect<A, E | Error, R> =>
  Effect.gen(function*() {
    const deadline = (yield* Clock.currentTimeMillis) + options.timeoutMs
    while (true) {
      const result = yield* check
      if (result !== undefined) return result
      if ((yield* Clock.currentTimeMillis) > deadline) {
        return yield* Effect.fail(
          new Error(`Timed out after ${options.timeoutMs} ms waiting for ${what}. ${options.describe?.() ?? ""}`)
        )
      }
      yield* Effect.sleep(options.everyMs ?? 150)
    }
  })

/** Fails at once when a child that should be running has exited. */
export const ensureRunning = (children: ReadonlyArray<Child>) =>
  Effect.suspend(() => {
    const dead = children.find((child) => !running(child))
    return dead === undefined ? Effect.void : Effect.fail(new Error(describeExit(dead)))
  })

/** Waits until the worker printed "ready" (it is claiming deliveries). */
export const awaitReady = (child: Child) =>
  waitUntil(
    `worker ${child.pid} to be ready`,
    ensureRunning([child]).pipe(Effect.map(() => (child.lines.includes("ready") ? true : undefined))),
    { timeoutMs: 30_000, everyMs: 50 }
  )
