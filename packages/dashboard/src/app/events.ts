/**
 * Events: a paginated list filtered by status, endpoint and event type that refreshes itself while events
 * are in flight, and an event's page with its payload, status, next attempt and every attempt, with Replay.
 */
import { html } from "htm/preact"
import { useRef, useState } from "preact/hooks"
import {
  api,
  type Attempt,
  type Endpoint,
  inFlight,
  type Page,
  replayable,
  STATUSES,
  type WebhookEvent
} from "./api.ts"
import {
  Empty,
  ErrorMessage,
  Heading,
  href,
  navigate,
  relative,
  type Route,
  Show,
  StatusBadge,
  Time,
  useAction,
  useLoad
} from "./ui.ts"

/** How often a page with events in flight asks again. */
const LIST_REFRESH_MS = 2000
const EVENT_REFRESH_MS = 1000

interface Filters {
  readonly status: string
  readonly endpoint_id: string
  readonly event_type: string
}

const FilterForm = (
  { filters, endpoints }: { readonly filters: Filters; readonly endpoints: ReadonlyArray<Endpoint> }
) => {
  const [draft, setDraft] = useState(filters)
  const field = (name: keyof Filters) => (e: Event) =>
    setDraft({ ...draft, [name]: (e.currentTarget as HTMLInputElement | HTMLSelectElement).value })
  const submit = (e: SubmitEvent) => {
    e.preventDefault()
    navigate(href("/events", { ...draft, event_type: draft.event_type.trim() }))
  }
  const filtered = filters.status !== "" || filters.endpoint_id !== "" || filters.event_type !== ""
  return html`<form class="filters" onSubmit=${submit} aria-label="Filter events">
    <div>
      <label for="filter-status">Status</label>
      <select id="filter-status" value=${draft.status} onChange=${field("status")}>
        <option value="">Any status</option>
        ${STATUSES.map((status) => html`<option value=${status}>${status}</option>`)}
      </select>
    </div>
    <div>
      <label for="filter-endpoint">Endpoint</label>
      <select id="filter-endpoint" value=${draft.endpoint_id} onChange=${field("endpoint_id")}>
        <option value="">Any endpoint</option>
        ${
    endpoints.map((endpoint) =>
      html`<option value=${endpoint.id}>${
        endpoint.description ? `${endpoint.description} — ` : ""
      }${endpoint.url}</option>`
    )
  }
      </select>
    </div>
    <div>
      <label for="filter-type">Event type</label>
      <input id="filter-type" placeholder="order.created" value=${draft.event_type} onInput=${field("event_type")} />
    </div>
    <div class="actions">
      <button type="submit" class="primary">Apply</button>
      ${filtered ? html`<a class="button" href="#/events">Clear</a>` : null}
    </div>
  </form>`
}

const EventRows = (
  { events, endpoints }: { readonly events: ReadonlyArray<WebhookEvent>; readonly endpoints: ReadonlyArray<Endpoint> }
) => {
  const urlOf = (id: string) => endpoints.find((e) => e.id === id)?.url ?? id
  return html`<div class="table-wrap"><table class="cards">
    <caption class="visually-hidden">Events</caption>
    <thead><tr><th scope="col">Event</th><th scope="col">Type</th><th scope="col">Endpoint</th><th scope="col">Status</th>
      <th scope="col">Attempts</th><th scope="col">Created</th><th scope="col">Next attempt</th></tr></thead>
    <tbody>${
    events.map((event) =>
      html`<tr data-event=${event.id}>
        <td data-label="Event"><a class="id" href=${`#/events/${event.id}`}>${event.id}</a></td>
        <td data-label="Type">${event.event_type ?? html`<span class="muted">none</span>`}</td>
        <td data-label="Endpoint" class="url">${urlOf(event.endpoint_id)}</td>
        <td data-label="Status"><${StatusBadge} status=${event.status} /></td>
        <td data-label="Attempts">${event.attempt_count}</td>
        <td data-label="Created"><${Time} iso=${event.created_at} /></td>
        <td data-label="Next attempt">${
        event.next_attempt_at === null ? html`<span class="muted">—</span>` : relative(event.next_attempt_at)
      }</td>
      </tr>`
    )
  }</tbody>
  </table></div>`
}

export const EventsPage = ({ route }: { readonly route: Route }) => {
  const filters: Filters = {
    status: route.params.get("status") ?? "",
    endpoint_id: route.params.get("endpoint_id") ?? "",
    event_type: route.params.get("event_type") ?? ""
  }
  const cursor = route.params.get("cursor") ?? undefined
  // Earlier pages' cursors, so "Newer" can go back (the API pages forward only).
  const previous = (route.params.get("back") ?? "").split(",").filter((c) => c !== "")
  const key = route.params.toString()
  // The endpoints (for the filter and the URL column) are read once per visit, not on every refresh.
  const endpointList = useRef<Promise<ReadonlyArray<Endpoint>> | undefined>(undefined)
  const { loaded, reload } = useLoad(
    async () => {
      endpointList.current ??= api.endpoints().then((page) => page.data, (error: unknown) => {
        endpointList.current = undefined
        throw error
      })
      const [page, endpoints] = await Promise.all([api.events({ ...filters, cursor }), endpointList.current])
      return { page, endpoints }
    },
    key,
    ({ page }) => (page.data.some((event) => inFlight(event.status)) ? LIST_REFRESH_MS : undefined)
  )
  return html`<${Heading}>Events<//>
    <${Show} loaded=${loaded} reload=${reload} render=${(
    { page, endpoints }: { page: Page<WebhookEvent>; endpoints: ReadonlyArray<Endpoint> }
  ) => {
    const filtered = filters.status !== "" || filters.endpoint_id !== "" || filters.event_type !== ""
    return html`<${FilterForm} key=${key} filters=${filters} endpoints=${endpoints} />
      ${
      page.data.some((event) => inFlight(event.status))
        ? html`<p class="muted" role="status">Events are in flight: this list refreshes every ${
          LIST_REFRESH_MS / 1000
        } s.</p>`
        : null
    }
      ${
      page.data.length === 0
        ? html`<${Empty}>${
          filtered
            ? html`<p>No events match these filters. <a href="#/events">Clear the filters</a>.</p>`
            : endpoints.length === 0
            ? html`<p>No events yet. Create an endpoint first, then send events to it.</p>
                <a class="button primary" href="#/endpoints?new=1">New endpoint</a>`
            : html`<p>No events yet. Send one to an endpoint with your API key:</p>
                <pre class="snippet">${`curl -X POST ${location.origin}/e/${
              endpoints[0]?.id
            } \\\n  -H "Authorization: Bearer $PROMPTJANG_API_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '{"event": "test.ping", "data": {}}'`}</pre>`
        }<//>`
        : html`<${EventRows} events=${page.data} endpoints=${endpoints} />`
    }
      <nav class="pager" aria-label="Pages">
        ${
      cursor === undefined
        ? null
        : html`<a class="button" href=${
          href("/events", { ...filters, cursor: previous.at(-1), back: previous.slice(0, -1).join(",") })
        }>← Newer</a>`
    }
        ${
      page.next_cursor === null
        ? null
        : html`<a class="button" href=${
          href("/events", { ...filters, cursor: page.next_cursor, back: [...previous, cursor ?? ""].join(",") })
        }>Older →</a>`
    }
      </nav>`
  }} />`
}

const AttemptRows = ({ attempts }: { readonly attempts: ReadonlyArray<Attempt> }) =>
  html`<div class="table-wrap"><table class="cards attempts">
    <caption class="visually-hidden">Delivery attempts</caption>
    <thead><tr><th scope="col">Cycle</th><th scope="col">Attempt</th><th scope="col">Result</th><th scope="col">Duration</th>
      <th scope="col">Time</th><th scope="col">Response body</th></tr></thead>
    <tbody>${
    [...attempts].reverse().map((attempt) =>
      html`<tr data-attempt=${attempt.id}>
        <td data-label="Cycle">${attempt.cycle}</td>
        <td data-label="Attempt">${attempt.attempt}</td>
        <td data-label="Result"><span class=${
        attempt.succeeded ? "badge badge-delivered" : "badge badge-failed"
      } data-field="status-code">${attempt.status_code ?? "no response"}</span>${
        attempt.error === null ? null : html` <span class="muted">${attempt.error}</span>`
      }</td>
        <td data-label="Duration">${attempt.duration_ms} ms</td>
        <td data-label="Time"><${Time} iso=${attempt.created_at} /></td>
        <td data-label="Response body">${
        attempt.response_body === null || attempt.response_body === ""
          ? html`<span class="muted">empty</span>`
          : html`<pre class="body">${attempt.response_body}</pre>`
      }</td>
      </tr>`
    )
  }</tbody>
  </table></div>`

const EventDetail = ({ event, reload }: { readonly event: WebhookEvent; readonly reload: () => void }) => {
  const action = useAction()
  const [replayed, setReplayed] = useState(false)
  const replay = () =>
    void action.run(async () => {
      await api.replay(event.id)
      setReplayed(true)
      reload()
    })
  const attempts = event.attempts ?? []
  return html`<div class="page-head">
      <${Heading}>Event <span class="id">${event.id}</span><//>
      <${StatusBadge} status=${event.status} />
    </div>
    ${
    replayable(event.status)
      ? html`<div class="actions"><button type="button" class="primary" onClick=${replay} disabled=${action.pending}>Replay</button></div>`
      : null
  }
    ${
    replayed
      ? html`<p role="status">Replay queued: a new delivery cycle started; earlier attempts stay below.</p>`
      : null
  }
    <${ErrorMessage} message=${action.error} />
    <dl class="facts">
      <div><dt>Status</dt><dd data-field="status">${event.status}</dd></div>
      <div><dt>Type</dt><dd>${event.event_type ?? html`<span class="muted">none</span>`}</dd></div>
      <div><dt>Endpoint</dt><dd><a href=${`#/endpoints/${event.endpoint_id}`}>${event.endpoint_id}</a></dd></div>
      <div><dt>Attempts</dt><dd>${event.attempt_count} in this cycle</dd></div>
      <div><dt>Next attempt</dt><dd data-field="next-attempt">${
    event.next_attempt_at === null
      ? html`<span class="muted">none</span>`
      : html`<${Time} iso=${event.next_attempt_at} /> (${relative(event.next_attempt_at)})`
  }</dd></div>
      <div><dt>Created</dt><dd><${Time} iso=${event.created_at} /></dd></div>
      <div><dt>Updated</dt><dd><${Time} iso=${event.updated_at} /></dd></div>
    </dl>
    ${
    inFlight(event.status)
      ? html`<p class="muted" role="status">Delivery in progress: this page refreshes on its own.</p>`
      : null
  }
    <h2>Payload</h2>
    <pre class="payload" data-field="payload">${JSON.stringify(event.payload, null, 2)}</pre>
    <h2>Attempts</h2>
    ${
    attempts.length === 0
      ? html`<${Empty}><p>No attempt yet: the first one is on its way.</p><//>`
      : html`<${AttemptRows} attempts=${attempts} />`
  }`
}

export const EventPage = ({ id }: { readonly id: string }) => {
  const { loaded, reload } = useLoad(
    () => api.event(id),
    `event:${id}`,
    (event) => (inFlight(event.status) ? EVENT_REFRESH_MS : undefined)
  )
  return html`<p><a href="#/events">← Events</a></p>
    <${Show} loaded=${loaded} reload=${reload} render=${(event: WebhookEvent) =>
    html`<${EventDetail} event=${event} reload=${reload} />`} />`
}
