"""Fixtures of the SDK's own tests: a counting stub API (an httpx transport, no sockets),
a fake clock whose sleep only advances it, and a `make_client` that gives the sync
`Client` or, through a thin blocking facade, the `AsyncClient`, so one test module
exercises both."""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import dbaudit  # noqa: E402


def gateway_error(status: int, error: str, description: str = "refused", request_id: str = "req-gw",
                  headers: dict[str, str] | None = None) -> httpx.Response:
    """An error exactly as the gateway makes it (body request_id = X-Request-Id)."""
    return httpx.Response(
        status,
        json={"error": error, "error_description": description, "request_id": request_id},
        headers={"X-Request-Id": request_id, **(headers or {})},
    )


Handler = Callable[[httpx.Request], "httpx.Response | Exception"]


@dataclass
class Stub:
    """A scripted API: each route answers from a queue (the last answer repeats), and
    every request is recorded in order."""

    routes: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, path: str, *answers: Any) -> None:
        self.routes[(method, path)] = list(answers)

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.url.path == path)

    def of(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answers = self.routes.get((request.method, request.url.path))
        if answers is None:
            return httpx.Response(404, json={"error": "not_found"}, headers={"X-Request-Id": "req-404"})
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        return answer


@dataclass
class FakeClock:
    """Monotonic time that only moves when the client sleeps or the test says so."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)


class _AsyncIterable:
    """Blocking view of an async iterable with `pages()` (AsyncAPIKeyList)."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __iter__(self) -> Iterator[Any]:
        return iter(self._loop.run_until_complete(_collect(self._target)))

    def pages(self) -> Iterator[Any]:
        return iter(self._loop.run_until_complete(_collect(self._target.pages())))


async def _collect(iterable: Any) -> list[Any]:
    return [item async for item in iterable]


class Blocking:
    """The AsyncClient (or one of its resources) with every coroutine run to completion
    on `loop`: the same calls as the sync Client, for the shared test module."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if inspect.ismethod(value):
            def call(*args: Any, **kwargs: Any) -> Any:
                out = value(*args, **kwargs)
                if inspect.isawaitable(out):
                    return self._loop.run_until_complete(out)
                if hasattr(out, "__aiter__"):
                    return _AsyncIterable(out, self._loop)
                return out
            return call
        if type(value).__module__.startswith("dbaudit."):
            return Blocking(value, self._loop)
        return value

    def __repr__(self) -> str:
        return repr(self._target)


@pytest.fixture
def stub() -> Stub:
    return Stub()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_client(flavour: str, stub: Stub, clock: FakeClock, loop: asyncio.AbstractEventLoop,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """`make_client(**kwargs)`: a Client or a blocking AsyncClient on the stub and the fake
    clock, base URL http://api.test; kwargs go to the constructor."""
    monkeypatch.delenv("DBAUDIT_API_KEY", raising=False)
    monkeypatch.delenv("DBAUDIT_BASE_URL", raising=False)
    made: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        kwargs.setdefault("base_url", "http://api.test")
        kwargs.setdefault("clock", clock)
        if flavour == "sync":
            kwargs.setdefault("sleep", clock.sleep)
            client: Any = dbaudit.Client(transport=httpx.MockTransport(stub), **kwargs)
            made.append(client.close)
            return client
        kwargs.setdefault("sleep", clock.async_sleep)
        async_client = dbaudit.AsyncClient(transport=httpx.MockTransport(stub), **kwargs)
        made.append(lambda: loop.run_until_complete(async_client.close()))
        return Blocking(async_client, loop)

    yield factory
    for close in made:
        close()


def ok(body: Any = None, request_id: str = "req-ok", status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=json.dumps({} if body is None else body).encode(),
                          headers={"X-Request-Id": request_id, "Content-Type": "application/json"})
