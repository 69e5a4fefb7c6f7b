/**
 * The retry schedule, as data.
 *
 * A schedule lists the delays before each retry. After attempt `n` fails the
 * next attempt waits `delays[n - 1]`; when there is no such delay the event is
 * EXPIRED. The default is the FAQ's: 6 attempts, retries after 60, 120, 240,
 * 480 and 960 seconds.
 *
 * @since 0.1.0
 */
import { Context, Option, Result } from "effect"
import { InvalidBackoffSchedule } from "./Errors.ts"

/** Delays in milliseconds before retry 1, 2, ... */
export interface Schedule {
  readonly delays: ReadonlyArray<number>
}

/** Builds a schedule from delays in milliseconds. */
export const make = (delays: ReadonlyArray<number>): Schedule => ({ delays })

/** The FAQ's schedule: retries after 60 s, 120 s, 240 s, 480 s and 960 s, then EXPIRED. */
export const defaultSchedule: Schedule = make([60_000, 120_000, 240_000, 480_000, 960_000])

/** The engine-wide schedule (an endpoint's own schedule takes precedence). */
export const CurrentSchedule = Context.Reference<Schedule>("@promptjang/core/Backoff/CurrentSchedule", {
  defaultValue: () => defaultSchedule
})

/** How many attempts a cycle makes at most. */
export const maxAttempts = (schedule: Schedule): number => schedule.delays.length + 1

/**
 * The delay before the next attempt after attempt `attempt` (1-based) failed,
 * or none when the retries are exhausted.
 *
 * @example
 * ```ts
 * Backoff.delayAfter(Backoff.defaultSchedule, 1) // Option.some(60_000)
 * Backoff.delayAfter(Backoff.defaultSchedule, 6) // Option.none()
 * ```
 */
export const delayAfter = (schedule: Schedule, attempt: number): Option.Option<number> =>
  Option.fromUndefinedOr(attempt >= 1 ? schedule.delays[attempt - 1] : undefined)

/** The offsets from the first attempt at which each attempt of a fully failing cycle happens. */
export const timeline = (schedule: Schedule): ReadonlyArray<number> => {
  const out = [0]
  let at = 0
  for (const delay of schedule.delays) {
    at += delay
    out.push(at)
  }
  return out
}

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/

/** Parses one duration such as `60s`, `2m`, `1.5h` or `500ms` into milliseconds. */
export const parseDuration = (input: string): Option.Option<number> => {
  const match = DURATION.exec(input.trim())
  if (match === null) return Option.none()
  const [, amount, unit] = match
  const millis = Math.round(Number(amount) * (UNITS[unit ?? ""] ?? Number.NaN))
  return Number.isFinite(millis) ? Option.some(millis) : Option.none()
}

/**
 * Parses a schedule such as `60s,2m,4m,8m,16m`. An empty string is a schedule
 * with no retries (one attempt, then EXPIRED).
 */
export const parse = (input: string): Result.Result<Schedule, InvalidBackoffSchedule> => {
  const trimmed = input.trim()
  if (trimmed === "") return Result.succeed(make([]))
  const delays: Array<number> = []
  const parts = trimmed.split(",")
  for (const [index, part] of parts.entries()) {
    const parsed = parseDuration(part)
    if (Option.isNone(parsed) || parsed.value <= 0) {
      return Result.fail(
        new InvalidBackoffSchedule({
          input,
          message: `Retry delay ${
            index + 1
          } ("${part.trim()}") is not a positive duration: write durations such as 60s, 2m, 1h or 500ms, separated by commas (e.g. "60s,120s,240s,480s,960s").`
        })
      )
    }
    delays.push(parsed.value)
  }
  return Result.succeed(make(delays))
}

/** Formats a schedule back into the `60s,120s` form. */
export const format = (schedule: Schedule): string =>
  schedule.delays.map((ms) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`)).join(",")
