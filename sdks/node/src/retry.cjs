'use strict';
// When to try a request again and how long to wait first. Pure functions of the response
// and the attempt number (the clock and the random source are passed in), so the tests
// can check every delay without sleeping.

/** Statuses worth another attempt: the condition is likely to pass. */
const RETRY_STATUSES = new Set([408, 429, 502, 503, 504]);

/** Methods a repeat cannot do twice (RFC 9110 idempotent methods). */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT']);

/**
 * The gateway's own refusals, made before it forwards anything (docs/errors.md): after one
 * of these the upstream never saw the request, so even a POST may be sent again.
 */
const NOT_FORWARDED = new Map([
  [401, new Set(['invalid_token', 'missing_credential'])],
  [429, new Set(['rate_limited', 'too_many_attempts'])],
  [503, new Set(['auth_unavailable', 'rate_limit_unavailable', 'busy'])],
]);

const INITIAL_DELAY_MS = 500;
const MAX_BACKOFF_MS = 8_000;
/** A delay is the backoff times a factor drawn from [1 - JITTER, 1]. */
const JITTER = 0.25;
const DEFAULT_MAX_RETRY_AFTER_MS = 60_000;

/**
 * True when the response is an error the gateway answered itself without forwarding: the
 * code is one of its never-forwarded refusals and the body's request id is the one in the
 * `X-Request-Id` header, which is how the gateway writes its own error bodies. An upstream
 * error passed through carries its own body, not this pair.
 */
function isGatewayRefusal(status, body, headers) {
  const codes = NOT_FORWARDED.get(status);
  if (!codes || body === null || typeof body !== 'object') return false;
  if (typeof body.error !== 'string' || !codes.has(body.error)) return false;
  const headerId = headers.get('x-request-id');
  return typeof body.request_id === 'string' && headerId !== null && body.request_id === headerId;
}

/** `Retry-After` in milliseconds (delta-seconds or an HTTP date), or null. */
function parseRetryAfter(value, nowMs) {
  if (value === null || value === undefined) return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - nowMs);
}

/**
 * The wait before retry number `retry` (0 for the first): `Retry-After` when the response
 * has one, capped at `maxRetryAfterMs`; otherwise 0.5 s doubling per retry, capped at 8 s,
 * times a jitter factor in [0.75, 1].
 */
function retryDelayMs({ retry, retryAfterMs = null, random = Math.random, maxRetryAfterMs = DEFAULT_MAX_RETRY_AFTER_MS }) {
  if (retryAfterMs !== null) return Math.min(retryAfterMs, maxRetryAfterMs);
  const backoff = Math.min(INITIAL_DELAY_MS * 2 ** retry, MAX_BACKOFF_MS);
  return backoff * (1 - JITTER * random());
}

module.exports = {
  RETRY_STATUSES,
  IDEMPOTENT_METHODS,
  NOT_FORWARDED,
  INITIAL_DELAY_MS,
  MAX_BACKOFF_MS,
  JITTER,
  DEFAULT_MAX_RETRY_AFTER_MS,
  isGatewayRefusal,
  parseRetryAfter,
  retryDelayMs,
};
