/**
 * What the end-to-end suites share: the real server process (`apps/server/src/cli.ts serve`) on an
 * embedded PGlite directory or a PostgreSQL database, a free port, its first-start API key, bounded
 * polling, and stopping it by pid.
 */
import { Effect, Exit, Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { freshPostgresUrl } from "../../packages/storage-pg/test/harness.ts"

/** The repository's root directory. */
export const root = fileURLToPath(new URL("../..", import.meta.url))

const cli = fileURLToPath(new URL("../../apps/server/src/cli.ts", import.meta.url))

/** The PostgreSQL server of the tests, when one is configured. */
export const postgresUrl: string | undefined = process.env["PROMPTJANG_TEST_DATABASE_URL"] || undefined

/** A port nobody listens on right now. */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** The first stdout line of `child` that matches `pattern` (within 60 s). */
export const firstLine = (child: ChildProcess, pattern: RegExp) =>
  new Promise<string>((resolve, reject) => {
    if (child.stdout === null) return reject(new Error("no stdout"))
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}`)), 60_000)
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (pattern.test(line)) {
        clearTimeout(timer)
        resolve(line)
      }
    })
  })

/**
 * Calls `check` every `everyMs` until it returns something other than undefined; rejects with `what`
 * (and what `describe` says about the last state) once `timeoutMs` have passed.
 */
export const waitFor = async <A>(
  what: string,
  check: () => Promise<A | undefined> | A | undefined,
  options: { readonly timeoutMs: number; readonly everyMs?: number; readonly describe?: () => string }
): Promise<A> => {
  const deadline = Date.now() + options.timeoutMs
  while (true) {
    const result = await check()
    if (result !== undefined) return result
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${options.timeoutMs} ms waiting for ${what}. ${options.describe?.() ?? ""}`)
    }
    await new Promise((resolve) => setTimeout(resolve, options.everyMs ?? 100))
  }
}

/** Where a server keeps its data: an embedded PGlite directory or a PostgreSQL database. */
export type Database =
  | { readonly _tag: "Pglite"; readonly dir: string }
  | { readonly _tag: "Postgres"; readonly url: string }

/** A fresh migrated database on the PostgreSQL server at `serverUrl`; `drop` removes it. */
export const freshDatabase = async (
  serverUrl: string
): Promise<{ readonly url: string; readonly drop: () => Promise<void> }> => {
  const scope = Effect.runSync(Scope.make())
  const db = await Effect.runPromise(Scope.provide(scope)(freshPostgresUrl(serverUrl)))
  return { url: db.url, drop: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** Where a suite's server keeps its data, and how to remove it afterwards. */
export interface Backend {
  readonly name: string
  readonly open: () => Promise<{ readonly database: Database; readonly close: () => Promise<void> }>
}

/**
 * The backends a suite runs on: embedded PGlite in a temp directory named after `prefix`, and a fresh
 * PostgreSQL database when PROMPTJANG_TEST_DATABASE_URL is set.
 */
export const backends = (prefix: string): ReadonlyArray<Backend> => {
  const pglite: Backend = {
    name: "embedded PGlite",
    open: async () => {
      const dir = mkdtempSync(join(tmpdir(), prefix))
      return { database: { _tag: "Pglite", dir }, close: async () => rmSync(dir, { recursive: true, force: true }) }
    }
  }
  if (postgresUrl === undefined) return [pglite]
  const serverUrl = postgresUrl
  const postgres: Backend = {
    name: "PostgreSQL",
    open: async () => {
      const db = await freshDatabase(serverUrl)
      return { database: { _tag: "Postgres", url: db.url }, close: db.drop }
    }
  }
  return [pglite, postgres]
}

/** A running server process. */
export interface ServerProcess {
  readonly pid: number
  readonly process: ChildProcess
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** The API key printed on the first start against an empty database; undefined on a later start. */
  readonly apiKey: string | undefined
  /** Its stdout lines so far. */
  readonly lines: ReadonlyArray<string>
  /** Its stderr so far. */
  readonly stderr: () => string
  /** Resolves once the process has exited and its output is read to the end. */
  readonly closed: Promise<void>
}

const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

/** Every server started here, so that a dying test process does not leave one behind. */
const started = new Set<ChildProcess>()
process.on("exit", () => {
  for (const child of started) {
    if (child.pid !== undefined && isRunning(child)) process.kill(child.pid, "SIGKILL")
  }
})

/** Why a server is not running, with the end of its stderr. */
export const describeExit = (server: ServerProcess): string =>
  `server ${server.pid} exited (code ${server.process.exitCode}, signal ${server.process.signalCode}); stderr:\n${
    server.stderr().slice(-3000)
  }`

/**
 * Starts `promptjang serve` on 127.0.0.1 and a free port over `database`, with `env` on top of this
 * process's environment (without its PROMPTJANG_* variables). Resolves once `/readyz` answers 200 (or,
 * with `readyLine`, for a process without HTTP such as a worker, once it prints a matching line) and,
 * when `expectApiKey` (the first start on an empty database, the default), the API key was printed.
 */
export const startServer = async (options: {
  readonly database: Database
  readonly env?: Readonly<Record<string, string>>
  readonly expectApiKey?: boolean
  readonly port?: number
  readonly readyLine?: RegExp
}): Promise<ServerProcess> => {
  const port = options.port ?? await freePort()
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) =>
      !name.startsWith("PROMPTJANG_") && name !== "PORT" && name !== "HOST"
    )
  )
  const child = spawn(process.execPath, [cli, "serve"], {
    env: {
      ...inherited,
      PORT: String(port),
      HOST: "127.0.0.1",
      ...(options.database._tag === "Pglite"
        ? { PROMPTJANG_DATA_DIR: options.database.dir }
        : { PROMPTJANG_DATABASE_URL: options.database.url }),
      ...options.env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  started.add(child)
  const lines: Array<string> = []
  let stderr = ""
  child.stderr?.setEncoding("utf8")
  child.stderr?.on("data", (chunk: string) => {
    stderr += chunk
  })
  if (child.stdout !== null) createInterface({ input: child.stdout }).on("line", (line) => lines.push(line))
  const closed = new Promise<void>((resolve) => child.on("close", () => resolve()))
  const server: ServerProcess = {
    pid: child.pid ?? -1,
    process: child,
    url: `http://127.0.0.1:${port}`,
    apiKey: undefined,
    lines,
    stderr: () => stderr,
    closed
  }
  const alive = () => {
    if (!isRunning(child)) throw new Error(describeExit(server))
  }
  try {
    const apiKey = options.expectApiKey === false ? undefined : await waitFor("the first-start API key", () => {
      alive()
      return lines.map((line) => /API key:\s+(\S+)/.exec(line)?.[1]).find((key) => key !== undefined)
    }, { timeoutMs: 90_000, everyMs: 50, describe: () => lines.join("\n") })
    const readyLine = options.readyLine
    if (readyLine === undefined) {
      await waitFor(`${server.url}/readyz to answer 200`, async () => {
        alive()
        const ready = await fetch(`${server.url}/readyz`).then((r) => r.ok, () => false)
        return ready ? true : undefined
      }, { timeoutMs: 90_000, everyMs: 50, describe: () => stderr.slice(-2000) })
    } else {
      await waitFor(`a line matching ${readyLine}`, () => {
        alive()
        return lines.find((line) => readyLine.test(line))
      }, { timeoutMs: 90_000, everyMs: 50, describe: () => `stdout:\n${lines.join("\n")}\nstderr:\n${stderr}` })
    }
    return { ...server, apiKey }
  } catch (error) {
    // A server that did not come up is not left behind.
    await stopServer(server, "SIGKILL", 5_000)
    throw error
  }
}

/**
 * Stops a server by pid: `signal` (SIGTERM by default), then SIGKILL if it is still running after
 * `graceMs`; resolves once it is gone and its output is read.
 */
export const stopServer = async (
  server: ServerProcess,
  signal: NodeJS.Signals = "SIGTERM",
  graceMs = 15_000
): Promise<void> => {
  if (isRunning(server.process) && server.pid > 0) process.kill(server.pid, signal)
  const stopped = await Promise.race([
    server.closed.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs))
  ])
  if (!stopped && isRunning(server.process) && server.pid > 0) {
    process.kill(server.pid, "SIGKILL")
    await server.closed
  }
  started.delete(server.process)
}
