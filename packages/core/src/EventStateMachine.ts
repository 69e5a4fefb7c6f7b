/**
 * The event lifecycle of SPEC §5 as two pure functions.
 *
 * `decide(state, command)` turns a command into the facts it causes, or a
 * rejection; `project(state, fact)` folds a fact into the state. Storage
 * backends persist the projected state; side effects live in the engine.
 *
 * ```
 * (new) --Accept--> QUEUED --attempt ok--> DELIVERED
 *                     |  \--attempt failed, retry left--> RETRYING --...--> DELIVERED | RETRYING | EXPIRED
 *                     \--endpoint deleted / address blocked--> FAILED
 * DELIVERED | EXPIRED | FAILED --Replay--> QUEUED (cycle + 1, attempts restart at 1)
 * ```
 *
 * @since 0.1.0
 */
import { Data, Option, Result } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Backoff from "./Backoff.ts"
import { type EventState, type EventStatus, isFinal } from "./Domain.ts"

/** What an attempt came to. `fatal` failures (a blocked address) end the cycle as FAILED at once. */
export type AttemptOutcome = "succeeded" | "failed" | "fatal"

/** Commands the state machine decides on. */
export type Command =
  | { readonly _tag: "Accept"; readonly at: number }
  | {
    readonly _tag: "RecordAttempt"
    readonly at: number
    readonly outcome: AttemptOutcome
    readonly schedule: Backoff.Schedule
  }
  | { readonly _tag: "Fail"; readonly at: number; readonly reason: string }
  | { readonly _tag: "Replay"; readonly at: number }

/** Facts: what happened to an event. */
export type Fact =
  | { readonly _tag: "Accepted"; readonly at: number }
  | { readonly _tag: "Delivered"; readonly at: number; readonly cycle: number; readonly attempt: number }
  | {
    readonly _tag: "RetryScheduled"
    readonly at: number
    readonly cycle: number
    readonly attempt: number
    readonly retryAt: number
  }
  | { readonly _tag: "Expired"; readonly at: number; readonly cycle: number; readonly attempt: number }
  | {
    readonly _tag: "Failed"
    readonly at: number
    readonly cycle: number
    readonly attempt: number | null
    readonly reason: string
  }
  | { readonly _tag: "Replayed"; readonly at: number; readonly cycle: number }

/** A command that does not apply to the current state. */
export class InvalidTransition extends Data.TaggedError("InvalidTransition")<{
  readonly from: EventStatus | "NEW"
  readonly command: Command["_tag"]
  readonly message: string
}> {}

const reject = (state: EventState | undefined, command: Command, why: string) =>
  Result.fail(
    new InvalidTransition({
      from: state?.status ?? "NEW",
      command: command._tag,
      message: `${command._tag} is not allowed ${
        state === undefined ? "before the event is accepted" : `in ${state.status}`
      }: ${why}`
    })
  )

/** The facts a command causes in a state, or why it is refused. */
export const decide = (
  state: EventState | undefined,
  command: Command
): Result.Result<NonEmptyReadonlyArray<Fact>, InvalidTransition> => {
  if (command._tag === "Accept") {
    return state === undefined
      ? Result.succeed([{ _tag: "Accepted", at: command.at }])
      : reject(state, command, "the event was already accepted")
  }
  if (state === undefined) return reject(state, command, "the event does not exist yet")
  switch (command._tag) {
    case "RecordAttempt": {
      if (isFinal(state.status)) return reject(state, command, "the event is final until it is replayed")
      const attempt = state.attemptCount + 1
      const base = { at: command.at, cycle: state.cycle, attempt }
      if (command.outcome === "succeeded") return Result.succeed([{ _tag: "Delivered", ...base }])
      if (command.outcome === "fatal") {
        return Result.succeed([{ _tag: "Failed", ...base, reason: "the delivery cannot be attempted" }])
      }
      const delay = Backoff.delayAfter(command.schedule, attempt)
      return Result.succeed([
        Option.isSome(delay)
          ? { _tag: "RetryScheduled", ...base, retryAt: command.at + delay.value }
          : { _tag: "Expired", ...base }
      ])
    }
    case "Fail": {
      if (isFinal(state.status)) return reject(state, command, "the event is already final")
      return Result.succeed([{
        _tag: "Failed",
        at: command.at,
        cycle: state.cycle,
        attempt: null,
        reason: command.reason
      }])
    }
    case "Replay": {
      if (!isFinal(state.status)) {
        return reject(state, command, "only DELIVERED, EXPIRED and FAILED events can be replayed")
      }
      return Result.succeed([{ _tag: "Replayed", at: command.at, cycle: state.cycle + 1 }])
    }
  }
}

/** The state after a fact. */
export const project = (state: EventState | undefined, fact: Fact): EventState => {
  switch (fact._tag) {
    case "Accepted":
      return { status: "QUEUED", cycle: 1, attemptCount: 0, nextAttemptAt: fact.at, updatedAt: fact.at }
    case "Replayed":
      return { status: "QUEUED", cycle: fact.cycle, attemptCount: 0, nextAttemptAt: fact.at, updatedAt: fact.at }
    case "Delivered":
      return {
        status: "DELIVERED",
        cycle: fact.cycle,
        attemptCount: fact.attempt,
        nextAttemptAt: null,
        updatedAt: fact.at
      }
    case "RetryScheduled":
      return {
        status: "RETRYING",
        cycle: fact.cycle,
        attemptCount: fact.attempt,
        nextAttemptAt: fact.retryAt,
        updatedAt: fact.at
      }
    case "Expired":
      return {
        status: "EXPIRED",
        cycle: fact.cycle,
        attemptCount: fact.attempt,
        nextAttemptAt: null,
        updatedAt: fact.at
      }
    case "Failed":
      return {
        status: "FAILED",
        cycle: fact.cycle,
        attemptCount: fact.attempt ?? state?.attemptCount ?? 0,
        nextAttemptAt: null,
        updatedAt: fact.at
      }
  }
}

/** Decides and folds in one step: the new state and the facts, or the rejection. */
export const transition = (
  state: EventState | undefined,
  command: Command
): Result.Result<{ readonly state: EventState; readonly facts: ReadonlyArray<Fact> }, InvalidTransition> =>
  Result.map(decide(state, command), (facts) => {
    const [first, ...rest] = facts
    return { facts, state: rest.reduce(project, project(state, first)) }
  })
