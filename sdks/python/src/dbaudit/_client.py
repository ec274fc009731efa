"""The synchronous client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from ._core import (
    DEFAULT_TIMEOUT,
    Action,
    Authorize,
    ClientCore,
    Flow,
    RequestOptions,
    Result,
    Send,
    Sleep,
    T,
    TimeoutTypes,
    logger,
    page_params,
    path_of,
    transport_failure,
)
from ._errors import APIError
from ._results import APIObject
from ._secret import Secret

if TYPE_CHECKING:
    from typing_extensions import Unpack


class Client:
    """Synchronous DB Audit client. Thread-safe: one connection pool, one token cache
    guarded by a lock so concurrent calls share a single token fetch or refresh.

    Credentials, first match wins: `api_key`; `client_id` + `client_secret` (OAuth client
    credentials); `email` + `password` (a user session); the `DBAUDIT_API_KEY` variable.
    `clock`, `sleep` and `random` replace time.monotonic, time.sleep and random.random
    (for tests); `transport` replaces httpx's network transport."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | list[str] | tuple[str, ...] | None = None,
        email: str | None = None,
        password: str | None = None,
        max_retries: int = 2,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retry_after: float = 60.0,
        idempotency_keys: bool = False,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        self._core = ClientCore(
            api_key,
            base_url=base_url,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
            email=email,
            password=password,
            max_retries=max_retries,
            timeout=timeout,
            max_retry_after=max_retry_after,
            idempotency_keys=idempotency_keys,
            clock=clock,
            random=random,
        )
        self._sleep = sleep or time.sleep
        self._lock = threading.Lock()
        self._http = httpx.Client(transport=transport, **self._core.http_client_args())
        self.databases = Databases(self)
        self.policies = Policies(self)
        self.alerts = Alerts(self)
        self.logs = Logs(self)
        self.reports = Reports(self)
        self.api_keys = APIKeys(self)
        self.auth = Auth(self)

    @property
    def base_url(self) -> str:
        return self._core.base_url

    def __repr__(self) -> str:
        return f"dbaudit.Client({self._core.describe()})"

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- executing flows ------------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        value: Any = None
        while True:
            try:
                action = flow.send(value)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            value = self._execute(action)

    def _execute(self, action: Action) -> Any:
        if isinstance(action, Send):
            request = self._http.build_request(
                action.method,
                action.path,
                params=action.params,
                json=action.json,
                data=action.data,
                headers=action.headers,
                timeout=action.timeout,
            )
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                logger.debug("dbaudit: %s %s failed: %s", action.method, action.path, type(exc).__name__)
                return transport_failure(exc, action.method, action.path, self._core.secrets())
            logger.debug(
                "dbaudit: %s %s -> %d (request id %s)",
                action.method,
                action.path,
                response.status_code,
                response.headers.get("x-request-id"),
            )
            return response
        if isinstance(action, Sleep):
            self._sleep(action.seconds)
            return None
        if isinstance(action, Authorize):
            return self._locked(self._core.authorize_flow(action.stale))
        raise TypeError(f"unknown action {action!r}")

    def _locked(self, flow: Flow[T]) -> T:
        with self._lock:
            return self._run(flow)

    def _call(
        self,
        method: str,
        path: str,
        options: RequestOptions,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Result:
        return self._run(self._core.call_flow(method, path, params=params, json=json, options=options))


class _Resource:
    _path = ""

    def __init__(self, client: Client) -> None:
        self._client = client


class _List(_Resource):
    def list(self, params: Mapping[str, Any] | None = None, **options: Unpack[RequestOptions]) -> Result:
        """GET the collection (query parameters in `params`)."""
        return self._client._call("GET", self._path, options, params=params)


class _Get(_Resource):
    def get(self, id: str, **options: Unpack[RequestOptions]) -> Result:
        """GET one item by id."""
        return self._client._call("GET", path_of(self._path, id), options)


class _Create(_Resource):
    def create(self, body: Mapping[str, Any], **options: Unpack[RequestOptions]) -> Result:
        """POST a new item."""
        return self._client._call("POST", self._path, options, json=dict(body))


class _UpdateDelete(_Resource):
    def update(self, id: str, body: Mapping[str, Any], **options: Unpack[RequestOptions]) -> Result:
        """PATCH an item with the fields in `body`."""
        return self._client._call("PATCH", path_of(self._path, id), options, json=dict(body))

    def delete(self, id: str, **options: Unpack[RequestOptions]) -> Result:
        """DELETE an item."""
        return self._client._call("DELETE", path_of(self._path, id), options)


class Databases(_List, _Get, _Create, _UpdateDelete):
    """/v1/databases: database connections (read:databases, write:databases)."""

    _path = "/v1/databases"


class Policies(_List, _Get, _Create, _UpdateDelete):
    """/v1/policies: audit policies (read:policies, write:policies)."""

    _path = "/v1/policies"


class Alerts(_List, _Get, _Create, _UpdateDelete):
    """/v1/alerts: security alerts (read:alerts, write:alerts)."""

    _path = "/v1/alerts"


class Logs(_List, _Get):
    """/v1/logs: audit logs, read only (read:logs)."""

    _path = "/v1/logs"


class Reports(_List, _Get, _Create):
    """/v1/reports: compliance reports (read:reports)."""

    _path = "/v1/reports"


class APIKeyList:
    """Every API key, page after page: iterate it for the keys, or `pages()` for the raw
    pages. Each page is one GET /v1/api-keys?limit=&cursor= made when it is reached."""

    def __init__(self, client: Client, limit: int | None, options: RequestOptions) -> None:
        self._client = client
        self._limit = limit
        self._options = options

    def pages(self) -> Iterator[APIObject]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = self._client._call("GET", "/v1/api-keys", self._options, params=page_params(self._limit, cursor))
            if not isinstance(page, APIObject) or not isinstance(page.get("api_keys"), list):
                raise APIError("GET /v1/api-keys: the answer is not a page of keys", request_id=page.request_id)
            yield page
            next_cursor = page.get("next_cursor")
            if not isinstance(next_cursor, str) or not next_cursor:
                return
            if next_cursor in seen:
                raise APIError("GET /v1/api-keys: the server repeated a cursor", request_id=page.request_id)
            seen.add(next_cursor)
            cursor = next_cursor

    def __iter__(self) -> Iterator[APIObject]:
        for page in self.pages():
            for record in page["api_keys"]:
                yield APIObject(record, request_id=page.request_id)


class APIKeys(_Resource):
    """/v1/api-keys, answered by the gateway itself."""

    def create(
        self,
        name: str,
        scopes: list[str] | tuple[str, ...],
        *,
        expires_in: int | str | None = None,
        test: bool | None = None,
        rate_limit: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> APIObject:
        """Creates a key; the answer's `key` field is the key, shown this once."""
        body: dict[str, Any] = {"name": name, "scopes": list(scopes)}
        if expires_in is not None:
            body["expires_in"] = expires_in
        if test is not None:
            body["test"] = test
        if rate_limit is not None:
            body["rate_limit"] = rate_limit
        return _object(self._client._call("POST", "/v1/api-keys", options, json=body))

    def list(self, *, limit: int | None = None, **options: Unpack[RequestOptions]) -> APIKeyList:
        """Every key the caller may see, across all pages (`limit` is the page size)."""
        return APIKeyList(self._client, limit, options)

    def revoke(self, id: str, **options: Unpack[RequestOptions]) -> APIObject:
        return _object(self._client._call("DELETE", path_of("/v1/api-keys", id), options))


class Auth(_Resource):
    """The gateway's session endpoints. A successful login or refresh makes the client
    use that session from then on."""

    def login(self, email: str, password: str) -> APIObject:
        core = self._client._core
        return self._client._locked(core.login_flow(email, Secret(password)))

    def refresh(self, refresh_token: str | None = None) -> APIObject:
        """Exchanges the refresh token (the client's own by default) for a new pair."""
        core = self._client._core
        return self._client._locked(core.refresh_flow(refresh_token))

    def logout(self, **options: Unpack[RequestOptions]) -> Result:
        """Ends the client's session (its refresh token family and access token)."""
        return self._client._locked(self._client._core.logout_flow(options))


def _object(value: Result) -> APIObject:
    if not isinstance(value, APIObject):
        raise APIError("expected a JSON object", request_id=value.request_id)
    return value
