/**
 * `@promptjang/http`: the PromptJang HTTP API (SPEC §2) as router layers and a
 * web-standard handler.
 *
 * @since 0.1.0
 */
export * as Api from "./Api.ts"
export * as ApiError from "./ApiError.ts"
export * as Client from "./Client.ts"
export * as Ingest from "./Ingest.ts"
export * as Json from "./Json.ts"
export * as Relay from "./Relay.ts"
export { createRelay } from "./Relay.ts"
export * as Routes from "./Routes.ts"
export * as WebHandler from "./WebHandler.ts"
