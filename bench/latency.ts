/**
 * End to end at a fixed rate (issue: server): an open-model load generator sends signed 1 KiB events at
 * 500, 1,000 and 2,000 events/s for a fixed time to the PromptJang server (role all, on PostgreSQL), which
 * delivers them to a loopback receiver (receiver.ts, in a process of its own). Prints ack→delivery latency
 * p50/p99 per rate: the time from the 202 reaching the sender to the delivery reaching the receiver, both read
 * on the machine's monotonic clock (negative when the delivery arrives first, counted as 0). With the receiver
 * in the generator's process, the generator's event loop, serving both, fell behind at 2,000 events/s on a
 * slow day of this machine: deliveries queued behind it for seconds, which a real receiver would not cause.
 * Beneath each rate: the CPU the server, PostgreSQL, the generator and the receiver used over that run, as
 * shares of one core (see cpu.ts); on two cores, near 200% in all means the machine was full.
 *
 * Run: `npm run bench:latency` (needs PostgreSQL: PROMPTJANG_BENCH_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/postgres). Creates and drops its own database; stops by itself.
 * BENCH_ROUNDS=<n> runs the rates n times over, on the same server, and ends with each rate's p99 by round and
 * their median, beside the targets: one run's p99 is set by its worst half second, and on a shared machine a
 * stall of the whole machine now and then lands in one run and not the next.
 * BENCH_TIMELINE=1 also prints, per 500 ms of sending (BENCH_TIMELINE=100: per 100 ms), the slowest 202, the
 * slowest delivery and the generator's own longest event-loop delay: where a stall began, how long it lasted,
 * and whether the generator itself stalled.
 *
 * The load generator runs with `--single-threaded-gc` (the script restarts itself with it when it is missing).
 * It shares the machine with the server and PostgreSQL, and V8's parallel and concurrent GC threads of this
 * process took both cores for about 0.25 s at each of its major collections (seen with `perf`), stalling the
 * server under test: a generator on another machine would not. On a machine with two cores or fewer, the server
 * runs with `--v8-pool-size=1`, as docs/configuration.md recommends for such machines.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createHmac } from "node:crypto"
import { once } from "node:events"
import { availableParallelism } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { Client } from "pg"
import { Agent, request } from "undici"
import { currentProcessClock, postgresSince, processClock, since } from "./cpu.ts"
import { median, percentile } from "./stats.ts"

const SERVER = process.env["PROMPTJANG_BENCH_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"
const SECONDS = Number(process.env["BENCH_SECONDS"] ?? 10)
const RATES = (process.env["BENCH_RATES"] ?? "500,1000,2000").split(",").map(Number)
const WARMUP_SECONDS = Number(process.env["BENCH_WARMUP_SECONDS"] ?? 3)
const ROUNDS = Math.max(1, Number(process.env["BENCH_ROUNDS"] ?? 1))
/** The issue's targets for the ack→delivery p99, in milliseconds, by rate. */
const P99_TARGETS = new Map([[1000, 20], [2000, 50]])
const TIMELINE = process.env["BENCH_TIMELINE"] === undefined
  ? undefined
  : Number(process.env["BENCH_TIMELINE"]) > 1
  ? Number(process.env["BENCH_TIMELINE"])
  : 500
const root = join(import.meta.dirname, "..")

const admin = async (statement: string) => {
  const client = new Client({ connectionString: SERVER })
  await client.connect()
  await client.query(statement)
  await client.end()
}
const withDatabase = (url: string, database: string) => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/** Milliseconds on the machine's monotonic clock, the one the receiver process reports its arrivals on. */
const now = () => Number(process.hrtime.bigint()) / 1e6

const GC_FLAG = "--single-threaded-gc"
// On two cores shared with PostgreSQL, the server runs as docs/configuration.md recommends for such machines.
const SERVER_FLAGS = availableParallelism() <= 2 ? ["--v8-pool-size=1"] : []

const main = async () => {
  const database = `promptjang_bench_latency_${process.pid}`
  let server: ChildProcess | undefined
  // The receiver runs in a process of its own, as a real one would, and reports when each event arrived.
  const received = new Map<string, number>()
  const receiver = spawn(process.execPath, [join(import.meta.dirname, "receiver.ts"), "--report", "--seconds", "900"], {
    stdio: ["ignore", "pipe", "inherit"]
  })
  const receiverLines = createInterface({ input: receiver.stdout })
  const receiverPort = await new Promise<string>((resolve, reject) => {
    receiverLines.once("line", resolve)
    receiver.once("exit", (code) => reject(new Error(`the receiver exited (${code}) before it listened`)))
  })
  receiverLines.on("line", (line) => {
    const [id = "", at = ""] = line.split(" ")
    received.set(id, Number(at))
  })
  try {
    await admin(`CREATE DATABASE ${database}`)
    const port = 21000 + (process.pid % 9000)
    const profile = process.env["BENCH_CPU_PROF"] === undefined
      ? []
      : ["--cpu-prof", `--cpu-prof-dir=${process.env["BENCH_CPU_PROF"]}`]
    server = spawn(process.execPath, [...SERVER_FLAGS, ...profile, join(root, "apps/server/src/cli.ts"), "serve"], {
      env: {
        ...process.env,
        PORT: String(port),
        HOST: "127.0.0.1",
        PROMPTJANG_DATABASE_URL: withDatabase(SERVER, database),
        PROMPTJANG_ALLOW_PRIVATE_TARGETS: "true",
        LOG_LEVEL: "warn"
      },
      stdio: ["ignore", "pipe", "inherit"]
    })
    const stdout = server.stdout
    if (stdout === null) throw new Error("no stdout")
    const key = await new Promise<string>((resolve) =>
      createInterface({ input: stdout }).on("line", (line) => {
        if (line.includes("API key:")) resolve(line.trim().split(/\s+/).at(-1) ?? "")
      })
    )
    const base = `http://127.0.0.1:${port}`
    const endpoint = (await (await fetch(`${base}/api/v1/endpoints`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ url: `http://127.0.0.1:${receiverPort}/hooks` })
    })).json()) as { id: string; secret: string }
    const agent = new Agent({ connections: 256, keepAliveTimeout: 60_000 })
    const body = JSON.stringify({ event: "order.created", data: { note: "x".repeat(960) } })

    /** Sends at `rate` for `seconds` (open model), waits for the deliveries; the latencies, sorted. */
    const runAt = async (rate: number, seconds: number) => {
      received.clear()
      const acked = new Map<string, number>()
      const sentAt = new Map<string, number>()
      let failed = 0
      const total = rate * seconds
      const started = now()
      // With a timeline: the generator's longest event-loop delay per window (a 1 ms timer's lateness).
      const lag = new Map<number, number>()
      let lastTick = started
      const lagProbe = TIMELINE === undefined ? undefined : setInterval(() => {
        const tick = now()
        const window = Math.floor((tick - started) / TIMELINE)
        lag.set(window, Math.max(lag.get(window) ?? 0, tick - lastTick - 1))
        lastTick = tick
      }, 1)
      // CPU over the run, from the first send until the last delivery arrived (or the wait for them ended).
      const cpu = {
        server: since(processClock(server?.pid)),
        postgres: postgresSince(),
        // This process: the load generator.
        generator: since(currentProcessClock),
        receiver: since(processClock(receiver.pid))
      }
      const sends: Array<Promise<void>> = []
      let sent = 0
      // Open model: send on schedule whatever the answers do.
      await new Promise<void>((resolve) => {
        const tick = () => {
          const due = Math.min(total, Math.floor(((now() - started) / 1000) * rate))
          for (; sent < due; sent++) {
            const timestamp = String(Math.floor(Date.now() / 1000))
            const signature = createHmac("sha256", endpoint.secret).update(`${timestamp}.${body}`).digest("hex")
            const sendTime = now()
            sends.push(
              request(`${base}/e/${endpoint.id}`, {
                method: "POST",
                dispatcher: agent,
                headers: {
                  authorization: `Bearer ${key}`,
                  "content-type": "application/json",
                  "x-pj-signature": signature,
                  "x-pj-timestamp": timestamp
                },
                body
              }).then(async (response) => {
                const answer = (await response.body.json()) as { id?: string }
                if (response.statusCode === 202 && answer.id !== undefined) {
                  acked.set(answer.id, now())
                  sentAt.set(answer.id, sendTime)
                } else failed++
              }, () => {
                failed++
              })
            )
          }
          if (sent >= total) resolve()
          else setTimeout(tick, 1)
        }
        tick()
      })
      // The rate the generator kept up (sending only, before waiting for the answers and deliveries).
      const achieved = total / ((now() - started) / 1000)
      clearInterval(lagProbe)
      await Promise.all(sends)
      const deadline = now() + 30_000
      const delivered = () => {
        let count = 0
        for (const id of acked.keys()) if (received.has(id)) count++
        return count
      }
      while (delivered() < acked.size && now() < deadline) await new Promise((r) => setTimeout(r, 50))
      const elapsed = (now() - started) / 1000
      const cores = (seconds: number | undefined) =>
        seconds === undefined ? "n/a" : `${Math.round((seconds / elapsed) * 100)}%`
      const usage = `server ${cores(cpu.server())}, PostgreSQL ${cores(cpu.postgres())}, generator ${
        cores(cpu.generator())
      }, receiver ${cores(cpu.receiver())} of a core`
      const latencies = Array.from(acked, ([id, at]) => Math.max(0, (received.get(id) ?? Number.NaN) - at))
        .filter((value) => !Number.isNaN(value))
        .sort((a, b) => a - b)
      if (TIMELINE !== undefined) {
        // Per window of sending: events, the slowest 202 and the slowest ack→delivery among them.
        const windows = new Map<number, { n: number; ack: number; delivery: number }>()
        for (const [id, at] of acked) {
          const sendTime = sentAt.get(id) ?? at
          const key = Math.floor((sendTime - started) / TIMELINE)
          const w = windows.get(key) ?? { n: 0, ack: 0, delivery: 0 }
          w.n++
          w.ack = Math.max(w.ack, at - sendTime)
          w.delivery = Math.max(w.delivery, (received.get(id) ?? Number.NaN) - at)
          windows.set(key, w)
        }
        for (const [key, w] of [...windows].sort((a, b) => a[0] - b[0])) {
          console.log(
            `  t=${((key * TIMELINE) / 1000).toFixed(1)}s n=${w.n} max 202 ${w.ack.toFixed(1)} ms, max delivery ${
              w.delivery.toFixed(1)
            } ms, generator lag ${(lag.get(key) ?? 0).toFixed(1)} ms`
          )
        }
      }
      return { total, acked: acked.size, failed, achieved, latencies, usage }
    }

    console.log(
      `PromptJang end to end at fixed rates, ${
        new Date().toISOString()
      }, Node ${process.version}, ${SECONDS}s per rate, load generator with ${GC_FLAG}, server with ${
        SERVER_FLAGS.length === 0 ? "Node's defaults" : SERVER_FLAGS.join(" ")
      }`
    )
    if (WARMUP_SECONDS > 0 && RATES[0] !== undefined) {
      // A cold server (JIT, connection pools, first plans) stalls for its first second; "sustained" excludes it.
      await runAt(RATES[0], WARMUP_SECONDS)
      console.log(
        `(warm-up: ${WARMUP_SECONDS}s at ${RATES[0]} ev/s first, not counted; BENCH_WARMUP_SECONDS=0 counts all)`
      )
    }
    const p99s = new Map<number, Array<number>>(RATES.map((rate) => [rate, []]))
    for (let round = 1; round <= ROUNDS; round++) {
      for (const rate of RATES) {
        const run = await runAt(rate, SECONDS)
        const { latencies } = run
        const p99 = percentile(latencies, 0.99)
        p99s.get(rate)?.push(p99)
        console.log(
          `${String(rate).padStart(5)} ev/s offered${
            ROUNDS > 1 ? ` [${round}/${ROUNDS}]` : ""
          }: ${run.acked}/${run.total} acked (${run.failed} failed), ${latencies.length} delivered; ack→delivery p50 ${
            percentile(latencies, 0.5).toFixed(1)
          } ms, p90 ${percentile(latencies, 0.9).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms${
            run.achieved < rate * 0.9 ? ` (generator fell behind: ${Math.round(run.achieved)} ev/s sent)` : ""
          }`
        )
        console.log(`       CPU: ${run.usage}`)
      }
    }
    if (ROUNDS > 1) {
      for (const [rate, values] of p99s) {
        const target = P99_TARGETS.get(rate)
        console.log(
          `p99 at ${rate} ev/s by round: ${values.map((v) => v.toFixed(1)).join(", ")} ms; median ${
            median(values).toFixed(1)
          } ms${
            target === undefined
              ? ""
              : ` (target <= ${target} ms, met in ${values.filter((v) => v <= target).length} of ${values.length})`
          }`
        )
      }
    }
    await agent.close()
  } finally {
    server?.kill("SIGTERM")
    receiver.kill("SIGTERM")
    await new Promise((resolve) => setTimeout(resolve, 1500))
    await admin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined)
  }
}

if (process.execArgv.includes(GC_FLAG)) await main()
else {
  const child = spawn(process.execPath, [GC_FLAG, ...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit" })
  const [code] = await once(child, "exit")
  process.exitCode = typeof code === "number" ? code : 1
}
