import { assert, describe, it } from "@effect/vitest"
import { Option, Result, Schema } from "effect"
import * as Backoff from "../src/Backoff.ts"

const SECOND = 1_000
const MINUTE = 60 * SECOND

const schedule = (input: string): ReadonlyArray<number> => {
  const result = Backoff.parse(input)
  if (Result.isFailure(result)) return assert.fail(`expected "${input}" to parse, got: ${result.failure.message}`)
  return result.success.delays
}

const parseError = (input: string) => {
  const result = Backoff.parse(input)
  if (Result.isSuccess(result)) {
    return assert.fail(`expected "${input}" to be refused, got ${JSON.stringify(result.success)}`)
  }
  return result.failure
}

// Whole milliseconds up to about 11.5 days, as an operator might configure them.
const Delay = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1_000_000_000 }))
const Delays = Schema.Array(Delay).check(Schema.isBetweenLength(0, 12))

describe("Backoff", () => {
  it("retries after 60s, 120s, 240s, 480s, 960s then expires", () => {
    const delays = [1, 2, 3, 4, 5, 6].map((attempt) => Backoff.delayAfter(Backoff.defaultSchedule, attempt))
    assert.deepStrictEqual(delays, [
      Option.some(60 * SECOND),
      Option.some(120 * SECOND),
      Option.some(240 * SECOND),
      Option.some(480 * SECOND),
      Option.some(960 * SECOND),
      Option.none()
    ])
    assert.strictEqual(Backoff.maxAttempts(Backoff.defaultSchedule), 6)
  })

  describe("delayAfter", () => {
    it("has no delay before attempt 0 (attempts are 1-based)", () => {
      assert.isTrue(Option.isNone(Backoff.delayAfter(Backoff.defaultSchedule, 0)))
    })

    it("waits the first delay after attempt 1", () => {
      assert.deepStrictEqual(Backoff.delayAfter(Backoff.defaultSchedule, 1), Option.some(60_000))
    })

    it("waits the last delay after attempt 5", () => {
      assert.deepStrictEqual(Backoff.delayAfter(Backoff.defaultSchedule, 5), Option.some(960_000))
    })

    it("has no delay after attempt 6, the last one", () => {
      assert.isTrue(Option.isNone(Backoff.delayAfter(Backoff.defaultSchedule, 6)))
    })

    it("has no delay after attempt 7, beyond the schedule", () => {
      assert.isTrue(Option.isNone(Backoff.delayAfter(Backoff.defaultSchedule, 7)))
    })

    it("never retries with an empty schedule", () => {
      const none = Backoff.make([])
      assert.isTrue(Option.isNone(Backoff.delayAfter(none, 1)))
      assert.strictEqual(Backoff.maxAttempts(none), 1)
    })
  })

  describe("timeline", () => {
    it("places the six attempts of a failing event at 0, 1, 3, 7, 15 and 31 minutes", () => {
      assert.deepStrictEqual(Backoff.timeline(Backoff.defaultSchedule), [0, 60000, 180000, 420000, 900000, 1860000])
      assert.strictEqual(Backoff.timeline(Backoff.defaultSchedule).at(-1), 31 * MINUTE)
    })

    it("has the single first attempt for an empty schedule", () => {
      assert.deepStrictEqual(Backoff.timeline(Backoff.make([])), [0])
    })
  })

  describe("parse", () => {
    it("reads the FAQ schedule written in minutes", () => {
      assert.deepStrictEqual(schedule("60s,2m,4m,8m,16m"), Backoff.defaultSchedule.delays)
    })

    it("reads milliseconds and fractional hours, ignoring spaces around commas", () => {
      assert.deepStrictEqual(schedule("500ms, 1.5h"), [500, 5_400_000])
    })

    it("reads the documented PROMPTJANG_RETRY_SCHEDULE example", () => {
      assert.deepStrictEqual(schedule("60s,120s,240s,480s,960s"), Backoff.defaultSchedule.delays)
    })

    it("reads an empty string as a schedule without retries", () => {
      assert.deepStrictEqual(schedule(""), [])
      assert.deepStrictEqual(schedule("   "), [])
    })

    it("refuses a number without a unit and names it", () => {
      const error = parseError("60")
      assert.strictEqual(error._tag, "InvalidBackoffSchedule")
      assert.strictEqual(error.input, "60")
      assert.include(error.message, "\"60\"")
    })

    it("refuses text that is not a duration and names it", () => {
      assert.include(parseError("abc").message, "\"abc\"")
    })

    it("refuses an empty entry and names its position", () => {
      const message = parseError("60s,,2m").message
      assert.include(message, "Retry delay 2 (\"\")")
    })

    it("refuses a negative delay and names it", () => {
      assert.include(parseError("-5s").message, "\"-5s\"")
    })

    it("refuses a zero delay and names it", () => {
      assert.include(parseError("0s").message, "\"0s\"")
    })

    it("names the bad entry, not a good one, in a longer schedule", () => {
      const message = parseError("60s,2m,5x,8m").message
      assert.include(message, "Retry delay 3 (\"5x\")")
      assert.notInclude(message, "\"2m\"")
    })

    it("shows an example of a valid schedule in every refusal", () => {
      assert.include(parseError("abc").message, "60s,120s,240s,480s,960s")
    })
  })

  describe("format", () => {
    it("writes the default schedule in seconds", () => {
      assert.strictEqual(Backoff.format(Backoff.defaultSchedule), "60s,120s,240s,480s,960s")
    })

    it("writes delays that are not whole seconds in milliseconds", () => {
      assert.strictEqual(Backoff.format(Backoff.make([1500, 250])), "1500ms,250ms")
    })

    it.prop("parses back to the same delays", [Delays], ([delays]) => {
      assert.deepStrictEqual(schedule(Backoff.format(Backoff.make(delays))), delays)
    })
  })
})
