/**
 * Ingest over HTTP (issue: server). Prints, measured in one run with the same load generator (64 connections,
 * signed 1 KiB JSON events, 10 s each after 2 s of warm-up that is not counted): wrk (Debian's package `wrk`)
 * when it is installed, as it takes far less CPU from the servers it measures; autocannon otherwise
 * (BENCH_LOADGEN=autocannon forces it).
 *
 * - a bare `node:http` server answering 202 (the ceiling of Node's HTTP stack on this machine);
 * - a hand-rolled fastify server doing one INSERT per request with `pg` (what a team writes by hand);
 * - the PromptJang server (`promptjang serve`, API role) on PostgreSQL, durable 202s.
 *
 * Run: `npm run bench:http` (needs PostgreSQL: PROMPTJANG_BENCH_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/postgres). Creates and drops its own databases; stops by itself.
 * Each line also shows the server process's CPU time per request (the bare and fastify servers run in this
 * process, so not with autocannon) and, for the two that store events, PostgreSQL's (see cpu.ts).
 * BENCH_CPU_PROF=<dir> writes a CPU profile of the PromptJang server there. BENCH_ROUNDS=<n> measures fastify
 * and PromptJang n times in turn and ends with each round's ratio and their median (the lower of the two middle
 * ones for an even n): on a machine whose speed drifts, a ratio of neighbouring runs is the steadier figure. It
 * also prints, by round, the CPU an event cost fastify (its server and PostgreSQL) divided by what it cost PromptJang.
 */
import autocannon from "autocannon"
import Fastify from "fastify"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { createHmac } from "node:crypto"
import { once } from "node:events"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { Client, Pool } from "pg"
import { type CpuClock, currentProcessClock, postgresSince, processClock, since } from "./cpu.ts"
import { median } from "./stats.ts"

const SERVER = process.env["PROMPTJANG_BENCH_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"
const DURATION = Number(process.env["BENCH_SECONDS"] ?? 10)
const WARMUP_SECONDS = Number(process.env["BENCH_WARMUP_SECONDS"] ?? 2)
const CONNECTIONS = 64
/** How many times fastify and PromptJang are measured, in turn (BENCH_ROUNDS; the bare server once). */
const ROUNDS = Math.max(1, Number(process.env["BENCH_ROUNDS"] ?? 1))
const root = join(import.meta.dirname, "..")

const withDatabase = (url: string, database: string) => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}
const admin = async (statement: string) => {
  const client = new Client({ connectionString: SERVER })
  await client.connect()
  await client.query(statement)
  await client.end()
}

const payload = (() => {
  const base = { event: "order.created", data: { order_id: "ORD-001", note: "" } }
  base.data.note = "x".repeat(1024 - JSON.stringify(base).length)
  return JSON.stringify(base)
})()

interface Result {
  readonly perSecond: number
  readonly p99: number
  readonly errors: number
  readonly non2xx: number
  /** Seconds of the server process's CPU per request over the counted run. */
  readonly cpuPerRequest?: number | undefined
  /** Seconds of PostgreSQL's CPU per request over the same run (for the servers that use it). */
  readonly postgresCpuPerRequest?: number | undefined
}

const autocannonLoad = async (url: string, headers: Record<string, string>, seconds: number): Promise<Result> => {
  const result = await autocannon({
    url,
    method: "POST",
    connections: CONNECTIONS,
    duration: seconds,
    headers: { "content-type": "application/json", ...headers },
    body: payload
  })
  return {
    perSecond: result.requests.average,
    p99: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx
  }
}

const run = (file: string, args: ReadonlyArray<string>) =>
  new Promise<string>((resolve, reject) =>
    execFile(file, args, { maxBuffer: 1 << 20 }, (error, stdout) => (error ? reject(error) : resolve(stdout)))
  )

/** wrk, one thread (it needs far less than a core for this load), with a script that sets method, headers and body. */
const wrkLoad = async (url: string, headers: Record<string, string>, seconds: number): Promise<Result> => {
  const dir = await mkdtemp(join(tmpdir(), "pj-wrk-"))
  try {
    const script = join(dir, "post.lua")
    const all = { "content-type": "application/json", ...headers }
    await writeFile(
      script,
      [
        `wrk.method = "POST"`,
        `wrk.body = ${JSON.stringify(payload)}`,
        ...Object.entries(all).map(([name, value]) => `wrk.headers[${JSON.stringify(name)}] = ${JSON.stringify(value)}`)
      ].join("\n")
    )
    const out = await run("wrk", ["-t1", `-c${CONNECTIONS}`, `-d${seconds}s`, "--latency", "-s", script, url])
    const number = (pattern: RegExp) => Number(pattern.exec(out)?.[1] ?? 0)
    const p99 = /^\s*99%\s+([\d.]+)(us|ms|s)\s*$/m.exec(out)
    const scale = p99?.[2] === "us" ? 0.001 : p99?.[2] === "s" ? 1000 : 1
    const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
    return {
      perSecond: number(/Requests\/sec:\s+([\d.]+)/),
      p99: Math.round(Number(p99?.[1] ?? Number.NaN) * scale * 10) / 10,
      errors: socket === null ? 0 : socket.slice(1).reduce((sum, n) => sum + Number(n), 0),
      non2xx: number(/Non-2xx or 3xx responses:\s+(\d+)/)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const hasWrk = process.env["BENCH_LOADGEN"] !== "autocannon" &&
  (await run("wrk", ["--version"]).then(() => true, (error: { code?: unknown }) => error.code !== "ENOENT"))
const measure = hasWrk ? wrkLoad : autocannonLoad

/** The servers in this process. Under autocannon, which runs here too, their CPU cannot be told apart. */
const thisProcess: CpuClock = () => (hasWrk ? currentProcessClock() : undefined)

/**
 * Each server first gets WARMUP_SECONDS of the same load, not counted (JIT, caches, pools). The server's own CPU
 * time over the counted run, per request, is steadier than the rate on a machine whose speed drifts: it says
 * what a request costs the server process. PostgreSQL's CPU per request is measured over the same run.
 */
const load = async (
  url: string,
  headers: Record<string, string>,
  cpu: CpuClock,
  usesPostgres = true
): Promise<Result> => {
  if (WARMUP_SECONDS > 0) await measure(url, headers, WARMUP_SECONDS)
  const server = since(cpu)
  const postgres = usesPostgres ? postgresSince() : () => undefined
  const result = await measure(url, headers, DURATION)
  const serverSeconds = server()
  const postgresSeconds = postgres()
  const requests = result.perSecond * DURATION
  const perRequest = (seconds: number | undefined) =>
    seconds === undefined || requests === 0 ? undefined : seconds / requests
  return { ...result, cpuPerRequest: perRequest(serverSeconds), postgresCpuPerRequest: perRequest(postgresSeconds) }
}

/** The server's and PostgreSQL's CPU seconds per request, when both are known. */
const totalCpu = (r: Result) =>
  r.cpuPerRequest === undefined || r.postgresCpuPerRequest === undefined
    ? undefined
    : r.cpuPerRequest + r.postgresCpuPerRequest

/** Seconds as microseconds, in a fixed width. */
const micros = (seconds: number | undefined) =>
  seconds === undefined ? "     n/a" : `${(seconds * 1e6).toFixed(1).padStart(5)} us`

const line = (name: string, r: Result, extra = "") =>
  console.log(
    `${name.padEnd(52)} ${Math.round(r.perSecond).toLocaleString("en-US").padStart(8)} req/s  p99 ${
      String(r.p99).padStart(4)
    } ms  ${micros(r.cpuPerRequest)} CPU/req${
      r.postgresCpuPerRequest === undefined ? "" : ` (+${micros(r.postgresCpuPerRequest).trim()} PostgreSQL)`
    }${r.errors + r.non2xx > 0 ? `  (${r.errors} errors, ${r.non2xx} non-2xx)` : ""}${extra}`
  )

const firstLineMatching = (child: ChildProcess, pattern: RegExp) =>
  new Promise<string>((resolve, reject) => {
    if (child.stdout === null) return reject(new Error("no stdout"))
    createInterface({ input: child.stdout }).on("line", (text) => {
      if (pattern.test(text)) resolve(text)
    })
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)))
  })

const main = async () => {
  const suffix = String(process.pid)
  const fastifyDb = `promptjang_bench_fastify_${suffix}`
  const serverDb = `promptjang_bench_http_${suffix}`
  const children: Array<ChildProcess> = []
  try {
    console.log(
      `PromptJang HTTP ingest benchmark, ${new Date().toISOString()}, Node ${process.version}, ${
        hasWrk ? "wrk" : "autocannon"
      }, ${CONNECTIONS} connections, ${DURATION}s each after ${WARMUP_SECONDS}s of warm-up`
    )

    // 1. Bare node:http answering 202.
    const bare = createServer((request, response) => {
      request.resume()
      request.on(
        "end",
        () => response.writeHead(202, { "content-type": "application/json" }).end(`{"status":"QUEUED"}`)
      )
    })
    bare.listen(0, "127.0.0.1")
    await once(bare, "listening")
    line(
      "bare node:http answering 202",
      await load(`http://127.0.0.1:${(bare.address() as AddressInfo).port}/e/x`, {}, thisProcess, false)
    )
    bare.close()

    // 2. Hand-rolled fastify + pg, one INSERT per request (autocommit).
    await admin(`CREATE DATABASE ${fastifyDb}`)
    const pool = new Pool({ connectionString: withDatabase(SERVER, fastifyDb), max: 16 })
    await pool.query(
      "CREATE TABLE events (id bigserial PRIMARY KEY, endpoint_id text NOT NULL, body bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
    )
    const fastify = Fastify()
    fastify.addContentTypeParser("application/json", { parseAs: "buffer" }, (_request, body, done) => done(null, body))
    fastify.post<{ Params: { id: string }; Body: Buffer }>("/e/:id", async (request, reply) => {
      const result = await pool.query<{ id: string }>(
        "INSERT INTO events (endpoint_id, body) VALUES ($1, $2) RETURNING id",
        [
          request.params.id,
          request.body
        ]
      )
      return reply.code(202).send({ id: result.rows[0]?.id, status: "QUEUED" })
    })
    await fastify.listen({ port: 0, host: "127.0.0.1" })
    const fastifyPort = (fastify.server.address() as AddressInfo).port

    // 3. The PromptJang server on PostgreSQL (API role: ingest only), signed events.
    await admin(`CREATE DATABASE ${serverDb}`)
    const port = 20000 + (process.pid % 10000)
    const profile = process.env["BENCH_CPU_PROF"] === undefined
      ? []
      : ["--cpu-prof", `--cpu-prof-dir=${process.env["BENCH_CPU_PROF"]}`]
    const server = spawn(process.execPath, [...profile, join(root, "apps/server/src/cli.ts"), "serve"], {
      env: {
        ...process.env,
        PORT: String(port),
        HOST: "127.0.0.1",
        PROMPTJANG_DATABASE_URL: withDatabase(SERVER, serverDb),
        PROMPTJANG_ROLE: "api",
        LOG_LEVEL: "warn"
      },
      stdio: ["ignore", "pipe", "inherit"]
    })
    children.push(server)
    const key = (await firstLineMatching(server, /API key:/)).trim().split(/\s+/).at(-1) ?? ""
    const created = await fetch(`http://127.0.0.1:${port}/api/v1/endpoints`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ url: "https://example.com/hooks" })
    })
    const endpoint = (await created.json()) as { id: string; secret: string }

    // Fastify, then PromptJang, ROUNDS times: on a machine whose speed drifts, each ratio compares neighbours.
    const ratios: Array<number> = []
    // What an event costs the machine (the server's CPU and PostgreSQL's), fastify's over PromptJang's, by round.
    const cpuRatios: Array<number> = []
    for (let round = 1; round <= ROUNDS; round++) {
      const label = ROUNDS > 1 ? ` [${round}/${ROUNDS}]` : ""
      const fastifyResult = await load(`http://127.0.0.1:${fastifyPort}/e/ep_1`, {}, thisProcess)
      line(`fastify + pg, one INSERT per request${label}`, fastifyResult)
      // A signature per round: it stays valid for 300 s, longer than a round.
      const timestamp = String(Math.floor(Date.now() / 1000))
      const signature = createHmac("sha256", endpoint.secret).update(`${timestamp}.${payload}`).digest("hex")
      const ours = await load(`http://127.0.0.1:${port}/e/${endpoint.id}`, {
        authorization: `Bearer ${key}`,
        "x-pj-signature": signature,
        "x-pj-timestamp": timestamp
      }, processClock(server.pid))
      const ratio = ours.perSecond / fastifyResult.perSecond
      ratios.push(ratio)
      const fastifyCpu = totalCpu(fastifyResult)
      const ourCpu = totalCpu(ours)
      if (fastifyCpu !== undefined && ourCpu !== undefined) cpuRatios.push(fastifyCpu / ourCpu)
      line(
        `PromptJang server on PostgreSQL, signed, durable 202${label}`,
        ours,
        `  (${ratio.toFixed(1)}x fastify; targets >= 12,000 and >= 2x fastify)`
      )
    }
    if (ROUNDS > 1) {
      console.log(
        `ratio to fastify by round: ${ratios.map((r) => r.toFixed(2)).join(", ")}; median ${
          median(ratios).toFixed(2)
        }, at least 2 in ${ratios.filter((r) => r >= 2).length} of ${ROUNDS}`
      )
      if (cpuRatios.length === ROUNDS) {
        console.log(
          `CPU per event (server and PostgreSQL), fastify's over PromptJang's by round: ${
            cpuRatios.map((r) => r.toFixed(2)).join(", ")
          }; median ${median(cpuRatios).toFixed(2)}`
        )
      }
    }
    await fastify.close()
    await pool.end()
  } finally {
    for (const child of children) child.kill("SIGTERM")
    await new Promise((resolve) => setTimeout(resolve, 1000))
    await admin(`DROP DATABASE IF EXISTS ${fastifyDb} WITH (FORCE)`).catch(() => undefined)
    await admin(`DROP DATABASE IF EXISTS ${serverDb} WITH (FORCE)`).catch(() => undefined)
  }
}

await main()
