/**
 * Shared pieces of the dashboard: the hash router, data loading with error and retry, copy buttons,
 * confirmation dialogs, status badges and formatting.
 */
import { html } from "htm/preact"
import type { ComponentChildren, VNode } from "preact"
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks"
import { type EventStatus, messageOf } from "./api.ts"

// -- routing -----------------------------------------------------------------------------------------------------

export interface Route {
  /** The path segments after `#/`. */
  readonly segments: ReadonlyArray<string>
  readonly params: URLSearchParams
}

const parseRoute = (): Route => {
  const hash = location.hash.replace(/^#\/?/, "")
  const [path = "", search = ""] = hash.split("?", 2)
  return {
    segments: path.split("/").filter((s) => s !== "").map(decodeURIComponent),
    params: new URLSearchParams(search)
  }
}

/** The current route; re-renders on every hash change. */
export const useRoute = (): Route => {
  const [route, setRoute] = useState(parseRoute)
  useEffect(() => {
    const update = () => setRoute(parseRoute())
    addEventListener("hashchange", update)
    return () => removeEventListener("hashchange", update)
  }, [])
  return route
}

/** The hash link of a path and its query (empty values left out). */
export const href = (path: string, params: Record<string, string | undefined> = {}): string => {
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== "") search.set(name, value)
  const text = search.toString()
  return `#${path}${text === "" ? "" : `?${text}`}`
}

export const navigate = (link: string): void => {
  location.hash = link.replace(/^#/, "")
}

// -- loading -----------------------------------------------------------------------------------------------------

export type Loaded<A> =
  | { readonly state: "loading" }
  | { readonly state: "failed"; readonly message: string }
  | { readonly state: "ready"; readonly value: A }

/**
 * Loads `load()` when `key` changes; `reload()` loads again (quietly: the old value stays on screen).
 * `refreshMs(value)` asks for a refresh after that many milliseconds (undefined: none).
 */
export const useLoad = <A>(
  load: () => Promise<A>,
  key: string,
  refreshMs?: (value: A) => number | undefined
): { readonly loaded: Loaded<A>; readonly reload: () => void } => {
  // What was loaded, for which key: another key's value is never shown, not even for one render.
  const [state, setState] = useState<{ readonly key: string; readonly loaded: Loaded<A> }>({
    key,
    loaded: { state: "loading" }
  })
  const [tick, setTick] = useState(0)
  useEffect(() => {
    let live = true
    let timer: ReturnType<typeof setTimeout> | undefined
    load().then(
      (value) => {
        if (!live) return
        setState({ key, loaded: { state: "ready", value } })
        const delay = refreshMs?.(value)
        if (delay !== undefined) timer = setTimeout(() => setTick((n) => n + 1), delay)
      },
      (error: unknown) => {
        if (live) setState({ key, loaded: { state: "failed", message: messageOf(error) } })
      }
    )
    return () => {
      live = false
      if (timer !== undefined) clearTimeout(timer)
    }
  }, [key, tick])
  const reload = useCallback(() => setTick((n) => n + 1), [])
  return { loaded: state.key === key ? state.loaded : { state: "loading" }, reload }
}

/** Renders a load: a placeholder while loading, the error with a Retry button, or `render(value)`. */
export const Show = <A>(
  { loaded, reload, render }: {
    readonly loaded: Loaded<A>
    readonly reload: () => void
    readonly render: (value: A) => ComponentChildren
  }
): VNode => {
  if (loaded.state === "loading") return html`<p class="muted" aria-busy="true">Loading…</p>`
  if (loaded.state === "failed") {
    return html`<div class="alert" role="alert">
      <p>${loaded.message}</p>
      <button type="button" onClick=${reload}>Retry</button>
    </div>`
  }
  return html`${render(loaded.value)}`
}

/** Runs an action, tracking its pending state and the message of its failure. */
export const useAction = () => {
  const [pending, setPending] = useState(false)
  const [error, setError] = useState<string | undefined>(undefined)
  const run = useCallback(async <A>(action: () => Promise<A>): Promise<A | undefined> => {
    setPending(true)
    setError(undefined)
    try {
      return await action()
    } catch (failure) {
      setError(messageOf(failure))
      return undefined
    } finally {
      setPending(false)
    }
  }, [])
  return { pending, error, run, clearError: () => setError(undefined) }
}

export const ErrorMessage = ({ message }: { readonly message: string | undefined }): VNode | null =>
  message === undefined ? null : html`<p class="alert" role="alert">${message}</p>`

// -- widgets -----------------------------------------------------------------------------------------------------

/** Whether the user has moved between pages (not only loaded the first one). */
let navigated = false
addEventListener("hashchange", () => {
  navigated = true
})

/**
 * A page's heading. After a move between pages it takes the focus, so keyboard and screen-reader users
 * land on the new page; on the first load the focus stays at the start (the skip link comes first).
 */
export const Heading = ({ children }: { readonly children: ComponentChildren }): VNode => {
  const ref = useRef<HTMLHeadingElement>(null)
  // A layout effect: the focus moves in the same task as the page is rendered, not a frame later.
  useLayoutEffect(() => {
    if (navigated) ref.current?.focus({ preventScroll: true })
  }, [])
  return html`<h1 tabindex="-1" ref=${ref}>${children}</h1>`
}

/** A secret value with a Copy button. */
export const Secret = ({ value, label }: { readonly value: string; readonly label: string }): VNode => {
  const [copied, setCopied] = useState<"no" | "yes" | "failed">("no")
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value)
      setCopied("yes")
    } catch {
      setCopied("failed")
    }
  }
  return html`<div class="secret">
    <code aria-label=${label} data-secret>${value}</code>
    <button type="button" onClick=${copy}>${copied === "yes" ? "Copied" : "Copy"}</button>
    ${
    copied === "failed"
      ? html`<span class="muted">Copy was refused by the browser: select the text instead.</span>`
      : null
  }
  </div>`
}

/**
 * A modal confirmation (`<dialog>`: focus stays inside, Escape cancels). Shown while mounted; closing
 * it any way calls `onCancel`, which should unmount it.
 */
export const Confirm = (
  { title, children, confirmLabel, onConfirm, onCancel, pending, error }: {
    readonly title: string
    readonly children: ComponentChildren
    readonly confirmLabel: string
    readonly onConfirm: () => void
    readonly onCancel: () => void
    readonly pending?: boolean
    readonly error?: string | undefined
  }
): VNode => {
  const ref = useRef<HTMLDialogElement>(null)
  useEffect(() => {
    const dialog = ref.current
    if (dialog !== null && !dialog.open) dialog.showModal()
    return () => dialog?.close()
  }, [])
  // Escape closes the dialog natively (the browser may skip the cancel event): any close is a cancel.
  return html`<dialog ref=${ref} aria-labelledby="confirm-title" onClose=${onCancel}>
    <h2 id="confirm-title">${title}</h2>
    <div>${children}</div>
    <${ErrorMessage} message=${error} />
    <div class="actions">
      <button type="button" onClick=${onCancel}>Cancel</button>
      <button type="button" class="danger" disabled=${pending === true} onClick=${onConfirm}>${confirmLabel}</button>
    </div>
  </dialog>`
}

export const StatusBadge = ({ status }: { readonly status: EventStatus }): VNode =>
  html`<span class=${`badge badge-${status.toLowerCase()}`}>${status}</span>`

/** An empty state: what is missing and what to do next. */
export const Empty = ({ children }: { readonly children: ComponentChildren }): VNode =>
  html`<div class="empty">${children}</div>`

// -- formatting --------------------------------------------------------------------------------------------------

/** A time in the reader's locale, with the ISO time as the tooltip. */
export const Time = ({ iso }: { readonly iso: string | null }): VNode =>
  iso === null
    ? html`<span class="muted">—</span>`
    : html`<time datetime=${iso} title=${iso}>${new Date(iso).toLocaleString()}</time>`

/** A calendar day in UTC, such as "Nov 1, 2026". */
export const utcDay = (millis: number): string =>
  new Date(millis).toLocaleDateString(undefined, { timeZone: "UTC", dateStyle: "medium" })

/** "in 42 s", "3 min ago". */
export const relative = (iso: string, now: number = Date.now()): string => {
  const seconds = Math.round((Date.parse(iso) - now) / 1000)
  const size = Math.abs(seconds)
  const amount = size < 60
    ? `${size} s`
    : size < 3600
    ? `${Math.round(size / 60)} min`
    : size < 86400
    ? `${Math.round(size / 3600)} h`
    : `${Math.round(size / 86400)} d`
  return seconds >= 0 ? `in ${amount}` : `${amount} ago`
}

export const bytes = (n: number): string =>
  n >= 1024 * 1024 && n % (1024 * 1024) === 0
    ? `${n / (1024 * 1024)} MiB`
    : n >= 1024 && n % 1024 === 0
    ? `${n / 1024} KiB`
    : `${n.toLocaleString()} bytes`
