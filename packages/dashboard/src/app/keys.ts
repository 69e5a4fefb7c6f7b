/**
 * API keys: create one (the full key shown once, with a copy button and a warning), the list by prefix with
 * created and last-used times, and revoking with confirmation.
 */
import { html } from "htm/preact"
import { useState } from "preact/hooks"
import { api, type ApiKey, type ApiKeyCreated, session } from "./api.ts"
import { Confirm, Empty, ErrorMessage, Heading, Secret, Show, Time, useAction, useLoad } from "./ui.ts"

const CreateKey = ({ onCreated }: { readonly onCreated: (key: ApiKeyCreated) => void }) => {
  const [name, setName] = useState("")
  const action = useAction()
  const submit = (e: SubmitEvent) => {
    e.preventDefault()
    void action.run(async () => {
      onCreated(await api.createApiKey(name.trim()))
      setName("")
    })
  }
  return html`<form class="inline" onSubmit=${submit} aria-label="Create an API key">
    <label for="key-name">Name</label>
    <input id="key-name" placeholder="e.g. production backend" value=${name}
      onInput=${(e: InputEvent) => setName((e.currentTarget as HTMLInputElement).value)} />
    <button type="submit" class="primary" disabled=${action.pending}>Create API key</button>
    <${ErrorMessage} message=${action.error} />
  </form>`
}

const isCurrent = (key: ApiKey): boolean => session.get()?.startsWith(key.prefix) === true

export const KeysPage = ({ signOut }: { readonly signOut: (notice?: string) => void }) => {
  const { loaded, reload } = useLoad(() => api.apiKeys(), "keys")
  const [created, setCreated] = useState<ApiKeyCreated | undefined>(undefined)
  const [revoking, setRevoking] = useState<ApiKey | undefined>(undefined)
  const action = useAction()
  const revoke = (key: ApiKey) =>
    void action.run(async () => {
      await api.revokeApiKey(key.id)
      setRevoking(undefined)
      if (isCurrent(key)) signOut("You revoked the API key this tab was signed in with. Sign in with another key.")
      else reload()
    })
  return html`<${Heading}>API keys<//>
    <p class="muted">Keys authenticate calls to the API and to ingest (<code>Authorization: Bearer pj_live_…</code>).
    Only a hash of each key is stored.</p>
    <${CreateKey} onCreated=${(key: ApiKeyCreated) => {
    setCreated(key)
    reload()
  }} />
    ${
    created === undefined
      ? null
      : html`<section class="panel warning" aria-labelledby="new-key-title">
          <h2 id="new-key-title">Copy your new API key now</h2>
          <p><strong>This is the only time the full key is shown.</strong> Store it somewhere safe; if you lose it,
          create another key and revoke this one.</p>
          <${Secret} key=${created.key} label="New API key" value=${created.key} />
          <div class="actions"><button type="button" onClick=${() =>
        setCreated(undefined)}>I have copied it</button></div>
        </section>`
  }
    <${Show} loaded=${loaded} reload=${reload} render=${(page: { data: ReadonlyArray<ApiKey> }) =>
    page.data.length === 0
      ? html`<${Empty}><p>No API keys. Create one above.</p><//>`
      : html`<div class="table-wrap"><table class="cards">
        <caption class="visually-hidden">API keys</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col">Created</th>
          <th scope="col">Last used</th><th scope="col">State</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody>${
        page.data.map((key) =>
          html`<tr data-key=${key.id}>
            <td data-label="Name">${key.name || html`<span class="muted">unnamed</span>`}${
            isCurrent(key) ? html` <span class="muted">(this session)</span>` : null
          }</td>
            <td data-label="Prefix"><code>${key.prefix}…</code></td>
            <td data-label="Created"><${Time} iso=${key.created_at} /></td>
            <td data-label="Last used">${
            key.last_used_at === null
              ? html`<span class="muted">never</span>`
              : html`<${Time} iso=${key.last_used_at} />`
          }</td>
            <td data-label="State">${
            key.revoked_at === null
              ? "Active"
              : html`<span class="badge badge-failed">Revoked</span> <${Time} iso=${key.revoked_at} />`
          }</td>
            <td>${
            key.revoked_at === null
              ? html`<button type="button" class="danger" onClick=${() => setRevoking(key)}
                  aria-label=${`Revoke ${key.name || key.prefix}`}>Revoke</button>`
              : null
          }</td>
          </tr>`
        )
      }</tbody>
      </table></div>`} />
    ${
    revoking === undefined
      ? null
      : html`<${Confirm} title="Revoke this API key?" confirmLabel="Revoke key" onConfirm=${() => revoke(revoking)}
          onCancel=${() => {
        action.clearError()
        setRevoking(undefined)
      }} pending=${action.pending} error=${action.error}>
          <p>Requests with <code>${revoking.prefix}…</code> are refused from the next one on. This cannot be undone.</p>
          ${
        isCurrent(revoking)
          ? html`<p><strong>You are signed in with this key: you will be signed out.</strong></p>`
          : null
      }
        <//>`
  }`
}
