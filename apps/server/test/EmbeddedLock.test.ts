import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import * as EmbeddedLock from "../src/EmbeddedLock.ts"

const root = mkdtempSync(join(tmpdir(), "promptjang-lock-"))
const children: Array<ChildProcess> = []
let dirs = 0

afterAll(() => {
  for (const child of children) if (child.pid !== undefined && child.exitCode === null) child.kill("SIGKILL")
  rmSync(root, { recursive: true, force: true })
})

const freshDir = () => join(root, `data-${++dirs}`)
const lockPath = (dir: string) => join(dir, EmbeddedLock.LOCK_FILE)
const readInfo = (dir: string) => JSON.parse(readFileSync(lockPath(dir), "utf8")) as Record<string, unknown>

const writeLock = (dir: string, info: Record<string, unknown>) => {
  mkdirSync(dir, { recursive: true })
  writeFileSync(lockPath(dir), JSON.stringify(info))
}

/** The pid of a process that has exited. */
const deadPid = () =>
  new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" })
    child.on("exit", () => (child.pid === undefined ? reject(new Error("no pid")) : resolve(child.pid)))
  })

/** A live process that is not this one. */
const livePid = () => {
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" })
  children.push(child)
  if (child.pid === undefined) throw new Error("no pid")
  return child.pid
}

/** Acquires in a scope of its own and gives back the exit, the lock file's content while held, and the scope. */
const acquireIn = (dir: string, role = "server") =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const exit = yield* EmbeddedLock.acquire(dir, role).pipe(Scope.provide(scope), Effect.exit)
    return { exit, scope }
  })

describe("EmbeddedLock", () => {
  it.live("creates the lock file with the pid and role, and removes it when the scope closes", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const { exit, scope } = yield* acquireIn(dir, "org create")
      assert.isTrue(Exit.isSuccess(exit))
      const info = readInfo(dir)
      assert.strictEqual(info["pid"], process.pid)
      assert.strictEqual(info["role"], "org create")
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(existsSync(lockPath(dir)))
      // Nothing left behind but the directory.
      assert.deepStrictEqual(readdirSync(dir), [])
    }))

  it.live("refuses a second holder with DatabaseInUse naming the directory and the pid", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const first = yield* acquireIn(dir)
      const second = yield* acquireIn(dir, "org create")
      assert.isTrue(Exit.isFailure(second.exit))
      if (Exit.isSuccess(second.exit)) return
      const error = yield* Effect.flip(second.exit)
      assert.strictEqual(error._tag, "DatabaseInUse")
      if (error._tag !== "DatabaseInUse") return
      assert.strictEqual(error.dataDir, dir)
      assert.strictEqual(error.pid, process.pid)
      assert.strictEqual(
        error.message,
        `The embedded database in ${dir} is in use by a running PromptJang server (pid ${process.pid}). Stop it first, or run this against PostgreSQL (PROMPTJANG_DATABASE_URL), or create organizations through the API with PROMPTJANG_ADMIN_TOKEN.`
      )
      // The refused attempt left the holder's lock alone.
      assert.strictEqual(readInfo(dir)["role"], "server")
      yield* Scope.close(first.scope, Exit.void)
      assert.isFalse(existsSync(lockPath(dir)))
    }))

  it.live("refuses while another live process holds the lock, naming its command", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const pid = livePid()
      writeLock(dir, { pid, role: "keys create", host: "", token: "other" })
      const { exit } = yield* acquireIn(dir)
      const error = yield* Effect.flip(exit)
      assert.strictEqual(error._tag, "DatabaseInUse")
      assert.include(error.message, `in use by a running \`promptjang keys create\` (pid ${pid})`)
      assert.strictEqual(readInfo(dir)["token"], "other")
    }))

  it.live("takes over a stale lock whose process is gone", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const pid = yield* Effect.promise(deadPid)
      writeLock(dir, { pid, role: "server", host: "", token: "dead" })
      const { exit, scope } = yield* acquireIn(dir)
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(readInfo(dir)["pid"], process.pid)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(readdirSync(dir), [])
    }))

  it.live("takes over a lock with this process's pid that this process does not hold (a restarted container)", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      writeLock(dir, { pid: process.pid, role: "server", host: "", token: "previous-life" })
      const { exit, scope } = yield* acquireIn(dir)
      assert.isTrue(Exit.isSuccess(exit))
      assert.notStrictEqual(readInfo(dir)["token"], "previous-life")
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("takes over a damaged lock file once it is old, and an old lock written on another host", () =>
    Effect.gen(function*() {
      const old = new Date(Date.now() - 2 * EmbeddedLock.STALE_AFTER_MS)
      const damaged = freshDir()
      mkdirSync(damaged, { recursive: true })
      writeFileSync(lockPath(damaged), "{not json")
      utimesSync(lockPath(damaged), old, old)
      const a = yield* acquireIn(damaged)
      assert.isTrue(Exit.isSuccess(a.exit))
      yield* Scope.close(a.scope, Exit.void)

      const foreign = freshDir()
      writeLock(foreign, { pid: process.pid + 1, role: "server", host: "another-host", token: "far" })
      const fresh = yield* acquireIn(foreign)
      const error = yield* Effect.flip(fresh.exit)
      assert.include(error.message, "on host another-host")
      utimesSync(lockPath(foreign), old, old)
      const b = yield* acquireIn(foreign)
      assert.isTrue(Exit.isSuccess(b.exit))
      yield* Scope.close(b.scope, Exit.void)
    }))

  it.live("on release, leaves a lock file that is no longer this holder's", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const { scope } = yield* acquireIn(dir)
      writeLock(dir, { pid: process.pid, role: "server", host: "", token: "someone-else" })
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(readInfo(dir)["token"], "someone-else")
    }))

  it.live("locks nothing on PostgreSQL", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      yield* Layer.build(EmbeddedLock.layerFor({ databaseUrl: "postgres://db/x", dataDir: dir }, "server")).pipe(
        Effect.scoped
      )
      assert.isFalse(existsSync(dir))
      yield* Layer.build(EmbeddedLock.layerFor({ databaseUrl: undefined, dataDir: dir }, "server")).pipe(
        Effect.andThen(Effect.sync(() => assert.isTrue(existsSync(lockPath(dir))))),
        Effect.scoped
      )
      assert.isFalse(existsSync(lockPath(dir)))
    }))

  it("lets exactly one of several processes racing for a stale lock take it over", async () => {
    const dir = freshDir()
    writeLock(dir, { pid: await deadPid(), role: "server", host: "", token: "dead" })
    const module = fileURLToPath(new URL("../src/EmbeddedLock.ts", import.meta.url))
    // Each process says whether it got the lock; the winner holds it until its stdin closes.
    const script = `
      import { Cause, Effect } from "effect"
      import * as EmbeddedLock from ${JSON.stringify(module)}
      const exit = await Effect.runPromiseExit(
        EmbeddedLock.acquire(${JSON.stringify(dir)}, "race").pipe(
          Effect.tap(() => Effect.sync(() => console.log("acquired"))),
          Effect.andThen(Effect.callback((resume) => {
            process.stdin.on("end", () => resume(Effect.void))
            process.stdin.resume()
          })),
          Effect.scoped
        )
      )
      const error = exit._tag === "Failure" ? Cause.squash(exit.cause) : undefined
      if (exit._tag === "Failure") console.log(error?._tag === "DatabaseInUse" ? "in use" : "error " + error)
    `
    const racers = Array.from({ length: 6 }, () => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
        cwd: fileURLToPath(new URL("..", import.meta.url)),
        stdio: ["pipe", "pipe", "inherit"]
      })
      children.push(child)
      const closed = new Promise<void>((resolve) => child.on("close", () => resolve()))
      const outcome = new Promise<string>((resolve) => {
        createInterface({ input: child.stdout }).once("line", resolve)
        void closed.then(() => resolve("exited without a word"))
      })
      return { child, closed, outcome }
    })
    const outcomes = await Promise.all(racers.map((racer) => racer.outcome))
    assert.deepStrictEqual(outcomes.toSorted(), ["acquired", "in use", "in use", "in use", "in use", "in use"])
    for (const racer of racers) racer.child.stdin.end()
    await Promise.all(racers.map((racer) => racer.closed))
    assert.deepStrictEqual(readdirSync(dir), [])
  }, 30_000)
})
