/**
 * The typed client of the API, derived from its definition (`Api.ts`):
 * every route is a method whose input and output are typed and decoded.
 *
 * @example
 * ```ts
 * const client = yield* Client.make({ baseUrl: "http://localhost:8080", apiKey })
 * const endpoint = yield* client.endpoints.create({ payload: { url: "https://example.com/hooks" } })
 * ```
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { Api } from "./Api.ts"

/** A client for a server at `baseUrl`, authenticated with `apiKey` (or an admin token). */
export const make = (options: { readonly baseUrl: string; readonly apiKey?: string | undefined }) =>
  HttpApiClient.make(Api, {
    baseUrl: options.baseUrl,
    transformClient: (client) =>
      options.apiKey === undefined
        ? client
        : HttpClient.mapRequest(client, HttpClientRequest.bearerToken(options.apiKey))
  }).pipe(Effect.withSpan("PromptJang.Client.make"))
