/**
 * The direct ingest path of the Node server: `POST /e/:endpoint_id` and `POST /api/v1/e/:endpoint_id`
 * answered from node:http's request and response, without effect's HTTP server in between (its request
 * wrapper, router and response writer cost about a third of the server's CPU per event). The answer comes
 * from the same `Ingest` route function the router serves, so both paths answer alike.
 *
 * Only the common case takes this path: a body declared with `Content-Length` of at most
 * `MAX_DIRECT_BODY` bytes, on an exact ingest path. Anything else (chunked or larger bodies, which may
 * need a 413 before they are read, `Expect: 100-continue`, encoded or odd paths) goes through the router.
 *
 * @since 0.1.0
 */
import { Ingest } from "@promptjang/http"
import { Effect, Fiber } from "effect"
import { type IncomingMessage, Server, type ServerOptions, type ServerResponse } from "node:http"

/** The largest declared body taken by the direct path; larger ones go through the router. */
export const MAX_DIRECT_BODY = 64 * 1024

/** The ingest paths, with their endpoint id (ids are `ep_` plus base32; anything else is the router's). */
const INGEST_PATH = /^\/(?:api\/v1\/)?e\/([A-Za-z0-9_]+)(?:\?[^#]*)?$/

/** Serves a request when it is one the direct path takes; false leaves it to the router. */
export type DirectIngest = (request: IncomingMessage, response: ServerResponse) => boolean

interface ReadyRequest {
  readonly request: IncomingMessage
  readonly response: ServerResponse
  readonly endpointId: string
  readonly body: Uint8Array
}

/**
 * The direct path over the engine in context. When its scope closes it takes no more requests and
 * interrupts those still under way, as the router does with its own after the server's graceful shutdown:
 * a host closes it after its HTTP server (which waits for answers in flight) and before the engine. An
 * interrupted request gets no answer, so its client retries; nothing answered 202 is affected.
 */
export const make = Effect.gen(function*() {
  const answerIngest = yield* Ingest.make
  const run = Effect.runForkWith(yield* Effect.context<never>())
  const underWay = new Set<Fiber.Fiber<unknown>>()
  // Requests whose body has arrived, served together once the I/O callbacks of this loop turn are done.
  let ready: Array<ReadyRequest> = []
  let open = true
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      open = false
      for (const waiting of ready.splice(0)) waiting.response.destroy()
      return Fiber.interruptAll(Array.from(underWay))
    })
  )

  const serve = ({ body, endpointId, request, response }: ReadyRequest) => {
    const fiber = run(answerIngest({
      endpointId,
      header: (name) => {
        const value = request.headers[name]
        return Array.isArray(value) ? value.join(", ") : value
      },
      body: (limit) => Effect.succeed(body.byteLength > limit ? undefined : body)
    }))
    underWay.add(fiber)
    fiber.addObserver((exit) => {
      underWay.delete(fiber)
      // An answer is always a success; an interruption (shutdown) leaves the socket to the server.
      if (exit._tag !== "Success") return void response.destroy()
      const answer = exit.value
      // With its length declared, the answer goes out in one write, not in chunked framing.
      response.writeHead(answer.status, {
        ...answer.headers,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(answer.body)
      }).end(answer.body)
    })
  }

  /**
   * Serves the requests that became ready during this loop turn, one after another. Running the ingest
   * code back to back, instead of between the socket reads and HTTP parsing of other requests, keeps it
   * warm in the CPU's caches: measured with 64 connections, ~10% less server CPU per event. The requests
   * of one turn also go into the same group commit either way.
   */
  const serveReady = () => {
    const batch = ready
    ready = []
    for (const waiting of batch) {
      if (open) serve(waiting)
      else waiting.response.destroy()
    }
  }

  const direct: DirectIngest = (request, response) => {
    if (!open || request.method !== "POST") return false
    const path = INGEST_PATH.exec(request.url ?? "")
    const declared = request.headers["content-length"]
    if (
      path === null || declared === undefined || request.headers["transfer-encoding"] !== undefined ||
      request.headers["expect"] !== undefined
    ) {
      return false
    }
    const length = Number(declared)
    if (!Number.isInteger(length) || length < 0 || length > MAX_DIRECT_BODY) return false
    const endpointId = path[1] ?? ""
    // The body is copied out of the chunks, which may be views of a larger buffer that would stay alive with
    // them. Small bodies come from Node's shared allocation pool instead of a malloc of their own each; the
    // buffer is not zeroed, and it is used only once every byte of it has been written.
    const body = Buffer.allocUnsafe(length)
    let received = 0
    request.on("data", (chunk: Buffer) => {
      if (received + chunk.byteLength <= length) body.set(chunk, received)
      received += chunk.byteLength
    })
    // A client that goes away mid-body gets nothing stored and no answer.
    request.on("error", () => undefined)
    request.on("end", () => {
      if (received !== length) return void response.destroy()
      if (ready.push({ request, response, endpointId, body }) === 1) setImmediate(serveReady)
    })
    return true
  }
  return direct
})

/** A node:http server whose requests go to `direct` first, then to the listeners (the router). */
export const server = (direct: DirectIngest, options: ServerOptions = {}): Server =>
  new DirectIngestServer(direct, options)

class DirectIngestServer extends Server {
  readonly #direct: DirectIngest
  constructor(direct: DirectIngest, options: ServerOptions) {
    super(options)
    this.#direct = direct
  }
  override emit(event: string, ...args: Array<unknown>): boolean {
    if (event === "request" && this.#direct(args[0] as IncomingMessage, args[1] as ServerResponse)) return true
    return super.emit(event, ...args)
  }
}
