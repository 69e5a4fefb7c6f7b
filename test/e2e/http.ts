/**
 * Talking to the real server in the end-to-end suites: requests with fetch, the JSON error shape of
 * SPEC §2, the inbound signature of the Quick Start, and a local receiver that answers every delivery
 * with a fixed status.
 */
import { assert } from "@effect/vitest"
import { createHmac } from "node:crypto"
import { createServer, type Server } from "node:http"

/** One answer of the server, read whole. */
export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  /** The body parsed as JSON; undefined when it is not JSON. */
  readonly body: unknown
}

/** A request: an API key, and a JSON value (sent as application/json) or raw bytes with their own type. */
export interface RequestOptions {
  readonly key?: string | undefined
  readonly json?: unknown
  readonly raw?: string | Uint8Array<ArrayBuffer> | undefined
  /** The Content-Type of a raw body; none when omitted and the body is bytes. */
  readonly contentType?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
}

const parse = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** Sends one request to `base` + `path` and reads the answer whole. */
export const send = async (
  base: string,
  method: string,
  path: string,
  options: RequestOptions = {}
): Promise<Answer> => {
  const headers: Record<string, string> = { ...options.headers }
  if (options.key !== undefined) headers["authorization"] = `Bearer ${options.key}`
  let body: string | Uint8Array<ArrayBuffer> | undefined
  if (options.json !== undefined) {
    body = JSON.stringify(options.json)
    headers["content-type"] = "application/json"
  } else if (options.raw !== undefined) {
    body = options.raw
    if (options.contentType !== undefined) headers["content-type"] = options.contentType
  }
  const response = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body }) })
  const text = await response.text()
  return { status: response.status, headers: response.headers, text, body: parse(text) }
}

/** Whether `value` is a JSON object. */
export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** `value` as a JSON object; fails the test otherwise. */
export const record = (value: unknown, what = "the body"): Record<string, unknown> => {
  if (!isRecord(value)) return assert.fail(`${what} is not a JSON object: ${JSON.stringify(value)}`)
  return value
}

/** The string field `name` of a JSON object; fails the test otherwise. */
export const text = (value: unknown, name: string): string => {
  const field = record(value)[name]
  if (typeof field !== "string") return assert.fail(`${name} is not a string in ${JSON.stringify(value)}`)
  return field
}

/** The number field `name` of a JSON object; fails the test otherwise. */
export const numeric = (value: unknown, name: string): number => {
  const field = record(value)[name]
  if (typeof field !== "number") return assert.fail(`${name} is not a number in ${JSON.stringify(value)}`)
  return field
}

/** The array field `name` of a JSON object; fails the test otherwise. */
export const list = (value: unknown, name: string): ReadonlyArray<unknown> => {
  const field = record(value)[name]
  if (!Array.isArray(field)) return assert.fail(`${name} is not an array in ${JSON.stringify(value)}`)
  return field
}

/** The error of SPEC §2: `{"error": {"code", "message", "details"?}}`. */
export interface ApiError {
  readonly code: string
  readonly message: string
  readonly details: ReadonlyArray<{ readonly path: string; readonly message: string }>
}

/**
 * Asserts that `answer` is the JSON error `status` / `code` of SPEC §2: a JSON content type, a
 * human message, no stack trace; returns the error.
 */
export const assertError = (answer: Answer, status: number, code: string): ApiError => {
  assert.strictEqual(answer.status, status, `expected ${status} ${code}, got ${answer.status}: ${answer.text}`)
  assert.match(answer.headers.get("content-type") ?? "", /^application\/json\b/, "errors are JSON")
  assert.notInclude(answer.text, "    at ", "a stack trace in the body")
  assert.notMatch(answer.text, /\.ts:\d+:\d+/, "a source location in the body")
  const error = record(record(answer.body)["error"], "error")
  assert.strictEqual(error["code"], code, answer.text)
  const message = error["message"]
  if (typeof message !== "string") return assert.fail(`error.message is not a string: ${answer.text}`)
  assert.isAbove(message.trim().length, 10, "error.message is a sentence")
  const details = error["details"] === undefined ? [] : error["details"]
  if (!Array.isArray(details)) return assert.fail(`error.details is not an array: ${answer.text}`)
  return {
    code,
    message,
    details: details.map((detail) => ({ path: text(detail, "path"), message: text(detail, "message") }))
  }
}

/** The Quick Start's `X-PJ-Signature`: hex HMAC-SHA256 keyed with the whole secret over `"${timestamp}.${body}"`. */
export const signature = (secret: string, timestamp: string, body: string): string =>
  createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")

/** The current Unix time in seconds, plus `offsetSeconds`, as the header value. */
export const unixSeconds = (offsetSeconds = 0): string => String(Math.floor(Date.now() / 1000) + offsetSeconds)

/** One request a receiver answered: its X-PromptJang-Event-Id and when it arrived. */
export interface Delivery {
  readonly eventId: string
  readonly at: number
}

/** A receiver on 127.0.0.1 that answers every request with `status`, and keeps what it got. */
export interface Receiver {
  readonly url: string
  /** The requests so far, in arrival order (the live list). */
  readonly deliveries: ReadonlyArray<Delivery>
  readonly close: () => Promise<void>
}

/** Starts a {@link Receiver}. */
export const startReceiver = (status: number): Promise<Receiver> =>
  new Promise((resolve, reject) => {
    const deliveries: Array<Delivery> = []
    const server: Server = createServer((request, response) => {
      request.resume()
      request.on("end", () => {
        const eventId = request.headers["x-promptjang-event-id"]
        deliveries.push({
          eventId: typeof eventId === "string" ? eventId : "(no X-PromptJang-Event-Id)",
          at: Date.now()
        })
        response.writeHead(status, { "content-type": "text/plain" }).end(`receiver answers ${status}`)
      })
    })
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resolve({
        url: `http://127.0.0.1:${port}/webhooks`,
        deliveries,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections()
            server.close(() => done())
          })
      })
    })
  })
