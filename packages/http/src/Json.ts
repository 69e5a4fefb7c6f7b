/**
 * The JSON shapes of the API (SPEC §2–§6): snake_case fields, ISO 8601 times.
 *
 * @since 0.1.0
 */
import { Domain } from "@promptjang/core"
import type { Usage } from "@promptjang/core/Accounts"
import type { ApiKey, Attempt, Endpoint, Event } from "@promptjang/core/Domain"

const iso = (millis: number | null): string | null => (millis === null ? null : new Date(millis).toISOString())

/** An endpoint; `secret` only where the API returns it (on creation). */
export const endpoint = (e: Endpoint, options: { readonly withSecret?: boolean } = {}) => ({
  id: e.id,
  url: e.url,
  ...(options.withSecret === true ? { secret: e.secret } : {}),
  description: e.description,
  event_types: e.eventTypes,
  enabled: e.enabled,
  require_signature: e.requireSignature,
  headers: e.headers,
  created_at: iso(e.createdAt),
  updated_at: iso(e.updatedAt)
})

/** One delivery attempt. */
export const attempt = (a: Attempt) => ({
  id: a.id,
  attempt: a.number,
  cycle: a.cycle,
  status_code: a.statusCode,
  response_body: a.responseBody,
  duration_ms: a.durationMs,
  error: a.error,
  succeeded: a.succeeded,
  created_at: iso(a.createdAt)
})

/** An event; with its attempts when given. */
export const event = (e: Event, attempts?: ReadonlyArray<Attempt>) => ({
  id: e.id,
  endpoint_id: e.endpointId,
  event_type: e.eventType,
  status: e.status,
  payload: Domain.payloadOf(e),
  ...(attempts === undefined ? {} : { attempts: attempts.map(attempt) }),
  attempt_count: e.attemptCount,
  next_attempt_at: iso(e.nextAttemptAt),
  created_at: iso(e.createdAt),
  updated_at: iso(e.updatedAt)
})

/** An API key record (never the key). */
export const apiKey = (k: ApiKey) => ({
  id: k.id,
  name: k.name,
  prefix: k.prefix,
  created_at: iso(k.createdAt),
  last_used_at: iso(k.lastUsedAt),
  revoked_at: iso(k.revokedAt)
})

/** Usage of the current period. */
export const usage = (u: Usage) => ({
  plan: u.plan,
  period_start: iso(u.periodStart),
  period_end: iso(u.periodEnd),
  events: u.events,
  included_events: u.includedEvents,
  overage_units: u.overageUnits,
  overage_cents: u.overageCents,
  retention_days: u.retentionDays,
  max_payload_bytes: u.maxPayloadBytes
})
