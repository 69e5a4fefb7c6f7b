/**
 * `@promptjang/node`: what a Node host of the engine needs beyond the web-standard pieces: the delivery
 * client, with keep-alive pools per endpoint and the SSRF guard applied to the address actually connected to.
 *
 * @since 0.1.0
 */
export * as DeliveryClient from "./DeliveryClient.ts"
