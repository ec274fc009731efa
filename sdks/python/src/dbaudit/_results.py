"""What API calls return: the decoded JSON, plus the response's `X-Request-Id`."""

from __future__ import annotations

from typing import Any

# Fields that hold a credential (a created API key, tokens): shown masked by repr so a
# logged or printed result never leaks one. Reading the field still gives the value.
SENSITIVE_FIELDS = frozenset({"key", "api_key", "access_token", "refresh_token", "client_secret", "password"})


def _masked(value: Any) -> str:
    if isinstance(value, dict):
        items = ", ".join(
            f"{k!r}: {'********' if k in SENSITIVE_FIELDS and isinstance(v, str) else _masked(v)}"
            for k, v in value.items()
        )
        return "{" + items + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_masked(v) for v in value) + "]"
    return repr(value)


class APIObject(dict[str, Any]):
    """A JSON object returned by the API. `request_id` is the response's X-Request-Id."""

    request_id: str | None

    def __init__(self, data: dict[str, Any] | None = None, *, request_id: str | None = None) -> None:
        super().__init__(data or {})
        self.request_id = request_id

    def __repr__(self) -> str:
        return _masked(dict(self))

    __str__ = __repr__


class APIList(list[Any]):
    """A JSON array returned by the API. `request_id` is the response's X-Request-Id."""

    request_id: str | None

    def __init__(self, data: list[Any] | None = None, *, request_id: str | None = None) -> None:
        super().__init__(data or [])
        self.request_id = request_id

    def __repr__(self) -> str:
        return _masked(list(self))

    __str__ = __repr__
