'use strict';
// Typed errors. Every field comes from the response (status, the gateway's JSON body, its
// headers); nothing from the request, so no credential can end up in a message or a dump.

/** The base class of every error this SDK throws. */
class DBauditError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** No credential was given or set (the message names DBAUDIT_API_KEY), or a session is missing. */
class MissingCredentialError extends DBauditError {}

/** A response that is not a success (a status of 300 or more), or a request that got no response. */
class APIError extends DBauditError {
  constructor({ message, status = null, error = null, errorDescription = null, requestId = null, headers = null, body = null, cause } = {}) {
    super(message ?? APIError.describe(status, error, errorDescription, requestId), cause === undefined ? undefined : { cause });
    /** The HTTP status, or null when no response arrived. */
    this.status = status;
    /** The machine-readable code of the body (`error`), e.g. `invalid_token`. */
    this.error = error;
    /** The human sentence of the body (`error_description`). */
    this.errorDescription = errorDescription;
    /** The gateway's request id (body `request_id`, else the `X-Request-Id` header). */
    this.requestId = requestId;
    /** The response headers (a `Headers`), or null. */
    this.headers = headers;
    /** The parsed response body (JSON value or text), or null. */
    this.body = body;
  }

  static describe(status, error, description, requestId) {
    let text = `${status ?? 'no response'}`;
    if (error) text += ` ${error}`;
    if (description) text += `: ${description}`;
    if (requestId) text += ` (request id ${requestId})`;
    return text;
  }
}

/** 401: the credential is missing, invalid or expired. `error` is the RFC 6750 code. */
class AuthenticationError extends APIError {}

/** 403: the credential lacks a scope; `scope` names it (from `WWW-Authenticate`). */
class PermissionDeniedError extends APIError {
  constructor(fields = {}) {
    super(fields);
    this.scope = fields.scope ?? null;
  }
}

/** 404. */
class NotFoundError extends APIError {}

/** 429: `retryAfter` is the `Retry-After` header in seconds, or null. */
class RateLimitError extends APIError {
  constructor(fields = {}) {
    super(fields);
    this.retryAfter = fields.retryAfter ?? null;
  }
}

/** 503: the gateway (or the API behind it) cannot answer now. */
class ServiceUnavailableError extends APIError {
  constructor(fields = {}) {
    super(fields);
    this.retryAfter = fields.retryAfter ?? null;
  }
}

/** No response: the connection failed or broke. */
class APIConnectionError extends APIError {
  constructor({ message = 'Connection error.', cause } = {}) {
    super({ message, cause });
  }
}

/** No response within the timeout. */
class APITimeoutError extends APIConnectionError {
  constructor({ message = 'Request timed out.', cause } = {}) {
    super({ message, cause });
  }
}

module.exports = {
  DBauditError,
  MissingCredentialError,
  APIError,
  AuthenticationError,
  PermissionDeniedError,
  NotFoundError,
  RateLimitError,
  ServiceUnavailableError,
  APIConnectionError,
  APITimeoutError,
};
