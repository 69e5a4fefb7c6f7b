/**
 * `@promptjang/test-host`: run the PromptJang engine in memory under the
 * `TestClock`, against a scripted receiver.
 *
 * @since 0.1.0
 */
export * as Receiver from "./Receiver.ts"
export { makeTestHost, type SendOptions, type TestHost, type TestHostOptions } from "./TestHost.ts"
