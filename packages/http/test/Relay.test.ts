import { assert, describe, it } from "@effect/vitest"
import { Receiver } from "@promptjang/test-host"
import { Layer } from "effect"
import { HttpClient } from "effect/http"
import { createRelay } from "../src/index.ts"

describe("createRelay", () => {
  it("ingests, delivers, reads, lists and replays events through Promises", async () => {
    const receiver = Receiver.make()
    const relay = await createRelay({ httpClient: Layer.succeed(HttpClient.HttpClient, receiver.client) })
    try {
      const org = await relay.createOrganization("Acme")
      assert.match(org.api_key, /^pj_live_/)
      const endpoint = await relay.createEndpoint(org.api_key, { url: "https://receiver.test/hooks" })
      const accepted = await relay.ingest(org.api_key, endpoint.id, JSON.stringify({ event: "order.created" }))
      assert.strictEqual(accepted.status, "QUEUED")
      let event = await relay.getEvent(org.api_key, accepted.id)
      for (let i = 0; i < 50 && event.status !== "DELIVERED"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10))
        event = await relay.getEvent(org.api_key, accepted.id)
      }
      assert.strictEqual(event.status, "DELIVERED")
      assert.strictEqual(receiver.requests("https://receiver.test/hooks").length, 1)
      const listed = await relay.listEvents(org.api_key, { status: "DELIVERED" })
      assert.deepStrictEqual(listed.data.map((e) => e.id), [accepted.id])
      const replayed = await relay.replay(org.api_key, accepted.id)
      assert.strictEqual(replayed.status, "QUEUED")
      const refused = await relay.ingest("pj_live_" + "0".repeat(32), endpoint.id, "{}").then(
        () => undefined,
        (e: unknown) => e
      )
      assert.strictEqual((refused as { _tag?: string } | undefined)?._tag, "Unauthorized")
    } finally {
      await relay.close()
    }
  })
})
