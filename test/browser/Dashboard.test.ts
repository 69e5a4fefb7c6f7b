/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core against the real server
 * process (embedded PGlite, a short retry schedule) and a local receiver. Every step goes through the
 * page as a user would: sign in, create endpoints, watch an event become DELIVERED and another EXPIRE
 * on their own (the pages refresh themselves), replay it, edit, rotate and delete an endpoint, create
 * and revoke an API key and see it refused. A screenshot of each page, at 1280 and 390 px wide, goes to
 * `test/browser/screenshots/` (git-ignored) for a person to look at.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core"
import { send, text } from "../e2e/http.ts"
import { root, type ServerProcess, startServer, stopServer } from "../e2e/server.ts"

const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"
const SCREENSHOTS = join(root, "test/browser/screenshots")
/** How long a step may wait for the page (a delivery, a refresh). */
const STEP_MS = 15_000

/** A receiver whose answer the test switches: 200 "thanks" or 500 "nope". */
let receiver: Server
let receiverUrl = ""
let answer = { status: 200, body: "thanks" }
let server: ServerProcess
let dataDir = ""
let browser: Browser
let context: BrowserContext
let page: Page
let apiKey = ""

const shot = async (name: string, target: Page = page) => {
  await target.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true })
}

/** Fails the test on any error the page throws or logs. */
const pageErrors: Array<string> = []
const watch = (target: Page) => {
  target.on("pageerror", (error) => pageErrors.push(error.message))
  target.on("console", (message) => {
    // A refused request logs "Failed to load resource" by design when a test provokes an API error.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      pageErrors.push(message.text())
    }
  })
}

const newPage = async (width: number, height: number) => {
  const created = await context.newPage()
  await created.setViewportSize({ width, height })
  watch(created)
  return created
}

const signIn = async (target: Page, key: string) => {
  await target.goto(`${server.url}/`)
  await target.getByLabel("API key", { exact: true }).fill(key)
  await target.getByRole("button", { name: "Sign in" }).click()
}

/** A link of the main navigation. */
const nav = (target: Page, name: string) =>
  target.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true })

/** The element with `data-field=name`. */
const field = (target: Page, name: string) => target.locator(`[data-field="${name}"]`).first()

/** Waits until the events listed are exactly `ids`, in this order. */
const eventRowsAre = async (target: Page, ids: ReadonlyArray<string>) => {
  const listed = () =>
    target.locator("tr[data-event]").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-event")))
  const deadline = Date.now() + STEP_MS
  while (JSON.stringify(await listed()) !== JSON.stringify(ids) && Date.now() < deadline) {
    await target.waitForTimeout(50)
  }
  assert.deepStrictEqual(await listed(), [...ids])
}

/** Creates an endpoint through the page; answers its id and secret. */
const createEndpoint = async (url: string, description: string) => {
  await nav(page, "Endpoints").click()
  await page.getByRole("link", { name: "New endpoint" }).first().click()
  await page.getByLabel(/^URL/).fill(url)
  await page.getByLabel("Description", { exact: true }).fill(description)
  await page.getByRole("button", { name: "Create endpoint" }).click()
  await page.getByRole("heading", { name: "Endpoint created" }).waitFor({ timeout: STEP_MS })
  const secret = await page.locator("[data-secret]").textContent() ?? ""
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{32}$/)
  const link = page.getByRole("link", { name: "Open the endpoint" })
  const id = /#\/endpoints\/(ep_\w+)/.exec(await link.getAttribute("href") ?? "")?.[1] ?? ""
  assert.match(id, /^ep_/)
  return { id, secret }
}

/** Sends an event through the API (as the customer's backend would). */
const ingest = async (endpointId: string, payload: unknown) => {
  const answer = await send(server.url, "POST", `/e/${endpointId}`, { key: apiKey, json: payload })
  assert.strictEqual(answer.status, 202, answer.text)
  return text(answer.body, "id")
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    assert.fail(`No Chromium at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM_PATH.`)
  }
  mkdirSync(SCREENSHOTS, { recursive: true })
  receiver = createServer((request, response) => {
    request.resume()
    request.on("end", () => response.writeHead(answer.status, { "content-type": "text/plain" }).end(answer.body))
  })
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve))
  const address = receiver.address()
  receiverUrl = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}/hooks`
  dataDir = mkdtempSync(join(tmpdir(), "promptjang-browser-"))
  server = await startServer({
    database: { _tag: "Pglite", dir: dataDir },
    env: { PROMPTJANG_ALLOW_PRIVATE_TARGETS: "true", PROMPTJANG_RETRY_SCHEDULE: "2s,2s", LOG_LEVEL: "warn" }
  })
  apiKey = server.apiKey ?? assert.fail("no first-start API key")
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run"
    ]
  })
  context = await browser.newContext()
  // A locator that finds nothing fails the step after this long, naming what it waited for.
  context.setDefaultTimeout(10_000)
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url })
  page = await newPage(1280, 900)
}, 120_000)

afterAll(async () => {
  await browser?.close()
  if (server !== undefined) await stopServer(server)
  await new Promise<void>((resolve) => (receiver === undefined ? resolve() : receiver.close(() => resolve())))
  if (dataDir !== "") rmSync(dataDir, { recursive: true, force: true })
})

// The steps build on each other (one server, one signed-in page); tests of a file run in order.
describe("Dashboard in Chromium", () => {
  it("serves the page and its modules from the server, with a Content-Security-Policy and no external request", async () => {
    const requested: Array<string> = []
    page.on("request", (request) => requested.push(request.url()))
    const response = await page.goto(`${server.url}/`)
    assert.strictEqual(response?.status(), 200)
    assert.match(response?.headers()["content-security-policy"] ?? "", /default-src 'self'/)
    await page.getByLabel("API key", { exact: true }).waitFor()
    assert.isTrue(requested.length > 3)
    for (const url of requested) assert.isTrue(url.startsWith(server.url), `external request: ${url}`)
    await shot("sign-in")
  })

  it("refuses a wrong key with a readable message, then signs in with the first-start key", async () => {
    await signIn(page, "pj_live_notARealKeyAtAll0000000000000")
    const alert = page.getByRole("alert")
    await alert.waitFor()
    assert.match(await alert.textContent() ?? "", /refused/)
    await page.getByLabel("API key", { exact: true }).fill(apiKey)
    await page.getByRole("button", { name: "Sign in" }).click()
    await page.getByRole("heading", { name: "Overview" }).waitFor()
    assert.strictEqual(await field(page, "plan").textContent(), "starter")
    assert.match(await field(page, "events").textContent() ?? "", /0 of 100,000 included/)
    assert.match(await field(page, "payload-limit").textContent() ?? "", /256 KiB/)
    assert.match(await field(page, "retention").textContent() ?? "", /7 days/)
    // The key lives in this tab's sessionStorage only.
    assert.strictEqual(await page.evaluate(() => sessionStorage.getItem("promptjang.apiKey")), apiKey)
    assert.strictEqual(await page.evaluate(() => localStorage.length), 0)
    await page.getByText("No endpoints yet").waitFor()
    await shot("overview-empty")
  })

  it("shows the API's validation message when an endpoint URL is refused", async () => {
    await nav(page, "Endpoints").click()
    await page.getByText("No endpoints yet").waitFor()
    await shot("endpoints-empty")
    await page.getByRole("link", { name: "New endpoint" }).first().click()
    await page.getByLabel(/^URL/).fill("ftp://example.com/hooks")
    await page.getByRole("button", { name: "Create endpoint" }).click()
    const alert = page.getByRole("alert")
    await alert.waitFor()
    assert.match(await alert.textContent() ?? "", /http/)
    await page.getByRole("button", { name: "Cancel" }).click()
  })

  let delivering = { id: "", secret: "" }
  it("creates an endpoint and shows its secret once with a working copy button", async () => {
    delivering = await createEndpoint(receiverUrl, "Orders service")
    await page.getByRole("button", { name: "Copy" }).click()
    await page.getByRole("button", { name: "Copied" }).waitFor()
    assert.strictEqual(await page.evaluate(() => navigator.clipboard.readText()), delivering.secret)
    await shot("endpoint-created")
    await page.getByRole("button", { name: "Done" }).click()
    await page.getByRole("link", { name: receiverUrl }).waitFor()
    await shot("endpoints")
  })

  let deliveredId = ""
  it("lists an event sent through the API and watches it become DELIVERED without a reload", async () => {
    await nav(page, "Events").click()
    await page.getByText("No events yet").waitFor()
    await shot("events-empty")
    answer = { status: 200, body: "thanks" }
    deliveredId = await ingest(delivering.id, { event: "order.created", data: { order: 42, items: ["tea"] } })
    // The list does not refresh on its own while nothing is in flight: go through the page's own navigation.
    await nav(page, "Overview").click()
    await nav(page, "Events").click()
    const row = page.locator(`tr[data-event="${deliveredId}"]`)
    await row.getByText("DELIVERED").waitFor({ timeout: STEP_MS })
    await shot("events")
    await row.getByRole("link", { name: deliveredId }).click()
    await page.getByRole("heading", { name: `Event ${deliveredId}` }).waitFor()
    assert.strictEqual(await field(page, "status").textContent(), "DELIVERED")
    const payload = JSON.parse(await field(page, "payload").textContent() ?? "")
    assert.deepStrictEqual(payload, { event: "order.created", data: { order: 42, items: ["tea"] } })
    assert.include(await field(page, "payload").textContent(), "\n  \"event\": \"order.created\"")
    const attempt = page.locator("tr[data-attempt]")
    assert.strictEqual(await attempt.count(), 1)
    assert.strictEqual(await attempt.locator("[data-field=\"status-code\"]").textContent(), "200")
    assert.include(await attempt.textContent(), "thanks")
    assert.match(await attempt.textContent() ?? "", /\d+ ms/)
    await shot("event-delivered")
  })

  let expiredId = ""
  it("watches an event EXPIRE against a failing receiver, then replays it into a second cycle", async () => {
    answer = { status: 500, body: "nope" }
    expiredId = await ingest(delivering.id, { event: "invoice.paid", data: { invoice: 7 } })
    await nav(page, "Overview").click()
    await nav(page, "Events").click()
    // The list refreshes itself while an event is in flight: RETRYING, then EXPIRED, with no reload.
    const row = page.locator(`tr[data-event="${expiredId}"]`)
    await row.getByText("RETRYING").waitFor({ timeout: STEP_MS })
    await page.getByText("this list refreshes every").waitFor()
    await shot("events-in-flight")
    await row.getByText("EXPIRED").waitFor({ timeout: STEP_MS })
    await row.getByRole("link", { name: expiredId }).click()
    await field(page, "status").getByText("EXPIRED").waitFor()
    assert.strictEqual(await page.locator("tr[data-attempt]").count(), 3)
    for (const code of await page.locator("tr[data-attempt] [data-field=\"status-code\"]").allTextContents()) {
      assert.strictEqual(code, "500")
    }
    assert.include(await page.locator("tr[data-attempt]").first().textContent(), "nope")
    await shot("event-expired")

    answer = { status: 200, body: "thanks" }
    await page.getByRole("button", { name: "Replay" }).click()
    await page.getByText("Replay queued").waitFor()
    // The event page refreshes itself while the replayed event is in flight.
    await field(page, "status").getByText("DELIVERED").waitFor({ timeout: STEP_MS })
    const rows = page.locator("tr[data-attempt]")
    assert.strictEqual(await rows.count(), 4)
    // Newest first: cycle 2, attempt 1, answered 200; the first cycle's attempts stay in the log.
    const newest = (await rows.first().locator("td").allTextContents()).slice(0, 3)
    assert.deepStrictEqual(newest, ["2", "1", "200"])
    await shot("event-replayed")
  })

  it("filters the events by status, endpoint and event type", async () => {
    await nav(page, "Events").click()
    await eventRowsAre(page, [expiredId, deliveredId])
    await page.getByLabel("Event type").fill("invoice.paid")
    await page.getByRole("button", { name: "Apply" }).click()
    await page.waitForURL(/event_type=invoice\.paid/)
    await eventRowsAre(page, [expiredId])
    // The filter is in the address, so a filtered list can be bookmarked or shared.
    assert.strictEqual(new URLSearchParams(new URL(page.url()).hash.split("?")[1]).get("event_type"), "invoice.paid")
    await page.getByRole("link", { name: "Clear" }).click()
    await page.getByLabel("Status", { exact: true }).selectOption("FAILED")
    await page.getByRole("button", { name: "Apply" }).click()
    await page.getByText("No events match these filters").waitFor()
    await page.getByLabel("Status", { exact: true }).selectOption("DELIVERED")
    await page.getByLabel("Endpoint", { exact: true }).selectOption(delivering.id)
    await page.getByRole("button", { name: "Apply" }).click()
    await page.waitForURL(/status=DELIVERED/)
    // Newest first.
    await eventRowsAre(page, [expiredId, deliveredId])
    await shot("events-filtered")
  })

  it("counts the two accepted events on the overview, not the replay", async () => {
    await nav(page, "Overview").click()
    await field(page, "events").getByText("2 of 100,000 included").waitFor()
    assert.match(await field(page, "overage").textContent() ?? "", /^\s*0\s*units/)
    assert.match(await field(page, "period").textContent() ?? "", /UTC/)
    await shot("overview")
  })

  it("edits an endpoint, disables and enables it, reveals and rotates its secret, and deletes it", async () => {
    const doomed = await createEndpoint(`${receiverUrl}/second`, "Second")
    await page.getByRole("link", { name: "Open the endpoint" }).click()
    await page.getByRole("button", { name: "Edit" }).click()
    await page.getByLabel(/^URL/).fill(`${receiverUrl}/edited`)
    await page.getByLabel("Description", { exact: true }).fill("Second, edited")
    await page.getByLabel(/^Event types/).fill("order.*, invoice.paid")
    await page.getByLabel(/^Custom headers/).fill("X-Team: billing")
    await page.getByRole("button", { name: "Save changes" }).click()
    await page.getByRole("heading", { name: "Second, edited" }).waitFor()
    assert.strictEqual(await field(page, "url").textContent(), `${receiverUrl}/edited`)
    const stored = await send(server.url, "GET", `/api/v1/endpoints/${doomed.id}`, { key: apiKey })
    assert.deepInclude(stored.body, {
      url: `${receiverUrl}/edited`,
      description: "Second, edited",
      event_types: ["order.*", "invoice.paid"],
      headers: { "X-Team": "billing" },
      enabled: true
    })

    await page.getByRole("button", { name: "Disable" }).click()
    await page.getByRole("button", { name: "Enable" }).waitFor()
    assert.deepInclude((await send(server.url, "GET", `/api/v1/endpoints/${doomed.id}`, { key: apiKey })).body, {
      enabled: false
    })
    await page.getByRole("button", { name: "Enable" }).click()
    await page.getByRole("button", { name: "Disable" }).waitFor()

    await page.getByRole("button", { name: "Reveal secret" }).click()
    assert.strictEqual(await page.locator("[data-secret]").textContent(), doomed.secret)
    await page.getByRole("button", { name: "Rotate secret" }).click()
    const dialog = page.getByRole("dialog")
    await dialog.getByText("24 hours").waitFor()
    await shot("endpoint-rotate-confirm")
    await dialog.getByRole("button", { name: "Rotate secret" }).click()
    await page.getByText("Rotated.").waitFor()
    const rotated = await page.locator("[data-secret]").textContent() ?? ""
    assert.match(rotated, /^whsec_/)
    assert.notStrictEqual(rotated, doomed.secret)
    const secret = await send(server.url, "GET", `/api/v1/endpoints/${doomed.id}/secret`, { key: apiKey })
    assert.deepStrictEqual(secret.body, { secret: rotated })
    await shot("endpoint")

    await page.getByRole("button", { name: "Delete endpoint" }).click()
    // Cancel keeps it; Escape also closes the dialog.
    await page.getByRole("dialog").getByRole("button", { name: "Cancel" }).click()
    await page.getByRole("dialog").waitFor({ state: "detached" })
    await page.getByRole("button", { name: "Delete endpoint" }).click()
    await page.getByRole("dialog").waitFor()
    await page.keyboard.press("Escape")
    await page.getByRole("dialog").waitFor({ state: "detached" })
    assert.strictEqual((await send(server.url, "GET", `/api/v1/endpoints/${doomed.id}`, { key: apiKey })).status, 200)
    await page.getByRole("button", { name: "Delete endpoint" }).click()
    await page.getByRole("dialog").getByRole("button", { name: "Delete endpoint" }).click()
    await page.waitForURL(/#\/endpoints$/)
    await page.getByRole("link", { name: receiverUrl, exact: true }).waitFor()
    assert.strictEqual(await page.getByRole("link", { name: `${receiverUrl}/edited` }).count(), 0)
    assert.strictEqual((await send(server.url, "GET", `/api/v1/endpoints/${doomed.id}`, { key: apiKey })).status, 404)
  })

  it("creates an API key shown once, lists it by prefix, revokes it and the API refuses it", async () => {
    await nav(page, "API keys").click()
    await page.getByLabel("Name", { exact: true }).fill("ci runner")
    await page.getByRole("button", { name: "Create API key" }).click()
    await page.getByRole("heading", { name: "Copy your new API key now" }).waitFor()
    assert.include(await page.locator(".panel.warning").textContent(), "only time the full key is shown")
    const key = await page.locator("[data-secret]").textContent() ?? ""
    assert.match(key, /^pj_live_[A-Za-z0-9]{32}$/)
    await page.getByRole("button", { name: "Copy" }).click()
    assert.strictEqual(await page.evaluate(() => navigator.clipboard.readText()), key)
    await shot("api-key-created")
    assert.strictEqual((await send(server.url, "GET", "/api/v1/usage", { key })).status, 200)
    await page.getByRole("button", { name: "I have copied it" }).click()
    // The full key is gone from the page; the list shows its prefix.
    assert.strictEqual(await page.getByText(key).count(), 0)
    const row = page.locator("tr", { hasText: "ci runner" })
    assert.include(await row.textContent(), `${key.slice(0, 12)}…`)
    await shot("api-keys")

    await row.getByRole("button", { name: "Revoke ci runner" }).click()
    await page.getByRole("dialog").getByRole("button", { name: "Revoke key" }).click()
    await row.getByText("Revoked").waitFor()
    const refused = await send(server.url, "GET", "/api/v1/usage", { key })
    assert.strictEqual(refused.status, 401)
    await shot("api-key-revoked")

    // Signing in with the revoked key, in a tab of its own, is refused with a message.
    const other = await newPage(1280, 900)
    await signIn(other, key)
    await other.getByText("This API key was refused").waitFor()
    await other.close()
  })

  it("signs out when the session's own key is revoked, and says why", async () => {
    const second = await newPage(1280, 900)
    // A key made for this tab through the page itself.
    await second.goto(`${server.url}/`)
    await signIn(second, apiKey)
    await nav(second, "API keys").click()
    await second.getByLabel("Name", { exact: true }).fill("short lived")
    await second.getByRole("button", { name: "Create API key" }).click()
    const key = await second.locator("[data-secret]").textContent() ?? ""
    await second.getByRole("button", { name: "Sign out" }).click()
    await signIn(second, key)
    await nav(second, "API keys").click()
    const row = second.locator("tr", { hasText: "short lived" })
    assert.include(await row.textContent(), "(this session)")
    await row.getByRole("button", { name: "Revoke short lived" }).click()
    await second.getByRole("dialog").getByText("you will be signed out").waitFor()
    await second.getByRole("dialog").getByRole("button", { name: "Revoke key" }).click()
    await second.getByText("You revoked the API key this tab was signed in with").waitFor()
    await second.getByLabel("API key", { exact: true }).waitFor()
    assert.strictEqual(await second.evaluate(() => sessionStorage.getItem("promptjang.apiKey")), null)
    await second.close()
  })

  it("is usable at 390 px wide: no page-wide horizontal scroll, navigation reachable", async () => {
    const phone = await newPage(390, 844)
    await signIn(phone, apiKey)
    for (
      const [name, heading] of [["Overview", "Overview"], ["Endpoints", "Endpoints"], ["Events", "Events"], [
        "API keys",
        "API keys"
      ]] as const
    ) {
      await nav(phone, name).click()
      await phone.getByRole("heading", { name: heading, level: 1 }).waitFor()
      await phone.locator("main").getByText("Loading…").waitFor({ state: "detached" })
      const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
      assert.isAtMost(overflow, 0, `${name} scrolls sideways by ${overflow} px`)
      await shot(`mobile-${name.toLowerCase().replace(" ", "-")}`, phone)
    }
    await phone.goto(`${server.url}/#/events/${expiredId}`)
    await phone.getByRole("heading", { name: `Event ${expiredId}` }).waitFor()
    assert.isAtMost(await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth), 0)
    await shot("mobile-event", phone)
    await phone.close()
  })

  it("is keyboard-navigable with a visible focus ring", async () => {
    await page.goto(`${server.url}/#/`)
    await page.reload()
    await page.getByRole("heading", { name: "Overview" }).waitFor()
    await page.keyboard.press("Tab")
    const skip = await page.evaluate(() => document.activeElement?.textContent)
    assert.strictEqual(skip, "Skip to content")
    // Tab to the Events link and follow it with Enter.
    for (let i = 0; i < 10; i++) {
      if ((await page.evaluate(() => document.activeElement?.textContent)) === "Events") break
      await page.keyboard.press("Tab")
    }
    const outline = await page.evaluate(() => {
      const active = document.activeElement
      return active === null ? "" : getComputedStyle(active).outlineStyle
    })
    assert.notStrictEqual(outline, "none")
    await shot("keyboard-focus")
    await page.keyboard.press("Enter")
    await page.waitForURL(/#\/events$/)
    // The page's heading takes the focus, so the next Tab continues from the new page.
    await page.getByRole("heading", { name: "Events", level: 1 }).waitFor()
    await page.waitForFunction(() => document.activeElement?.tagName === "H1", undefined, { timeout: 5_000 })
    assert.strictEqual(await page.evaluate(() => document.activeElement?.textContent), "Events")
  })

  it("shows the server's error instead of a blank page when the API is unreachable, and signs out", async () => {
    const lost = await newPage(1280, 900)
    await signIn(lost, apiKey)
    await lost.getByRole("heading", { name: "Overview" }).waitFor()
    await lost.route("**/api/v1/**", (route) => route.abort("connectionrefused"))
    await nav(lost, "Events").click()
    const alert = lost.getByRole("alert")
    await alert.waitFor()
    assert.match(await alert.textContent() ?? "", /Could not reach the PromptJang server/)
    await lost.getByRole("button", { name: "Retry" }).waitFor()
    await shot("error-unreachable", lost)
    await lost.unroute("**/api/v1/**")
    await lost.getByRole("button", { name: "Retry" }).click()
    await lost.getByRole("heading", { name: "Events", level: 1 }).waitFor()
    await lost.locator("tr[data-event]").first().waitFor()
    await lost.getByRole("button", { name: "Sign out" }).click()
    await lost.getByText("You are signed out.").waitFor()
    await lost.close()
  })

  it("raised no error in any page", () => {
    assert.deepStrictEqual(pageErrors, [])
  })
})
