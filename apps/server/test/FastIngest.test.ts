/**
 * The Node server's direct ingest path answers exactly as the router does, takes only the requests it is
 * meant to, and lets the server shut down with requests under way.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, it } from "@effect/vitest"
import { Engine, Memory, Signing, Storage } from "@promptjang/core"
import { Routes } from "@promptjang/http"
import { Receiver } from "@promptjang/test-host"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Redacted, Scope } from "effect"
import { HttpClient, HttpRouter, HttpServer } from "effect/http"
import * as Http from "node:http"
import * as Net from "node:net"
import * as FastIngest from "../src/FastIngest.ts"

interface Reply {
  readonly status: number
  readonly contentType: string | undefined
  readonly body: string
}

/** A POST over node:http: with Content-Length, or chunked (which the direct path leaves to the router). */
const post = (
  port: number,
  path: string,
  headers: Record<string, string>,
  body: string,
  framing: "length" | "chunked"
) =>
  new Promise<Reply>((resolve, reject) => {
    const request = Http.request({
      host: "127.0.0.1",
      port,
      path,
      method: "POST",
      agent: false,
      headers: framing === "length"
        ? { ...headers, "content-length": String(Buffer.byteLength(body)) }
        : { ...headers, "transfer-encoding": "chunked" }
    }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          contentType: response.headers["content-type"],
          body: Buffer.concat(chunks).toString("utf8")
        }))
    })
    request.on("error", reject)
    if (framing === "chunked") {
      // Two chunks, so the body really is chunked on the wire.
      const middle = Math.floor(body.length / 2)
      request.write(body.slice(0, middle))
      request.end(body.slice(middle))
    } else {
      request.end(body)
    }
  })

/** A reply read off the socket, with whether it came in chunked framing. */
type RawReply = Reply & { readonly chunked: boolean }

/**
 * POSTs `bodies` over connections opened first, writing every request in one go, so that they reach the
 * server together (in one turn of its event loop). Replies come back in the order of `bodies`.
 */
const postTogether = async (
  port: number,
  path: string,
  headers: Record<string, string>,
  bodies: ReadonlyArray<string>
): Promise<Array<RawReply>> => {
  const sockets = await Promise.all(bodies.map(() =>
    new Promise<Net.Socket>((resolve, reject) => {
      const socket = Net.connect(port, "127.0.0.1", () => resolve(socket))
      socket.on("error", reject)
    })
  ))
  const replies = sockets.map((socket) =>
    new Promise<RawReply>((resolve) => {
      const chunks: Array<Buffer> = []
      socket.on("data", (chunk: Buffer) => chunks.push(chunk))
      socket.on("end", () => {
        const [head = "", body = ""] = Buffer.concat(chunks).toString("utf8").split("\r\n\r\n")
        resolve({
          status: Number(head.split(" ")[1]),
          contentType: /^content-type: *(.*)$/im.exec(head)?.[1],
          body,
          chunked: /^transfer-encoding: *chunked/im.test(head)
        })
      })
    })
  )
  // Time for the server to accept every connection, so that all the requests are read in one turn.
  await new Promise((resolve) => setTimeout(resolve, 50))
  const fields = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("")
  sockets.forEach((socket, i) => {
    const body = bodies[i] ?? ""
    socket.write(
      `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n${fields}` +
        `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
    )
  })
  return Promise.all(replies)
}

/**
 * The API on a real node:http server with the direct path in front, over an in-memory engine whose ingest
 * write waits for `gate` when one is given. Counts the requests the direct path took.
 */
const start = (options: { readonly gate?: Deferred.Deferred<void>; readonly writing?: Deferred.Deferred<void> } = {}) =>
  Effect.gen(function*() {
    const taken = { count: 0 }
    const storage = Layer.effect(
      Storage.Storage,
      Effect.gen(function*() {
        const inner = yield* Storage.Storage
        const { gate, writing } = options
        if (gate === undefined) return inner
        return Storage.Storage.of({
          ...inner,
          ingest: (record) =>
            Effect.gen(function*() {
              if (writing !== undefined) yield* Deferred.succeed(writing, undefined)
              yield* Deferred.await(gate)
              return yield* inner.ingest(record)
            })
        })
      })
    ).pipe(Layer.provideMerge(Memory.layer))
    const engine = Engine.layer.pipe(
      Layer.provideMerge(storage),
      Layer.provide(Layer.succeed(HttpClient.HttpClient, Receiver.make().client))
    )
    const nodeServer = Layer.unwrap(
      Effect.map(FastIngest.make, (direct) =>
        NodeHttpServer.layer(() =>
          FastIngest.server((request, response) => {
            const took = direct(request, response)
            if (took) taken.count++
            return took
          }), { port: 0, host: "127.0.0.1", gracefulShutdownTimeout: "300 millis" }))
    )
    const app = HttpRouter.serve(Routes.layer, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provide(Layer.succeed(Routes.Options, { adminToken: Redacted.make("admin") })),
      Layer.provideMerge(nodeServer),
      Layer.provideMerge(engine)
    )
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(app, scope)
    const address = Context.get(context, HttpServer.HttpServer).address
    const port = address._tag === "UnixPathAddress" ? assert.fail("not a TCP address") : address.port
    const storageService = Context.get(context, Storage.Storage)

    const json = (path: string, headers: Record<string, string>, body: unknown) =>
      Effect.promise(() =>
        post(port, path, { ...headers, "content-type": "application/json" }, JSON.stringify(body), "length")
      ).pipe(Effect.map((reply) => JSON.parse(reply.body) as Record<string, string>))
    const org = yield* json("/api/v1/organizations", { authorization: "Bearer admin" }, { name: "Acme" })
    const auth = { authorization: `Bearer ${org["api_key"]}` }
    const endpoint = yield* json("/api/v1/endpoints", auth, {
      url: "https://receiver.test/hooks",
      event_types: ["order.created"]
    })
    return { port, scope, taken, auth, endpoint, storage: storageService, organizationId: org["id"] ?? "" }
  })

const EVENT = `{"event":"order.created","data":{"order_id":"ORD-1"}}`

describe("the direct ingest path", () => {
  it.live("answers every case exactly as the router does, and takes only Content-Length requests", () =>
    Effect.gen(function*() {
      const { auth, endpoint, port, scope, taken } = yield* start()
      const id = endpoint["id"] ?? ""
      const secret = endpoint["secret"] ?? ""
      const now = String(Math.floor(Date.now() / 1000))
      const json = { ...auth, "content-type": "application/json" }
      const cases: ReadonlyArray<readonly [string, string, Record<string, string>, string]> = [
        ["signed", `/e/${id}`, {
          ...json,
          "x-pj-timestamp": now,
          "x-pj-signature": Signing.signInbound(secret, now, new TextEncoder().encode(EVENT))
        }, EVENT],
        ["unsigned, on the API path with a query", `/api/v1/e/${id}?source=test`, json, EVENT],
        ["no API key", `/e/${id}`, { "content-type": "application/json" }, EVENT],
        ["unknown API key", `/e/${id}`, { ...json, authorization: `Bearer pj_live_${"a".repeat(43)}` }, EVENT],
        ["not JSON by its type", `/e/${id}`, { ...auth, "content-type": "text/plain" }, EVENT],
        ["not JSON", `/e/${id}`, json, `{"event":`],
        ["not an object", `/e/${id}`, json, `[1,2]`],
        ["unknown endpoint", `/e/ep_${"0".repeat(26)}`, json, EVENT],
        ["malformed endpoint id", `/e/nope`, json, EVENT],
        ["wrong signature", `/e/${id}`, { ...json, "x-pj-timestamp": now, "x-pj-signature": "00".repeat(32) }, EVENT],
        ["stale timestamp", `/e/${id}`, {
          ...json,
          "x-pj-timestamp": String(Number(now) - 3600),
          "x-pj-signature": Signing.signInbound(secret, String(Number(now) - 3600), new TextEncoder().encode(EVENT))
        }, EVENT],
        ["unsubscribed type", `/e/${id}`, json, `{"event":"order.deleted"}`]
      ]
      const statuses: Array<number> = []
      for (const [name, path, headers, body] of cases) {
        const before = taken.count
        const direct = yield* Effect.promise(() => post(port, path, headers, body, "length"))
        assert.strictEqual(taken.count, before + 1, `${name}: the direct path took it`)
        const routed = yield* Effect.promise(() => post(port, path, headers, body, "chunked"))
        assert.strictEqual(taken.count, before + 1, `${name}: the router took the chunked one`)
        assert.strictEqual(direct.status, routed.status, name)
        assert.strictEqual(direct.contentType, "application/json", name)
        assert.strictEqual(routed.contentType, "application/json", name)
        if (direct.status === 202) {
          const [a, b] = [JSON.parse(direct.body), JSON.parse(routed.body)] as Array<Record<string, string>>
          assert.notStrictEqual(a?.["id"], b?.["id"])
          assert.deepStrictEqual({ ...a, id: "" }, { ...b, id: "" }, name)
          assert.match(a?.["id"] ?? "", /^evt_/)
        } else {
          // The stale timestamp's message counts seconds on the server's clock, which may tick between the two.
          const sameSecond = (body: string) => body.replace(/ is \d+ seconds away/, " is N seconds away")
          assert.strictEqual(sameSecond(direct.body), sameSecond(routed.body), name)
        }
        statuses.push(direct.status)
      }
      assert.deepStrictEqual(statuses, [202, 202, 401, 401, 415, 400, 400, 404, 404, 401, 401, 422])

      // Larger than the direct path takes, an Expect header, or a path of another shape (which the router
      // accepts): the router's.
      const before = taken.count
      const large = `{"event":"order.created","data":"${"a".repeat(FastIngest.MAX_DIRECT_BODY)}"}`
      assert.strictEqual((yield* Effect.promise(() => post(port, `/e/${id}`, json, large, "length"))).status, 202)
      const expecting = yield* Effect.promise(() =>
        post(port, `/e/${id}`, { ...json, expect: "100-continue" }, EVENT, "length")
      )
      assert.strictEqual(expecting.status, 202)
      const trailing = yield* Effect.promise(() => post(port, `/e/${id}/`, json, EVENT, "length"))
      assert.strictEqual(trailing.status, 202)
      assert.strictEqual(taken.count, before)
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("stores the exact bytes it was sent, once per 202", () =>
    Effect.gen(function*() {
      const { auth, endpoint, organizationId, port, scope, storage } = yield* start()
      const body = `{"event":"order.created","data":{"text":"caf\u00e9 \u{1F600}","n":1.50}}`
      const reply = yield* Effect.promise(() =>
        post(port, `/e/${endpoint["id"]}`, { ...auth, "content-type": "application/json" }, body, "length")
      )
      assert.strictEqual(reply.status, 202)
      const id = (JSON.parse(reply.body) as Record<string, string>)["id"] ?? ""
      const stored = yield* storage.getEvent(organizationId as never, id as never)
      assert.strictEqual(stored._tag, "Some")
      if (stored._tag === "Some") {
        assert.strictEqual(Buffer.from(stored.value.body).toString("utf8"), body)
      }
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("assembles a body that arrives in pieces, and stores nothing from a body cut short", () =>
    Effect.gen(function*() {
      const { auth, endpoint, organizationId, port, scope, storage, taken } = yield* start()
      const stored = Effect.map(
        storage.listEvents(organizationId as never, {}, { limit: 100 }),
        (page) => page.data.map((event) => Buffer.from(event.body).toString("utf8"))
      )
      const head = (length: number) =>
        `POST /e/${endpoint["id"]} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n` +
        `authorization: ${auth.authorization}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`
      /** Writes the request in `pieces`, a pause apart, then `end`s or destroys the socket; resolves with the reply. */
      const send = (pieces: ReadonlyArray<string>, finish: "end" | "destroy") =>
        new Promise<string>((resolve, reject) => {
          const socket = Net.connect(port, "127.0.0.1")
          const reply: Array<Buffer> = []
          socket.on("data", (chunk: Buffer) => reply.push(chunk))
          socket.on("close", () => resolve(Buffer.concat(reply).toString("utf8")))
          socket.on("error", reject)
          socket.setNoDelay(true)
          const next = (i: number) => {
            if (i === pieces.length) return finish === "end" ? undefined : void socket.destroy()
            socket.write(pieces[i] ?? "", () => setTimeout(() => next(i + 1), 20))
          }
          next(0)
        })
      const body = `{"event":"order.created","data":{"text":"${"p".repeat(300)}","n":2}}`
      const whole = yield* Effect.promise(() =>
        send([head(Buffer.byteLength(body)), body.slice(0, 100), body.slice(100, 250), body.slice(250)], "end")
      )
      assert.match(whole, /^HTTP\/1\.1 202 /)
      assert.deepStrictEqual(yield* stored, [body])
      // The same request, gone after two thirds of its body: no answer, nothing stored.
      const cut = yield* Effect.promise(() => send([head(Buffer.byteLength(body)), body.slice(0, 250)], "destroy"))
      assert.strictEqual(cut, "")
      assert.strictEqual(taken.count, 2)
      assert.deepStrictEqual(yield* stored, [body])
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("serves requests that arrive together, each once, with its own event", () =>
    Effect.gen(function*() {
      const { auth, endpoint, organizationId, port, scope, storage, taken } = yield* start()
      const bodies = Array.from({ length: 16 }, (_, i) => `{"event":"order.created","data":{"n":${i}}}`)
      const replies = yield* Effect.promise(() =>
        postTogether(port, `/e/${endpoint["id"]}`, { ...auth, "content-type": "application/json" }, bodies)
      )
      assert.strictEqual(taken.count, bodies.length)
      assert.deepStrictEqual(replies.map((reply) => reply.status), bodies.map(() => 202))
      // Each answer declares its length: one write, no chunked framing.
      assert.deepStrictEqual(replies.map((reply) => reply.chunked), bodies.map(() => false))
      const ids = replies.map((reply) => (JSON.parse(reply.body) as Record<string, string>)["id"] ?? "")
      assert.strictEqual(new Set(ids).size, bodies.length)
      for (const [i, id] of ids.entries()) {
        const stored = yield* storage.getEvent(organizationId as never, id as never)
        assert.strictEqual(stored._tag === "Some" ? Buffer.from(stored.value.body).toString("utf8") : "", bodies[i])
      }
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("answers a request under way when shutdown begins, and interrupts one still waiting after the grace period", () =>
    Effect.gen(function*() {
      // Answered: the write finishes within the server's graceful shutdown.
      {
        const gate = yield* Deferred.make<void>()
        const writing = yield* Deferred.make<void>()
        const { auth, endpoint, port, scope } = yield* start({ gate, writing })
        const reply = Effect.runPromise(
          Effect.promise(() =>
            post(port, `/e/${endpoint["id"]}`, { ...auth, "content-type": "application/json" }, EVENT, "length")
          )
        )
        yield* Deferred.await(writing)
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* Effect.sleep("50 millis")
        assert.isUndefined(closing.pollUnsafe(), "shutdown waits for the request under way")
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual((yield* Effect.promise(() => reply)).status, 202)
        yield* Fiber.join(closing)
      }
      // Interrupted: the write never finishes; shutdown ends after the grace period, with no answer sent.
      {
        const gate = yield* Deferred.make<void>()
        const writing = yield* Deferred.make<void>()
        const { auth, endpoint, port, scope } = yield* start({ gate, writing })
        const reply = Effect.runPromiseExit(
          Effect.tryPromise(() =>
            post(port, `/e/${endpoint["id"]}`, { ...auth, "content-type": "application/json" }, EVENT, "length")
          )
        )
        yield* Deferred.await(writing)
        yield* Scope.close(scope, Exit.void).pipe(Effect.timeout("5 seconds"))
        const exit = yield* Effect.promise(() => reply)
        assert.isTrue(Exit.isFailure(exit), "the client sees the connection closed, not a 202")
      }
    }))
})
