"""The exceptions the SDK raises. Every API error carries the HTTP status, the gateway's
`error` code and `error_description`, and the request id (`X-Request-Id`)."""

from __future__ import annotations

from typing import Any


class DBAuditError(Exception):
    """Base class of every exception raised by dbaudit."""


class MissingCredentialError(DBAuditError):
    """No credential was given and none was found in the environment."""


class APIError(DBAuditError):
    """An error answer of the API or the gateway (or a transport failure, for the
    subclasses `APIConnectionError` and `APITimeoutError`, where `status` is None)."""

    status: int | None
    error: str | None
    error_description: str | None
    request_id: str | None
    body: Any

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error = error
        self.error_description = error_description
        self.request_id = request_id
        self.body = body

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, error={self.error!r}, "
            f"error_description={self.error_description!r}, request_id={self.request_id!r})"
        )


class APIConnectionError(APIError):
    """The request could not be sent or its answer not read (refused, reset, DNS...)."""


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, write, read or pool timeout)."""


class AuthenticationError(APIError):
    """401: the credential is missing, malformed, unknown, revoked or expired. `error` is
    the RFC 6750 code (`invalid_token`, ...) or the gateway's (`missing_credential`,
    `invalid_credentials`, `invalid_grant`)."""


class PermissionDeniedError(APIError):
    """403: valid credential, missing scope. `scope` is the scope the gateway names in
    `WWW-Authenticate` (the first one missing)."""

    scope: str | None

    def __init__(self, message: str, *, scope: str | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.scope = scope

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", scope={self.scope!r})"


class NotFoundError(APIError):
    """404."""


class RateLimitError(APIError):
    """429: a rate limit refused the request. `retry_after` is the `Retry-After` header in
    seconds (None when absent)."""

    retry_after: float | None

    def __init__(self, message: str, *, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", retry_after={self.retry_after!r})"


class ServiceUnavailableError(APIError):
    """503: the gateway (or the API) cannot serve now; `auth_unavailable` and
    `rate_limit_unavailable` mean the request never reached the API."""

    retry_after: float | None

    def __init__(self, message: str, *, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", retry_after={self.retry_after!r})"
