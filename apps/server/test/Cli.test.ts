/**
 * The `promptjang` command as a user runs it: a subprocess per command, on a temporary embedded data
 * directory (and on a fresh PostgreSQL database when PROMPTJANG_TEST_DATABASE_URL is set).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Database } from "@promptjang/storage-pg"
import { Effect, Exit, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"

const cliPath = fileURLToPath(new URL("../src/cli.ts", import.meta.url))
const root = mkdtempSync(join(tmpdir(), "promptjang-cli-"))
const children: Array<ChildProcess> = []
const postgresUrl: string | undefined = process.env["PROMPTJANG_TEST_DATABASE_URL"] || undefined

afterAll(() => {
  for (const child of children) if (child.pid !== undefined && child.exitCode === null) child.kill("SIGKILL")
  rmSync(root, { recursive: true, force: true })
})

/** The environment without this machine's PromptJang settings. */
const baseEnv = (): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || name.startsWith("PROMPTJANG_") || name.startsWith("LOG_")) continue
    if (name === "PORT" || name === "HOST") continue
    env[name] = value
  }
  return env
}

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const spawnCli = (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const child = spawn(process.execPath, [cliPath, ...args], {
    env: { ...baseEnv(), ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.push(child)
  return child
}

/** Runs the CLI to its end. */
const cli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<Run>((resolve, reject) => {
    const child = spawnCli(args, env)
    let stdout = ""
    let stderr = ""
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`promptjang ${args.join(" ")} did not finish: ${stderr}`))
    }, 60_000)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

interface Served {
  readonly child: ChildProcess
  readonly host: string
  readonly exited: Promise<number | null>
  readonly stderr: () => string
}

/** Starts `promptjang serve` and waits until it answers /readyz. */
const serve = async (env: Record<string, string>): Promise<Served> => {
  const port = await freePort()
  const child = spawnCli(["serve"], { ...env, PORT: String(port), HOST: "127.0.0.1", PROMPTJANG_BOOTSTRAP: "false" })
  let stderr = ""
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start: ${stderr}`)), 60_000)
    if (child.stdout === null) return reject(new Error("no stdout"))
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line.includes("listening on")) {
        clearTimeout(timer)
        resolve()
      }
    })
    void exited.then((code) => reject(new Error(`the server exited (${code}): ${stderr}`)))
  })
  const host = `http://127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) {
    if (await fetch(`${host}/readyz`).then((r) => r.ok, () => false)) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return { child, host, exited, stderr: () => stderr }
}

const stop = async (served: Served, signal: NodeJS.Signals = "SIGTERM") => {
  served.child.kill(signal)
  return served.exited
}

const statusWithKey = async (host: string, key: string) =>
  (await fetch(`${host}/api/v1/usage`, { headers: { authorization: `Bearer ${key}` } })).status

const parseOne = (stdout: string): Record<string, unknown> => {
  const lines = stdout.trim().split("\n")
  assert.strictEqual(lines.length, 1, `one line of JSON on stdout, got: ${stdout}`)
  return JSON.parse(lines[0] ?? "") as Record<string, unknown>
}

const IN_USE =
  /The embedded database in .* is in use by a running PromptJang server \(pid (\d+)\)\. Stop it first, or run this against PostgreSQL \(PROMPTJANG_DATABASE_URL\), or create organizations through the API with PROMPTJANG_ADMIN_TOKEN\./

let dirs = 0
const embedded = () => {
  const dataDir = join(root, `data-${++dirs}`)
  return { dataDir, env: { PROMPTJANG_DATA_DIR: dataDir } }
}

describe("promptjang --help", () => {
  const cases: ReadonlyArray<readonly [ReadonlyArray<string>, ReadonlyArray<string>]> = [
    [["--help"], ["serve", "migrate", "org create", "keys create", "--name", "--org", "--json"]],
    [["help"], ["serve", "migrate", "org create", "keys create"]],
    [["serve", "--help"], ["promptjang serve", "PROMPTJANG_ROLE"]],
    [["migrate", "--help"], ["promptjang migrate"]],
    [["org", "--help"], ["promptjang org create"]],
    [["org", "create", "--help"], ["--name N", "--plan", "starter", "pro", "--json", "shown"]],
    [["keys", "--help"], ["promptjang keys create"]],
    [["keys", "create", "--help"], ["--org ORG_ID", "--json", "shown"]],
    [["help", "org", "create"], ["--name N"]]
  ]
  for (const [args, expected] of cases) {
    it(`promptjang ${args.join(" ")} exits 0 and names ${expected.join(", ")}`, async () => {
      // A bad configuration does not get in the way of the help.
      const run = await cli(args, { PORT: "not-a-port" })
      assert.strictEqual(run.code, 0, run.stderr)
      for (const text of expected) assert.include(run.stdout, text)
      assert.strictEqual(run.stderr, "")
    })
  }
})

describe("promptjang usage errors (exit 2)", () => {
  const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
    [["org", "create"], "missing --name"],
    [["org", "create", "--json"], "missing --name"],
    [["org", "create", "--name"], "--name needs a value"],
    [["org", "create", "--name", "Acme", "--color", "red"], "unknown option --color"],
    [["org", "create", "--name", "Acme", "--plan", "gold"], "unknown plan \"gold\""],
    [["org", "create", "--name", "Acme", "extra"], "unexpected argument \"extra\""],
    [["org", "delete"], "unknown command \"delete\""],
    [["org"], "missing command"],
    [["keys", "create"], "missing --org"],
    [["keys", "create", "--org"], "--org needs a value"],
    [["keys", "create", "--org", "org_x", "--json=yes"], "--json takes no value"],
    [["serve", "--port", "80"], "unexpected argument \"--port\""],
    [["frobnicate"], "unknown command \"frobnicate\""]
  ]
  for (const [args, message] of cases) {
    it(`promptjang ${args.join(" ")}: ${message}`, async () => {
      const { dataDir, env } = embedded()
      const run = await cli(args, env)
      assert.strictEqual(run.code, 2)
      assert.include(run.stderr, message)
      assert.include(run.stderr, "--help")
      assert.strictEqual(run.stdout, "")
      assert.isFalse(existsSync(dataDir), "a usage error opens no database")
    })
  }

  it("a bad configuration prints the variable's message and exits 2", async () => {
    const { env } = embedded()
    const run = await cli(["org", "create", "--name", "Acme"], {
      ...env,
      PROMPTJANG_DATABASE_URL: "mysql://nope",
      PROMPTJANG_ROLE: "everything"
    })
    assert.strictEqual(run.code, 2)
    assert.include(run.stderr, "PROMPTJANG_DATABASE_URL must be a postgres:// URL")
    assert.include(run.stderr, "PROMPTJANG_ROLE=\"everything\"")
  })
})

describe("promptjang serve on a port that is taken", () => {
  it(
    "exits 1 naming the address and PORT, without a stack trace; the first start after it still shows the key",
    async () => {
      const { env } = embedded()
      const taken = createServer()
      const port = await new Promise<number>((resolve) =>
        taken.listen(0, "127.0.0.1", () => {
          const address = taken.address()
          resolve(typeof address === "object" && address !== null ? address.port : 0)
        })
      )
      try {
        const run = await cli(["serve"], { ...env, PORT: String(port), HOST: "127.0.0.1" })
        assert.strictEqual(run.code, 1)
        assert.include(
          run.stderr,
          `promptjang serve: Cannot listen on 127.0.0.1:${port}: the address is already in use`
        )
        assert.include(run.stderr, "set PORT to a free port")
        assert.notInclude(run.stderr, "    at ")
        assert.notInclude(run.stdout, "API key")
      } finally {
        await new Promise((resolve) => taken.close(resolve))
      }
      // Nothing was created that the user never saw: the next start creates the organization and shows its key.
      const next = spawnCli(["serve"], { ...env, PORT: String(await freePort()), HOST: "127.0.0.1" })
      const exited = new Promise<number | null>((resolve) => next.on("close", (code) => resolve(code)))
      const shown = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the server did not start")), 60_000)
        const lines: Array<string> = []
        if (next.stdout === null) return reject(new Error("no stdout"))
        createInterface({ input: next.stdout }).on("line", (line) => {
          lines.push(line)
          if (line.includes("listening on")) {
            clearTimeout(timer)
            resolve(lines.join("\n"))
          }
        })
      })
      next.kill("SIGTERM")
      assert.strictEqual(await exited, 0)
      assert.match(shown, /API key: +pj_live_[0-9A-Za-z]{32}/)
    },
    120_000
  )
})

describe("promptjang org create and keys create on the embedded database", () => {
  const { dataDir, env } = embedded()
  const lockFile = join(dataDir, "promptjang.lock")
  let org: Record<string, unknown> = {}
  let key: Record<string, unknown> = {}
  let humanKey = ""

  it("org create --json prints one object with the organization and a pj_live_ key", async () => {
    const run = await cli(["org", "create", "--name", "Acme Inc", "--json"], env)
    assert.strictEqual(run.code, 0, run.stderr)
    org = parseOne(run.stdout)
    assert.deepStrictEqual(Object.keys(org), ["id", "name", "plan", "api_key"])
    assert.match(String(org["id"]), /^org_[0-9a-z]{30}$/)
    assert.strictEqual(org["name"], "Acme Inc")
    assert.strictEqual(org["plan"], "starter")
    assert.match(String(org["api_key"]), /^pj_live_[0-9A-Za-z]{32}$/)
    assert.isFalse(existsSync(lockFile), "the lock is released when the command ends")
  }, 60_000)

  it("org create --plan pro prints the organization and its key for a person, with the shown-once note", async () => {
    const run = await cli(["org", "create", "--name=Big Co", "--plan", "pro"], env)
    assert.strictEqual(run.code, 0, run.stderr)
    assert.match(run.stdout, /id: +org_[0-9a-z]{30}/)
    assert.match(run.stdout, /name: +Big Co/)
    assert.match(run.stdout, /plan: +pro/)
    assert.match(run.stdout, /API key: +pj_live_[0-9A-Za-z]{32}/)
    assert.include(run.stdout, "shown this once")
  }, 60_000)

  it("keys create --org --json prints one object with the new key", async () => {
    const run = await cli(["keys", "create", "--org", String(org["id"]), "--json"], env)
    assert.strictEqual(run.code, 0, run.stderr)
    key = parseOne(run.stdout)
    assert.deepStrictEqual(Object.keys(key), ["id", "name", "key", "prefix", "created_at"])
    assert.match(String(key["id"]), /^key_/)
    assert.match(String(key["key"]), /^pj_live_[0-9A-Za-z]{32}$/)
    assert.strictEqual(key["prefix"], String(key["key"]).slice(0, 12))
    assert.isFalse(Number.isNaN(Date.parse(String(key["created_at"]))))
    assert.notStrictEqual(key["key"], org["api_key"])

    const human = await cli(["keys", "create", "--org", String(org["id"]), "--name", "CI"], env)
    assert.strictEqual(human.code, 0, human.stderr)
    assert.match(human.stdout, /name: +CI/)
    assert.include(human.stdout, "shown this once")
    humanKey = /API key: +(pj_live_\w+)/.exec(human.stdout)?.[1] ?? ""
    assert.match(humanKey, /^pj_live_/)
  }, 60_000)

  it("keys create for an unknown organization exits 1 and says so", async () => {
    for (const id of ["org_0000000000aaaaaaaaaaaaaaaaaaaa", "nope"]) {
      const run = await cli(["keys", "create", "--org", id, "--json"], env)
      assert.strictEqual(run.code, 1)
      assert.include(run.stderr, `No organization ${id}`)
      assert.strictEqual(run.stdout, "")
    }
  }, 60_000)

  it(
    "with a server running on the directory: the keys authenticate, the CLI refuses, and a second server too",
    async () => {
      const server = await serve(env)
      try {
        for (const k of [org["api_key"], key["key"], humanKey]) {
          assert.strictEqual(
            await statusWithKey(server.host, String(k)),
            200
          )
        }
        assert.strictEqual(await statusWithKey(server.host, "pj_live_00000000000000000000000000000000"), 401)
        const info = JSON.parse(readFileSync(lockFile, "utf8")) as Record<string, unknown>
        assert.strictEqual(info["pid"], server.child.pid)
        assert.strictEqual(info["role"], "server")

        for (
          const args of [
            ["org", "create", "--name", "Intruder", "--json"],
            ["keys", "create", "--org", String(org["id"])],
            ["migrate"]
          ]
        ) {
          const run = await cli(args, env)
          assert.strictEqual(run.code, 1, `${args.join(" ")}: ${run.stderr}`)
          assert.match(run.stderr, IN_USE)
          assert.strictEqual(IN_USE.exec(run.stderr)?.[1], String(server.child.pid))
          assert.strictEqual(run.stdout, "")
        }

        const second = await cli(["serve"], { ...env, PORT: String(await freePort()), HOST: "127.0.0.1" })
        assert.strictEqual(second.code, 1)
        assert.match(second.stderr, IN_USE)
        assert.notInclude(second.stderr, "    at ", "a message, not a stack trace")
        assert.notInclude(second.stdout, "listening on")

        // The server kept its lock and its data.
        assert.strictEqual((await fetch(`${server.host}/healthz`)).status, 200)
        assert.strictEqual(await statusWithKey(server.host, String(org["api_key"])), 200)
        assert.strictEqual(
          (JSON.parse(readFileSync(lockFile, "utf8")) as Record<string, unknown>)["pid"],
          server.child.pid
        )
      } finally {
        assert.strictEqual(await stop(server), 0, server.stderr())
      }
      assert.isFalse(existsSync(lockFile), "SIGTERM releases the lock")
      const after = await cli(["org", "create", "--name", "After", "--json"], env)
      assert.strictEqual(after.code, 0, after.stderr)
      assert.strictEqual(parseOne(after.stdout)["name"], "After")
    },
    120_000
  )

  it("takes over the lock of a server killed with SIGKILL, and a stale lock file with a dead pid", async () => {
    const server = await serve(env)
    await stop(server, "SIGKILL")
    assert.isTrue(existsSync(lockFile), "a killed server leaves its lock behind")
    const run = await cli(["keys", "create", "--org", String(org["id"]), "--json"], env)
    assert.strictEqual(run.code, 0, run.stderr)
    assert.isFalse(existsSync(lockFile))

    const dead = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" })
      child.on("exit", () => resolve(child.pid ?? 0))
    })
    mkdirSync(dataDir, { recursive: true })
    writeFileSync(lockFile, JSON.stringify({ pid: dead, role: "server" }))
    const again = await serve(env)
    try {
      assert.strictEqual(await statusWithKey(again.host, String(key["key"])), 200)
    } finally {
      assert.strictEqual(await stop(again), 0, again.stderr())
    }
    assert.isFalse(existsSync(lockFile))
  }, 120_000)
})

/** A fresh database on the test server for the scope, dropped afterwards. */
const freshDatabase = (url: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const name = `promptjang_cli_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`CREATE DATABASE ${name}`)
      const parsed = new URL(url)
      parsed.pathname = `/${name}`
      return { name, url: parsed.toString() }
    }).pipe(Effect.provide(Database.layerPostgres(url, { maxConnections: 1 }))),
    ({ name }) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      }).pipe(Effect.provide(Database.layerPostgres(url, { maxConnections: 1 })), Effect.orDie)
  )

if (postgresUrl === undefined) {
  describe("promptjang org create and keys create on PostgreSQL", () => {
    // oxlint-disable-next-line vitest/expect-expect -- a report that the suite did not run, not a check
    it("is not run: set PROMPTJANG_TEST_DATABASE_URL to a PostgreSQL database to run it", () => {
      console.warn("PostgreSQL CLI tests not run: PROMPTJANG_TEST_DATABASE_URL is not set")
    })
  })
} else {
  describe("promptjang org create and keys create on PostgreSQL", () => {
    const pgUrl = postgresUrl
    it("migrates, creates an organization and a key next to a running server, with no lock", async () => {
      const scope = await Effect.runPromise(Scope.make())
      try {
        const db = await Effect.runPromise(freshDatabase(pgUrl).pipe(Scope.provide(scope)))
        const dataDir = join(root, "unused-by-postgres")
        const env = { PROMPTJANG_DATABASE_URL: db.url, PROMPTJANG_DATA_DIR: dataDir }
        const migrated = await cli(["migrate"], env)
        assert.strictEqual(migrated.code, 0, migrated.stderr)
        assert.include(migrated.stdout, "Migrations applied (PostgreSQL at")

        const server = await serve(env)
        try {
          // No lock on PostgreSQL: the CLI runs next to the server.
          const created = await cli(["org", "create", "--name", "Pg Org", "--plan", "pro", "--json"], env)
          assert.strictEqual(created.code, 0, created.stderr)
          const org = parseOne(created.stdout)
          assert.strictEqual(org["plan"], "pro")
          const keyRun = await cli(["keys", "create", "--org", String(org["id"]), "--json"], env)
          assert.strictEqual(keyRun.code, 0, keyRun.stderr)
          const key = parseOne(keyRun.stdout)
          assert.strictEqual(await statusWithKey(server.host, String(org["api_key"])), 200)
          assert.strictEqual(await statusWithKey(server.host, String(key["key"])), 200)
          const unknown = await cli(["keys", "create", "--org", "org_0000000000aaaaaaaaaaaaaaaaaaaa"], env)
          assert.strictEqual(unknown.code, 1)
          assert.include(unknown.stderr, "No organization org_0000000000aaaaaaaaaaaaaaaaaaaa")
          assert.isFalse(existsSync(dataDir), "nothing is written to the embedded data directory")
        } finally {
          assert.strictEqual(await stop(server), 0, server.stderr())
        }
      } finally {
        await Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }, 120_000)
  })
}
