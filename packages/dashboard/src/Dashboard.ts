/**
 * The web dashboard (SPEC §9) as routes of effect's `HttpRouter`: `GET /` is the page and `GET /assets/*`
 * its scripts, styles and the vendored Preact and htm modules, all from this package and `node_modules`
 * (no CDN). The browser code is TypeScript in `src/app`; its types are stripped once when the routes are
 * built (with `amaro`, the stripper Node itself uses), so nothing generated is written or committed.
 *
 * @since 0.1.0
 */
import { transformSync } from "amaro"
import { Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { createHash } from "node:crypto"
import { readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

/** A file served to the browser. */
export interface Asset {
  readonly body: Uint8Array
  readonly contentType: string
  readonly etag: string
}

/** The dashboard's files by URL path (`/` and `/assets/...`), and the page's Content-Security-Policy. */
export interface Assets {
  readonly files: ReadonlyMap<string, Asset>
  readonly contentSecurityPolicy: string
}

const JAVASCRIPT = "text/javascript; charset=utf-8"

/** Bare module names of the browser code, and the package file each is served from. */
const VENDOR: ReadonlyArray<readonly [specifier: string, file: string]> = [
  ["preact", "preact.mjs"],
  ["preact/hooks", "hooks.mjs"],
  ["htm", "htm.mjs"],
  ["htm/preact", "htm-preact.mjs"]
]

const asset = (body: Uint8Array | string, contentType: string): Asset => {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body
  return { body: bytes, contentType, etag: `"${createHash("sha256").update(bytes).digest("base64url").slice(0, 22)}"` }
}

/** Reads and prepares every file of the dashboard. */
export const load = (): Assets => {
  const app = new URL("./app/", import.meta.url)
  const files = new Map<string, Asset>()
  for (const name of readdirSync(app)) {
    const source = readFileSync(new URL(name, app), "utf8")
    if (name.endsWith(".ts")) {
      files.set(`/assets/${name}`, asset(transformSync(source, { mode: "strip-only" }).code, JAVASCRIPT))
    } else if (name.endsWith(".css")) {
      files.set(`/assets/${name}`, asset(source, "text/css; charset=utf-8"))
    }
  }
  const imports: Record<string, string> = {}
  for (const [specifier, file] of VENDOR) {
    files.set(`/assets/vendor/${file}`, asset(readFileSync(fileURLToPath(import.meta.resolve(specifier))), JAVASCRIPT))
    imports[specifier] = `./assets/vendor/${file}`
  }
  const importMap = JSON.stringify({ imports })
  const page = readFileSync(new URL("index.html", app), "utf8").replace("IMPORT_MAP", importMap)
  files.set("/", asset(page, "text/html; charset=utf-8"))
  const importMapHash = createHash("sha256").update(importMap).digest("base64")
  return {
    files,
    contentSecurityPolicy: [
      "default-src 'self'",
      `script-src 'self' 'sha256-${importMapHash}'`,
      "style-src 'self'",
      "img-src 'self' data:",
      "connect-src 'self'",
      "base-uri 'self'",
      "form-action 'self'",
      "frame-ancestors 'none'"
    ].join("; ")
  }
}

/** The answer for `path`: the file (or 304 when the browser has it), or undefined when there is none. */
export const respond = (
  assets: Assets,
  path: string,
  ifNoneMatch: string | undefined
): HttpServerResponse.HttpServerResponse | undefined => {
  const file = assets.files.get(path)
  if (file === undefined) return undefined
  const headers = {
    etag: file.etag,
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    ...(path === "/" ? { "content-security-policy": assets.contentSecurityPolicy, "x-frame-options": "DENY" } : {})
  }
  return ifNoneMatch === file.etag
    ? HttpServerResponse.empty({ status: 304, headers })
    : HttpServerResponse.uint8Array(file.body, { contentType: file.contentType, headers })
}

const notFound = (path: string) =>
  HttpServerResponse.jsonUnsafe(
    { error: { code: "not_found", message: `The dashboard has no file ${path}; open / to load it again.` } },
    { status: 404 }
  )

/** `GET /` and `GET /assets/*`, read and prepared once when the layer is built. */
export const layer = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const assets = load()
  const serve = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const path = new URL(request.url, "http://localhost").pathname
    return respond(assets, path, request.headers["if-none-match"]) ?? notFound(path)
  })
  yield* router.add("GET", "/", serve)
  yield* router.add("GET", "/assets/*", serve)
}))
