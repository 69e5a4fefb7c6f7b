/**
 * Embedding the PromptJang API in an existing app: a plain `node:http` server
 * with its own routes, and the PromptJang API mounted under `/webhooks`
 * through the web-standard handler of `@promptjang/http`.
 *
 * Run it with `node examples/embedding.ts` (prints the URL, stops after `--seconds`, default 30).
 */
import { Engine, Memory } from "@promptjang/core"
import { WebHandler } from "@promptjang/http"
import { DeliveryClient } from "@promptjang/node"
import { Layer, Redacted } from "effect"
import { createServer, type IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"

const seconds = Number(process.argv[process.argv.indexOf("--seconds") + 1] ?? 30)

// The engine in memory here; PgStorage.layerPostgres(url) or layerPglite(dir) in a real app. Deliveries go
// through the bundled server's client, which refuses endpoints whose host name resolves to a private address.
const Live = Engine.layerRunning.pipe(
  Layer.provide([Memory.layer, DeliveryClient.layer({ allowPrivateTargets: false })])
)
const promptjang = WebHandler.make(Live, {
  basePath: "/webhooks",
  adminToken: Redacted.make(process.env["ADMIN_TOKEN"] ?? "change-me")
})

const bodyOf = async (request: IncomingMessage): Promise<Buffer<ArrayBuffer> | undefined> => {
  if (request.method === "GET" || request.method === "HEAD") return undefined
  const chunks: Array<Buffer<ArrayBuffer>> = []
  for await (const chunk of request) chunks.push(chunk as Buffer<ArrayBuffer>)
  return Buffer.concat(chunks)
}

const server = createServer(async (request, response) => {
  const url = new URL(request.url ?? "/", `http://${request.headers.host ?? "localhost"}`)
  if (url.pathname === "/") {
    // The app's own route.
    response.writeHead(200, { "content-type": "text/plain" }).end("my app")
    return
  }
  if (url.pathname.startsWith("/webhooks/")) {
    const headers = new Headers()
    for (const [name, value] of Object.entries(request.headers)) if (typeof value === "string") headers.set(name, value)
    const body = await bodyOf(request)
    const answer = await promptjang.handler(
      new Request(url, { method: request.method ?? "GET", headers, ...(body === undefined ? {} : { body }) })
    )
    response.writeHead(answer.status, Object.fromEntries(answer.headers)).end(Buffer.from(await answer.arrayBuffer()))
    return
  }
  response.writeHead(404, { "content-type": "text/plain" }).end("not found")
})

server.listen(Number(process.env["PORT"] ?? 0), "127.0.0.1", () => {
  console.log(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
})
const stop = () => server.close(() => void promptjang.dispose())
process.on("SIGTERM", stop)
setTimeout(stop, seconds * 1000).unref()
