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
 * import * as DeliveryClient from "./DeliveryClient.ts"
 *
 * Dispatcher.layer.pipe(Layer.provide(DeliveryClient.layer({ allowPrivateTargets: false })))
 * ```
 *
 * @since 0.1.0
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Errors from "@promptjang/core/Errors"
import * as Targets from "@promptjang/core/Targets"
import type { Layer } from "effect"
import type { HttpClient } from "effect/http"
import * as Dns from "node:dns"
import { isIP, type LookupFunction } from "node:net"
import { buildConnector, Pool } from "undici"

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
  /** Most open connections per origin (default 16, the dispatcher's default per-endpoint concurrency). */
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

/**
 * The delivery `HttpClient` with its undici `Agent`, which is destroyed (open
 * connections closed) when the layer closes.
 *
 * @example
 * ```ts
 * const client = DeliveryClient.layer({ allowPrivateTargets: config.allowPrivateTargets, connections: 16 })
 * ```
 */
export const layer = (options: Options): Layer.Layer<HttpClient.HttpClient> => {
  const poolOptions: Pool.Options = {
    connections: options.connections ?? 16,
    pipelining: 1,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 4_000,
    allowH2: false
  }
  return NodeHttpClient.layerUndiciOptions({
    ...poolOptions,
    // One pool per origin, each with its own guarded connector (and TLS session cache, as undici does).
    factory: (origin) => {
      const url = String(origin)
      return new Pool(origin, { ...poolOptions, connect: makeConnector(url, options) })
    }
  })
}
