/**
 * Server configuration from the environment (SPEC §8). A bad value stops the
 * start with a message that names the variable and says what it accepts.
 *
 * @since 0.1.0
 */
import { Backoff } from "@promptjang/core"
import { Option, Result } from "effect"

/** What the process runs. */
export type Role = "all" | "api" | "worker"

/** The parsed configuration. */
export interface ServerConfig {
  readonly port: number
  readonly host: string
  /** A `postgres://` URL, or undefined for the embedded PGlite database in `dataDir`. */
  readonly databaseUrl: string | undefined
  readonly dataDir: string
  readonly adminToken: string | undefined
  readonly retrySchedule: Backoff.Schedule
  readonly deliveryTimeoutMs: number
  readonly allowPrivateTargets: boolean
  readonly bootstrap: boolean
  readonly role: Role
  readonly workerConcurrency: number
  /** Of those, the most to one endpoint: PROMPTJANG_ENDPOINT_CONCURRENCY, by default half of them. */
  readonly endpointConcurrency: number
  readonly logLevel: "Trace" | "Debug" | "Info" | "Warn" | "Error"
  readonly logFormat: "pretty" | "json"
}

/** A bad value: the variable and a sentence saying what it accepts. */
export interface ConfigProblem {
  readonly variable: string
  readonly message: string
}

type Env = Readonly<Record<string, string | undefined>>

const read = (env: Env, name: string): string | undefined => {
  const value = env[name]?.trim()
  return value === undefined || value === "" ? undefined : value
}

const LOG_LEVELS = {
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  warning: "Warn",
  error: "Error"
} as const

/** Parses the environment; every problem is reported, not only the first. */
export const parse = (env: Env): Result.Result<ServerConfig, ReadonlyArray<ConfigProblem>> => {
  const problems: Array<ConfigProblem> = []
  const problem = (variable: string, message: string) => problems.push({ variable, message })

  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = read(env, name)
    if (raw === undefined) return fallback
    const value = Number(raw)
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      problem(name, `${name}="${raw}" is not a whole number from ${min} to ${max}.`)
      return fallback
    }
    return value
  }
  const boolean = (name: string, fallback: boolean): boolean => {
    const raw = read(env, name)?.toLowerCase()
    if (raw === undefined) return fallback
    if (["true", "1", "yes", "on"].includes(raw)) return true
    if (["false", "0", "no", "off"].includes(raw)) return false
    problem(name, `${name}="${env[name]}" is not a boolean: use true or false.`)
    return fallback
  }

  const port = integer("PORT", 8080, 0, 65535)
  const host = read(env, "HOST") ?? "0.0.0.0"
  const databaseUrl = read(env, "PROMPTJANG_DATABASE_URL")
  if (databaseUrl !== undefined) {
    let parsed: URL | undefined
    try {
      parsed = new URL(databaseUrl)
    } catch {
      parsed = undefined
    }
    if (parsed === undefined || (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:")) {
      problem(
        "PROMPTJANG_DATABASE_URL",
        "PROMPTJANG_DATABASE_URL must be a postgres:// URL such as postgres://user:password@host:5432/database (unset it to use the embedded database)."
      )
    }
  }
  const scheduleText = read(env, "PROMPTJANG_RETRY_SCHEDULE")
  let retrySchedule = Backoff.defaultSchedule
  if (scheduleText !== undefined) {
    const parsed = Backoff.parse(scheduleText)
    if (Result.isSuccess(parsed)) retrySchedule = parsed.success
    else problem("PROMPTJANG_RETRY_SCHEDULE", `PROMPTJANG_RETRY_SCHEDULE: ${parsed.failure.message}`)
  }
  let deliveryTimeoutMs = 15_000
  const timeoutText = read(env, "PROMPTJANG_DELIVERY_TIMEOUT")
  if (timeoutText !== undefined) {
    const parsed = Backoff.parseDuration(timeoutText)
    if (Option.isSome(parsed) && parsed.value > 0 && parsed.value <= 300_000) deliveryTimeoutMs = parsed.value
    else {problem(
        "PROMPTJANG_DELIVERY_TIMEOUT",
        `PROMPTJANG_DELIVERY_TIMEOUT="${timeoutText}" is not a duration from 1ms to 5m, such as 15s or 500ms.`
      )}
  }
  const roleText = read(env, "PROMPTJANG_ROLE") ?? "all"
  const role: Role = roleText === "api" || roleText === "worker" || roleText === "all" ? roleText : "all"
  if (role !== roleText) problem("PROMPTJANG_ROLE", `PROMPTJANG_ROLE="${roleText}" must be all, api or worker.`)
  const logText = (read(env, "LOG_LEVEL") ?? "info").toLowerCase()
  const logLevel = logText in LOG_LEVELS ? LOG_LEVELS[logText as keyof typeof LOG_LEVELS] : "Info"
  if (!(logText in LOG_LEVELS)) {
    problem("LOG_LEVEL", `LOG_LEVEL="${env["LOG_LEVEL"]}" must be trace, debug, info, warn or error.`)
  }
  const formatText = (read(env, "LOG_FORMAT") ?? "pretty").toLowerCase()
  if (formatText !== "pretty" && formatText !== "json") {
    problem("LOG_FORMAT", `LOG_FORMAT="${env["LOG_FORMAT"]}" must be pretty or json.`)
  }

  const workerConcurrency = integer("PROMPTJANG_WORKER_CONCURRENCY", 64, 1, 10_000)
  const config: ServerConfig = {
    port,
    host,
    databaseUrl,
    dataDir: read(env, "PROMPTJANG_DATA_DIR") ?? "./.promptjang",
    adminToken: read(env, "PROMPTJANG_ADMIN_TOKEN"),
    retrySchedule,
    deliveryTimeoutMs,
    allowPrivateTargets: boolean("PROMPTJANG_ALLOW_PRIVATE_TARGETS", false),
    bootstrap: boolean("PROMPTJANG_BOOTSTRAP", true),
    role,
    workerConcurrency,
    endpointConcurrency: integer("PROMPTJANG_ENDPOINT_CONCURRENCY", Math.ceil(workerConcurrency / 2), 1, 10_000),
    logLevel,
    logFormat: formatText === "json" ? "json" : "pretty"
  }
  return problems.length === 0 ? Result.succeed(config) : Result.fail(problems)
}
