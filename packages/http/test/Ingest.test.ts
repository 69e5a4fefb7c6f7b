import { assert, describe, it } from "@effect/vitest"
import { Engine, Memory } from "@promptjang/core"
import { Effect, Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import * as Ingest from "../src/Ingest.ts"

const Live = Engine.layer.pipe(Layer.provide([Memory.layer, FetchHttpClient.layer]))

describe("Ingest route", () => {
  it.effect("reads nothing of the request until its answer runs, and answers a throwing request with a 500", () =>
    Effect.gen(function*() {
      const answerIngest = yield* Ingest.make
      const read: Array<string> = []
      const answer = answerIngest({
        endpointId: "ep_x",
        header: (name) => {
          read.push(name)
          throw new Error("header parsing failed")
        },
        body: () => Effect.succeed(new Uint8Array(0))
      })
      assert.deepStrictEqual(read, [])
      const result = yield* answer
      assert.deepStrictEqual(read, ["authorization"])
      assert.strictEqual(result.status, 500)
      assert.strictEqual((JSON.parse(result.body) as { error: { code: string } }).error.code, "internal_error")
    }).pipe(Effect.provide(Live)))
})
