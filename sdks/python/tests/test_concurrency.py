"""Ten concurrent AsyncClient calls with an expired OAuth token or login session make
exactly one token fetch or refresh (the token lock makes the others wait and reuse it)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import httpx

import dbaudit
from conftest import FakeClock, gateway_error, ok


class SlowStub:
    """Answers on the event loop, yielding several times per request so the ten calls
    really interleave; counts requests per path."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.counts: dict[str, int] = {}
        self.authorizations: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.counts[request.url.path] = self.counts.get(request.url.path, 0) + 1
        for _ in range(5):
            await asyncio.sleep(0)
        response: httpx.Response = self.answer(request, self.counts[request.url.path])
        if request.url.path.startswith("/v1/databases"):
            self.authorizations.append(request.headers["authorization"])
        return response


def tokens(prefix: str, expires_in: int = 600) -> Callable[[int], httpx.Response]:
    return lambda n: ok({"access_token": f"{prefix}-{n}", "refresh_token": f"ref-{n}",
                         "token_type": "Bearer", "expires_in": expires_in})


def make(stub: SlowStub, clock: FakeClock, **kwargs: Any) -> dbaudit.AsyncClient:
    return dbaudit.AsyncClient(base_url="http://api.test", transport=httpx.MockTransport(stub), clock=clock,
                               sleep=clock.async_sleep, **kwargs)


async def ten_calls(client: dbaudit.AsyncClient) -> None:
    results = await asyncio.gather(*(client.databases.get(f"db{i}") for i in range(10)))
    assert all(r == {} for r in results)


def test_ten_calls_with_an_expired_oauth_token_fetch_once() -> None:
    clock = FakeClock()
    oauth = tokens("tok")
    stub = SlowStub(lambda r, n: oauth(n) if r.url.path == "/oauth/token" else ok())

    async def scenario() -> None:
        async with make(stub, clock, client_id="c", client_secret="s") as client:
            await ten_calls(client)  # no token yet: one fetch
            assert stub.counts["/oauth/token"] == 1
            clock.now += 600  # expired
            await ten_calls(client)
            assert stub.counts["/oauth/token"] == 2
    asyncio.run(scenario())
    assert stub.authorizations[-10:] == ["Bearer tok-2"] * 10


def test_ten_calls_with_an_expired_session_refresh_once() -> None:
    clock = FakeClock()
    login, refresh = tokens("acc"), tokens("acc-r")
    stub = SlowStub(lambda r, n: login(n) if r.url.path == "/v1/auth/login"
                    else refresh(n) if r.url.path == "/v1/auth/refresh" else ok())

    async def scenario() -> None:
        async with make(stub, clock, email="u@example.com", password="password-at-least-12") as client:
            await ten_calls(client)
            clock.now += 601
            await ten_calls(client)
    asyncio.run(scenario())
    assert stub.counts["/v1/auth/login"] == 1
    assert stub.counts["/v1/auth/refresh"] == 1
    assert stub.authorizations[-10:] == ["Bearer acc-r-1"] * 10


def test_ten_calls_refused_with_401_refresh_once() -> None:
    # The session looks valid on the client's clock, but the server revoked the access
    # token: all ten get a 401, one refresh follows, all ten are repeated once.
    clock = FakeClock()
    login, refresh = tokens("acc", 3600), tokens("acc-r", 3600)

    def answer(r: httpx.Request, n: int) -> httpx.Response:
        if r.url.path == "/v1/auth/login":
            return login(n)
        if r.url.path == "/v1/auth/refresh":
            return refresh(n)
        if r.headers["authorization"] == "Bearer acc-1":
            return gateway_error(401, "invalid_token")
        return ok()
    stub = SlowStub(answer)

    async def scenario() -> None:
        async with make(stub, clock, api_key="dbaudit_live_" + "k" * 38) as client:
            await client.auth.login("u@example.com", "password-at-least-12")
            await ten_calls(client)
    asyncio.run(scenario())
    assert stub.counts["/v1/auth/refresh"] == 1
    assert stub.authorizations.count("Bearer acc-1") == 10
    assert stub.authorizations.count("Bearer acc-r-1") == 10


def test_ten_threads_with_an_expired_token_fetch_once() -> None:
    """The sync Client under threads: the same single fetch, through its threading lock."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    clock = FakeClock()
    counts: dict[str, int] = {}
    guard = threading.Lock()

    def answer(request: httpx.Request) -> httpx.Response:
        with guard:
            counts[request.url.path] = counts.get(request.url.path, 0) + 1
            n = counts[request.url.path]
        if request.url.path == "/oauth/token":
            time.sleep(0.05)  # a slow token endpoint: the other threads pile up behind it
            return tokens("tok")(n)
        return ok()

    with dbaudit.Client(base_url="http://api.test", transport=httpx.MockTransport(answer), clock=clock,
                        sleep=clock.sleep, client_id="c", client_secret="s") as client:
        with ThreadPoolExecutor(max_workers=10) as pool:
            results = list(pool.map(lambda i: client.databases.get(f"db{i}"), range(10)))
    assert results == [{}] * 10
    assert counts["/oauth/token"] == 1


def test_context_managers_close_the_connection_pool() -> None:
    transport = httpx.MockTransport(lambda r: ok())
    with dbaudit.Client(api_key="k", base_url="http://api.test", transport=transport) as client:
        client.logs.list()
        assert not client._http.is_closed
    assert client._http.is_closed

    async def scenario() -> dbaudit.AsyncClient:
        async with dbaudit.AsyncClient(api_key="k", base_url="http://api.test", transport=transport) as aclient:
            await aclient.logs.list()
            assert not aclient._http.is_closed
        return aclient
    assert asyncio.run(scenario())._http.is_closed
