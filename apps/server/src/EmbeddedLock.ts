/**
 * An exclusive lock on an embedded (PGlite) data directory. PGlite is a
 * single-process database: two processes opening the same directory would
 * corrupt it, so the server (`promptjang serve`) and the commands that open the
 * database (`migrate`, `org create`, `keys create`) each hold this lock while
 * the database is open. There is nothing to lock on PostgreSQL.
 *
 * The lock is the file `<dataDir>/promptjang.lock`, holding JSON with the
 * holder's pid, role, host name and a random token. It is created atomically
 * (written aside, then hard-linked into place, which fails if a lock exists),
 * and removed when the scope closes, which includes a SIGTERM shutdown of the
 * server (the runtime interrupts the main fiber and closes its scopes).
 *
 * A lock left behind by a process that died without releasing it (kill -9, a
 * crash, a power loss) is stale and taken over:
 * - its pid is not alive on this host (`process.kill(pid, 0)` fails with ESRCH);
 * - or its pid is this process's own pid and this process does not hold it (a
 *   container restarted with the same pid, e.g. 1, on a persistent volume);
 * - or it was written on another host (another container sharing the volume),
 *   where its pid means nothing here, and its holder has not refreshed it for
 *   {@link STALE_AFTER_MS}: holders touch the file every {@link HEARTBEAT_MS}.
 * A stale lock is moved aside (rename is atomic, so only one process moves it)
 * before the directory is locked again.
 *
 * @since 0.1.0
 */
import { Data, Effect, Layer, Schedule, type Scope } from "effect"
import { randomUUID } from "node:crypto"
import { linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } from "node:fs"
import { hostname } from "node:os"
import { join, resolve } from "node:path"

/** The lock file's name inside the data directory. */
export const LOCK_FILE = "promptjang.lock"

/** How often a holder refreshes the lock file's modification time. */
export const HEARTBEAT_MS = 10_000

/** A lock written on another host is stale when it has not been refreshed for this long. */
export const STALE_AFTER_MS = 60_000

/** What a lock file says about its holder. */
export interface LockInfo {
  readonly pid: number
  /** `server`, `migrate`, `org create`, `keys create`... */
  readonly role: string
  readonly host: string
  readonly token: string
  readonly startedAt: string
}

const describeHolder = (role: string, pid: number, host: string | undefined): string => {
  const where = host === undefined || host === hostname() ? `pid ${pid}` : `pid ${pid} on host ${host}`
  return role === "server"
    ? `a running PromptJang server (${where})`
    : `a running \`promptjang ${role}\` (${where})`
}

/** The embedded database's directory is locked by another live process. */
export class DatabaseInUse extends Data.TaggedError("DatabaseInUse")<{
  readonly dataDir: string
  readonly pid: number
  readonly role: string
  readonly host: string | undefined
  readonly message: string
}> {
  constructor(props: {
    readonly dataDir: string
    readonly pid: number
    readonly role?: string | undefined
    readonly host?: string | undefined
  }) {
    const role = props.role ?? "server"
    super({
      dataDir: props.dataDir,
      pid: props.pid,
      role,
      host: props.host,
      message: `The embedded database in ${props.dataDir} is in use by ${
        describeHolder(role, props.pid, props.host)
      }. Stop it first, or run this against PostgreSQL (PROMPTJANG_DATABASE_URL), or create organizations through the API with PROMPTJANG_ADMIN_TOKEN.`
    })
  }
}

/** The lock file could not be read or written (permissions, a read-only disk...). */
export class LockFailed extends Data.TaggedError("LockFailed")<{
  readonly dataDir: string
  readonly message: string
  readonly cause: unknown
}> {}

const codeOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined

const removeQuietly = (path: string): void => {
  try {
    unlinkSync(path)
  } catch {
    // already gone
  }
}

/** Tokens of the locks this process holds. */
const held = new Set<string>()

type Read =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Unreadable"; readonly modifiedAt: number }
  | { readonly _tag: "Lock"; readonly info: LockInfo; readonly modifiedAt: number }

const parseInfo = (text: string): LockInfo | undefined => {
  try {
    const value: unknown = JSON.parse(text)
    if (typeof value !== "object" || value === null) return undefined
    const record = value as Record<string, unknown>
    const pid = record["pid"]
    if (typeof pid !== "number" || !Number.isSafeInteger(pid) || pid <= 0) return undefined
    const field = (key: string): string => {
      const value = record[key]
      return typeof value === "string" ? value : ""
    }
    return { pid, role: field("role"), host: field("host"), token: field("token"), startedAt: field("startedAt") }
  } catch {
    return undefined
  }
}

/** Reads a lock file (throws on errors other than a missing file). */
const readLock = (path: string): Read => {
  let text: string
  let modifiedAt: number
  try {
    modifiedAt = statSync(path).mtimeMs
    text = readFileSync(path, "utf8")
  } catch (error) {
    if (codeOf(error) === "ENOENT") return { _tag: "Missing" }
    throw error
  }
  const info = parseInfo(text)
  return info === undefined ? { _tag: "Unreadable", modifiedAt } : { _tag: "Lock", info, modifiedAt }
}

/** Whether the holder of a lock may still be running. */
export const isAlive = (info: LockInfo, modifiedAt: number, now: number = Date.now()): boolean => {
  if (info.host !== "" && info.host !== hostname()) return now - modifiedAt < STALE_AFTER_MS
  if (info.pid === process.pid) return held.has(info.token)
  try {
    process.kill(info.pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return codeOf(error) !== "ESRCH"
  }
}

/** Creates the lock file, atomically; false if one exists. */
const create = (path: string, info: LockInfo): boolean => {
  const content = `${JSON.stringify(info)}\n`
  const aside = `${path}.${info.pid}.${info.token}.tmp`
  writeFileSync(aside, content, { flag: "wx" })
  try {
    linkSync(aside, path)
    return true
  } catch (error) {
    const code = codeOf(error)
    if (code === "EEXIST") return false
    // A file system without hard links: exclusive create (a reader may briefly see it empty).
    if (code === "EPERM" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "ENOSYS") {
      try {
        writeFileSync(path, content, { flag: "wx" })
        return true
      } catch (inner) {
        if (codeOf(inner) === "EEXIST") return false
        throw inner
      }
    }
    throw error
  } finally {
    removeQuietly(aside)
  }
}

type Attempt =
  | { readonly _tag: "Acquired" }
  | { readonly _tag: "InUse"; readonly info: LockInfo }
  | { readonly _tag: "Retry"; readonly wait: boolean }

/** One attempt: create the lock, or judge the existing one and move it aside when stale. */
const attempt = (path: string, mine: LockInfo): Attempt => {
  if (create(path, mine)) return { _tag: "Acquired" }
  const existing = readLock(path)
  if (existing._tag === "Missing") return { _tag: "Retry", wait: false }
  if (existing._tag === "Unreadable") {
    // Being written right now (exclusive-create fallback), or damaged: give a writer a moment.
    return Date.now() - existing.modifiedAt < 5_000 ? { _tag: "Retry", wait: true } : moveAside(path, mine, undefined)
  }
  if (isAlive(existing.info, existing.modifiedAt)) return { _tag: "InUse", info: existing.info }
  return moveAside(path, mine, existing.info)
}

/** Moves a stale lock aside; if what was moved turns out to be a new live lock, puts it back. */
const moveAside = (path: string, mine: LockInfo, stale: LockInfo | undefined): Attempt => {
  const aside = `${path}.${mine.pid}.${mine.token}.stale`
  try {
    renameSync(path, aside)
  } catch (error) {
    if (codeOf(error) === "ENOENT") return { _tag: "Retry", wait: false }
    throw error
  }
  const moved = readLock(aside)
  const same = moved._tag === "Lock" ? moved.info.token === stale?.token : stale === undefined
  if (!same && moved._tag === "Lock") {
    // Another process took the stale lock over between our read and our rename: give it back.
    try {
      linkSync(aside, path)
    } catch {
      // yet another lock is in place: either way, the directory is in use
    }
    removeQuietly(aside)
    return { _tag: "InUse", info: moved.info }
  }
  removeQuietly(aside)
  return { _tag: "Retry", wait: false }
}

/** Removes the lock file if it is still this holder's. */
const release = (path: string, mine: LockInfo): void => {
  held.delete(mine.token)
  try {
    const current = readLock(path)
    if (current._tag === "Lock" && current.info.token === mine.token) unlinkSync(path)
  } catch {
    // nothing left to release
  }
}

/**
 * Locks `dataDir` (created if missing) for the scope; `role` names the holder
 * in the message another process gets (`server`, `migrate`, `org create`...).
 */
export const acquire = (
  dataDir: string,
  role: string
): Effect.Effect<LockInfo, DatabaseInUse | LockFailed, Scope.Scope> => {
  const path = join(dataDir, LOCK_FILE)
  const failed = (cause: unknown) =>
    new LockFailed({
      dataDir,
      cause,
      message: `Could not lock the embedded database in ${dataDir} (${resolve(path)}): ${
        cause instanceof Error ? cause.message : String(cause)
      }`
    })
  const lock = Effect.gen(function*() {
    const mine: LockInfo = {
      pid: process.pid,
      role,
      host: hostname(),
      token: randomUUID(),
      startedAt: new Date().toISOString()
    }
    yield* Effect.try({ try: () => mkdirSync(dataDir, { recursive: true }), catch: failed })
    for (let i = 0; i < 50; i++) {
      const result = yield* Effect.try({ try: () => attempt(path, mine), catch: failed })
      if (result._tag === "Acquired") {
        held.add(mine.token)
        return mine
      }
      if (result._tag === "InUse") {
        return yield* new DatabaseInUse({
          dataDir,
          pid: result.info.pid,
          role: result.info.role,
          host: result.info.host === "" ? undefined : result.info.host
        })
      }
      if (result.wait) yield* Effect.sleep(100)
    }
    return yield* failed(new Error("the lock file keeps changing; another process is starting on it"))
  })
  return Effect.acquireRelease(lock, (mine) => Effect.sync(() => release(path, mine))).pipe(
    Effect.tap(() =>
      // The heartbeat that keeps the lock fresh for processes on other hosts.
      Effect.try(() => {
        const now = new Date()
        utimesSync(path, now, now)
      }).pipe(
        Effect.ignore,
        Effect.repeat(Schedule.spaced(HEARTBEAT_MS)),
        Effect.delay(HEARTBEAT_MS),
        Effect.forkScoped
      )
    )
  )
}

/** The lock as a layer: held while the layer lives. */
export const layer = (dataDir: string, role: string): Layer.Layer<never, DatabaseInUse | LockFailed> =>
  Layer.effectDiscard(acquire(dataDir, role))

/** The lock for a configuration: the embedded database's directory, nothing on PostgreSQL. */
export const layerFor = (
  config: { readonly databaseUrl: string | undefined; readonly dataDir: string },
  role: string
): Layer.Layer<never, DatabaseInUse | LockFailed> =>
  config.databaseUrl === undefined ? layer(config.dataDir, role) : Layer.empty
