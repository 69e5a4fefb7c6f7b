/**
 * `@promptjang/core`: the PromptJang webhook delivery engine.
 *
 * @since 0.1.0
 */
export * as Accounts from "./Accounts.ts"
export * as Backoff from "./Backoff.ts"
export * as Dispatcher from "./Dispatcher.ts"
export * as Domain from "./Domain.ts"
export * as Endpoints from "./Endpoints.ts"
export * as Engine from "./Engine.ts"
export * as Entropy from "./Entropy.ts"
export * as Errors from "./Errors.ts"
export * as Events from "./Events.ts"
export * as EventStateMachine from "./EventStateMachine.ts"
export * as Ids from "./Ids.ts"
export * as Ingestion from "./Ingestion.ts"
export * as Lifecycle from "./Lifecycle.ts"
export * as Memory from "./Memory.ts"
export * as MemoryStore from "./MemoryStore.ts"
export * as Metrics from "./Metrics.ts"
export * as Queue from "./Queue.ts"
export * as Quota from "./Quota.ts"
export * as Replay from "./Replay.ts"
export * as Retention from "./Retention.ts"
export * as Signal from "./Signal.ts"
export * as Signing from "./Signing.ts"
export * as Storage from "./Storage.ts"
export * as Targets from "./Targets.ts"
