/**
 * The Node `HttpClient` that delivers webhooks (SPEC §4).
 *
 * Built on an undici `Agent`: one keep-alive HTTP/1.1 pool per origin with a
 * bounded number of connections and no pipelining. Redirects are never
 * followed (a 3xx comes back as the response, which the dispatcher records as
 * a failure), and interrupting a request (the dispatcher's timeout) aborts it.
 *
 * The SSRF guard runs where the socket is opened, on the address actually
 * connected to: a host name is resolved once, every address it resolves to is
 * checked with `Targets.isBlockedAddress`, and the socket connects to those
 * checked addresses, so a second resolution (DNS rebinding) cannot swap them.
 * IP-literal URLs, which Node connects to without a lookup, are checked before
 * connecting. A refusal fails the request with an `Errors.BlockedAddress` as
 * its cause, which `Dispatcher.classifyTransportError` reads as
 * `blocked_address`; DNS and connection errors keep their Node codes.
 *
 * @example
 * ```ts
 * import { DeliveryClient } from "@promptjang/node"
 *
 * Engine.layerRunning.pipe(Layer.provide([Memory.layer, DeliveryClient.layer({ allowPrivateTargets: false })]))
 * ```
 *
 * @since 0.1.0
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as CoreDispatcher from "@promptjang/core/Dispatcher"
import * as Errors from "@promptjang/core/Errors"
import * as Targets from "@promptjang/core/Targets"
import { Context, Effect, Layer } from "effect"
import { HttpClient } from "effect/http"
import * as Dns from "node:dns"
import { isIP, type LookupFunction } from "node:net"
import { Agent, buildConnector, type Dispatcher, Pool } from "undici"

/**
 * Resolves a host name to all of its addresses, with the signature of
 * `dns.lookup(hostname, { all: true }, callback)` (the default).
 */
export type Resolver = (
  hostname: string,
  options: Dns.LookupAllOptions,
  callback: (error: NodeJS.ErrnoException | null, addresses: Array<Dns.LookupAddress>) => void
) => void

/** The settings of the delivery client. */
export interface Options {
  /** `PROMPTJANG_ALLOW_PRIVATE_TARGETS`: when true, the SSRF guard lets every address through. */
  readonly allowPrivateTargets: boolean
  /**
   * Most open connections per origin: the dispatcher's per-endpoint concurrency, so that each request in flight
   * to an endpoint has a connection of its own (default: `Dispatcher.defaultOptions.perEndpointConcurrency`).
   */
  readonly connections?: number
  /** How long an idle connection is kept for reuse, unless the receiver asks for less (default 4000). */
  readonly keepAliveTimeoutMs?: number
  /** How host names are resolved (default `dns.lookup`); a seam for tests. */
  readonly resolve?: Resolver
}

const blocked = (url: string, host: string, address: string) =>
  new Errors.BlockedAddress({
    url,
    address,
    message: `${host === address ? host : `${host} resolves to ${address}, which`} is a loopback, private, ` +
      `link-local or metadata address that deliveries may not target; set ${Targets.SETTING}=true on the server ` +
      `to allow private targets.`
  })

const notFound = (hostname: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
    code: "ENOTFOUND",
    syscall: "getaddrinfo",
    hostname
  })

/**
 * The `lookup` given to `net.connect`/`tls.connect`: resolves the host once
 * (all addresses), refuses the connection with `Errors.BlockedAddress` when
 * any address is blocked (unless private targets are allowed), and answers
 * with the checked addresses, which are the ones the socket then connects to.
 *
 * @param url the origin being connected to, named in a refusal
 */
export const makeLookup = (options: {
  readonly allowPrivateTargets: boolean
  readonly url: string
  readonly resolve?: Resolver
}): LookupFunction => {
  const resolve = options.resolve ?? Dns.lookup
  return (hostname, lookupOptions, callback) =>
    resolve(hostname, { all: true, family: lookupOptions.family ?? 0, hints: lookupOptions.hints ?? 0 }, (
      error,
      addresses
    ) => {
      if (error !== null) return callback(error, [])
      const first = addresses[0]
      if (first === undefined) return callback(notFound(hostname), [])
      if (!options.allowPrivateTargets) {
        // One blocked address refuses them all: with several, which one is used is not ours to choose.
        const refused = addresses.find((entry) => Targets.isBlockedAddress(entry.address))
        if (refused !== undefined) return callback(blocked(options.url, hostname, refused.address), [])
      }
      if (lookupOptions.all === true) callback(null, addresses)
      else callback(null, first.address, first.family)
    })
}

/**
 * The connector of one origin's pool: IP literals (connected to without a
 * lookup) are checked here, host names by {@link makeLookup}.
 */
const makeConnector = (url: string, options: Options): buildConnector.connector => {
  const connect = buildConnector({
    lookup: makeLookup({ ...options, url }),
    allowH2: false
  })
  if (options.allowPrivateTargets) return connect
  return (connectOptions, callback) => {
    const { hostname } = connectOptions
    if (isIP(hostname) !== 0 && Targets.isBlockedAddress(hostname)) {
      callback(blocked(url, hostname, hostname), null)
      return
    }
    connect(connectOptions, callback)
  }
}

/** The undici `Agent` of deliveries: one guarded pool per origin, destroyed (connections closed) with the scope. */
const makeAgent = (options: Options) => {
  const poolOptions: Pool.Options = {
    connections: options.connections ?? CoreDispatcher.defaultOptions.perEndpointConcurrency,
    pipelining: 1,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 4_000,
    allowH2: false
  }
  return Effect.acquireRelease(
    Effect.sync(() =>
      new Agent({
        ...poolOptions,
        // One pool per origin, each with its own guarded connector (and TLS session cache, as undici does).
        factory: (origin) => new Pool(origin, { ...poolOptions, connect: makeConnector(String(origin), options) })
      })
    ),
    (agent) => Effect.promise(() => agent.destroy())
  )
}

const textDecoder = new TextDecoder()

/** Reads at most `limit` bytes of a response body as text, then lets the rest go. */
const readText = (body: Dispatcher.ResponseData["body"], limit: number): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const done = () => {
      body.off("data", onData)
      resolve(textDecoder.decode(Buffer.concat(chunks, size)))
    }
    const onData = (chunk: Buffer) => {
      const part = chunk.byteLength > limit - size ? chunk.subarray(0, limit - size) : chunk
      chunks.push(part)
      size += part.byteLength
      if (size >= limit) {
        // Enough: the rest is not read, and the connection is not reused.
        body.destroy()
        done()
      }
    }
    body.on("data", onData)
    body.once("end", done)
    body.once("error", reject)
  })

/**
 * The delivery transport over an undici dispatcher: a POST straight through undici, without effect's
 * `HttpClient` in between (which costs about half as much again per delivery, and builds an abort error
 * for every response it streams). Redirects are not followed; interruption (the dispatcher's timeout)
 * aborts the request.
 */
export const makeTransport = (dispatcher: Dispatcher): CoreDispatcher.Transport => (delivery, maxResponseBytes) =>
  Effect.callback<CoreDispatcher.DeliveryResponse>((resume, signal) => {
    const failed = (error: unknown) =>
      resume(
        Effect.succeed({ statusCode: null, responseBody: null, error: CoreDispatcher.classifyTransportError(error) })
      )
    let url: URL
    try {
      url = new URL(delivery.url)
    } catch (error) {
      return failed(error)
    }
    dispatcher.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: "POST",
      headers: delivery.headers,
      body: delivery.body,
      signal
    }, (error, data) => {
      if (error !== null) return failed(error)
      readText(data.body, maxResponseBytes).then(
        (text) => resume(Effect.succeed({ statusCode: data.statusCode, responseBody: text, error: null })),
        // A body cut off by a broken connection still leaves the status code.
        () => resume(Effect.succeed({ statusCode: data.statusCode, responseBody: null, error: null }))
      )
    })
  })

/**
 * The delivery transport and the delivery `HttpClient`, over one undici `Agent` that is destroyed (open
 * connections closed) when the layer closes. The dispatcher uses the transport; the `HttpClient` serves
 * anything else that sends with the same guard.
 *
 * @example
 * ```ts
 * const client = DeliveryClient.layer({ allowPrivateTargets: config.allowPrivateTargets, connections: 32 })
 * ```
 */
export const layer = (options: Options): Layer.Layer<HttpClient.HttpClient> =>
  Layer.effectContext(Effect.gen(function*() {
    const agent = yield* makeAgent(options)
    const client = yield* NodeHttpClient.makeUndici.pipe(Effect.provideService(NodeHttpClient.Dispatcher, agent))
    return Context.make(HttpClient.HttpClient, client).pipe(
      Context.add(CoreDispatcher.CurrentTransport, makeTransport(agent))
    )
  }))
