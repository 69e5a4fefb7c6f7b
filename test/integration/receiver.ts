/**
 * A webhook receiver on 127.0.0.1 for the integration suites: it answers 200
 * (after an optional delay, so that deliveries stay in flight for a while) and
 * records every delivery it sees, in arrival order.
 */
import { Effect } from "effect"
import { createServer, type IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"

/** One request as the receiver saw it on arrival. */
export interface ReceivedDelivery {
  readonly eventId: string
  readonly attempt: number
  /** Which worker sent it (the workers of these suites put their name in `User-Agent`). */
  readonly userAgent: string
}

export interface ReceiverOptions {
  /** How long each request waits before its 200. */
  readonly delayMs?: number | undefined
  /** Called on arrival, after the delivery is recorded and before it is answered. */
  readonly onDelivery?: ((delivery: ReceivedDelivery, seen: number) => void) | undefined
}

export interface Receiver {
  readonly url: string
  /** Every delivery so far, in arrival order. */
  readonly deliveries: ReadonlyArray<ReceivedDelivery>
}

const header = (request: IncomingMessage, name: string): string => {
  const value = request.headers[name]
  return Array.isArray(value) ? value.join(",") : value ?? ""
}

/** A receiver for as long as the scope lives. */
export const make = (options: ReceiverOptions = {}) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const deliveries: Array<ReceivedDelivery> = []
      const server = createServer((request, response) => {
        const delivery: ReceivedDelivery = {
          eventId: header(request, "x-promptjang-event-id"),
          attempt: Number(header(request, "x-promptjang-attempt")),
          userAgent: header(request, "user-agent")
        }
        deliveries.push(delivery)
        options.onDelivery?.(delivery, deliveries.length)
        // Drain the body so that the connection can be reused, then answer.
        request.resume()
        request.on("end", () => {
          const answer = () => response.writeHead(200, { "content-type": "text/plain" }).end("OK")
          if (options.delayMs === undefined || options.delayMs <= 0) answer()
          else setTimeout(answer, options.delayMs)
        })
      })
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
      const { port } = server.address() as AddressInfo
      return { server, receiver: { url: `http://127.0.0.1:${port}/webhooks`, deliveries } satisfies Receiver }
    }),
    ({ server }) =>
      Effect.promise(() =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        })
      )
  ).pipe(Effect.map(({ receiver }) => receiver))

/** How many times each event id arrived. */
export const countById = (deliveries: ReadonlyArray<ReceivedDelivery>): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const { eventId } of deliveries) counts.set(eventId, (counts.get(eventId) ?? 0) + 1)
  return counts
}
