/**
 * A loopback webhook receiver for benchmarks: answers 200 at once and prints its port on the first line of
 * stdout. Stops by itself after `--seconds`.
 *
 * With `--report`, it also prints `<X-PromptJang-Event-Id> <ms>` for the first delivery of each event, where
 * `<ms>` is the time it arrived on the machine's monotonic clock (`process.hrtime`, shared by every process on
 * Linux), in lines written together every few milliseconds.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"

const seconds = Number(process.argv[process.argv.indexOf("--seconds") + 1] ?? 600)
const report = process.argv.includes("--report")
const seen = new Set<string>()
let lines = ""
let received = 0
const server = createServer((request, response) => {
  request.resume()
  request.on("end", () => {
    received++
    if (report) {
      const id = String(request.headers["x-promptjang-event-id"])
      if (!seen.has(id)) {
        seen.add(id)
        lines += `${id} ${Number(process.hrtime.bigint()) / 1e6}\n`
      }
    }
    response.writeHead(200, { "content-type": "text/plain" }).end("OK")
  })
})
server.keepAliveTimeout = 60_000
server.listen(0, "127.0.0.1", () => {
  console.log((server.address() as AddressInfo).port)
})
if (report) {
  setInterval(() => {
    if (lines === "") return
    process.stdout.write(lines)
    lines = ""
  }, 5).unref()
}
process.on("SIGTERM", () => process.exit(0))
setTimeout(() => {
  console.error(`receiver: stopping after ${seconds}s (${received} requests)`)
  process.exit(0)
}, seconds * 1000).unref()
