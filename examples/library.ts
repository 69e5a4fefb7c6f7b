/**
 * PromptJang as a library: the engine in memory delivers one event to a
 * receiver on this machine, which checks the signature as the FAQ's Python
 * `verify_signature` does.
 *
 * Run it with `npm start` (or `node examples/library.ts`).
 */
import { Accounts, Endpoints, Engine, Events, Ingestion, Lifecycle, Memory, Targets } from "@promptjang/core"
import { Deferred, Effect, Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { createHmac, timingSafeEqual } from "node:crypto"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"

// The receiving app: verifies X-PromptJang-Signature over the raw body with the endpoint secret.
let secret = ""
const receiver = createServer((request, response) => {
  const chunks: Array<Buffer> = []
  request.on("data", (chunk: Buffer) => chunks.push(chunk))
  request.on("end", () => {
    const body = Buffer.concat(chunks)
    const expected = createHmac("sha256", secret).update(body).digest("hex")
    const given = String(request.headers["x-promptjang-signature"] ?? "")
    const valid = given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected))
    console.log(
      `receiver: ${request.headers["x-promptjang-event-type"]} attempt ${
        request.headers["x-promptjang-attempt"]
      }, signature ${valid ? "valid" : "INVALID"}`
    )
    response.writeHead(valid ? 200 : 401).end(valid ? "OK" : "bad signature")
  })
})
await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve))
const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks`

const program = Effect.gen(function*() {
  const { apiKey, organization } = yield* Accounts.Accounts.use((a) => a.createOrganization({ name: "Acme" }))
  const endpoint = yield* Endpoints.Endpoints.use((e) => e.create(organization.id, { url, eventTypes: ["order.*"] }))
  secret = endpoint.secret

  const delivered = yield* Deferred.make<void>()
  yield* Lifecycle.Lifecycle.use((l) =>
    l.subscribe((n) => (n._tag === "Delivered" ? Deferred.succeed(delivered, undefined) : Effect.void))
  )

  const body = new TextEncoder().encode(JSON.stringify({ event: "order.created", data: { order_id: "ORD-001" } }))
  const accepted = yield* Ingestion.Ingestion.use((i) => i.ingest(apiKey.key, { endpointId: endpoint.id, body }))
  console.log(`accepted: ${accepted.id} ${accepted.status}`)

  yield* Deferred.await(delivered)
  const { attempts, event } = yield* Events.Events.use((e) => e.get(organization.id, accepted.id))
  console.log(
    `event: ${event.id} ${event.status} after ${attempts.length} attempt(s), receiver said ${attempts[0]?.statusCode}`
  )
})

// The receiver is on loopback, which the SSRF guard refuses unless private targets are allowed.
const AllowLoopback = Layer.succeed(Targets.TargetPolicy, { allowPrivateTargets: true })

await Effect.runPromise(
  program.pipe(
    Effect.scoped,
    Effect.provide(Engine.layerRunning.pipe(Layer.provide([Memory.layer, FetchHttpClient.layer, AllowLoopback])))
  )
).finally(() => receiver.close())
