/**
 * The API as a web-standard `(Request) => Promise<Response>` handler, to mount
 * inside any app (node:http, Bun, Deno, Hono, Next.js route handlers...).
 *
 * @example
 * ```ts
 * const api = WebHandler.make(Engine.layerRunning.pipe(Layer.provide([Memory.layer, FetchHttpClient.layer])))
 * const response = await api.handler(new Request("http://localhost/api/v1/usage", { headers }))
 * await api.dispose()
 * ```
 *
 * @since 0.1.0
 */
import type { Engine } from "@promptjang/core"
import { Layer } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import * as Routes from "./Routes.ts"

/** A mounted API: the handler, and `dispose` to stop the engine behind it. */
export interface WebHandler {
  readonly handler: (request: Request) => Promise<Response>
  readonly dispose: () => Promise<void>
}

/** Serves the API over the given engine layer (`Engine.layer` or `Engine.layerRunning` with its backends). */
export const make = <E>(
  engine: Layer.Layer<Engine.Services, E>,
  options: Partial<Routes.ApiOptions> & {
    /** The path the API is mounted under (e.g. `/webhooks`); it is removed before routing. */
    readonly basePath?: string | undefined
  } = {}
): WebHandler => {
  const base = (options.basePath ?? "").replace(/\/+$/, "")
  const { dispose, handler } = HttpRouter.toWebHandler(
    Routes.layer.pipe(
      Layer.provide(engine),
      Layer.provide(Layer.succeed(Routes.Options, { adminToken: options.adminToken })),
      Layer.provide(HttpServer.layerServices)
    ),
    { disableLogger: true }
  )
  const strip = (request: Request): Request => {
    if (base === "") return request
    const url = new URL(request.url)
    if (!url.pathname.startsWith(base)) return request
    url.pathname = url.pathname.slice(base.length) || "/"
    return new Request(url, request)
  }
  return { handler: (request) => handler(strip(request), undefined), dispose }
}
