/**
 * A scripted receiver: an `HttpClient` whose answers a test sets per URL.
 *
 * Each URL has a script of responses used in order; the last one repeats.
 * A response is a status and body (optionally after a delay on the test
 * clock), a hang (no answer until the dispatcher's timeout), or a connection
 * error. Unscripted URLs answer `200 OK`. Every request is recorded with its
 * headers and exact body bytes.
 *
 * @since 0.1.0
 */
import { Errors } from "@promptjang/core"
import { Clock, type Duration, Effect } from "effect"
import { HttpClient, HttpClientError, HttpClientResponse } from "effect/http"

/** One scripted answer. */
export type Reply =
  | {
    readonly status: number
    readonly body?: string | undefined
    readonly headers?: Record<string, string>
    readonly delay?: Duration.Input | undefined
  }
  | { readonly hang: true }
  | { readonly error: "connection_refused" | "connection_reset" | "dns" | "tls" | "blocked_address" }

/** A request the receiver got. */
export interface ReceivedRequest {
  readonly url: string
  readonly method: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  /** Test-clock time of arrival, epoch milliseconds. */
  readonly at: number
}

/** The receiver's controls. */
export interface Receiver {
  /** Scripts the answers of `url`, in order; the last repeats. */
  readonly script: (url: string, ...replies: ReadonlyArray<Reply>) => void
  /** Requests received, oldest first (for one URL, or all). */
  readonly requests: (url?: string) => ReadonlyArray<ReceivedRequest>
  /** Requests that are waiting on a delay or a hang right now. */
  readonly pending: () => number
  /** The `HttpClient` to give the engine. */
  readonly client: HttpClient.HttpClient
}

const ERROR_CODES = {
  connection_refused: "ECONNREFUSED",
  connection_reset: "ECONNRESET",
  dns: "ENOTFOUND",
  tls: "ERR_TLS_CERT_ALTNAME_INVALID"
} as const

const NULL_BODY_STATUSES = new Set([101, 204, 205, 304])

/** A fresh receiver with nothing scripted. */
export const make = (): Receiver => {
  const scripts = new Map<string, { replies: ReadonlyArray<Reply>; next: number }>()
  const received: Array<ReceivedRequest> = []
  let pending = 0

  const replyFor = (url: string): Reply => {
    const script = scripts.get(url)
    if (script === undefined || script.replies.length === 0) return { status: 200, body: "OK" }
    const reply = script.replies[Math.min(script.next, script.replies.length - 1)] ?? { status: 200, body: "OK" }
    script.next++
    return reply
  }

  const waiting = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.acquireUseRelease(Effect.sync(() => pending++), () => effect, () => Effect.sync(() => pending--))

  const client = HttpClient.make((request, url) =>
    Effect.gen(function*() {
      const body = request.body._tag === "Uint8Array" ? request.body.body : new Uint8Array()
      const at = yield* Clock.currentTimeMillis
      received.push({ url: url.href, method: request.method, headers: { ...request.headers }, body, at })
      const reply = replyFor(url.href)
      if ("hang" in reply) return yield* waiting(Effect.never)
      if ("error" in reply) {
        // A blocked address is what a guarded client reports when the URL resolves to a private address.
        const cause = reply.error === "blocked_address"
          ? new Errors.BlockedAddress({ url: url.href, address: "10.0.0.1", message: "scripted blocked address" })
          : Object.assign(new Error(`scripted ${reply.error}`), { code: ERROR_CODES[reply.error] })
        return yield* new HttpClientError.HttpClientError({
          reason: new HttpClientError.TransportError({ request, cause, description: cause.message })
        })
      }
      if (reply.delay !== undefined) yield* waiting(Effect.sleep(reply.delay))
      return HttpClientResponse.fromWeb(
        request,
        new Response(NULL_BODY_STATUSES.has(reply.status) ? null : reply.body ?? "", {
          status: reply.status,
          headers: reply.headers ?? {}
        })
      )
    })
  )

  return {
    script: (url, ...replies) => void scripts.set(new URL(url).href, { replies, next: 0 }),
    requests: (url) => {
      if (url === undefined) return [...received]
      const href = new URL(url).href
      return received.filter((r) => r.url === href)
    },
    pending: () => pending,
    client
  }
}
