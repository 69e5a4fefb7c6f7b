/**
 * The dashboard's API client: `fetch` against the same server with the session's API key. Every failure
 * becomes an `ApiFailure` carrying the server's own message (SPEC §2 error bodies), so pages can show it.
 * The wire types are the API definition's (type-only import: nothing of it reaches the browser).
 */
import type * as Api from "@promptjang/http/Api"

export type Endpoint = typeof Api.Endpoint.Type
export type WebhookEvent = typeof Api.Event.Type
export type Attempt = typeof Api.Attempt.Type
export type ApiKey = typeof Api.ApiKeyItem.Type
export type ApiKeyCreated = typeof Api.ApiKeyCreated.Type
export type Usage = typeof Api.Usage.Type
export type EndpointInput = typeof Api.EndpointInput.Type
export type EndpointPatch = typeof Api.EndpointPatch.Type
export type EventStatus = WebhookEvent["status"]
export interface Page<A> {
  readonly data: ReadonlyArray<A>
  readonly next_cursor: string | null
}

export const STATUSES: ReadonlyArray<EventStatus> = ["QUEUED", "RETRYING", "DELIVERED", "EXPIRED", "FAILED"]
/** Statuses a delivery is still working on. */
export const inFlight = (status: EventStatus): boolean => status === "QUEUED" || status === "RETRYING"
/** Statuses a replay can restart. */
export const replayable = (status: EventStatus): boolean => !inFlight(status)

/** A refused or failed call, with a message a person can act on. */
export class ApiFailure extends Error {
  readonly status: number
  readonly code: string
  readonly details: ReadonlyArray<{ readonly path: string; readonly message: string }>
  constructor(
    status: number,
    code: string,
    message: string,
    details: ReadonlyArray<{ readonly path: string; readonly message: string }> = []
  ) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
  }
}

/** The message to show for any thrown value. */
export const messageOf = (error: unknown): string => {
  if (error instanceof ApiFailure) {
    return error.details.length === 0
      ? error.message
      : `${error.message} ${error.details.map((d) => `${d.path}: ${d.message}`).join("; ")}`
  }
  return error instanceof Error ? error.message : String(error)
}

const KEY_STORAGE = "promptjang.apiKey"

/** The API key of this tab's session (sessionStorage: gone when the tab closes). */
export const session = {
  get: (): string | null => sessionStorage.getItem(KEY_STORAGE),
  set: (key: string): void => sessionStorage.setItem(KEY_STORAGE, key),
  clear: (): void => sessionStorage.removeItem(KEY_STORAGE)
}

let onUnauthorized: (failure: ApiFailure) => void = () => {}
/** Called when the server refuses the session's key (revoked, say): the app signs out. */
export const whenUnauthorized = (handler: (failure: ApiFailure) => void): void => {
  onUnauthorized = handler
}

const base = new URL("./", document.baseURI)

/** One call; `key` overrides the session's (sign-in checks a key before keeping it). */
export const call = async <A>(
  method: "GET" | "POST" | "PATCH" | "DELETE",
  path: string,
  options: { readonly body?: unknown; readonly key?: string } = {}
): Promise<A> => {
  const key = options.key ?? session.get()
  const headers: Record<string, string> = { accept: "application/json" }
  if (key !== null) headers["authorization"] = `Bearer ${key}`
  if (options.body !== undefined) headers["content-type"] = "application/json"
  let response: Response
  try {
    response = await fetch(new URL(path.replace(/^\//, ""), base), {
      method,
      headers,
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) })
    })
  } catch {
    throw new ApiFailure(0, "network", "Could not reach the PromptJang server. Check that it is running, then retry.")
  }
  const text = await response.text()
  let body: unknown = undefined
  try {
    body = text === "" ? undefined : JSON.parse(text)
  } catch {
    body = undefined
  }
  if (!response.ok) {
    const error = (body as { error?: { code?: string; message?: string; details?: ApiFailure["details"] } })?.error
    const failure = new ApiFailure(
      response.status,
      error?.code ?? "http_error",
      error?.message ?? `The server answered ${response.status} ${response.statusText} without an explanation.`,
      error?.details ?? []
    )
    if (response.status === 401 && options.key === undefined) onUnauthorized(failure)
    throw failure
  }
  return body as A
}

const query = (params: Record<string, string | undefined>): string => {
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== "") search.set(name, value)
  const text = search.toString()
  return text === "" ? "" : `?${text}`
}

export const api = {
  usage: (key?: string) => call<Usage>("GET", "/api/v1/usage", key === undefined ? {} : { key }),
  endpoints: (cursor?: string) => call<Page<Endpoint>>("GET", `/api/v1/endpoints${query({ limit: "100", cursor })}`),
  endpoint: (id: string) => call<Endpoint>("GET", `/api/v1/endpoints/${encodeURIComponent(id)}`),
  createEndpoint: (input: EndpointInput) => call<Endpoint>("POST", "/api/v1/endpoints", { body: input }),
  updateEndpoint: (id: string, patch: EndpointPatch) =>
    call<Endpoint>("PATCH", `/api/v1/endpoints/${encodeURIComponent(id)}`, { body: patch }),
  deleteEndpoint: (id: string) => call<void>("DELETE", `/api/v1/endpoints/${encodeURIComponent(id)}`),
  secret: (id: string) => call<{ secret: string }>("GET", `/api/v1/endpoints/${encodeURIComponent(id)}/secret`),
  rotateSecret: (id: string) =>
    call<{ secret: string }>("POST", `/api/v1/endpoints/${encodeURIComponent(id)}/secret/rotate`),
  events: (filters: {
    readonly status?: string | undefined
    readonly endpoint_id?: string | undefined
    readonly event_type?: string | undefined
    readonly cursor?: string | undefined
    readonly limit?: string | undefined
  }) => call<Page<WebhookEvent>>("GET", `/api/v1/events${query(filters)}`),
  event: (id: string) => call<WebhookEvent>("GET", `/api/v1/events/${encodeURIComponent(id)}`),
  replay: (id: string) => call<WebhookEvent>("POST", `/api/v1/events/${encodeURIComponent(id)}/replay`),
  apiKeys: () => call<Page<ApiKey>>("GET", "/api/v1/api-keys"),
  createApiKey: (name: string) =>
    call<ApiKeyCreated>("POST", "/api/v1/api-keys", { body: name === "" ? {} : { name } }),
  revokeApiKey: (id: string) => call<void>("DELETE", `/api/v1/api-keys/${encodeURIComponent(id)}`)
}
