"""The request logic shared by `Client` and `AsyncClient`, written once as flows:
generators that yield what they need done (send this request, sleep this long, give me
a current Authorization value) and get the outcome back. The sync and the async client
only execute those actions, so both behave exactly alike."""

from __future__ import annotations

import base64
import logging
import os
import random as _random
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar, Union
from urllib.parse import quote

import httpx

from ._errors import (APIConnectionError, APIError, APITimeoutError, AuthenticationError, DBAuditError,
                      MissingCredentialError)
from ._results import APIList, APIObject
from ._retry import RetryPolicy, may_repeat, should_retry_status, should_retry_transport
from ._secret import Secret, redact
from ._version import __version__
from ._wire import error_for, never_forwarded, request_id, result, retry_after_seconds

DEFAULT_BASE_URL = "https://api.dbaudit.ai"
DEFAULT_TIMEOUT = 60.0
API_KEY_ENV = "DBAUDIT_API_KEY"
BASE_URL_ENV = "DBAUDIT_BASE_URL"
USER_AGENT = f"dbaudit-python/{__version__}"

logger = logging.getLogger("dbaudit")

T = TypeVar("T")
TimeoutTypes = Union[float, httpx.Timeout, None]
Result = Union[APIObject, APIList]


class RequestOptions(TypedDict, total=False):
    """Per-request settings, accepted as keyword arguments by every API method."""

    timeout: TimeoutTypes
    max_retries: int
    idempotency_key: str | bool
    extra_headers: Mapping[str, str]


@dataclass(frozen=True)
class Send:
    """Action: send one HTTP request, answer with the httpx.Response or a Failed."""

    method: str
    path: str
    params: Mapping[str, Any] | None
    json: Any
    data: Mapping[str, str] | None
    headers: dict[str, str]
    timeout: TimeoutTypes


@dataclass(frozen=True)
class Failed:
    """Outcome of a Send that got no HTTP answer."""

    error: APIConnectionError


@dataclass(frozen=True)
class Sleep:
    """Action: wait `seconds` (through the client's injectable sleep)."""

    seconds: float


@dataclass(frozen=True)
class Authorize:
    """Action: answer with a current `Authorization` value. `stale` is a value the server
    refused with 401: if the client still holds it, it must get a new one (once, under
    the client's token lock, whatever the number of callers)."""

    stale: str | None


Action = Union[Send, Sleep, Authorize]
Flow = Generator[Action, Any, T]


def transport_failure(exc: httpx.TransportError, method: str, path: str, secrets: list[Secret | None]) -> Failed:
    """Maps an httpx transport exception to the SDK's error."""
    detail = redact(str(exc) or type(exc).__name__, secrets)
    if isinstance(exc, httpx.TimeoutException):
        return Failed(APITimeoutError(f"{method} {path}: timed out ({type(exc).__name__}: {detail})"))
    return Failed(APIConnectionError(f"{method} {path}: connection failed ({type(exc).__name__}: {detail})"))


@dataclass
class _Tokens:
    """A bearer token obtained from the gateway, with its refresh token and expiry on the
    client's clock. Owned by one client; changed only under that client's token lock."""

    access: Secret | None = None
    refresh: Secret | None = None
    expires_at: float | None = None
    lifetime: float | None = None

    def fresh(self, now: float) -> bool:
        if self.access is None:
            return False
        if self.expires_at is None or self.lifetime is None:
            return True
        # Renew shortly before expiry so a request never leaves with a token that dies
        # on the way: 30 s, or half of a short lifetime.
        margin = min(30.0, self.lifetime / 2.0)
        return now < self.expires_at - margin


def _checked_base_url(value: str) -> str:
    """The base URL without a trailing slash; refused when it could carry a secret into a
    repr or log line (user info, a query) or is not plain http(s)."""
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError):
        raise DBAuditError("the base URL is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise DBAuditError("the base URL must be an http or https URL with a host")
    if url.userinfo:
        raise DBAuditError("the base URL must not contain credentials")
    if url.query or url.fragment:
        raise DBAuditError("the base URL must not have a query or fragment")
    return value.rstrip("/")


def _secret_arg(value: str | None, name: str) -> Secret | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise MissingCredentialError(f"{name} must be a non-empty string")
    return Secret(value)


class ClientCore:
    """Configuration, credentials and token state of one client, and the flows every
    call runs. The sync client uses it from any thread (token state only under its
    threading lock); the async client from its event loop (under its asyncio lock)."""

    def __init__(
        self,
        api_key: str | None,
        *,
        base_url: str | None,
        client_id: str | None,
        client_secret: str | None,
        scope: str | list[str] | tuple[str, ...] | None,
        email: str | None,
        password: str | None,
        max_retries: int,
        timeout: TimeoutTypes,
        max_retry_after: float,
        idempotency_keys: bool,
        clock: Callable[[], float] | None,
        random: Callable[[], float] | None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = _checked_base_url(base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL)
        self.policy = RetryPolicy(max_retries=max_retries, max_retry_after=max_retry_after)
        self.timeout = timeout
        self.idempotency_keys = idempotency_keys
        self.clock = clock or time.monotonic
        self.random = random or _random.random
        self.tokens = _Tokens()
        self.api_key: Secret | None = None
        self.client_id: str | None = None
        self.client_secret: Secret | None = None
        self.scope: str | None = " ".join(scope) if isinstance(scope, (list, tuple)) else scope
        self.email: str | None = None
        self.password: Secret | None = None
        if api_key is not None:
            self.api_key = _secret_arg(api_key, "api_key")
            self.kind = "api_key"
        elif client_id is not None or client_secret is not None:
            if not client_id or not client_secret:
                raise MissingCredentialError("OAuth client credentials need both client_id and client_secret")
            self.client_id = client_id
            self.client_secret = _secret_arg(client_secret, "client_secret")
            self.kind = "client_credentials"
        elif email is not None or password is not None:
            if not email or not password:
                raise MissingCredentialError("a user login needs both email and password")
            self.email = email
            self.password = _secret_arg(password, "password")
            self.kind = "session"
        elif os.environ.get(API_KEY_ENV):
            self.api_key = Secret(os.environ[API_KEY_ENV])
            self.kind = "api_key"
        else:
            raise MissingCredentialError(
                f"no API key: pass api_key=... or set the {API_KEY_ENV} environment variable "
                "(or use client_id/client_secret, or email/password)"
            )

    def describe(self) -> str:
        who = {"api_key": "api_key", "client_credentials": f"client_id={self.client_id!r}", "session": "session"}
        return f"base_url={self.base_url!r}, auth={who[self.kind]}"

    def secrets(self) -> list[Secret | None]:
        return [self.api_key, self.client_secret, self.password, self.tokens.access, self.tokens.refresh]

    def http_client_args(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "timeout": self.timeout,
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
            "follow_redirects": False,
        }

    # -- one call -----------------------------------------------------------------------

    def request_flow(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        repeatable: bool = False,
        options: RequestOptions | None = None,
    ) -> Flow[httpx.Response]:
        """One API call with its retries and at most one credential renewal after a 401.
        Returns the successful response; raises the typed error otherwise."""
        options = options or {}
        method = method.upper()
        max_retries = options.get("max_retries", self.policy.max_retries)
        timeout = options["timeout"] if "timeout" in options else self.timeout
        base_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        base_headers.update(options.get("extra_headers") or {})
        base_headers.update(headers or {})
        idempotency_key = self._idempotency_key(method, options.get("idempotency_key"))
        if idempotency_key is not None:
            # Generated once per call and sent with every attempt, so the API can tell a
            # retry from a new request.
            base_headers["Idempotency-Key"] = idempotency_key
        # `repeatable`: a POST that has no effect to repeat (an OAuth token request).
        has_key = idempotency_key is not None or repeatable
        retries = 0
        renewed = False
        stale: str | None = None
        while True:
            send_headers = dict(base_headers)
            authorization: str | None = None
            if authenticated:
                authorization = yield Authorize(stale)
                stale = None
                send_headers["Authorization"] = authorization
            outcome = yield Send(method, path, params, json, data, send_headers, timeout)
            if isinstance(outcome, Failed):
                if retries < max_retries and should_retry_transport(method, has_key):
                    yield self._pause(method, path, retries, None, type(outcome.error).__name__)
                    retries += 1
                    continue
                raise outcome.error
            response: httpx.Response = outcome
            status = response.status_code
            if status < 400:
                return response
            if (
                status == 401
                and authenticated
                and self.kind != "api_key"
                and not renewed
                and (may_repeat(method, has_key) or never_forwarded(response))
            ):
                # The token may have been revoked or expired early: renew it once and
                # repeat the call once.
                renewed = True
                stale = authorization
                logger.info("dbaudit: %s %s got 401; renewing the token once", method, path)
                continue
            if retries < max_retries and should_retry_status(status, method, has_key, never_forwarded(response)):
                wait = retry_after_seconds(response.headers.get("retry-after"))
                yield self._pause(method, path, retries, wait, f"{status} (request id {request_id(response)})")
                retries += 1
                continue
            raise error_for(response, self.secrets())

    def call_flow(self, method: str, path: str, **kwargs: Any) -> Flow[Result]:
        response = yield from self.request_flow(method, path, **kwargs)
        return result(response)

    def _pause(self, method: str, path: str, retries: int, retry_after: float | None, why: str) -> Sleep:
        seconds = self.policy.delay(retries, retry_after, self.random())
        logger.info("dbaudit: retrying %s %s in %.3fs after %s (retry %d)", method, path, seconds, why, retries + 1)
        return Sleep(seconds)

    def _idempotency_key(self, method: str, option: str | bool | None) -> str | None:
        if isinstance(option, str):
            return option
        if option is True or (option is None and self.idempotency_keys and method in ("POST", "PATCH", "DELETE")):
            return str(uuid.uuid4())
        return None

    # -- credentials --------------------------------------------------------------------

    def authorize_flow(self, stale: str | None) -> Flow[str]:
        """A current Authorization value; fetches or renews a token when the cached one
        is missing, about to expire, or the `stale` one a server just refused. Runs
        under the client's token lock, so concurrent callers share one fetch."""
        if self.kind == "api_key":
            assert self.api_key is not None
            return f"Bearer {self.api_key.reveal()}"
        current = self._bearer()
        if current is not None and current != stale and self.tokens.fresh(self.clock()):
            return current
        if self.kind == "client_credentials":
            yield from self.client_credentials_flow()
        elif self.tokens.refresh is not None:
            try:
                yield from self.refresh_flow(None)
            except AuthenticationError:
                # Refused: the session is gone. Any other failure (an outage) is raised: a
                # login would fail the same way.
                if self.password is None or self.email is None:
                    raise
                logger.info("dbaudit: session refresh failed; logging in again")
                yield from self.login_flow(self.email, self.password)
        elif self.password is not None and self.email is not None:
            yield from self.login_flow(self.email, self.password)
        else:
            raise MissingCredentialError("no session: call client.auth.login(email, password) first")
        bearer = self._bearer()
        assert bearer is not None
        return bearer

    def _bearer(self) -> str | None:
        return None if self.tokens.access is None else f"Bearer {self.tokens.access.reveal()}"

    def _store_tokens(self, answer: APIObject, started: float) -> None:
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise APIError("the token answer has no access_token")
        refresh = answer.get("refresh_token")
        expires_in = answer.get("expires_in")
        # Without expires_in, assume the documented one hour (a 401 renews it earlier).
        lifetime = float(expires_in) if isinstance(expires_in, (int, float)) and expires_in > 0 else 3600.0
        self.tokens = _Tokens(
            access=Secret(access),
            refresh=Secret(refresh) if isinstance(refresh, str) and refresh else self.tokens.refresh,
            expires_at=None if lifetime is None else started + lifetime,
            lifetime=lifetime,
        )

    def client_credentials_flow(self) -> Flow[None]:
        """POST /oauth/token with grant_type=client_credentials (client_secret_basic)."""
        assert self.client_id is not None and self.client_secret is not None
        basic = base64.b64encode(
            f"{quote(self.client_id, safe='')}:{quote(self.client_secret.reveal(), safe='')}".encode()
        ).decode()
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        started = self.clock()
        response = yield from self.request_flow(
            "POST", "/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"}, authenticated=False,
            repeatable=True,
        )
        self._store_tokens(result_object(response), started)
        logger.info("dbaudit: fetched an OAuth access token (request id %s)", request_id(response))

    def login_flow(self, email: str, password: Secret) -> Flow[APIObject]:
        started = self.clock()
        response = yield from self.request_flow(
            "POST", "/v1/auth/login", json={"email": email, "password": password.reveal()}, authenticated=False
        )
        answer = result_object(response)
        self.kind = "session"
        self.api_key = None
        self.tokens = _Tokens()
        self._store_tokens(answer, started)
        logger.info("dbaudit: logged in (request id %s)", request_id(response))
        return answer

    def refresh_flow(self, refresh_token: str | None) -> Flow[APIObject]:
        token = Secret(refresh_token) if refresh_token is not None else self.tokens.refresh
        if token is None:
            raise MissingCredentialError("no refresh token: log in first")
        started = self.clock()
        response = yield from self.request_flow(
            "POST", "/v1/auth/refresh", json={"refresh_token": token.reveal()}, authenticated=False
        )
        answer = result_object(response)
        self.kind = "session"
        self.api_key = None
        self._store_tokens(answer, started)
        logger.info("dbaudit: refreshed the session (request id %s)", request_id(response))
        return answer

    def logout_flow(self, options: RequestOptions | None) -> Flow[Result]:
        body: dict[str, str] = {}
        headers: dict[str, str] = {}
        if self.tokens.refresh is not None:
            body["refresh_token"] = self.tokens.refresh.reveal()
        bearer = self._bearer()
        if bearer is not None:
            headers["Authorization"] = bearer
        response = yield from self.request_flow(
            "POST", "/v1/auth/logout", json=body or None, headers=headers, authenticated=False, options=options
        )
        self.tokens = _Tokens()
        return result(response)


def result_object(response: httpx.Response) -> APIObject:
    answer = result(response)
    if not isinstance(answer, APIObject):
        raise APIError(f"expected a JSON object from {response.request.url.path}", status=response.status_code)
    return answer


def path_of(*segments: str) -> str:
    """A path from literal segments and ids; an id is percent-encoded whole."""
    return "/".join(quote(s, safe="") if i > 0 else s for i, s in enumerate(segments))


def page_params(limit: int | None, cursor: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if limit is not None:
        params["limit"] = limit
    if cursor is not None:
        params["cursor"] = cursor
    return params
