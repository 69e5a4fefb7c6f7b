import { assert, describe, it } from "@effect/vitest"
import {
  Accounts,
  Dispatcher,
  Endpoints,
  Engine,
  Errors,
  Ingestion,
  Lifecycle,
  Memory,
  Targets
} from "@promptjang/core"
import type { Attempt } from "@promptjang/core/Domain"
import { Deferred, Effect, Exit, Fiber, Layer } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { createHmac } from "node:crypto"
import type * as Dns from "node:dns"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as DeliveryClient from "../src/DeliveryClient.ts"

interface Received {
  readonly method: string
  readonly url: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: Buffer
}

interface TestServer {
  readonly port: number
  readonly requests: Array<Received>
  /** Connections accepted so far. */
  readonly connections: () => number
}

type Handler = (request: Http.IncomingMessage, response: Http.ServerResponse, body: Buffer) => void

const ok: Handler = (_, response) => response.end("ok")

/** A node:http server on 127.0.0.1 that records every request and connection, closed with the scope. */
const makeServer = (handler: Handler = ok) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly server: Http.Server; readonly state: TestServer }>((resume) => {
      const requests: Array<Received> = []
      let connections = 0
      const server = Http.createServer((request, response) => {
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          const body = Buffer.concat(chunks)
          requests.push({ method: request.method ?? "", url: request.url ?? "", headers: request.headers, body })
          handler(request, response, body)
        })
      })
      // Idle connections stay open until the client closes them (or the scope ends).
      server.keepAliveTimeout = 60_000
      server.on("connection", () => {
        connections++
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({ server, state: { port, requests, connections: () => connections } }))
      })
    }),
    ({ server }) =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ state }) => state))

/** Answers /start with a 302 to /target, which must never be requested. */
const redirecting: Handler = (request, response) => {
  if (request.url === "/start") {
    response.writeHead(302, { location: "/target" })
    response.end()
  } else response.end("followed")
}

/** The one request the server got: a POST of `body` to /hooks?x=1 with the delivery headers; returned. */
const assertPosted = (server: TestServer, body: Uint8Array): Received => {
  assert.strictEqual(server.requests.length, 1)
  const received = server.requests[0] ?? assert.fail("nothing received")
  assert.strictEqual(received.method, "POST")
  assert.strictEqual(received.url, "/hooks?x=1")
  assert.deepStrictEqual(new Uint8Array(received.body), body)
  assert.strictEqual(received.headers["content-type"], "application/json")
  assert.strictEqual(received.headers["content-length"], String(body.byteLength))
  assert.strictEqual(received.headers["user-agent"], "PromptJang/0.1.0")
  assert.strictEqual(received.headers["x-promptjang-signature"], "abc123")
  return received
}

/** A JSON body with a two-byte UTF-8 character, then a NUL and a byte that is not UTF-8: sent as is, byte for byte. */
const awkwardBody = new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0xa9, 0x22, 0x7d, 0x00, 0xff])

/** A port on 127.0.0.1 with nothing listening. */
const freePort = Effect.callback<number>((resume) => {
  const server = Http.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

const post = (url: string, body: Uint8Array = new TextEncoder().encode("{}")) =>
  HttpClientRequest.post(url).pipe(HttpClientRequest.bodyUint8Array(body, "application/json"))

/** Sends a request that must fail, and returns how the dispatcher classifies the failure, with the error. */
const failure = (request: HttpClientRequest.HttpClientRequest) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const error = yield* Effect.flip(client.execute(request))
    return { error, classified: Dispatcher.classifyTransportError(error.reason) }
  })

/** The `BlockedAddress` in an error's cause chain. */
const blockedAddressIn = (error: unknown): Errors.BlockedAddress => {
  for (let current = error, depth = 0; typeof current === "object" && current !== null && depth < 8; depth++) {
    if (current instanceof Errors.BlockedAddress) return current
    current = "cause" in current ? current.cause : undefined
  }
  return assert.fail("no BlockedAddress in the cause chain")
}

const permissive = DeliveryClient.layer({ allowPrivateTargets: true })
const guarded = DeliveryClient.layer({ allowPrivateTargets: false })

/** A fake resolver that answers every name with fixed addresses and counts its calls. */
const fakeResolver = (addresses: ReadonlyArray<string>) => {
  const calls: Array<string> = []
  const resolve: DeliveryClient.Resolver = (hostname, _options, callback) => {
    calls.push(hostname)
    const answer = addresses.map((address): Dns.LookupAddress => ({ address, family: address.includes(":") ? 6 : 4 }))
    setImmediate(() => callback(null, answer))
  }
  return { calls, resolve }
}

type LookupAnswer =
  | { readonly _tag: "error"; readonly error: NodeJS.ErrnoException }
  | { readonly _tag: "ok"; readonly address: string | Array<Dns.LookupAddress>; readonly family: number | undefined }

const lookup = (
  options: { readonly allowPrivateTargets: boolean; readonly resolve: DeliveryClient.Resolver },
  hostname: string,
  all: boolean
) =>
  Effect.callback<LookupAnswer>((resume) => {
    DeliveryClient.makeLookup({ ...options, url: `https://${hostname}` })(hostname, { all }, (error, address, family) =>
      resume(Effect.succeed<LookupAnswer>(
        error === null ? { _tag: "ok", address, family } : { _tag: "error", error }
      )))
  })

describe("DeliveryClient", () => {
  describe("makeLookup", () => {
    it.live("refuses a public-looking name that resolves to a private address (DNS rebinding)", () =>
      Effect.gen(function*() {
        const { calls, resolve } = fakeResolver(["93.184.216.34", "10.0.0.7"])
        const answer = yield* lookup({ allowPrivateTargets: false, resolve }, "hooks.example.com", true)
        assert.strictEqual(answer._tag, "error")
        if (answer._tag !== "error") return
        assert.strictEqual(Dispatcher.classifyTransportError(answer.error), "blocked_address")
        const refusal = blockedAddressIn(answer.error)
        assert.strictEqual(refusal.address, "10.0.0.7")
        assert.strictEqual(refusal.url, "https://hooks.example.com")
        assert.include(refusal.message, "PROMPTJANG_ALLOW_PRIVATE_TARGETS")
        assert.deepStrictEqual(calls, ["hooks.example.com"])
      }))

    it.live("refuses the cloud metadata address", () =>
      Effect.gen(function*() {
        const { resolve } = fakeResolver(["169.254.169.254"])
        const answer = yield* lookup({ allowPrivateTargets: false, resolve }, "metadata.example.com", false)
        assert.strictEqual(
          answer._tag === "error" && Dispatcher.classifyTransportError(answer.error),
          "blocked_address"
        )
      }))

    it.live("answers with exactly the checked public address, resolving once", () =>
      Effect.gen(function*() {
        const { calls, resolve } = fakeResolver(["93.184.216.34"])
        const all = yield* lookup({ allowPrivateTargets: false, resolve }, "hooks.example.com", true)
        assert.deepStrictEqual(all, {
          _tag: "ok",
          address: [{ address: "93.184.216.34", family: 4 }],
          family: undefined
        })
        const one = yield* lookup({ allowPrivateTargets: false, resolve }, "hooks.example.com", false)
        assert.deepStrictEqual(one, { _tag: "ok", address: "93.184.216.34", family: 4 })
        assert.deepStrictEqual(calls, ["hooks.example.com", "hooks.example.com"])
      }))

    it.live("lets private addresses through when private targets are allowed", () =>
      Effect.gen(function*() {
        const { resolve } = fakeResolver(["10.0.0.7"])
        const answer = yield* lookup({ allowPrivateTargets: true, resolve }, "hooks.example.com", false)
        assert.deepStrictEqual(answer, { _tag: "ok", address: "10.0.0.7", family: 4 })
      }))
  })

  describe("layer", () => {
    it.live("POSTs the exact body bytes and headers and returns the 200 with its body", () =>
      Effect.gen(function*() {
        const server = yield* makeServer((_, response) => {
          response.writeHead(200, { "content-type": "text/plain" })
          response.end("thanks")
        })
        const body = awkwardBody
        const client = yield* HttpClient.HttpClient
        const response = yield* client.execute(
          post(`http://127.0.0.1:${server.port}/hooks?x=1`, body).pipe(
            HttpClientRequest.setHeaders({
              "user-agent": "PromptJang/0.1.0",
              "x-promptjang-signature": "abc123",
              "webhook-id": "evt_1"
            })
          )
        )
        assert.strictEqual(response.status, 200)
        assert.strictEqual(yield* response.text, "thanks")
        const received = assertPosted(server, body)
        assert.strictEqual(received.headers["webhook-id"], "evt_1")
      }).pipe(Effect.provide(permissive)))

    it.live("returns a 302 as the response and never requests its Location", () =>
      Effect.gen(function*() {
        const server = yield* makeServer(redirecting)
        const client = yield* HttpClient.HttpClient
        const response = yield* client.execute(post(`http://127.0.0.1:${server.port}/start`))
        assert.strictEqual(response.status, 302)
        assert.strictEqual(response.headers["location"], "/target")
        yield* response.text
        assert.deepStrictEqual(server.requests.map((r) => r.url), ["/start"])
      }).pipe(Effect.provide(permissive)))

    it.live("refuses loopback targets (IP literal, localhost, IPv6 literal) without connecting", () =>
      Effect.gen(function*() {
        const server = yield* makeServer()
        for (const url of [`http://127.0.0.1:${server.port}/`, `http://localhost:${server.port}/`]) {
          const { error, classified } = yield* failure(post(url))
          assert.strictEqual(classified, "blocked_address", url)
          const refusal = blockedAddressIn(error.reason)
          assert.include(refusal.message, "PROMPTJANG_ALLOW_PRIVATE_TARGETS")
          assert.strictEqual(refusal.url, `http://${new URL(url).host}`)
        }
        const v6 = yield* failure(post(`http://[::1]:${server.port}/`))
        assert.strictEqual(v6.classified, "blocked_address")
        assert.strictEqual(server.connections(), 0)
        assert.strictEqual(server.requests.length, 0)
      }).pipe(Effect.provide(guarded)))

    it.live("connects to the address the guard checked, without resolving again", () =>
      Effect.gen(function*() {
        const server = yield* makeServer()
        // A .invalid name never resolves through the system: only the checked answer can reach the server.
        const { calls, resolve } = fakeResolver(["127.0.0.1"])
        const sent = Effect.gen(function*() {
          const client = yield* HttpClient.HttpClient
          for (let i = 0; i < 3; i++) {
            const response = yield* client.execute(post(`http://pinned.invalid:${server.port}/`))
            assert.strictEqual(response.status, 200)
            yield* response.text
          }
        })
        yield* sent.pipe(Effect.provide(DeliveryClient.layer({ allowPrivateTargets: true, resolve })))
        assert.strictEqual(server.requests.length, 3)
        assert.strictEqual(server.requests[0]?.headers.host, `pinned.invalid:${server.port}`)
        // One resolution per connection opened (a kept-alive connection is never looked up again).
        assert.isAtLeast(calls.length, 1)
        assert.strictEqual(calls.length, server.connections())
        assert.isTrue(calls.every((name) => name === "pinned.invalid"))

        // The same answer under the guard: refused before any connection.
        const connectionsBefore = server.connections()
        const refused = yield* failure(post(`http://pinned.invalid:${server.port}/`)).pipe(
          Effect.provide(DeliveryClient.layer({ allowPrivateTargets: false, resolve }))
        )
        assert.strictEqual(refused.classified, "blocked_address")
        assert.strictEqual(server.connections(), connectionsBefore)
        assert.strictEqual(server.requests.length, 3)
      }))

    it.live("reports a refused connection as connection_refused", () =>
      Effect.gen(function*() {
        const port = yield* freePort
        const { classified } = yield* failure(post(`http://127.0.0.1:${port}/`))
        assert.strictEqual(classified, "connection_refused")
      }).pipe(Effect.provide(permissive)))

    it.live("reports an unresolvable host as dns", () =>
      Effect.gen(function*() {
        const { classified } = yield* failure(post("http://does-not-exist.invalid/"))
        assert.strictEqual(classified, "dns")
      }).pipe(Effect.provide(guarded)))

    it.live("aborts the request and its connection when the timeout interrupts it", () =>
      Effect.gen(function*() {
        const arrived = yield* Deferred.make<void>()
        const closed = yield* Deferred.make<void>()
        const server = yield* makeServer((request) => {
          // Never answer; report when the client hangs up.
          request.socket.once("close", () => Deferred.doneUnsafe(closed, Exit.void))
          Deferred.doneUnsafe(arrived, Exit.void)
        })
        const client = yield* HttpClient.HttpClient
        const fiber = yield* client.execute(post(`http://127.0.0.1:${server.port}/slow`)).pipe(
          Effect.timeout("200 millis"),
          Effect.flip,
          Effect.forkChild
        )
        yield* Deferred.await(arrived)
        const error = yield* Fiber.join(fiber)
        assert.strictEqual(error._tag, "TimeoutError")
        yield* Deferred.await(closed)
        assert.strictEqual(server.connections(), 1)
      }).pipe(Effect.provide(permissive)))

    it.live("reuses keep-alive connections across sequential deliveries", () =>
      Effect.gen(function*() {
        const server = yield* makeServer()
        const client = yield* HttpClient.HttpClient
        for (let i = 0; i < 50; i++) {
          const response = yield* client.execute(post(`http://127.0.0.1:${server.port}/`))
          assert.strictEqual(yield* response.text, "ok")
        }
        assert.strictEqual(server.requests.length, 50)
        assert.isAtMost(server.connections(), 2)
      }).pipe(Effect.provide(permissive)))

    it.live("opens at most `connections` connections to one endpoint; the other requests wait for one", () =>
      Effect.gen(function*() {
        const held: Array<Http.ServerResponse> = []
        const threeArrived = yield* Deferred.make<void>()
        const server = yield* makeServer((_, response) => {
          held.push(response)
          if (held.length === 3) Deferred.doneUnsafe(threeArrived, Exit.void)
        })
        yield* Effect.gen(function*() {
          const client = yield* HttpClient.HttpClient
          const sends = yield* Effect.forkChild(
            Effect.forEach(
              Array.from({ length: 6 }, () => client.execute(post(`http://127.0.0.1:${server.port}/hooks`))),
              (send) => Effect.flatMap(send, (response) => response.text),
              { concurrency: "unbounded" }
            )
          )
          yield* Deferred.await(threeArrived)
          yield* Effect.sleep("100 millis")
          // The other three wait for a connection of the three.
          assert.deepStrictEqual([server.requests.length, server.connections()], [3, 3])
          // Each answer frees a connection for one waiting request.
          const answerHeld = Effect.sync(() => {
            for (const response of held.splice(0)) response.end("ok")
          })
          yield* answerHeld
          yield* Effect.sleep("100 millis")
          yield* answerHeld
          assert.deepStrictEqual(yield* Fiber.join(sends), ["ok", "ok", "ok", "ok", "ok", "ok"])
          assert.deepStrictEqual([server.requests.length, server.connections()], [6, 3])
        }).pipe(Effect.provide(DeliveryClient.layer({ allowPrivateTargets: true, connections: 3 })))
      }))

    it.live("closes its connections when the layer closes", () =>
      Effect.gen(function*() {
        const closed = yield* Deferred.make<void>()
        const server = yield* makeServer((request, response) => {
          request.socket.once("close", () => Deferred.doneUnsafe(closed, Exit.void))
          response.end("ok")
        })
        yield* Effect.gen(function*() {
          const client = yield* HttpClient.HttpClient
          const response = yield* client.execute(post(`http://127.0.0.1:${server.port}/`))
          yield* response.text
        }).pipe(Effect.provide(Layer.fresh(permissive)))
        yield* Deferred.await(closed)
      }))
  })
  describe("transport", () => {
    /** One delivery through the layer's transport, as the dispatcher sends it. */
    const deliver = (
      url: string,
      options: { readonly body?: Uint8Array; readonly headers?: Record<string, string>; readonly max?: number } = {}
    ) =>
      Effect.gen(function*() {
        const transport = (yield* Dispatcher.CurrentTransport) ?? assert.fail("the layer sets no transport")
        return yield* transport({
          url,
          headers: { "content-type": "application/json", ...options.headers },
          body: options.body ?? new TextEncoder().encode("{}")
        }, options.max ?? 64 * 1024)
      })

    it.live("POSTs the exact body bytes and headers and returns the status with the body", () =>
      Effect.gen(function*() {
        const server = yield* makeServer((_, response) => {
          response.writeHead(201, { "content-type": "text/plain" })
          response.end("thanks")
        })
        const body = awkwardBody
        const response = yield* deliver(`http://127.0.0.1:${server.port}/hooks?x=1`, {
          body,
          headers: { "user-agent": "PromptJang/0.1.0", "x-promptjang-signature": "abc123" }
        })
        assert.deepStrictEqual(response, { statusCode: 201, responseBody: "thanks", error: null })
        assertPosted(server, body)
      }).pipe(Effect.provide(permissive)))

    it.live("returns a 302 as the status and never requests its Location", () =>
      Effect.gen(function*() {
        const server = yield* makeServer(redirecting)
        const response = yield* deliver(`http://127.0.0.1:${server.port}/start`)
        assert.strictEqual(response.statusCode, 302)
        assert.deepStrictEqual(server.requests.map((r) => r.url), ["/start"])
      }).pipe(Effect.provide(permissive)))

    it.live("reads at most maxResponseBytes of a body, with or without Content-Length, and keeps the status of a broken one", () =>
      Effect.gen(function*() {
        const server = yield* makeServer((request, response) => {
          if (request.url === "/length") return void response.end("a".repeat(5000))
          if (request.url === "/chunked") {
            response.writeHead(200)
            response.write("b".repeat(3000))
            return void setTimeout(() => response.end("c".repeat(3000)), 10)
          }
          // Promises 100 bytes, sends 10, then drops the connection.
          response.writeHead(500, { "content-length": "100" })
          response.write("x".repeat(10))
          setTimeout(() => response.socket?.destroy(), 10)
        })
        const base = `http://127.0.0.1:${server.port}`
        assert.deepStrictEqual(yield* deliver(`${base}/length`, { max: 100 }), {
          statusCode: 200,
          responseBody: "a".repeat(100),
          error: null
        })
        assert.deepStrictEqual(yield* deliver(`${base}/chunked`, { max: 4000 }), {
          statusCode: 200,
          responseBody: `${"b".repeat(3000)}${"c".repeat(1000)}`,
          error: null
        })
        assert.deepStrictEqual(yield* deliver(`${base}/chunked`, { max: 64 * 1024 }), {
          statusCode: 200,
          responseBody: `${"b".repeat(3000)}${"c".repeat(3000)}`,
          error: null
        })
        assert.deepStrictEqual(yield* deliver(`${base}/broken`), { statusCode: 500, responseBody: null, error: null })
      }).pipe(Effect.provide(permissive)))

    it.live("refuses loopback targets without connecting, and connects to the address the guard checked", () =>
      Effect.gen(function*() {
        const server = yield* makeServer()
        for (
          const url of [
            `http://127.0.0.1:${server.port}/`,
            `http://localhost:${server.port}/`,
            `http://[::1]:${server.port}/`
          ]
        ) {
          const refused = yield* deliver(url).pipe(Effect.provide(guarded))
          assert.deepStrictEqual(refused, { statusCode: null, responseBody: null, error: "blocked_address" }, url)
        }
        assert.strictEqual(server.connections(), 0)
        const { calls, resolve } = fakeResolver(["127.0.0.1"])
        yield* Effect.gen(function*() {
          for (let i = 0; i < 3; i++) {
            assert.strictEqual((yield* deliver(`http://pinned.invalid:${server.port}/`)).statusCode, 200)
          }
        }).pipe(Effect.provide(DeliveryClient.layer({ allowPrivateTargets: true, resolve })))
        assert.strictEqual(server.requests.length, 3)
        assert.strictEqual(calls.length, server.connections())
        const connectionsBefore = server.connections()
        const refused = yield* deliver(`http://pinned.invalid:${server.port}/`).pipe(
          Effect.provide(DeliveryClient.layer({ allowPrivateTargets: false, resolve }))
        )
        assert.strictEqual(refused.error, "blocked_address")
        assert.strictEqual(server.connections(), connectionsBefore)
      }))

    it.live("reports a refused connection as connection_refused and an unresolvable host as dns", () =>
      Effect.gen(function*() {
        const port = yield* freePort
        assert.strictEqual((yield* deliver(`http://127.0.0.1:${port}/`)).error, "connection_refused")
        assert.strictEqual((yield* deliver("http://does-not-exist.invalid/")).error, "dns")
      }).pipe(Effect.provide(permissive)))

    it.live("aborts the request and its connection when interrupted, and reuses kept-alive connections", () =>
      Effect.gen(function*() {
        const arrived = yield* Deferred.make<void>()
        const closed = yield* Deferred.make<void>()
        const server = yield* makeServer((request, response) => {
          if (request.url !== "/slow") return void response.end("ok")
          request.socket.once("close", () => Deferred.doneUnsafe(closed, Exit.void))
          Deferred.doneUnsafe(arrived, Exit.void)
        })
        for (let i = 0; i < 50; i++) {
          assert.strictEqual((yield* deliver(`http://127.0.0.1:${server.port}/`)).responseBody, "ok")
        }
        assert.isAtMost(server.connections(), 2)
        const fiber = yield* deliver(`http://127.0.0.1:${server.port}/slow`).pipe(
          Effect.timeout("200 millis"),
          Effect.flip,
          Effect.forkChild
        )
        yield* Deferred.await(arrived)
        assert.strictEqual((yield* Fiber.join(fiber))._tag, "TimeoutError")
        yield* Deferred.await(closed)
      }).pipe(Effect.provide(permissive)))
  })

  describe("with the engine", () => {
    /**
     * One event through a running engine in memory that delivers with `client`, to an endpoint on a host name
     * only the fake resolver knows (so nothing but the layer's guarded lookup can reach it); the attempt.
     */
    const deliverOne = (server: TestServer, client: Layer.Layer<HttpClient.HttpClient>, allowPrivateTargets: boolean) =>
      Effect.gen(function*() {
        const attempted = yield* Deferred.make<Attempt>()
        yield* Lifecycle.Lifecycle.use((l) =>
          l.subscribe((n) => n._tag === "Attempted" ? Deferred.succeed(attempted, n.attempt) : Effect.void)
        )
        const { apiKey, organization } = yield* Accounts.Accounts.use((a) => a.createOrganization({ name: "Acme" }))
        const endpoint = yield* Endpoints.Endpoints.use((e) =>
          e.create(organization.id, { url: `http://hooks.example.test:${server.port}/hooks` })
        )
        const body = new TextEncoder().encode(JSON.stringify({ event: "order.created" }))
        yield* Ingestion.Ingestion.use((i) => i.ingest(apiKey.key, { endpointId: endpoint.id, body }))
        return { attempt: yield* Deferred.await(attempted), secret: endpoint.secret, body }
      }).pipe(
        Effect.provide(Engine.layerRunning.pipe(
          Layer.provide([Memory.layer, client]),
          Layer.provide(Layer.succeed(Targets.TargetPolicy, { allowPrivateTargets }))
        ))
      )

    it.live("delivers the engine's events, signed, through the layer's connections", () =>
      Effect.gen(function*() {
        const server = yield* makeServer()
        const { resolve } = fakeResolver(["127.0.0.1"])
        const { attempt, body, secret } = yield* deliverOne(
          server,
          DeliveryClient.layer({ allowPrivateTargets: true, resolve }),
          true
        )
        assert.deepStrictEqual([attempt.statusCode, attempt.error], [200, null])
        assert.strictEqual(server.requests.length, 1)
        const received = server.requests[0] ?? assert.fail("nothing received")
        assert.deepStrictEqual(new Uint8Array(received.body), body)
        // SPEC §4: lowercase hex HMAC-SHA256 of the body, keyed with the secret string.
        const expected = createHmac("sha256", secret).update(body).digest("hex")
        assert.strictEqual(received.headers["x-promptjang-signature"], expected)
      }))

    it.live("refuses, at send time, an endpoint whose host name resolves to loopback", () =>
      Effect.gen(function*() {
        const server = yield* makeServer()
        const { resolve } = fakeResolver(["127.0.0.1"])
        const { attempt } = yield* deliverOne(
          server,
          DeliveryClient.layer({ allowPrivateTargets: false, resolve }),
          false
        )
        assert.deepStrictEqual([attempt.statusCode, attempt.error], [null, "blocked_address"])
        assert.strictEqual(server.requests.length, 0)
      }))
  })
})
