/**
 * A loopback webhook receiver for benchmarks: answers 200 at once and prints
 * its port on the first line of stdout. Stops by itself after `--seconds`.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"

const seconds = Number(process.argv[process.argv.indexOf("--seconds") + 1] ?? 600)
let received = 0
const server = createServer((request, response) => {
  request.resume()
  request.on("end", () => {
    received++
    response.writeHead(200, { "content-type": "text/plain" }).end("OK")
  })
})
server.keepAliveTimeout = 60_000
server.listen(0, "127.0.0.1", () => {
  console.log((server.address() as AddressInfo).port)
})
process.on("SIGTERM", () => process.exit(0))
setTimeout(() => {
  console.error(`receiver: stopping after ${seconds}s (${received} requests)`)
  process.exit(0)
}, seconds * 1000).unref()
