"""A canary secret used as every kind of credential (API key, client secret, password,
access and refresh tokens), including servers that echo it back, never shows up in a
repr, a log line (any logger, DEBUG) or an error message or traceback."""

from __future__ import annotations

import logging
import pickle
import traceback
from typing import Any, Callable

import httpx
import pytest

import dbaudit
from conftest import FakeClock, Stub, gateway_error, ok

CANARY = "dbaudit_live_CANARYc4n4ryC4NARYc4n4ryXYZ0123456789"
MakeClient = Callable[..., Any]


def echo_error(status: int, code: str) -> Callable[[httpx.Request], httpx.Response]:
    """A server that quotes the credential it got in its error (a badly behaved upstream)."""
    def answer(request: httpx.Request) -> httpx.Response:
        return gateway_error(status, code, f"rejected {CANARY} from {request.headers.get('authorization')}",
                             headers={"WWW-Authenticate": f'Bearer error="{code}", error_description="{CANARY}"'})
    return answer


def everything_printable(client: Any, errors: list[BaseException], results: list[Any]) -> str:
    target = getattr(client, "_target", client)
    texts = [repr(client), str(client), repr(vars(target)), repr(vars(target._core)), repr(target._core.tokens)]
    for error in errors:
        texts += [str(error), repr(error), repr(error.args), "".join(traceback.format_exception(error))]
    texts += [repr(r) for r in results] + [str(r) for r in results]
    return "\n".join(texts)


def test_canary_never_printed(make_client: MakeClient, stub: Stub, clock: FakeClock,
                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    results: list[Any] = []
    clients: list[Any] = []

    def expect_error(call: Callable[[], Any]) -> None:
        with pytest.raises(dbaudit.DBAuditError) as caught:
            call()
        errors.append(caught.value)

    # API key: refused with an echo, a retried 503, a connection failure quoting it.
    stub.on("GET", "/v1/databases", echo_error(401, "invalid_token"))
    stub.on("GET", "/v1/logs", echo_error(503, "auth_unavailable"))
    stub.on("GET", "/v1/alerts", httpx.ConnectError(f"cannot connect with {CANARY}"))
    stub.on("POST", "/v1/policies", echo_error(403, "insufficient_scope"))
    keyed = make_client(api_key=CANARY)
    clients.append(keyed)
    expect_error(keyed.databases.list)
    expect_error(keyed.logs.list)
    expect_error(keyed.alerts.list)
    expect_error(lambda: keyed.policies.create({"secret": CANARY}))

    # OAuth client secret, and the token the server hands out.
    stub.on("POST", "/oauth/token", echo_error(401, "invalid_client"),
            ok({"access_token": CANARY, "expires_in": 60, "token_type": "Bearer"}))
    stub.on("GET", "/v1/reports", echo_error(401, "invalid_token"), ok({"reports": []}))
    oauth = make_client(client_id="client-1", client_secret=CANARY)
    clients.append(oauth)
    expect_error(oauth.reports.list)
    results.append(oauth.reports.list())

    # Password, and session tokens (login, refresh after a 401, logout).
    stub.on("POST", "/v1/auth/login", echo_error(401, "invalid_credentials"),
            ok({"access_token": CANARY + "a", "refresh_token": CANARY + "r", "expires_in": 60}))
    stub.on("POST", "/v1/auth/refresh", ok({"access_token": CANARY + "b", "refresh_token": CANARY + "s",
                                            "expires_in": 60}))
    stub.on("GET", "/v1/databases/d", echo_error(401, "invalid_token"), ok({"id": "d"}))
    stub.on("POST", "/v1/auth/logout", ok({"logged_out": True}))
    session = make_client(email="u@example.com", password=CANARY)
    clients.append(session)
    expect_error(session.logs.list)
    results.append(session.auth.login("u@example.com", CANARY))
    results.append(session.databases.get("d"))
    clock.now += 60
    stub.on("GET", "/v1/databases/e", ok({"id": "e"}))
    results.append(session.databases.get("e"))

    # A created API key in the answer.
    stub.on("POST", "/v1/api-keys", ok({"id": "key_1", "key": CANARY}))
    results.append(keyed.api_keys.create("k", ["read:logs"]))
    results.append(session.auth.logout())

    assert stub.count("POST", "/v1/auth/refresh") == 2  # the canary tokens were really used
    assert any(CANARY in r.headers.get("authorization", "") for r in stub.requests)
    assert len(errors) == 6 and all(e.args for e in errors)
    for client in clients:
        text = everything_printable(client, errors, results)
        assert CANARY not in text
    assert caplog.records, "the SDK logs its requests and retries at DEBUG/INFO"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "dbaudit" in logged and CANARY not in logged


def test_secret_wrapper_cannot_be_pickled() -> None:
    client = dbaudit.Client(api_key=CANARY, base_url="http://api.test")
    with pytest.raises(TypeError):
        pickle.dumps(client._core.api_key)
    client.close()
