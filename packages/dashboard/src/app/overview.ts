/**
 * Overview: the plan and this period's usage against it (SPEC §7), with the next step when nothing is set up.
 */
import { html } from "htm/preact"
import { api, type Endpoint, type Page, type Usage } from "./api.ts"
import { bytes, Empty, Heading, Show, useLoad, utcDay } from "./ui.ts"

const UsageCard = ({ usage, endpoints }: { readonly usage: Usage; readonly endpoints: Page<Endpoint> }) => {
  const share = usage.included_events === 0 ? 1 : Math.min(1, usage.events / usage.included_events)
  return html`<section aria-labelledby="usage-title">
    <h2 id="usage-title">This billing period</h2>
    <p class="muted" data-field="period">
      ${utcDay(Date.parse(usage.period_start))} to ${utcDay(Date.parse(usage.period_end) - 1)} (the calendar month, UTC)
    </p>
    <dl class="facts">
      <div><dt>Plan</dt><dd data-field="plan">${usage.plan}</dd></div>
      <div>
        <dt>Events this period</dt>
        <dd data-field="events">
          ${usage.events.toLocaleString()} of ${usage.included_events.toLocaleString()} included
          <meter min="0" max="1" value=${share} aria-label="Share of the included events used"></meter>
        </dd>
      </div>
      <div>
        <dt>Overage units</dt>
        <dd data-field="overage">
          ${usage.overage_units}${
    usage.overage_cents > 0 ? ` (${(usage.overage_cents / 100).toFixed(2)} USD so far)` : ""
  }
          <span class="muted">units of 100,000 events beyond the included ones; events are never dropped</span>
        </dd>
      </div>
      <div><dt>Retention</dt><dd data-field="retention">${usage.retention_days} days</dd></div>
      <div><dt>Payload limit</dt><dd data-field="payload-limit">${bytes(usage.max_payload_bytes)} per event</dd></div>
    </dl>
    ${
    endpoints.data.length === 0
      ? html`<${Empty}>
          <p>No endpoints yet. An endpoint is the URL PromptJang delivers your events to.</p>
          <a class="button primary" href="#/endpoints?new=1">Create your first endpoint</a>
        <//>`
      : html`<p>
          ${endpoints.data.length}${endpoints.next_cursor === null ? "" : "+"} endpoint${
        endpoints.data.length === 1 ? "" : "s"
      }. <a href="#/events">See the latest events</a>.
        </p>`
  }
  </section>`
}

export const OverviewPage = () => {
  const { loaded, reload } = useLoad(
    async () => ({ usage: await api.usage(), endpoints: await api.endpoints() }),
    "overview"
  )
  return html`<${Heading}>Overview<//>
    <${Show} loaded=${loaded} reload=${reload} render=${(value: { usage: Usage; endpoints: Page<Endpoint> }) =>
    html`<${UsageCard} usage=${value.usage} endpoints=${value.endpoints} />`} />`
}
