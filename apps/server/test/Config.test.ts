import { assert, describe, it } from "@effect/vitest"
import { Dispatcher } from "@promptjang/core"
import { Effect, Result } from "effect"
import * as Config from "../src/Config.ts"
import * as Server from "../src/Server.ts"

const problemsOf = (env: Record<string, string>) => {
  const parsed = Config.parse(env)
  return Result.isFailure(parsed) ? parsed.failure : []
}

describe("Config", () => {
  it("defaults to port 8080, the embedded database in ./.promptjang and the FAQ's retry schedule", () => {
    const parsed = Config.parse({})
    assert.isTrue(Result.isSuccess(parsed))
    if (Result.isFailure(parsed)) return
    assert.strictEqual(parsed.success.port, 8080)
    assert.strictEqual(parsed.success.host, "0.0.0.0")
    assert.strictEqual(parsed.success.databaseUrl, undefined)
    assert.strictEqual(parsed.success.dataDir, "./.promptjang")
    assert.deepStrictEqual(parsed.success.retrySchedule.delays, [60_000, 120_000, 240_000, 480_000, 960_000])
    assert.strictEqual(parsed.success.deliveryTimeoutMs, 15_000)
    assert.strictEqual(parsed.success.allowPrivateTargets, false)
    assert.strictEqual(parsed.success.bootstrap, true)
    assert.strictEqual(parsed.success.role, "all")
  })

  it("reads every setting of SPEC §8", () => {
    const parsed = Config.parse({
      PORT: "9000",
      HOST: "127.0.0.1",
      PROMPTJANG_DATABASE_URL: "postgres://u@db:5432/pj",
      PROMPTJANG_RETRY_SCHEDULE: "10s,1m",
      PROMPTJANG_DELIVERY_TIMEOUT: "5s",
      PROMPTJANG_ALLOW_PRIVATE_TARGETS: "true",
      PROMPTJANG_BOOTSTRAP: "false",
      PROMPTJANG_ROLE: "worker",
      PROMPTJANG_WORKER_CONCURRENCY: "8",
      LOG_LEVEL: "debug",
      LOG_FORMAT: "json"
    })
    if (Result.isFailure(parsed)) return assert.fail(parsed.failure.map((p) => p.message).join("; "))
    assert.deepStrictEqual(
      [parsed.success.port, parsed.success.host, parsed.success.databaseUrl, parsed.success.retrySchedule.delays],
      [9000, "127.0.0.1", "postgres://u@db:5432/pj", [10_000, 60_000]]
    )
    assert.deepStrictEqual(
      [
        parsed.success.deliveryTimeoutMs,
        parsed.success.allowPrivateTargets,
        parsed.success.bootstrap,
        parsed.success.role
      ],
      [5_000, true, false, "worker"]
    )
    assert.deepStrictEqual(
      [parsed.success.workerConcurrency, parsed.success.logLevel, parsed.success.logFormat],
      [8, "Debug", "json"]
    )
  })

  it.effect("PROMPTJANG_WORKER_CONCURRENCY bounds requests in flight; 16 times as many may wait to be recorded", () =>
    Effect.gen(function*() {
      const parsed = Config.parse({ PROMPTJANG_WORKER_CONCURRENCY: "100" })
      if (Result.isFailure(parsed)) return assert.fail("valid settings refused")
      const options = yield* Dispatcher.Options.pipe(Effect.provide(Server.settingsLayer(parsed.success)))
      assert.deepStrictEqual([options.concurrency, options.maxUnfinished], [100, 1_600])
    }))

  it.effect("PROMPTJANG_ENDPOINT_CONCURRENCY bounds the requests to one endpoint; by default half of the process's", () =>
    Effect.gen(function*() {
      const perEndpoint = (env: Record<string, string>) => {
        const parsed = Config.parse(env)
        if (Result.isFailure(parsed)) return Effect.die(new Error("valid settings refused"))
        return Effect.map(
          Dispatcher.Options.pipe(Effect.provide(Server.settingsLayer(parsed.success))),
          (options) => options.perEndpointConcurrency
        )
      }
      assert.strictEqual(yield* perEndpoint({}), 32)
      assert.strictEqual(yield* perEndpoint({ PROMPTJANG_WORKER_CONCURRENCY: "9" }), 5)
      assert.strictEqual(yield* perEndpoint({ PROMPTJANG_WORKER_CONCURRENCY: "1" }), 1)
      assert.strictEqual(yield* perEndpoint({ PROMPTJANG_ENDPOINT_CONCURRENCY: "100" }), 100)
    }))

  it("the delivery client keeps one connection per request that may be in flight to an endpoint", () => {
    const parsed = Config.parse({ PROMPTJANG_ENDPOINT_CONCURRENCY: "3", PROMPTJANG_ALLOW_PRIVATE_TARGETS: "true" })
    if (Result.isFailure(parsed)) return assert.fail("valid settings refused")
    assert.deepStrictEqual(Server.deliveryClientOptions(parsed.success), { allowPrivateTargets: true, connections: 3 })
    const defaults = Config.parse({})
    if (Result.isFailure(defaults)) return assert.fail("valid settings refused")
    assert.deepStrictEqual(Server.deliveryClientOptions(defaults.success), {
      allowPrivateTargets: false,
      connections: 32
    })
  })

  it.each([
    ["PORT", "eighty"],
    ["PORT", "70000"],
    ["PROMPTJANG_DATABASE_URL", "mysql://db/x"],
    ["PROMPTJANG_RETRY_SCHEDULE", "60,2m"],
    ["PROMPTJANG_DELIVERY_TIMEOUT", "forever"],
    ["PROMPTJANG_ALLOW_PRIVATE_TARGETS", "maybe"],
    ["PROMPTJANG_BOOTSTRAP", "2"],
    ["PROMPTJANG_ROLE", "scheduler"],
    ["PROMPTJANG_WORKER_CONCURRENCY", "0"],
    ["PROMPTJANG_ENDPOINT_CONCURRENCY", "0"],
    ["PROMPTJANG_ENDPOINT_CONCURRENCY", "all"],
    ["LOG_LEVEL", "loud"],
    ["LOG_FORMAT", "xml"]
  ])("refuses %s=%s with a message naming the variable", (variable, value) => {
    const problems = problemsOf({ [variable]: value })
    assert.deepStrictEqual(problems.map((p) => p.variable), [variable])
    assert.include(problems[0]?.message ?? "", variable)
  })

  it("reports every bad variable at once", () => {
    assert.deepStrictEqual(problemsOf({ PORT: "x", LOG_FORMAT: "xml" }).map((p) => p.variable), ["PORT", "LOG_FORMAT"])
  })
})
