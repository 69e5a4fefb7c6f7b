/**
 * End to end: PROMPTJANG_ROLE=api and PROMPTJANG_ROLE=worker as separate processes on one fresh
 * PostgreSQL database (SPEC §8). The api process serves HTTP and delivers nothing; the worker serves no
 * HTTP and delivers every event once, woken by LISTEN/NOTIFY sooner than its fallback poll. While no
 * worker runs, events stay QUEUED; a new worker delivers them. PostgreSQL only: the embedded database
 * is open in one process at a time.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Dispatcher } from "@promptjang/core"
import { connect } from "node:net"
import { type Delivery, numeric, type Receiver, send, startReceiver, text } from "./http.ts"
import {
  describeExit,
  freshDatabase,
  postgresUrl,
  type ServerProcess,
  startServer,
  stopServer,
  waitFor
} from "./server.ts"

/** Events sent while the worker runs. */
const EVENTS = 50
/** Events sent while no worker runs. */
const EVENTS_WITHOUT_WORKER = 5
/** How long events must stay QUEUED while only the api process runs. */
const QUIET_MS = 3_000
/** The longest a worker sleeps without a signal: a delivery sooner than this after its start was woken by NOTIFY. */
const FALLBACK_POLL_MS = Dispatcher.defaultOptions.fallbackPollMs

/** How many times the receiver got each event id. */
const countById = (deliveries: ReadonlyArray<Delivery>): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const delivery of deliveries) counts.set(delivery.eventId, (counts.get(delivery.eventId) ?? 0) + 1)
  return counts
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` (within 5 s). */
const isListening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1")
    const timer = setTimeout(() => {
      socket.destroy()
      resolve(true)
    }, 5_000)
    socket.once("connect", () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => {
      clearTimeout(timer)
      resolve(false)
    })
  })

/** The workers running now, for the test's cleanup and its failure messages. */
const workers = new Set<ServerProcess>()

/**
 * Starts `promptjang serve` with PROMPTJANG_ROLE=worker on `databaseUrl`, with PORT set to a free port
 * (which it must leave alone); resolves once it prints its worker line. Its `url` names that port.
 */
const startWorker = async (databaseUrl: string): Promise<ServerProcess> => {
  const worker = await startServer({
    database: { _tag: "Postgres", url: databaseUrl },
    env: { PROMPTJANG_ROLE: "worker", PROMPTJANG_ALLOW_PRIVATE_TARGETS: "true" },
    expectApiKey: false,
    readyLine: /^PromptJang worker running \(PostgreSQL at /
  })
  workers.add(worker)
  return worker
}

if (postgresUrl === undefined) {
  describe("PROMPTJANG_ROLE=api and PROMPTJANG_ROLE=worker as separate processes on PostgreSQL", () => {
    // oxlint-disable-next-line vitest/expect-expect -- a report that the suite did not run, not a check
    it("is not run: set PROMPTJANG_TEST_DATABASE_URL to a PostgreSQL database to run it", () => {
      console.warn("PostgreSQL end-to-end roles test not run: PROMPTJANG_TEST_DATABASE_URL is not set")
    })
  })
} else {
  const serverUrl = postgresUrl
  describe("PROMPTJANG_ROLE=api and PROMPTJANG_ROLE=worker as separate processes on PostgreSQL", () => {
    let api: ServerProcess | undefined
    let firstWorker: ServerProcess | undefined
    let firstWorkerReadyAt = 0
    let receiver: Receiver | undefined
    let drop: (() => Promise<void>) | undefined
    let databaseUrl = ""

    beforeAll(async () => {
      receiver = await startReceiver(200)
      const db = await freshDatabase(serverUrl)
      drop = db.drop
      databaseUrl = db.url
      // The api process first: on the empty database it creates the organization and prints its key.
      api = await startServer({
        database: { _tag: "Postgres", url: db.url },
        env: { PROMPTJANG_ROLE: "api", PROMPTJANG_ALLOW_PRIVATE_TARGETS: "true" }
      })
      firstWorker = await startWorker(db.url)
      firstWorkerReadyAt = Date.now()
    }, 180_000)

    afterAll(async () => {
      for (const worker of workers) {
        await stopServer(worker)
        workers.delete(worker)
      }
      if (api !== undefined) await stopServer(api)
      await receiver?.close()
      await drop?.()
    }, 90_000)

    const base = () => api?.url ?? assert.fail("the api process did not start")
    const apiKey = () => api?.apiKey ?? assert.fail("the api process printed no API key")
    const recorder = () => receiver ?? assert.fail("the receiver did not start")

    let endpointId: string | undefined
    /** The endpoint pointing at the receiver, created through the api process once. */
    const endpoint = async () => {
      if (endpointId !== undefined) return endpointId
      const created = await send(base(), "POST", "/api/v1/endpoints", {
        key: apiKey(),
        json: { url: recorder().url, description: "roles" }
      })
      assert.strictEqual(created.status, 201, created.text)
      endpointId = text(created.body, "id")
      return endpointId
    }

    /** Sends `count` events through the api process; their ids, each answered 202 QUEUED. */
    const sendEvents = async (count: number, batch: string) => {
      const id = await endpoint()
      const ids: Array<string> = []
      for (let n = 0; n < count; n++) {
        const answer = await send(base(), "POST", `/e/${id}`, {
          key: apiKey(),
          json: { event: "order.created", data: { batch, n } }
        })
        assert.strictEqual(answer.status, 202, answer.text)
        assert.strictEqual(text(answer.body, "status"), "QUEUED")
        ids.push(text(answer.body, "id"))
      }
      assert.strictEqual(new Set(ids).size, count, "an event id was given twice")
      return ids
    }

    /** The status and attempt count of each event, read through the api process. */
    const statuses = async (ids: ReadonlyArray<string>) => {
      const result = new Map<string, { readonly status: string; readonly attempts: number }>()
      for (const id of ids) {
        const answer = await send(base(), "GET", `/api/v1/events/${id}`, { key: apiKey() })
        assert.strictEqual(answer.status, 200, answer.text)
        result.set(id, { status: text(answer.body, "status"), attempts: numeric(answer.body, "attempt_count") })
      }
      return result
    }

    /** Waits (at most `timeoutMs`) until every event of `ids` is DELIVERED. */
    const allDelivered = async (ids: ReadonlyArray<string>, timeoutMs: number) => {
      let last = new Map<string, { readonly status: string; readonly attempts: number }>()
      await waitFor(`${ids.length} events to be DELIVERED`, async () => {
        last = await statuses(ids)
        return [...last.values()].every((event) => event.status === "DELIVERED") ? true : undefined
      }, {
        timeoutMs,
        everyMs: 200,
        describe: () => {
          const pending = [...last].filter(([, event]) => event.status !== "DELIVERED")
          return `${pending.length} not delivered, such as ${
            JSON.stringify(pending.slice(0, 3))
          }; the receiver got ${recorder().deliveries.length}. ${
            workers.size === 0
              ? "No worker runs."
              : [...workers].map((worker) => worker.stderr().slice(-1500)).join("\n")
          }`
        }
      })
      return last
    }

    it("runs the worker without an HTTP server: it prints its worker line, nothing listens on its PORT, and it creates no second organization", async () => {
      const worker = firstWorker ?? assert.fail("the worker did not start")
      assert.isTrue(
        worker.lines.some((line) => line.startsWith("PromptJang worker running")),
        worker.lines.join("\n")
      )
      assert.isFalse(
        worker.lines.some((line) => line.includes("listening on")),
        `the worker says it listens: ${worker.lines.join("\n")}`
      )
      assert.isFalse(
        worker.lines.some((line) => line.includes("API key:")),
        "the worker created an organization on a database that has one"
      )
      assert.isFalse(await isListening(Number(new URL(worker.url).port)), `something listens on ${worker.url}`)
      assert.isTrue(await isListening(Number(new URL(base()).port)), "the api process does not listen")
      const ready = await send(base(), "GET", "/readyz")
      assert.strictEqual(ready.status, 200, ready.text)
      assert.strictEqual(worker.process.exitCode, null, describeExit(worker))
    })

    it(
      `delivers ${EVENTS} events sent through the api process exactly once each, the worker woken by NOTIFY`,
      async () => {
        const before = recorder().deliveries.length
        const sendingAt = Date.now()
        const ids = await sendEvents(EVENTS, "while the worker runs")
        const delivered = await allDelivered(ids, 20_000)
        const deliveredIn = Date.now() - sendingAt
        for (const [id, event] of delivered) {
          assert.strictEqual(event.attempts, 1, `${id} took ${event.attempts} attempts`)
        }

        const got = recorder().deliveries.slice(before)
        const counts = countById(got)
        assert.sameMembers([...counts.keys()], ids, "the receiver got other events than those sent")
        assert.deepStrictEqual(
          [...counts].filter(([, times]) => times !== 1),
          [],
          "an event reached the receiver more than once"
        )
        assert.strictEqual(got.length, EVENTS)
        // With nothing due, an idle worker sleeps FALLBACK_POLL_MS after its start; these arrived well before
        // (within half of it), so a NOTIFY from the api process woke it.
        const lastArrival = Math.max(...got.map((delivery) => delivery.at))
        assert.isBelow(
          lastArrival - firstWorkerReadyAt,
          FALLBACK_POLL_MS / 2,
          "the deliveries waited for the worker's fallback poll: it was not woken by NOTIFY"
        )
        console.info(
          `roles: ${EVENTS} events sent through the api process and DELIVERED by the worker in ${deliveredIn} ms`
        )
      },
      60_000
    )

    it(
      "leaves new events QUEUED while no worker runs (the api process delivers nothing), and a new worker delivers them",
      async () => {
        const worker = firstWorker ?? assert.fail("the worker did not start")
        const stoppingAt = Date.now()
        await stopServer(worker, "SIGTERM", 15_000)
        workers.delete(worker)
        assert.strictEqual(
          worker.process.signalCode,
          null,
          `the worker did not exit by itself: ${describeExit(worker)}`
        )
        assert.strictEqual(worker.process.exitCode, 0, describeExit(worker))
        const stoppedIn = Date.now() - stoppingAt

        const before = recorder().deliveries.length
        const ids = await sendEvents(EVENTS_WITHOUT_WORKER, "while no worker runs")
        await new Promise((resolve) => setTimeout(resolve, QUIET_MS))
        const waiting = await statuses(ids)
        assert.deepStrictEqual(
          [...waiting.values()],
          ids.map(() => ({ status: "QUEUED", attempts: 0 })),
          "an event was attempted while only the api process ran"
        )
        assert.strictEqual(recorder().deliveries.length, before, "the receiver got a delivery while no worker ran")

        const startingAt = Date.now()
        await startWorker(databaseUrl)
        const delivered = await allDelivered(ids, 20_000)
        const deliveredIn = Date.now() - startingAt
        for (const [id, event] of delivered) {
          assert.strictEqual(event.attempts, 1, `${id} took ${event.attempts} attempts`)
        }
        const got = recorder().deliveries.slice(before)
        assert.sameMembers(got.map((delivery) => delivery.eventId), ids, "the new worker delivered other events")
        assert.strictEqual(got.length, EVENTS_WITHOUT_WORKER, "an event reached the receiver more than once")
        console.info(
          `roles: the worker stopped on SIGTERM in ${stoppedIn} ms; a new worker started and delivered the ` +
            `${EVENTS_WITHOUT_WORKER} waiting events in ${deliveredIn} ms`
        )
      },
      90_000
    )
  })
}
