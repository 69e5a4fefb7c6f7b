import { assert, describe, it } from "@effect/vitest"
import { Dashboard } from "@promptjang/dashboard"
import { Layer } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { createHash } from "node:crypto"

const assets = Dashboard.load()
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
const page = decode(assets.files.get("/")?.body ?? new Uint8Array())
const importMap = /<script type="importmap">([^<]*)<\/script>/.exec(page)?.[1] ?? ""
const mapped: Record<string, string> = JSON.parse(importMap || "{}").imports ?? {}

/** The module specifiers a script imports (static imports and re-exports). */
const specifiersOf = (source: string): ReadonlyArray<string> =>
  [...source.matchAll(/(?:import|export)\s*(?:[^"'()]*?\sfrom\s*)?["']([^"']+)["']/g)].map((match) => match[1] ?? "")

describe("Dashboard", () => {
  it("serves the page, its styles and its entry module", () => {
    assert.strictEqual(assets.files.get("/")?.contentType, "text/html; charset=utf-8")
    assert.strictEqual(assets.files.get("/assets/styles.css")?.contentType, "text/css; charset=utf-8")
    assert.strictEqual(assets.files.get("/assets/main.ts")?.contentType, "text/javascript; charset=utf-8")
    assert.include(page, `<script type="module" src="./assets/main.ts">`)
    assert.include(page, `href="./assets/styles.css"`)
  })

  it("strips the TypeScript of the browser modules, keeping their positions", () => {
    const api = decode(assets.files.get("/assets/api.ts")?.body ?? new Uint8Array())
    assert.notInclude(api, "import type")
    assert.notInclude(api, "): Promise<A>")
    assert.include(api, "export const api = {")
  })

  it("resolves every import of every module to a served file or an import-map entry", () => {
    let checked = 0
    for (const [path, file] of assets.files) {
      if (!file.contentType.startsWith("text/javascript")) continue
      for (const specifier of specifiersOf(decode(file.body))) {
        checked++
        if (specifier.startsWith("./")) {
          const target = new URL(specifier, `http://dashboard${path}`).pathname
          assert.isTrue(assets.files.has(target), `${path} imports ${specifier}, which is not served`)
        } else {
          const target = mapped[specifier]
          assert.isDefined(target, `${path} imports ${specifier}, which the import map lacks`)
          assert.isTrue(assets.files.has(new URL(target ?? "", "http://dashboard/").pathname), `${target} not served`)
        }
      }
    }
    // main.ts alone imports preact, hooks, htm and five modules of its own.
    assert.isAbove(checked, 10)
  })

  it("allows exactly its own inline import map in the Content-Security-Policy", () => {
    const hash = createHash("sha256").update(importMap).digest("base64")
    assert.include(assets.contentSecurityPolicy, `script-src 'self' 'sha256-${hash}'`)
    assert.include(assets.contentSecurityPolicy, "default-src 'self'")
    assert.include(assets.contentSecurityPolicy, "connect-src 'self'")
  })

  it("answers 304 to a browser that has the file, and nothing for a file it does not have", () => {
    const main = assets.files.get("/assets/main.ts")
    assert.strictEqual(Dashboard.respond(assets, "/assets/main.ts", main?.etag)?.status, 304)
    assert.strictEqual(Dashboard.respond(assets, "/assets/main.ts", "\"stale\"")?.status, 200)
    assert.isUndefined(Dashboard.respond(assets, "/assets/missing.ts", undefined))
  })

  it("routes / and /assets/*, with security headers on the page and a JSON 404 for a missing asset", async () => {
    const { dispose, handler } = HttpRouter.toWebHandler(
      Dashboard.layer.pipe(Layer.provide(HttpServer.layerServices)),
      { disableLogger: true }
    )
    try {
      const root = await handler(new Request("http://localhost/"))
      assert.strictEqual(root.status, 200)
      assert.strictEqual(await root.text(), page)
      assert.strictEqual(root.headers.get("content-security-policy"), assets.contentSecurityPolicy)
      assert.strictEqual(root.headers.get("x-content-type-options"), "nosniff")
      const vendor = await handler(new Request("http://localhost/assets/vendor/preact.mjs"))
      assert.strictEqual(vendor.status, 200)
      assert.strictEqual(vendor.headers.get("content-type"), "text/javascript; charset=utf-8")
      const cached = await handler(
        new Request("http://localhost/assets/main.ts", {
          headers: { "if-none-match": assets.files.get("/assets/main.ts")?.etag ?? "" }
        })
      )
      assert.strictEqual(cached.status, 304)
      const missing = await handler(new Request("http://localhost/assets/nothing.js"))
      assert.strictEqual(missing.status, 404)
      assert.strictEqual(((await missing.json()) as { error: { code: string } }).error.code, "not_found")
    } finally {
      await dispose()
    }
  })
})
