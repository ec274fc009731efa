"""One test module for both clients: every test runs against the sync `Client` and the
`AsyncClient` (the `make_client` fixture is parametrized). The stub counts attempts and
the clock is injected, so no test sleeps."""

from __future__ import annotations

import json
from typing import Any, Callable

import httpx
import pytest

import dbaudit
from conftest import FakeClock, Stub, gateway_error, ok

KEY = "dbaudit_live_" + "k" * 38
MakeClient = Callable[..., Any]


# -- credentials, base URL, headers ------------------------------------------------------

def test_explicit_key_is_sent_as_bearer_with_user_agent(make_client: MakeClient, stub: Stub) -> None:
    stub.on("GET", "/v1/databases", ok({"databases": []}, request_id="req-1"))
    client = make_client(api_key=KEY)
    result = client.databases.list()
    assert result == {"databases": []}
    assert result.request_id == "req-1"
    sent = stub.requests[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["user-agent"] == f"dbaudit-python/{dbaudit.__version__}"
    assert str(sent.url) == "http://api.test/v1/databases"


def test_key_and_base_url_from_environment(make_client: MakeClient, stub: Stub,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    stub.on("GET", "/v1/databases", ok([{"id": "db_1"}]))
    monkeypatch.setenv("DBAUDIT_API_KEY", KEY)
    monkeypatch.setenv("DBAUDIT_BASE_URL", "http://env.test/")
    client = make_client(base_url=None)
    assert client.base_url == "http://env.test"
    result = client.databases.list()
    assert result == [{"id": "db_1"}] and isinstance(result, dbaudit.APIList)
    assert stub.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert stub.requests[0].url.host == "env.test"


def test_documented_default_base_url(make_client: MakeClient) -> None:
    assert make_client(api_key=KEY, base_url=None).base_url == "https://api.dbaudit.ai"


@pytest.mark.parametrize("url", ["ftp://api.test", "https://user:pw@api.test", "https://api.test/?k=v", "/relative"])
def test_base_url_that_could_leak_or_mislead_is_refused(make_client: MakeClient, url: str) -> None:
    with pytest.raises(dbaudit.DBAuditError, match="base URL"):
        make_client(api_key=KEY, base_url=url)


def test_missing_key_names_the_variable(make_client: MakeClient) -> None:
    with pytest.raises(dbaudit.MissingCredentialError, match="DBAUDIT_API_KEY"):
        make_client()


# -- resources -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["databases", "policies", "alerts"])
def test_crud_resources(make_client: MakeClient, stub: Stub, name: str) -> None:
    base = f"/v1/{name}"
    for method, path in [("GET", base), ("POST", base), ("GET", f"{base}/x 1"), ("PATCH", f"{base}/x 1"),
                         ("DELETE", f"{base}/x 1")]:
        stub.on(method, path, ok({"method": method}))
    resource = getattr(make_client(api_key=KEY), name)
    assert resource.list(params={"limit": 5})["method"] == "GET"
    assert resource.create({"name": "n"})["method"] == "POST"
    assert resource.get("x 1")["method"] == "GET"
    assert resource.update("x 1", {"name": "m"})["method"] == "PATCH"
    assert resource.delete("x 1")["method"] == "DELETE"
    assert [(r.method, r.url.raw_path) for r in stub.requests] == [
        ("GET", f"{base}?limit=5".encode()), ("POST", base.encode()), ("GET", f"{base}/x%201".encode()),
        ("PATCH", f"{base}/x%201".encode()), ("DELETE", f"{base}/x%201".encode())]
    assert json.loads(stub.requests[1].content) == {"name": "n"}
    assert json.loads(stub.requests[3].content) == {"name": "m"}


def test_logs_and_reports_have_only_their_routes(make_client: MakeClient, stub: Stub) -> None:
    stub.on("GET", "/v1/logs", ok({"logs": []}))
    stub.on("GET", "/v1/logs/l1", ok({"id": "l1"}))
    stub.on("POST", "/v1/reports", ok({"id": "r1"}, status=201))
    client = make_client(api_key=KEY)
    assert client.logs.list() == {"logs": []}
    assert client.logs.get("l1") == {"id": "l1"}
    assert client.reports.create({"kind": "soc2"}) == {"id": "r1"}
    assert not hasattr(client.logs, "create") and not hasattr(client.logs, "delete")
    assert not hasattr(client.reports, "update") and not hasattr(client.reports, "delete")


def test_api_keys_list_walks_every_page(make_client: MakeClient, stub: Stub) -> None:
    pages = {
        None: {"api_keys": [{"id": "key_1"}, {"id": "key_2"}], "next_cursor": "c2"},
        "c2": {"api_keys": [{"id": "key_3"}], "next_cursor": "c3"},
        "c3": {"api_keys": [{"id": "key_4"}], "next_cursor": None},
    }
    stub.on("GET", "/v1/api-keys", lambda r: ok(pages[r.url.params.get("cursor")]))
    client = make_client(api_key=KEY)
    assert [k["id"] for k in client.api_keys.list(limit=2)] == ["key_1", "key_2", "key_3", "key_4"]
    assert [r.url.params.get("cursor") for r in stub.requests] == [None, "c2", "c3"]
    assert {r.url.params["limit"] for r in stub.requests} == {"2"}
    assert len(list(client.api_keys.list().pages())) == 3


def test_api_keys_create_and_revoke(make_client: MakeClient, stub: Stub) -> None:
    created = {"id": "key_9", "name": "ci", "key": "dbaudit_live_" + "z" * 38}
    stub.on("POST", "/v1/api-keys", ok(created, status=201))
    stub.on("DELETE", "/v1/api-keys/key_9", ok({"id": "key_9", "revoked": True}))
    client = make_client(api_key=KEY)
    answer = client.api_keys.create("ci", ["read:logs"], expires_in="90d")
    assert answer["key"] == created["key"] and created["key"] not in repr(answer)
    assert json.loads(stub.requests[0].content) == {"name": "ci", "scopes": ["read:logs"], "expires_in": "90d"}
    assert client.api_keys.revoke("key_9")["revoked"] is True


# -- errors --------------------------------------------------------------------------------

def test_401_is_authentication_error_with_rfc6750_code(make_client: MakeClient, stub: Stub) -> None:
    stub.on("GET", "/v1/databases", gateway_error(401, "invalid_token", "The API key is unknown.", "req-401", {
        "WWW-Authenticate": 'Bearer realm="dbaudit", error="invalid_token", error_description="The API key is unknown."'}))
    with pytest.raises(dbaudit.AuthenticationError) as caught:
        make_client(api_key=KEY).databases.list()
    error = caught.value
    assert (error.status, error.error, error.request_id) == (401, "invalid_token", "req-401")
    assert error.error_description == "The API key is unknown."
    assert stub.count("GET", "/v1/databases") == 1  # an API key is not renewed


def test_403_names_the_missing_scope(make_client: MakeClient, stub: Stub) -> None:
    stub.on("POST", "/v1/policies", gateway_error(403, "insufficient_scope", "needs write:policies", "req-403", {
        "WWW-Authenticate": 'Bearer realm="dbaudit", error="insufficient_scope", scope="write:policies"'}))
    with pytest.raises(dbaudit.PermissionDeniedError) as caught:
        make_client(api_key=KEY).policies.create({})
    assert (caught.value.status, caught.value.scope, caught.value.error) == (403, "write:policies", "insufficient_scope")


@pytest.mark.parametrize("status,kind", [(404, dbaudit.NotFoundError), (500, dbaudit.APIError),
                                         (409, dbaudit.APIError), (429, dbaudit.RateLimitError),
                                         (503, dbaudit.ServiceUnavailableError)])
def test_status_maps_to_error_type(make_client: MakeClient, stub: Stub, status: int,
                                   kind: type[dbaudit.APIError]) -> None:
    stub.on("GET", "/v1/alerts/a", gateway_error(status, "some_code", "desc", "req-x", {"Retry-After": "3"}))
    with pytest.raises(kind) as caught:
        make_client(api_key=KEY, max_retries=0).alerts.get("a")
    assert type(caught.value) is kind
    assert (caught.value.status, caught.value.error, caught.value.request_id) == (status, "some_code", "req-x")
    if isinstance(caught.value, (dbaudit.RateLimitError, dbaudit.ServiceUnavailableError)):
        assert caught.value.retry_after == 3.0


def test_transport_failures_are_connection_and_timeout_errors(make_client: MakeClient, stub: Stub) -> None:
    stub.on("GET", "/v1/logs", httpx.ConnectError("refused"))
    stub.on("GET", "/v1/alerts", httpx.ReadTimeout("slow"))
    client = make_client(api_key=KEY, max_retries=0)
    with pytest.raises(dbaudit.APIConnectionError) as refused:
        client.logs.list()
    assert refused.value.status is None and not isinstance(refused.value, dbaudit.APITimeoutError)
    with pytest.raises(dbaudit.APITimeoutError):
        client.alerts.list()


# -- retries and backoff (injected clock) -----------------------------------------------

def test_default_two_retries_with_jittered_exponential_backoff(make_client: MakeClient, stub: Stub,
                                                               clock: FakeClock) -> None:
    stub.on("GET", "/v1/databases", gateway_error(502, "upstream_unavailable"))
    with pytest.raises(dbaudit.APIError) as caught:
        make_client(api_key=KEY).databases.list()
    assert caught.value.status == 502
    assert stub.count("GET", "/v1/databases") == 3
    assert len(clock.sleeps) == 2
    assert 0.375 <= clock.sleeps[0] <= 0.5
    assert 0.75 <= clock.sleeps[1] <= 1.0


@pytest.mark.parametrize("rnd", [0.0, 0.999999])
def test_backoff_doubles_to_its_cap_within_jitter_bounds(make_client: MakeClient, stub: Stub, clock: FakeClock,
                                                         rnd: float) -> None:
    stub.on("GET", "/v1/databases", gateway_error(504, "upstream_timeout"))
    with pytest.raises(dbaudit.APIError):
        make_client(api_key=KEY, max_retries=7, random=lambda: rnd).databases.list()
    assert stub.count("GET", "/v1/databases") == 8
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert clock.sleeps == pytest.approx([c * (1 - 0.25 * rnd) for c in ceilings])


def test_success_after_retries(make_client: MakeClient, stub: Stub, clock: FakeClock) -> None:
    stub.on("GET", "/v1/databases", gateway_error(503, "auth_unavailable"), gateway_error(408, "request_timeout"),
            ok({"databases": [1]}))
    assert make_client(api_key=KEY).databases.list() == {"databases": [1]}
    assert stub.count("GET", "/v1/databases") == 3 and len(clock.sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 500])
def test_other_statuses_are_not_retried(make_client: MakeClient, stub: Stub, clock: FakeClock, status: int) -> None:
    stub.on("GET", "/v1/databases", gateway_error(status, "x"))
    with pytest.raises(dbaudit.APIError):
        make_client(api_key=KEY).databases.list()
    assert stub.count("GET", "/v1/databases") == 1 and clock.sleeps == []


def test_retry_after_is_honoured(make_client: MakeClient, stub: Stub, clock: FakeClock) -> None:
    stub.on("GET", "/v1/databases", gateway_error(429, "rate_limited", headers={"Retry-After": "7"}), ok())
    make_client(api_key=KEY).databases.list()
    assert clock.sleeps == [7.0]


def test_retry_after_is_capped(make_client: MakeClient, stub: Stub, clock: FakeClock) -> None:
    stub.on("GET", "/v1/databases", gateway_error(429, "rate_limited", headers={"Retry-After": "3600"}),
            gateway_error(503, "auth_unavailable", headers={"Retry-After": "3600"}), ok())
    make_client(api_key=KEY, max_retry_after=20.0).databases.list()
    assert clock.sleeps == [20.0, 20.0]


def test_retry_after_http_date(make_client: MakeClient, stub: Stub, clock: FakeClock) -> None:
    stub.on("GET", "/v1/databases", gateway_error(503, "busy", headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
            ok())
    make_client(api_key=KEY).databases.list()
    assert clock.sleeps == [0.0]  # a date in the past: retry at once


def test_post_not_retried_after_ambiguous_502(make_client: MakeClient, stub: Stub, clock: FakeClock) -> None:
    stub.on("POST", "/v1/policies", gateway_error(502, "upstream_error"))
    with pytest.raises(dbaudit.APIError) as caught:
        make_client(api_key=KEY).policies.create({"name": "p"})
    assert caught.value.status == 502
    assert stub.count("POST", "/v1/policies") == 1 and clock.sleeps == []
    assert "idempotency-key" not in stub.requests[0].headers


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_unsafe_methods_not_retried_on_upstream_errors(make_client: MakeClient, stub: Stub, method: str) -> None:
    path = "/v1/alerts" if method == "POST" else "/v1/alerts/a1"
    # An upstream's own 503/429 (no gateway request id in the body): the API saw the request.
    stub.on(method, path, httpx.Response(503, json={"error": "auth_unavailable"}, headers={"X-Request-Id": "r"}),
            gateway_error(502, "upstream_error"), gateway_error(429, "busy"), gateway_error(503, "rate_limited"))
    client = make_client(api_key=KEY)
    calls: dict[str, Callable[[], Any]] = {
        "POST": lambda: client.alerts.create({}), "PATCH": lambda: client.alerts.update("a1", {}),
        "DELETE": lambda: client.alerts.delete("a1")}
    call = calls[method]
    with pytest.raises(dbaudit.ServiceUnavailableError):
        call()
    # Nor on an ambiguous 502, nor on a gateway code under the wrong status.
    for _ in range(3):
        with pytest.raises(dbaudit.APIError):
            call()
    assert stub.count(method, path) == 4


@pytest.mark.parametrize("status,code", [(429, "rate_limited"), (503, "auth_unavailable"),
                                         (503, "rate_limit_unavailable")])
def test_post_retried_when_the_gateway_proves_it_never_forwarded(make_client: MakeClient, stub: Stub,
                                                                 clock: FakeClock, status: int, code: str) -> None:
    stub.on("POST", "/v1/reports", gateway_error(status, code, headers={"Retry-After": "1"}), ok({"id": "r"}))
    assert make_client(api_key=KEY).reports.create({})["id"] == "r"
    assert stub.count("POST", "/v1/reports") == 2 and clock.sleeps == [1.0]


def test_post_with_idempotency_key_is_retried_with_the_same_key(make_client: MakeClient, stub: Stub) -> None:
    stub.on("POST", "/v1/policies", gateway_error(502, "upstream_error"), gateway_error(504, "upstream_timeout"),
            ok({"id": "p"}))
    client = make_client(api_key=KEY)
    assert client.policies.create({}, idempotency_key=True)["id"] == "p"
    keys = [r.headers["idempotency-key"] for r in stub.of("POST", "/v1/policies")]
    assert len(keys) == 3 and len(set(keys)) == 1 and len(keys[0]) >= 32
    client.policies.create({}, idempotency_key=True)
    assert stub.of("POST", "/v1/policies")[-1].headers["idempotency-key"] != keys[0]
    client.policies.create({}, idempotency_key="mine-1")
    assert stub.of("POST", "/v1/policies")[-1].headers["idempotency-key"] == "mine-1"


def test_client_wide_idempotency_keys(make_client: MakeClient, stub: Stub) -> None:
    stub.on("DELETE", "/v1/databases/d", gateway_error(502, "upstream_error"), ok({}))
    stub.on("GET", "/v1/databases", ok({}))
    client = make_client(api_key=KEY, idempotency_keys=True)
    client.databases.delete("d")
    sent = stub.of("DELETE", "/v1/databases/d")
    assert len(sent) == 2 and sent[0].headers["idempotency-key"] == sent[1].headers["idempotency-key"]
    client.databases.list()
    assert "idempotency-key" not in stub.of("GET", "/v1/databases")[0].headers


def test_connection_failures(make_client: MakeClient, stub: Stub) -> None:
    # A transport failure proves nothing about what the API got: only a call that may be
    # repeated (a GET, or one with an idempotency key) is retried.
    stub.on("POST", "/v1/alerts", httpx.ConnectError("refused"), ok({"id": "a"}))
    stub.on("PATCH", "/v1/alerts/a", httpx.ReadError("reset"), httpx.ReadTimeout("slow"), ok({"id": "a"}))
    stub.on("GET", "/v1/alerts", httpx.ReadError("reset"), httpx.ConnectError("refused"), ok({"alerts": []}))
    client = make_client(api_key=KEY)
    with pytest.raises(dbaudit.APIConnectionError):
        client.alerts.create({})
    assert stub.count("POST", "/v1/alerts") == 1
    assert client.alerts.update("a", {}, idempotency_key=True) == {"id": "a"}
    assert stub.count("PATCH", "/v1/alerts/a") == 3
    assert client.alerts.list() == {"alerts": []}
    assert stub.count("GET", "/v1/alerts") == 3


def test_token_request_is_repeatable_but_login_is_not(make_client: MakeClient, stub: Stub) -> None:
    stub.on("POST", "/oauth/token", gateway_error(502, "upstream_error"), token("tok-1"))
    stub.on("POST", "/v1/auth/login", gateway_error(502, "upstream_error"), token("acc-1", 3600, "ref-1"))
    stub.on("GET", "/v1/logs", ok())
    make_client(client_id="c", client_secret="s").logs.list()
    assert stub.count("POST", "/oauth/token") == 2
    with pytest.raises(dbaudit.APIError):
        make_client(email="u@example.com", password="password-at-least-12").logs.list()
    assert stub.count("POST", "/v1/auth/login") == 1


def test_max_retries_per_client_and_per_request(make_client: MakeClient, stub: Stub) -> None:
    stub.on("GET", "/v1/logs", gateway_error(503, "auth_unavailable"))
    client = make_client(api_key=KEY, max_retries=0)
    with pytest.raises(dbaudit.ServiceUnavailableError):
        client.logs.list()
    assert stub.count("GET", "/v1/logs") == 1
    with pytest.raises(dbaudit.ServiceUnavailableError):
        client.logs.list(max_retries=4)
    assert stub.count("GET", "/v1/logs") == 1 + 5


def test_timeouts_per_client_and_per_request(make_client: MakeClient, stub: Stub) -> None:
    stub.on("GET", "/v1/logs", ok())
    client = make_client(api_key=KEY, timeout=7.0)
    client.logs.list()
    client.logs.list(timeout=0.25)
    first, second = (r.extensions["timeout"] for r in stub.requests)
    assert first["read"] == 7.0 and second["read"] == 0.25 and second["connect"] == 0.25


# -- OAuth client credentials ------------------------------------------------------------

def token(access: str, expires_in: int = 3600, refresh: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": expires_in}
    if refresh:
        body["refresh_token"] = refresh
    return ok(body, request_id="req-token")


def test_client_credentials_token_is_cached_until_shortly_before_expiry(make_client: MakeClient, stub: Stub,
                                                                        clock: FakeClock) -> None:
    stub.on("POST", "/oauth/token", token("tok-1", 600), token("tok-2", 600))
    stub.on("GET", "/v1/databases", ok())
    client = make_client(client_id="app/1", client_secret="s:cret", scope=["read:databases", "read:logs"])
    client.databases.list()
    client.databases.list()
    assert stub.count("POST", "/oauth/token") == 1
    sent = stub.of("POST", "/oauth/token")[0]
    assert sent.headers["authorization"] == "Basic YXBwJTJGMTpzJTNBY3JldA=="  # app%2F1:s%3Acret
    assert dict(httpx.QueryParams(sent.content.decode())) == {"grant_type": "client_credentials",
                                                              "scope": "read:databases read:logs"}
    assert [r.headers["authorization"] for r in stub.of("GET", "/v1/databases")] == ["Bearer tok-1"] * 2
    clock.now += 600 - 31  # still more than the 30 s margin left
    client.databases.list()
    assert stub.count("POST", "/oauth/token") == 1
    clock.now += 2  # inside the margin: renewed before it expires
    client.databases.list()
    assert stub.count("POST", "/oauth/token") == 2
    assert stub.of("GET", "/v1/databases")[-1].headers["authorization"] == "Bearer tok-2"


def test_client_credentials_renewed_once_after_401(make_client: MakeClient, stub: Stub) -> None:
    stub.on("POST", "/oauth/token", token("tok-1"), token("tok-2"))
    stale = gateway_error(401, "invalid_token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    stub.on("POST", "/v1/reports", lambda r: stale if r.headers["authorization"] == "Bearer tok-1" else ok({"id": 1}))
    assert make_client(client_id="c", client_secret="s").reports.create({})["id"] == 1
    assert stub.count("POST", "/oauth/token") == 2 and stub.count("POST", "/v1/reports") == 2


def test_401_after_renewal_is_raised(make_client: MakeClient, stub: Stub) -> None:
    stub.on("POST", "/oauth/token", token("tok-1"), token("tok-2"), token("tok-3"))
    stub.on("GET", "/v1/logs", gateway_error(401, "invalid_token"))
    with pytest.raises(dbaudit.AuthenticationError):
        make_client(client_id="c", client_secret="s").logs.list()
    assert stub.count("POST", "/oauth/token") == 2 and stub.count("GET", "/v1/logs") == 2


def test_token_endpoint_refusal_is_an_authentication_error(make_client: MakeClient, stub: Stub) -> None:
    stub.on("POST", "/oauth/token", httpx.Response(401, json={"error": "invalid_client",
                                                              "error_description": "bad client"}))
    with pytest.raises(dbaudit.AuthenticationError) as caught:
        make_client(client_id="c", client_secret="s").logs.list()
    assert caught.value.error == "invalid_client"
    assert stub.count("GET", "/v1/logs") == 0


# -- user sessions -----------------------------------------------------------------------

def test_login_session_refreshed_before_expiry(make_client: MakeClient, stub: Stub, clock: FakeClock) -> None:
    stub.on("POST", "/v1/auth/login", token("acc-1", 3600, "ref-1"))
    stub.on("POST", "/v1/auth/refresh", token("acc-2", 3600, "ref-2"))
    stub.on("GET", "/v1/databases", ok())
    client = make_client(email="u@example.com", password="password-at-least-12")
    client.databases.list()
    assert json.loads(stub.of("POST", "/v1/auth/login")[0].content) == {"email": "u@example.com",
                                                                        "password": "password-at-least-12"}
    clock.now += 3600 - 10
    client.databases.list()
    assert stub.count("POST", "/v1/auth/login") == 1 and stub.count("POST", "/v1/auth/refresh") == 1
    assert json.loads(stub.of("POST", "/v1/auth/refresh")[0].content) == {"refresh_token": "ref-1"}
    assert stub.of("GET", "/v1/databases")[-1].headers["authorization"] == "Bearer acc-2"


def test_short_lifetime_renewed_at_half_of_it(make_client: MakeClient, stub: Stub, clock: FakeClock) -> None:
    stub.on("POST", "/oauth/token", token("tok-1", 40), token("tok-2", 40))
    stub.on("GET", "/v1/logs", ok())
    client = make_client(client_id="c", client_secret="s")
    client.logs.list()
    clock.now += 19
    client.logs.list()
    assert stub.count("POST", "/oauth/token") == 1
    clock.now += 1
    client.logs.list()
    assert stub.count("POST", "/oauth/token") == 2


def test_login_session_refreshed_once_after_401_and_call_repeated(make_client: MakeClient, stub: Stub) -> None:
    stub.on("POST", "/v1/auth/refresh", token("acc-2", 3600, "ref-2"))
    stub.on("GET", "/v1/alerts", lambda r: gateway_error(401, "invalid_token")
            if r.headers["authorization"] == "Bearer acc-1" else ok({"alerts": []}))
    stub.on("POST", "/v1/auth/login", token("acc-1", 3600, "ref-1"))
    client = make_client(api_key=KEY)
    session = client.auth.login("u@example.com", "password-at-least-12")
    assert session["access_token"] == "acc-1" and "acc-1" not in repr(session)
    assert client.alerts.list() == {"alerts": []}
    assert stub.count("POST", "/v1/auth/refresh") == 1 and stub.count("GET", "/v1/alerts") == 2


def test_failed_refresh_logs_in_again_when_the_password_is_known(make_client: MakeClient, stub: Stub,
                                                                 clock: FakeClock) -> None:
    stub.on("POST", "/v1/auth/login", token("acc-1", 100, "ref-1"), token("acc-3", 100, "ref-3"))
    stub.on("POST", "/v1/auth/refresh", gateway_error(401, "invalid_grant"))
    stub.on("GET", "/v1/logs", ok())
    client = make_client(email="u@example.com", password="password-at-least-12")
    client.logs.list()
    clock.now += 100
    client.logs.list()
    assert stub.count("POST", "/v1/auth/login") == 2
    assert stub.of("GET", "/v1/logs")[-1].headers["authorization"] == "Bearer acc-3"


def test_a_refresh_that_fails_for_an_outage_surfaces_it_instead_of_logging_in_again(
        make_client: MakeClient, stub: Stub, clock: FakeClock) -> None:
    # Only a refused refresh (401) means the session is gone; a 503 is the gateway's outage,
    # and a login would fail the same way (the Node SDK behaves the same).
    stub.on("POST", "/v1/auth/login", token("acc-1", 100, "ref-1"))
    stub.on("POST", "/v1/auth/refresh", gateway_error(503, "auth_unavailable", headers={"Retry-After": "1"}))
    stub.on("GET", "/v1/logs", ok())
    client = make_client(email="u@example.com", password="password-at-least-12", max_retries=0)
    client.logs.list()
    clock.now += 100
    with pytest.raises(dbaudit.ServiceUnavailableError):
        client.logs.list()
    assert stub.count("POST", "/v1/auth/login") == 1


def test_auth_refresh_and_logout(make_client: MakeClient, stub: Stub) -> None:
    stub.on("POST", "/v1/auth/login", token("acc-1", 3600, "ref-1"))
    stub.on("POST", "/v1/auth/refresh", token("acc-2", 3600, "ref-2"))
    stub.on("POST", "/v1/auth/logout", ok({"logged_out": True}))
    client = make_client(api_key=KEY)
    client.auth.login("u@example.com", "password-at-least-12")
    assert client.auth.refresh()["access_token"] == "acc-2"
    assert client.auth.logout() == {"logged_out": True}
    sent = stub.of("POST", "/v1/auth/logout")[0]
    assert json.loads(sent.content) == {"refresh_token": "ref-2"}
    assert sent.headers["authorization"] == "Bearer acc-2"
    with pytest.raises(dbaudit.MissingCredentialError):
        client.logs.list()


def test_logout_without_a_refresh_token_sends_no_body(make_client: MakeClient, stub: Stub) -> None:
    # The gateway reads an empty body as "revoke the access token in Authorization"; `{}`
    # would be a JSON body without the refresh token it expects (400).
    stub.on("POST", "/v1/auth/login", token("acc-1", 3600))
    stub.on("POST", "/v1/auth/logout", ok({"logged_out": True}))
    client = make_client(api_key=KEY)
    client.auth.login("u@example.com", "password-at-least-12")
    assert client.auth.logout() == {"logged_out": True}
    sent = stub.of("POST", "/v1/auth/logout")[0]
    assert sent.content == b""
    assert sent.headers["authorization"] == "Bearer acc-1"


def test_repr_of_client_shows_no_credential(make_client: MakeClient) -> None:
    assert KEY not in repr(make_client(api_key=KEY))
    assert "s3cret-value" not in repr(make_client(client_id="c", client_secret="s3cret-value"))
