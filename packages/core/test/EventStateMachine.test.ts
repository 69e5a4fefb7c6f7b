import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Result, Schema } from "effect"
import * as Backoff from "../src/Backoff.ts"
import { type EventState, isFinal } from "../src/Domain.ts"
import * as EventStateMachine from "../src/EventStateMachine.ts"
import type { AttemptOutcome, Command, Fact } from "../src/EventStateMachine.ts"

const SECOND = 1_000
// 2026-05-26T12:00:00.000Z
const T0 = Date.UTC(2026, 4, 26, 12)
// The FAQ's delays, written out independently of Backoff.defaultSchedule.
const FAQ_DELAYS = [60 * SECOND, 120 * SECOND, 240 * SECOND, 480 * SECOND, 960 * SECOND]

const accept = (at: number): Command => ({ _tag: "Accept", at })
const attempt = (at: number, outcome: AttemptOutcome, schedule = Backoff.defaultSchedule): Command => ({
  _tag: "RecordAttempt",
  at,
  outcome,
  schedule
})
const fail = (at: number, reason = "endpoint deleted"): Command => ({ _tag: "Fail", at, reason })
const replay = (at: number): Command => ({ _tag: "Replay", at })

/** Folds commands that must all be accepted; returns the final state and every fact. */
const run = (commands: ReadonlyArray<Command>) => {
  let state: EventState | undefined = undefined
  const facts: Array<Fact> = []
  for (const command of commands) {
    const result = EventStateMachine.transition(state, command)
    if (Result.isFailure(result)) return assert.fail(`${command._tag} was refused: ${result.failure.message}`)
    state = result.success.state
    facts.push(...result.success.facts)
  }
  if (state === undefined) return assert.fail("no command was given")
  return { state, facts }
}

const refusal = (state: EventState | undefined, command: Command) => {
  const result = EventStateMachine.transition(state, command)
  if (Result.isSuccess(result)) {
    return assert.fail(`expected ${command._tag} to be refused, got ${JSON.stringify(result.success.facts)}`)
  }
  return result.failure
}

const attemptOf = (fact: Fact): number | null => {
  switch (fact._tag) {
    case "Delivered":
    case "RetryScheduled":
    case "Expired":
    case "Failed":
      return fact.attempt
    case "Accepted":
    case "Replayed":
      return null
  }
}

// ---------------------------------------------------------------------------
// Random command sequences: Accept, then commands at increasing times.

/** One step of a generated run: `roll` picks the command (biased towards failed attempts), `gapMs` the time since the last one. */
const Step = Schema.Struct({
  roll: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 99 })),
  gapMs: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 2_000 * SECOND }))
})

const commandOf = (roll: number, at: number): Command =>
  roll < 50
    ? attempt(at, "failed")
    : roll < 65
    ? attempt(at, "succeeded")
    : roll < 70
    ? attempt(at, "fatal")
    : roll < 75
    ? fail(at)
    : roll < 97
    ? replay(at)
    : accept(at)

const Run = Schema.Struct({
  start: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 4_000_000_000_000 })),
  steps: Schema.Array(Step).check(Schema.isBetweenLength(0, 80))
})

const Commands = Arbitrary.map(Arbitrary.schema(Run), ({ start, steps }): ReadonlyArray<Command> => {
  let at = start
  const commands: Array<Command> = [accept(at)]
  for (const { gapMs, roll } of steps) {
    at += gapMs
    commands.push(commandOf(roll, at))
  }
  return commands
})

interface Step {
  readonly command: Command
  readonly before: EventState | undefined
  readonly result: Result.Result<
    { readonly state: EventState; readonly facts: ReadonlyArray<Fact> },
    EventStateMachine.InvalidTransition
  >
}

/** Folds with `transition`, keeping the state of accepted commands only, and records every step. */
const trace = (commands: ReadonlyArray<Command>): ReadonlyArray<Step> => {
  let state: EventState | undefined = undefined
  const steps: Array<Step> = []
  for (const command of commands) {
    const result = EventStateMachine.transition(state, command)
    steps.push({ command, before: state, result })
    if (Result.isSuccess(result)) state = result.success.state
  }
  return steps
}

const accepted = (steps: ReadonlyArray<Step>) =>
  steps.flatMap(({ before, command, result }) =>
    Result.isSuccess(result) ? [{ before, command, state: result.success.state, facts: result.success.facts }] : []
  )

const properties = { arbitrary: { runs: 400, size: 80 } }

describe("EventStateMachine", () => {
  describe("on random command sequences", () => {
    it.effect("generates sequences that reach every transition the properties check", () =>
      Effect.gen(function*() {
        const samples = yield* Arbitrary.sampleEffect(Commands, { count: 400, seed: 1, size: 80 })
        const seen = new Set<string>()
        for (const commands of samples) {
          for (const { before, command, result } of trace(commands)) {
            const outcome = Result.isSuccess(result)
              ? result.success.facts.map((fact) => fact._tag).join("+")
              : "refused"
            seen.add(`${before?.status ?? "NEW"} ${command._tag} ${outcome}`)
          }
        }
        for (
          const transition of [
            "NEW Accept Accepted",
            "QUEUED Accept refused",
            "QUEUED RecordAttempt Delivered",
            "QUEUED RecordAttempt RetryScheduled",
            "QUEUED RecordAttempt Failed",
            "QUEUED Fail Failed",
            "QUEUED Replay refused",
            "RETRYING RecordAttempt RetryScheduled",
            "RETRYING RecordAttempt Expired",
            "RETRYING RecordAttempt Delivered",
            "RETRYING Fail Failed",
            "RETRYING Replay refused",
            "DELIVERED Replay Replayed",
            "DELIVERED RecordAttempt refused",
            "EXPIRED Replay Replayed",
            "EXPIRED RecordAttempt refused",
            "EXPIRED Fail refused",
            "FAILED Replay Replayed",
            "FAILED RecordAttempt refused"
          ]
        ) {
          assert.isTrue(seen.has(transition), `the generator produces ${transition}`)
        }
      }))

    it.prop(
      "numbers attempts 1, 2, 3, ... within each cycle and restarts at 1 after each replay",
      [Commands],
      ([commands]) => {
        let cycle = 0
        let next = 1
        for (const { facts } of accepted(trace(commands))) {
          for (const fact of facts) {
            if (fact._tag === "Accepted") {
              cycle = 1
              next = 1
            } else if (fact._tag === "Replayed") {
              assert.strictEqual(fact.cycle, cycle + 1)
              cycle = fact.cycle
              next = 1
            } else {
              assert.strictEqual(fact.cycle, cycle, `${fact._tag} belongs to the current cycle`)
              const number = attemptOf(fact)
              if (number !== null) {
                assert.strictEqual(number, next, `${fact._tag} in cycle ${cycle}`)
                next += 1
              }
            }
          }
        }
      },
      properties
    )

    it.prop("leaves DELIVERED, EXPIRED and FAILED only through Replay", [Commands], ([commands]) => {
      for (const { before, command, result } of trace(commands)) {
        if (before === undefined || !isFinal(before.status)) continue
        if (command._tag === "Replay") {
          assert.isTrue(Result.isSuccess(result), `Replay of ${before.status} is accepted`)
          if (Result.isSuccess(result)) assert.strictEqual(result.success.state.status, "QUEUED")
        } else {
          assert.isTrue(Result.isFailure(result), `${command._tag} on ${before.status} is refused`)
          if (Result.isFailure(result)) {
            assert.instanceOf(result.failure, EventStateMachine.InvalidTransition)
            assert.strictEqual(result.failure.from, before.status)
            assert.strictEqual(result.failure.command, command._tag)
          }
        }
      }
    }, properties)

    it.prop("refuses to replay a QUEUED or RETRYING event", [Commands], ([commands]) => {
      for (const { before, command, result } of trace(commands)) {
        if (command._tag !== "Replay" || before === undefined || isFinal(before.status)) continue
        assert.isTrue(Result.isFailure(result), `Replay of ${before.status} is refused`)
        if (Result.isFailure(result)) {
          assert.strictEqual(result.failure.from, before.status)
          assert.strictEqual(result.failure.command, "Replay")
        }
      }
    }, properties)

    it.prop("accepts an event only once, and attempts and failures whenever it is QUEUED or RETRYING", [Commands], ([
      commands
    ]) => {
      for (const { before, command, result } of trace(commands)) {
        if (command._tag === "Accept") {
          assert.strictEqual(Result.isSuccess(result), before === undefined, `Accept on ${before?.status ?? "NEW"}`)
        } else if (command._tag !== "Replay" && before !== undefined && !isFinal(before.status)) {
          assert.isTrue(Result.isSuccess(result), `${command._tag} on ${before.status} is accepted`)
        }
      }
    }, properties)

    it.prop("makes at most 6 attempts per cycle with the default schedule, and the 6th failure expires the event", [
      Commands
    ], ([commands]) => {
      for (const { before, command, facts, state } of accepted(trace(commands))) {
        assert.isAtMost(state.attemptCount, 6)
        if (command._tag !== "RecordAttempt" || command.outcome !== "failed" || before === undefined) continue
        const number = before.attemptCount + 1
        if (number === 6) {
          assert.deepStrictEqual(facts, [{ _tag: "Expired", at: command.at, cycle: before.cycle, attempt: 6 }])
          assert.strictEqual(state.status, "EXPIRED")
        } else {
          assert.isBelow(number, 6)
          assert.strictEqual(state.status, "RETRYING")
        }
      }
    }, properties)

    it.prop("grows the cycle by exactly one per replay and keeps it otherwise", [Commands], ([commands]) => {
      for (const { before, facts, state } of accepted(trace(commands))) {
        const replayed = facts.filter((fact) => fact._tag === "Replayed").length
        const previous = before?.cycle ?? 1
        assert.strictEqual(state.cycle, previous + replayed)
        if (replayed > 0) {
          assert.strictEqual(state.status, "QUEUED")
          assert.strictEqual(state.attemptCount, 0)
        }
      }
    }, properties)

    it.prop("schedules RETRYING at the attempt's time plus that attempt's delay", [Commands], ([commands]) => {
      for (const { command, facts, state } of accepted(trace(commands))) {
        if (state.status !== "RETRYING") continue
        const delay = FAQ_DELAYS[state.attemptCount - 1]
        if (delay === undefined) return assert.fail(`RETRYING after attempt ${state.attemptCount}`)
        assert.strictEqual(state.nextAttemptAt, command.at + delay)
        assert.deepStrictEqual(facts.map((fact) => fact._tag === "RetryScheduled" ? fact.retryAt : null), [
          command.at + delay
        ])
      }
    }, properties)

    it.prop("counts one per attempt, none for Fail, and restarts from 0 on Replay", [Commands], ([commands]) => {
      for (const { before, command, state } of accepted(trace(commands))) {
        const expected = command._tag === "RecordAttempt"
          ? (before?.attemptCount ?? 0) + 1
          : command._tag === "Fail"
          ? before?.attemptCount
          : 0
        assert.strictEqual(state.attemptCount, expected, `attempt count after ${command._tag}`)
      }
    }, properties)

    it.prop("stamps every accepted change with its command's time", [Commands], ([commands]) => {
      for (const { command, state } of accepted(trace(commands))) {
        assert.strictEqual(state.updatedAt, command.at)
        if (isFinal(state.status)) assert.isNull(state.nextAttemptAt)
        if (state.status === "QUEUED") assert.strictEqual(state.nextAttemptAt, command.at)
      }
    }, properties)

    it.prop(
      "expires a cycle of failures after exactly one attempt more than the schedule has delays",
      [
        Schema.Array(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 86_400_000 }))).check(
          Schema.isBetweenLength(0, 10)
        )
      ],
      ([delays]) => {
        const schedule = Backoff.make(delays)
        let { facts, state } = run([accept(T0)])
        const times: Array<number> = []
        // bounded, so that a schedule that never expires fails instead of looping
        for (let made = 0; made <= delays.length + 1 && !isFinal(state.status); made++) {
          const at = state.nextAttemptAt ?? assert.fail("a pending event has a next attempt time")
          times.push(at - T0)
          const result = EventStateMachine.transition(state, attempt(at, "failed", schedule))
          if (Result.isFailure(result)) return assert.fail(result.failure.message)
          facts = [...result.success.facts]
          state = result.success.state
        }
        assert.strictEqual(state.status, "EXPIRED")
        assert.strictEqual(state.attemptCount, delays.length + 1)
        assert.deepStrictEqual(times, Backoff.timeline(schedule))
        assert.deepStrictEqual(facts.map((fact) => fact._tag), ["Expired"])
      }
    )
  })

  describe("examples", () => {
    it("follows the FAQ timeline: retries at 1, 3, 7, 15 and 31 minutes, then expires", () => {
      const { facts, state } = run([
        accept(T0),
        ...[0, 60, 180, 420, 900, 1860].map((seconds) => attempt(T0 + seconds * SECOND, "failed"))
      ])
      assert.deepStrictEqual(facts, [
        { _tag: "Accepted", at: T0 },
        { _tag: "RetryScheduled", at: T0, cycle: 1, attempt: 1, retryAt: T0 + 60 * SECOND },
        { _tag: "RetryScheduled", at: T0 + 60 * SECOND, cycle: 1, attempt: 2, retryAt: T0 + 180 * SECOND },
        { _tag: "RetryScheduled", at: T0 + 180 * SECOND, cycle: 1, attempt: 3, retryAt: T0 + 420 * SECOND },
        { _tag: "RetryScheduled", at: T0 + 420 * SECOND, cycle: 1, attempt: 4, retryAt: T0 + 900 * SECOND },
        { _tag: "RetryScheduled", at: T0 + 900 * SECOND, cycle: 1, attempt: 5, retryAt: T0 + 1860 * SECOND },
        { _tag: "Expired", at: T0 + 1860 * SECOND, cycle: 1, attempt: 6 }
      ])
      assert.deepStrictEqual(state, {
        status: "EXPIRED",
        cycle: 1,
        attemptCount: 6,
        nextAttemptAt: null,
        updatedAt: T0 + 1860 * SECOND
      })
    })

    it("starts QUEUED with its first attempt due at once", () => {
      assert.deepStrictEqual(run([accept(T0)]).state, {
        status: "QUEUED",
        cycle: 1,
        attemptCount: 0,
        nextAttemptAt: T0,
        updatedAt: T0
      })
    })

    it("delivers on attempt 3 after two failures", () => {
      const { facts, state } = run([
        accept(T0),
        attempt(T0, "failed"),
        attempt(T0 + 60 * SECOND, "failed"),
        attempt(T0 + 180 * SECOND, "succeeded")
      ])
      assert.deepStrictEqual(facts.at(-1), { _tag: "Delivered", at: T0 + 180 * SECOND, cycle: 1, attempt: 3 })
      assert.deepStrictEqual(state, {
        status: "DELIVERED",
        cycle: 1,
        attemptCount: 3,
        nextAttemptAt: null,
        updatedAt: T0 + 180 * SECOND
      })
    })

    it("fails at once on a fatal attempt, counting that attempt", () => {
      const { facts, state } = run([accept(T0), attempt(T0, "failed"), attempt(T0 + 60 * SECOND, "fatal")])
      const last = facts.at(-1)
      assert.strictEqual(last?._tag, "Failed")
      assert.strictEqual(last !== undefined ? attemptOf(last) : undefined, 2)
      assert.strictEqual(state.status, "FAILED")
      assert.strictEqual(state.attemptCount, 2)
      assert.isNull(state.nextAttemptAt)
    })

    it("fails a QUEUED event without an attempt, keeping the reason", () => {
      const { facts, state } = run([accept(T0), fail(T0 + 5 * SECOND, "endpoint deleted")])
      assert.deepStrictEqual(facts.at(-1), {
        _tag: "Failed",
        at: T0 + 5 * SECOND,
        cycle: 1,
        attempt: null,
        reason: "endpoint deleted"
      })
      assert.deepStrictEqual(state, {
        status: "FAILED",
        cycle: 1,
        attemptCount: 0,
        nextAttemptAt: null,
        updatedAt: T0 + 5 * SECOND
      })
    })

    it("fails a RETRYING event and keeps its attempt count", () => {
      const { state } = run([
        accept(T0),
        attempt(T0, "failed"),
        attempt(T0 + 60 * SECOND, "failed"),
        fail(T0 + 61 * SECOND)
      ])
      assert.strictEqual(state.status, "FAILED")
      assert.strictEqual(state.attemptCount, 2)
    })

    it("replays an expired event as a new cycle whose attempts start at 1", () => {
      const expired = run([
        accept(T0),
        ...[0, 60, 180, 420, 900, 1860].map((seconds) => attempt(T0 + seconds * SECOND, "failed"))
      ])
      const replayAt = T0 + 3_600 * SECOND
      const { facts, state } = run([
        accept(T0),
        ...[0, 60, 180, 420, 900, 1860].map((seconds) => attempt(T0 + seconds * SECOND, "failed")),
        replay(replayAt),
        attempt(replayAt, "failed")
      ])
      assert.strictEqual(expired.state.status, "EXPIRED")
      assert.deepStrictEqual(facts.slice(-2), [
        { _tag: "Replayed", at: replayAt, cycle: 2 },
        { _tag: "RetryScheduled", at: replayAt, cycle: 2, attempt: 1, retryAt: replayAt + 60 * SECOND }
      ])
      assert.deepStrictEqual(state, {
        status: "RETRYING",
        cycle: 2,
        attemptCount: 1,
        nextAttemptAt: replayAt + 60 * SECOND,
        updatedAt: replayAt
      })
    })

    it("replays DELIVERED and FAILED events too", () => {
      assert.strictEqual(run([accept(T0), attempt(T0, "succeeded"), replay(T0 + 1)]).state.status, "QUEUED")
      assert.strictEqual(run([accept(T0), fail(T0), replay(T0 + 1)]).state.cycle, 2)
    })

    it("refuses to accept an event twice", () => {
      const error = refusal(run([accept(T0)]).state, accept(T0 + 1))
      assert.strictEqual(error._tag, "InvalidTransition")
      assert.strictEqual(error.from, "QUEUED")
      assert.strictEqual(error.command, "Accept")
      assert.include(error.message, "already accepted")
    })

    it("refuses every other command before the event is accepted", () => {
      for (const command of [attempt(T0, "succeeded"), attempt(T0, "failed"), fail(T0), replay(T0)]) {
        const error = refusal(undefined, command)
        assert.strictEqual(error.from, "NEW")
        assert.strictEqual(error.command, command._tag)
        assert.include(error.message, "before the event is accepted")
      }
    })

    it("refuses to replay a QUEUED or RETRYING event with a message naming the replayable states", () => {
      const queued = run([accept(T0)]).state
      const retrying = run([accept(T0), attempt(T0, "failed")]).state
      assert.strictEqual(retrying.status, "RETRYING")
      for (const state of [queued, retrying]) {
        const error = refusal(state, replay(T0 + 1))
        assert.strictEqual(error.from, state.status)
        assert.include(error.message, "only DELIVERED, EXPIRED and FAILED events can be replayed")
      }
    })

    it("refuses attempts and failures on a final event", () => {
      const delivered = run([accept(T0), attempt(T0, "succeeded")]).state
      for (const command of [attempt(T0 + 1, "succeeded"), attempt(T0 + 1, "failed"), fail(T0 + 1)]) {
        const error = refusal(delivered, command)
        assert.strictEqual(error.from, "DELIVERED")
        assert.strictEqual(error.command, command._tag)
      }
    })

    it("uses the schedule carried by the attempt", () => {
      const schedule = Backoff.make([5 * SECOND])
      const { state } = run([accept(T0), attempt(T0, "failed", schedule)])
      assert.strictEqual(state.nextAttemptAt, T0 + 5 * SECOND)
      const expired = run([accept(T0), attempt(T0, "failed", schedule), attempt(T0 + 5 * SECOND, "failed", schedule)])
      assert.strictEqual(expired.state.status, "EXPIRED")
      assert.strictEqual(expired.state.attemptCount, 2)
    })
  })
})
