"""Reading the gateway's answers: error bodies, WWW-Authenticate, Retry-After, results."""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Iterable
from typing import Any

import httpx

from ._errors import (
    APIError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from ._results import APIList, APIObject
from ._retry import GATEWAY_NEVER_FORWARDED
from ._secret import Secret, redact

_AUTH_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_MAX_RETRY_AFTER_TEXT = 64


def www_authenticate_params(value: str | None) -> dict[str, str]:
    """The auth-params of a `WWW-Authenticate: Bearer k="v", ...` header (RFC 6750)."""
    if not value:
        return {}
    params: dict[str, str] = {}
    for name, raw in _AUTH_PARAM.findall(value[:8192]):
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(name.lower(), raw)
    return params


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP-date; None if absent or invalid."""
    if value is None:
        return None
    value = value.strip()[:_MAX_RETRY_AFTER_TEXT]
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    wall = time.time() if now is None else now
    return max(0.0, moment.timestamp() - wall)


def json_body(response: httpx.Response) -> Any:
    """The response body as JSON, or None when it is empty or not JSON."""
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def request_id(response: httpx.Response) -> str | None:
    value: str | None = response.headers.get("x-request-id")
    return value


def never_forwarded(response: httpx.Response) -> bool:
    """True when the answer is one of the gateway's own refusals made before forwarding
    (its error code says so and its body's request id is the response's)."""
    body = json_body(response)
    if not isinstance(body, dict):
        return False
    rid = request_id(response)
    codes = GATEWAY_NEVER_FORWARDED.get(response.status_code, frozenset())
    return rid is not None and body.get("error") in codes and body.get("request_id") == rid


def result(response: httpx.Response) -> APIObject | APIList:
    """A successful answer as a dict or list carrying the response's request id."""
    rid = request_id(response)
    body = json_body(response)
    if isinstance(body, list):
        return APIList(body, request_id=rid)
    if isinstance(body, dict):
        return APIObject(body, request_id=rid)
    if body is None and response.content:
        return APIObject({"text": response.text}, request_id=rid)
    return APIObject({} if body is None else {"value": body}, request_id=rid)


def error_for(response: httpx.Response, secrets: Iterable[Secret | None]) -> APIError:
    """The typed exception for an error answer; nothing a server sent back can carry one
    of `secrets` into the message."""
    secrets = list(secrets)
    status = response.status_code
    body = json_body(response)
    fields: dict[str, Any] = {}
    if isinstance(body, dict):
        for name in ("error", "error_description"):
            value = body.get(name)
            if isinstance(value, str):
                fields[name] = redact(value, secrets)
    challenge = www_authenticate_params(response.headers.get("www-authenticate"))
    if "error" not in fields and "error" in challenge:
        fields["error"] = redact(challenge["error"], secrets)
    if "error_description" not in fields and "error_description" in challenge:
        fields["error_description"] = redact(challenge["error_description"], secrets)
    rid = request_id(response)
    if rid is None and isinstance(body, dict) and isinstance(body.get("request_id"), str):
        rid = body["request_id"]
    fields["request_id"] = rid
    fields["status"] = status
    fields["body"] = body
    reason = fields.get("error") or response.reason_phrase or "error"
    message = f"{status} {reason}"
    if fields.get("error_description"):
        message += f": {fields['error_description']}"
    if rid:
        message += f" (request id {rid})"
    message = redact(message, secrets)
    if status == 401:
        return AuthenticationError(message, **fields)
    if status == 403:
        scope = challenge.get("scope")
        return PermissionDeniedError(message, scope=redact(scope, secrets) if scope else None, **fields)
    if status == 404:
        return NotFoundError(message, **fields)
    if status == 429:
        return RateLimitError(message, retry_after=retry_after_seconds(response.headers.get("retry-after")), **fields)
    if status == 503:
        return ServiceUnavailableError(
            message, retry_after=retry_after_seconds(response.headers.get("retry-after")), **fields
        )
    return APIError(message, **fields)
