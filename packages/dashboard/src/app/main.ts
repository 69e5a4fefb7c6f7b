/**
 * The dashboard's entry: sign-in with an API key (kept in sessionStorage, so only for this tab), the page
 * shell with its navigation, and the hash routes of the pages.
 */
import { html, render } from "htm/preact"
import type { VNode } from "preact"
import { useEffect, useErrorBoundary, useState } from "preact/hooks"
import { api, messageOf, session, whenUnauthorized } from "./api.ts"
import { EndpointPage, EndpointsPage } from "./endpoints.ts"
import { EventPage, EventsPage } from "./events.ts"
import { KeysPage } from "./keys.ts"
import { OverviewPage } from "./overview.ts"
import { type Route, useRoute } from "./ui.ts"

const SignIn = ({ notice, onSignedIn }: { readonly notice: string | undefined; readonly onSignedIn: () => void }) => {
  const [key, setKey] = useState("")
  const [error, setError] = useState<string | undefined>(undefined)
  const [pending, setPending] = useState(false)
  const submit = async (e: SubmitEvent) => {
    e.preventDefault()
    const trimmed = key.trim()
    if (trimmed === "") return setError("Paste an API key (it starts with pj_live_).")
    setPending(true)
    setError(undefined)
    try {
      await api.usage(trimmed)
      session.set(trimmed)
      onSignedIn()
    } catch (failure) {
      setError(
        (failure as { status?: number }).status === 401
          ? "This API key was refused: it is mistyped, revoked, or from another server. Create a key with `promptjang keys create --org ORG_ID`, or use the one printed at the server's first start."
          : messageOf(failure)
      )
    } finally {
      setPending(false)
    }
  }
  return html`<main id="main" class="signin">
    <h1>PromptJang</h1>
    <p>Sign in with an API key of your organization. It is kept for this browser tab only.</p>
    ${notice === undefined ? null : html`<p class="alert" role="alert">${notice}</p>`}
    <form onSubmit=${submit}>
      <label for="api-key">API key</label>
      <input id="api-key" type="password" autocomplete="off" spellcheck="false" placeholder="pj_live_…"
        value=${key} onInput=${(e: InputEvent) => setKey((e.currentTarget as HTMLInputElement).value)} />
      ${error === undefined ? null : html`<p class="alert" role="alert">${error}</p>`}
      <button type="submit" class="primary" disabled=${pending}>${pending ? "Signing in…" : "Sign in"}</button>
    </form>
  </main>`
}

const PAGES = [
  { path: "", label: "Overview" },
  { path: "endpoints", label: "Endpoints" },
  { path: "events", label: "Events" },
  { path: "keys", label: "API keys" }
] as const

const page = (route: Route, signOut: (notice?: string) => void): VNode => {
  const [section = "", id] = route.segments
  switch (section) {
    case "":
      return html`<${OverviewPage} />`
    case "endpoints":
      return id === undefined ? html`<${EndpointsPage} route=${route} />` : html`<${EndpointPage} key=${id} id=${id} />`
    case "events":
      return id === undefined ? html`<${EventsPage} route=${route} />` : html`<${EventPage} key=${id} id=${id} />`
    case "keys":
      return html`<${KeysPage} signOut=${signOut} />`
    default:
      return html`<h1>Page not found</h1><p>There is no page at #/${
        route.segments.join("/")
      }. <a href="#/">Go to the overview</a>.</p>`
  }
}

const Shell = ({ signOut }: { readonly signOut: (notice?: string) => void }) => {
  const route = useRoute()
  const current = route.segments[0] ?? ""
  return html`<a class="skip" href="#main" onClick=${(e: MouseEvent) => {
    e.preventDefault()
    document.getElementById("main")?.focus()
  }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/">PromptJang</a>
      <nav aria-label="Main">
        <ul>
          ${
    PAGES.map((p) =>
      html`<li><a href=${`#/${p.path}`} aria-current=${current === p.path ? "page" : undefined}>${p.label}</a></li>`
    )
  }
        </ul>
      </nav>
      <button type="button" class="signout" onClick=${() => signOut()}>Sign out</button>
    </header>
    <main id="main" tabindex="-1">${page(route, signOut)}</main>`
}

const App = () => {
  const [signedIn, setSignedIn] = useState(() => session.get() !== null)
  const [notice, setNotice] = useState<string | undefined>(undefined)
  const [crash, resetCrash] = useErrorBoundary()
  useEffect(() =>
    whenUnauthorized((failure) => {
      session.clear()
      setNotice(`You were signed out: ${failure.message} The key may have been revoked; sign in with another one.`)
      setSignedIn(false)
    }), [])
  if (crash !== undefined) {
    return html`<main id="main" class="signin"><h1>Something went wrong</h1>
      <p class="alert" role="alert">The dashboard hit an error: ${messageOf(crash)}</p>
      <button type="button" onClick=${resetCrash}>Try again</button> <a href="#/" onClick=${resetCrash}>Go to the overview</a></main>`
  }
  if (!signedIn) {
    return html`<${SignIn} notice=${notice} onSignedIn=${() => {
      setNotice(undefined)
      setSignedIn(true)
    }} />`
  }
  return html`<${Shell} signOut=${(why?: string) => {
    session.clear()
    setNotice(why ?? "You are signed out.")
    setSignedIn(false)
  }} />`
}

const root = document.getElementById("app")
if (root !== null) {
  root.textContent = ""
  render(html`<${App} />`, root)
}
