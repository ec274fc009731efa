'use strict';
// Turns a finished response into a value or a typed error.
const {
  APIError,
  AuthenticationError,
  PermissionDeniedError,
  NotFoundError,
  RateLimitError,
  ServiceUnavailableError,
} = require('./errors.cjs');
const { parseRetryAfter } = require('./retry.cjs');

/** The body as JSON when it says so (or looks like it), else text; null when empty. */
function parseBody(text, headers) {
  if (text === '') return null;
  const type = headers.get('content-type') ?? '';
  if (/\bjson\b/i.test(type) || /^\s*[[{]/.test(text)) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/** The auth-params of a `WWW-Authenticate: Bearer ...` header (RFC 6750 section 3). */
function parseWWWAuthenticate(value) {
  const params = {};
  if (!value) return params;
  const pattern = /([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  for (const match of value.matchAll(pattern)) {
    const name = match[1].toLowerCase();
    if (!(name in params)) params[name] = match[2] !== undefined ? match[2].replace(/\\(.)/g, '$1') : match[3];
  }
  return params;
}

/** Attaches the response's request id to a result without making it part of its JSON. */
function withRequestId(value, requestId) {
  if (value !== null && typeof value === 'object' && Object.isExtensible(value)) {
    Object.defineProperty(value, 'requestId', { value: requestId, enumerable: false, configurable: true });
  }
  return value;
}

/**
 * A function that replaces every occurrence of the given secrets (null entries ignored) in
 * a string, and in every string inside a JSON value: for what a server echoes back.
 */
function redactor(secrets) {
  const present = secrets.filter((secret) => typeof secret === 'string' && secret.length > 0);
  const text = (value) => present.reduce((out, secret) => out.split(secret).join('[redacted]'), value);
  const deep = (value) => {
    if (typeof value === 'string') return text(value);
    if (Array.isArray(value)) return value.map(deep);
    if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [text(k), deep(v)]));
    return value;
  };
  return deep;
}

/**
 * The typed error for a response that is not a success (3xx included: redirects are not
 * followed). `redact` scrubs the client's secrets from everything the server sent.
 */
function errorFor(status, rawHeaders, rawBody, nowMs, redact = (value) => value) {
  const headers = new Headers();
  for (const [name, value] of rawHeaders) headers.append(name, redact(value));
  const body = redact(rawBody);
  const fields = { status, headers, body };
  if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
    if (typeof body.error === 'string') fields.error = body.error;
    if (typeof body.error_description === 'string') fields.errorDescription = body.error_description;
    if (typeof body.request_id === 'string') fields.requestId = body.request_id;
  }
  fields.requestId ??= headers.get('x-request-id');
  const challenge = parseWWWAuthenticate(headers.get('www-authenticate'));
  switch (status) {
    case 401:
      fields.error = challenge.error ?? fields.error ?? null;
      return new AuthenticationError(fields);
    case 403:
      if (challenge.error && !fields.error) fields.error = challenge.error;
      return new PermissionDeniedError({ ...fields, scope: challenge.scope ?? null });
    case 404:
      return new NotFoundError(fields);
    case 429:
      return new RateLimitError({ ...fields, retryAfter: retryAfterSeconds(headers, nowMs) });
    case 503:
      return new ServiceUnavailableError({ ...fields, retryAfter: retryAfterSeconds(headers, nowMs) });
    default:
      return new APIError(fields);
  }
}

function retryAfterSeconds(headers, nowMs) {
  const ms = parseRetryAfter(headers.get('retry-after'), nowMs);
  return ms === null ? null : ms / 1000;
}

module.exports = { parseBody, parseWWWAuthenticate, withRequestId, errorFor, redactor };
