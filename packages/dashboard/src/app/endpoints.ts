/**
 * Endpoints: the list, creating one (its secret shown with a copy button), and an endpoint's page to edit
 * it, enable or disable it, reveal and rotate its secret, and delete it.
 */
import { html } from "htm/preact"
import { useState } from "preact/hooks"
import { api, type Endpoint, type EndpointInput } from "./api.ts"
import {
  Confirm,
  Empty,
  ErrorMessage,
  Heading,
  href,
  navigate,
  type Route,
  Secret,
  Show,
  Time,
  useAction,
  useLoad
} from "./ui.ts"

interface Draft {
  readonly url: string
  readonly description: string
  readonly eventTypes: string
  readonly headers: string
  readonly requireSignature: boolean
}

const draftOf = (endpoint: Endpoint | undefined): Draft => ({
  url: endpoint?.url ?? "",
  description: endpoint?.description ?? "",
  eventTypes: endpoint?.event_types.join(", ") ?? "",
  headers: Object.entries(endpoint?.headers ?? {}).map(([name, value]) => `${name}: ${value}`).join("\n"),
  requireSignature: endpoint?.require_signature ?? false
})

/** The API body of a draft, or the message of what is wrong with it. */
const inputOf = (draft: Draft): EndpointInput | string => {
  const headers: Record<string, string> = {}
  const lines = draft.headers.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]?.trim() ?? ""
    if (line === "") continue
    const colon = line.indexOf(":")
    if (colon <= 0) return `Custom header line ${i + 1} needs the form "Name: value".`
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim()
  }
  return {
    url: draft.url.trim(),
    description: draft.description.trim(),
    event_types: draft.eventTypes.split(/[\s,]+/).filter((t) => t !== ""),
    require_signature: draft.requireSignature,
    headers
  }
}

const EndpointForm = (
  { initial, submitLabel, onSubmit, onCancel }: {
    readonly initial: Draft
    readonly submitLabel: string
    readonly onSubmit: (input: EndpointInput) => Promise<unknown>
    readonly onCancel?: () => void
  }
) => {
  const [draft, setDraft] = useState(initial)
  const action = useAction()
  const [invalid, setInvalid] = useState<string | undefined>(undefined)
  const field = (name: keyof Draft) => (e: Event) => {
    const target = e.currentTarget as HTMLInputElement
    setDraft({ ...draft, [name]: target.type === "checkbox" ? target.checked : target.value })
  }
  const submit = (e: SubmitEvent) => {
    e.preventDefault()
    const input = inputOf(draft)
    setInvalid(typeof input === "string" ? input : undefined)
    if (typeof input !== "string") void action.run(() => onSubmit(input))
  }
  return html`<form class="stack" onSubmit=${submit}>
    <label for="endpoint-url">URL <span class="muted">(where events are POSTed)</span></label>
    <input id="endpoint-url" type="url" required placeholder="https://example.com/webhooks" value=${draft.url}
      onInput=${field("url")} />
    <label for="endpoint-description">Description</label>
    <input id="endpoint-description" value=${draft.description} onInput=${field("description")} />
    <label for="endpoint-event-types">Event types <span class="muted">(comma-separated, e.g. order.*; empty accepts all)</span></label>
    <input id="endpoint-event-types" value=${draft.eventTypes} onInput=${field("eventTypes")} />
    <label for="endpoint-headers">Custom headers <span class="muted">(one "Name: value" per line)</span></label>
    <textarea id="endpoint-headers" rows="3" value=${draft.headers} onInput=${field("headers")}></textarea>
    <label class="check">
      <input type="checkbox" checked=${draft.requireSignature} onChange=${field("requireSignature")} />
      Require signed ingest (X-PJ-Signature and X-PJ-Timestamp)
    </label>
    <${ErrorMessage} message=${invalid ?? action.error} />
    <div class="actions">
      ${onCancel === undefined ? null : html`<button type="button" onClick=${onCancel}>Cancel</button>`}
      <button type="submit" class="primary" disabled=${action.pending}>${submitLabel}</button>
    </div>
  </form>`
}

const Created = ({ endpoint, onDone }: { readonly endpoint: Endpoint; readonly onDone: () => void }) =>
  html`<section class="panel" aria-labelledby="created-title">
    <h2 id="created-title">Endpoint created</h2>
    <p>Events sent to <code>${endpoint.url}</code> are signed with this secret. Keep it in your receiver's configuration;
    you can reveal it again on the endpoint's page.</p>
    <${Secret} label="Signing secret" value=${endpoint.secret ?? ""} />
    <p>Send an event to it:</p>
    <pre class="snippet">${`curl -X POST ${location.origin}/e/${endpoint.id} \\\n  -H "Authorization: Bearer $PROMPTJANG_API_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '{"event": "test.ping", "data": {}}'`}</pre>
    <div class="actions">
      <a class="button" href=${`#/endpoints/${endpoint.id}`}>Open the endpoint</a>
      <button type="button" onClick=${onDone}>Done</button>
    </div>
  </section>`

export const EndpointsPage = ({ route }: { readonly route: Route }) => {
  const cursor = route.params.get("cursor") ?? undefined
  const creating = route.params.get("new") === "1"
  const [created, setCreated] = useState<Endpoint | undefined>(undefined)
  const { loaded, reload } = useLoad(() => api.endpoints(cursor), `endpoints:${cursor ?? ""}`)
  return html`<div class="page-head">
      <${Heading}>Endpoints<//>
      ${
    creating || created !== undefined ? null : html`<a class="button primary" href="#/endpoints?new=1">New endpoint</a>`
  }
    </div>
    ${created === undefined ? null : html`<${Created} endpoint=${created} onDone=${() => setCreated(undefined)} />`}
    ${
    creating
      ? html`<section class="panel" aria-labelledby="new-title">
          <h2 id="new-title">New endpoint</h2>
          <${EndpointForm} initial=${draftOf(undefined)} submitLabel="Create endpoint"
            onCancel=${() => navigate("#/endpoints")}
            onSubmit=${async (input: EndpointInput) => {
        const endpoint = await api.createEndpoint(input)
        setCreated(endpoint)
        navigate("#/endpoints")
        reload()
      }} />
        </section>`
      : null
  }
    <${Show} loaded=${loaded} reload=${reload} render=${(
    page: { data: ReadonlyArray<Endpoint>; next_cursor: string | null }
  ) =>
    page.data.length === 0
      ? html`<${Empty}><p>No endpoints yet. Create one with the URL that should receive your events.</p>
          ${creating ? null : html`<a class="button primary" href="#/endpoints?new=1">New endpoint</a>`}<//>`
      : html`<div class="table-wrap"><table class="cards">
          <caption class="visually-hidden">Endpoints</caption>
          <thead><tr><th scope="col">URL</th><th scope="col">Description</th><th scope="col">Event types</th>
            <th scope="col">State</th><th scope="col">Created</th></tr></thead>
          <tbody>${
        page.data.map((endpoint) =>
          html`<tr>
              <td data-label="URL"><a href=${`#/endpoints/${endpoint.id}`}>${endpoint.url}</a><div class="muted id">${endpoint.id}</div></td>
              <td data-label="Description">${endpoint.description || html`<span class="muted">—</span>`}</td>
              <td data-label="Event types">${
            endpoint.event_types.length === 0 ? html`<span class="muted">all</span>` : endpoint.event_types.join(", ")
          }</td>
              <td data-label="State">${
            endpoint.enabled ? "Enabled" : html`<span class="badge badge-disabled">Disabled</span>`
          }</td>
              <td data-label="Created"><${Time} iso=${endpoint.created_at} /></td>
            </tr>`
        )
      }</tbody>
        </table></div>
        ${
        page.next_cursor === null
          ? null
          : html`<p><a class="button" href=${href("/endpoints", { cursor: page.next_cursor })}>More endpoints</a></p>`
      }`} />`
}

type Dialog = "rotate" | "delete" | undefined

const EndpointDetail = ({ endpoint, reload }: { readonly endpoint: Endpoint; readonly reload: () => void }) => {
  const [editing, setEditing] = useState(false)
  const [secret, setSecret] = useState<{ readonly value: string; readonly rotated: boolean } | undefined>(undefined)
  const [dialog, setDialog] = useState<Dialog>(undefined)
  const action = useAction()
  const toggle = () =>
    void action.run(async () => {
      await api.updateEndpoint(endpoint.id, { enabled: !endpoint.enabled })
      reload()
    })
  const reveal = () =>
    void action.run(async () => setSecret({ value: (await api.secret(endpoint.id)).secret, rotated: false }))
  const rotate = () =>
    void action.run(async () => {
      setSecret({ value: (await api.rotateSecret(endpoint.id)).secret, rotated: true })
      setDialog(undefined)
    })
  const remove = () =>
    void action.run(async () => {
      await api.deleteEndpoint(endpoint.id)
      navigate("#/endpoints")
    })
  return html`<div class="page-head">
      <${Heading}>${endpoint.description || "Endpoint"}<//>
      <span class=${endpoint.enabled ? "badge badge-delivered" : "badge badge-disabled"}>${
    endpoint.enabled ? "Enabled" : "Disabled"
  }</span>
    </div>
    <p class="muted id">${endpoint.id}</p>
    <${ErrorMessage} message=${dialog === undefined ? action.error : undefined} />
    ${
    editing
      ? html`<section class="panel" aria-labelledby="edit-title"><h2 id="edit-title">Edit endpoint</h2>
          <${EndpointForm} initial=${draftOf(endpoint)} submitLabel="Save changes" onCancel=${() => setEditing(false)}
            onSubmit=${async (input: EndpointInput) => {
        await api.updateEndpoint(endpoint.id, input)
        setEditing(false)
        reload()
      }} /></section>`
      : html`<dl class="facts">
          <div><dt>URL</dt><dd data-field="url">${endpoint.url}</dd></div>
          <div><dt>Event types</dt><dd>${
        endpoint.event_types.length === 0 ? "all" : endpoint.event_types.join(", ")
      }</dd></div>
          <div><dt>Custom headers</dt><dd>${
        Object.keys(endpoint.headers).length === 0
          ? html`<span class="muted">none</span>`
          : Object.entries(endpoint.headers).map(([name, value]) => html`<div><code>${name}: ${value}</code></div>`)
      }</dd></div>
          <div><dt>Signed ingest</dt><dd>${endpoint.require_signature ? "required" : "optional"}</dd></div>
          <div><dt>Created</dt><dd><${Time} iso=${endpoint.created_at} /></dd></div>
          <div><dt>Updated</dt><dd><${Time} iso=${endpoint.updated_at} /></dd></div>
        </dl>
        <div class="actions">
          <button type="button" onClick=${() => setEditing(true)}>Edit</button>
          <button type="button" onClick=${toggle} disabled=${action.pending}>${
        endpoint.enabled ? "Disable" : "Enable"
      }</button>
          <a class="button" href=${href("/events", { endpoint_id: endpoint.id })}>Events</a>
        </div>`
  }
    <section aria-labelledby="secret-title">
      <h2 id="secret-title">Signing secret</h2>
      ${
    secret === undefined
      ? html`<p class="muted">Hidden. Receivers verify X-PromptJang-Signature and webhook-signature with it.</p>`
      : html`${
        secret.rotated
          ? html`<p role="status">Rotated. The previous secret keeps signing a second webhook-signature for 24 hours.</p>`
          : null
      }<${Secret} key=${secret.value} label="Signing secret" value=${secret.value} />`
  }
      <div class="actions">
        ${secret === undefined ? html`<button type="button" onClick=${reveal}>Reveal secret</button>` : null}
        <button type="button" onClick=${() => setDialog("rotate")}>Rotate secret</button>
      </div>
    </section>
    <section aria-labelledby="danger-title">
      <h2 id="danger-title">Delete</h2>
      <p class="muted">Deleting the endpoint fails its pending events. Delivered events stay in the log.</p>
      <button type="button" class="danger" onClick=${() => setDialog("delete")}>Delete endpoint</button>
    </section>
    ${
    dialog === "rotate"
      ? html`<${Confirm} title="Rotate the signing secret?" confirmLabel="Rotate secret" onConfirm=${rotate}
          onCancel=${() => setDialog(undefined)} pending=${action.pending} error=${action.error}>
          <p>A new secret signs from now on. The old one still signs a second webhook-signature for 24 hours,
          but X-PromptJang-Signature uses the new secret at once: update receivers that check it.</p>
        <//>`
      : dialog === "delete"
      ? html`<${Confirm} title="Delete this endpoint?" confirmLabel="Delete endpoint" onConfirm=${remove}
          onCancel=${() => setDialog(undefined)} pending=${action.pending} error=${action.error}>
          <p>${endpoint.url} will receive nothing more; its queued and retrying events become FAILED. This cannot be undone.</p>
        <//>`
      : null
  }`
}

export const EndpointPage = ({ id }: { readonly id: string }) => {
  const { loaded, reload } = useLoad(() => api.endpoint(id), `endpoint:${id}`)
  return html`<p><a href="#/endpoints">← Endpoints</a></p>
    <${Show} loaded=${loaded} reload=${reload} render=${(endpoint: Endpoint) =>
    html`<${EndpointDetail} endpoint=${endpoint} reload=${reload} />`} />`
}
