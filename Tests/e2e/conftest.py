"""Harness for the end-to-end tests: real gateway binary, real upstream processes on
loopback, real clients. Every process started here is stopped by its fixture."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _time_scale() -> float:
    raw = os.environ.get("GATEWAY_TEST_TIME_SCALE", "1")
    try:
        value = float(raw)
    except ValueError:
        raise RuntimeError(f"GATEWAY_TEST_TIME_SCALE={raw!r} is not a number") from None
    if not value >= 1.0 or value > 100.0:
        raise RuntimeError(f"GATEWAY_TEST_TIME_SCALE={raw!r} must be between 1 and 100")
    return value


# One factor for every wall-clock bound of the e2e tests, so a slow or loaded machine can be
# given room without editing tests (README, "Testing"). It only ever widens a bound.
TIME_SCALE = _time_scale()


def scaled(seconds: float) -> float:
    """A wall-clock bound of the tests, widened by GATEWAY_TEST_TIME_SCALE."""
    return seconds * TIME_SCALE


def wait_until(predicate, timeout: float, interval: float = 0.02):
    """Polls `predicate` until it returns something truthy (returned) or `scaled(timeout)`
    passes (None). For waiting on an observable condition instead of sleeping."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def gateway_binary() -> str:
    path = os.environ.get("GATEWAY_BIN", str(ROOT / ".build" / "debug" / "dbaudit-gateway"))
    if not Path(path).exists():
        pytest.fail(f"gateway binary {path} not found: run `swift build` first (make test does)")
    # Absolute: tests run it from other working directories too (make passes a relative path).
    return str(Path(path).resolve())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, proc=None) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open within {timeout}s")


class Upstream:
    """A recording upstream process (upstream.py)."""

    def __init__(self, name: str = "upstream"):
        self.port = free_port()
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "upstream.py"), str(self.port), name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def records(self) -> dict:
        return requests.get(f"{self.url}/__records", timeout=5).json()

    def requests(self) -> list:
        return self.records()["requests"]

    def reset(self) -> None:
        requests.get(f"{self.url}/__reset", timeout=5)

    def wait_for_path(self, path: str, timeout: float = 5.0) -> dict:
        """The first recorded request for `path` (the upstream records a request before it
        answers, so this is "the request reached the upstream")."""
        found = wait_until(lambda: next((r for r in self.requests() if r["path"] == path), None), timeout)
        assert found is not None, f"{path} did not reach the upstream within {scaled(timeout)}s"
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


OPEN_ROUTES = """
[[routes]]
path = "/**"
public = true
"""


class Gateway:
    """The gateway binary running `run --config` on a config file it writes.

    `routes` is the `[[routes]]` text (an open catch-all by default: proxy tests are not
    about auth); `tail` is appended as is (e.g. `[redis]` and `[auth.api_keys]`).
    `env` adds (or, with a None value, removes) environment variables of the process;
    `wait=False` returns without waiting for the port (the caller decides when it is up)."""

    def __init__(self, tmp_path: Path, upstream_url: str, extra: str = "", server: str = "", upstream: str = "",
                 routes: str = OPEN_ROUTES, tail: str = "", env: dict | None = None, wait: bool = True):
        self.port = free_port()
        self.tmp_path = tmp_path
        self.config_path = tmp_path / f"gateway-{self.port}.conf"
        self.log_path = tmp_path / f"gateway-{self.port}.log"
        self.routes = routes
        self.tail = tail
        self.write_config(upstream_url, extra=extra, server=server, upstream=upstream)
        self.log_file = open(self.log_path, "wb")
        environment = None
        if env is not None:
            environment = dict(os.environ)
            for name, value in env.items():
                if value is None:
                    environment.pop(name, None)
                else:
                    environment[name] = value
        self.proc = subprocess.Popen(
            [gateway_binary(), "run", "--config", str(self.config_path)],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        if wait:
            wait_for_port(self.port, proc=self.proc)

    def config_text(self, upstream_url: str, extra: str = "", server: str = "", upstream: str = "") -> str:
        return f"""
[server]
listen = ["127.0.0.1:{self.port}"]
event_loops = 2
{server}

[upstream]
url = "{upstream_url}"
{upstream}

[logging]
level = "info"
format = "json"
{extra}

{self.tail}

{self.routes}
"""

    def write_config(self, upstream_url: str, extra: str = "", server: str = "", upstream: str = "") -> None:
        self.config_path.write_text(self.config_text(upstream_url, extra, server, upstream))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def log_lines(self) -> list:
        self.log_file.flush()
        lines = []
        for raw in self.log_path.read_bytes().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                lines.append({"raw": raw.decode(errors="replace")})
        return lines

    def wait_for_log(self, predicate, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            for line in self.log_lines():
                if predicate(line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no matching log line within {timeout}s; log:\n{self.log_path.read_text()[-4000:]}")

    def rss_kib(self) -> int:
        return self._status_field("VmRSS")

    def peak_rss_kib(self) -> int:
        return self._status_field("VmHWM")

    def reset_peak_rss(self) -> None:
        # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def _status_field(self, name: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        raise KeyError(name)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log_file.close()
        return self.proc.returncode


class RedisServer:
    """A real redis-server on a free loopback port, with its data on disk (appendfsync
    always) so a kill -9 and restart keeps the keys."""

    def __init__(self, tmp_path: Path):
        self.port = free_port()
        self.dir = tmp_path / f"redis-{self.port}"
        self.dir.mkdir()
        self.proc = None
        self.start()

    def start(self) -> None:
        binary = "/usr/bin/redis-server"
        if not Path(binary).exists():
            pytest.fail("redis-server is not installed (make test installs it with scripts/install-deps.sh)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)

    def command(self, *args) -> bytes:
        """One command over a raw RESP connection; returns the raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            payload = b"*%d\r\n" % len(args)
            for arg in args:
                data = arg if isinstance(arg, bytes) else str(arg).encode()
                payload += b"$%d\r\n%s\r\n" % (len(data), data)
            s.sendall(payload)
            reply = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return reply
                reply += chunk
                if b"\r\n" not in reply:
                    continue
                first, rest = reply.split(b"\r\n", 1)
                if first.startswith(b"$") and int(first[1:]) >= 0:
                    if len(rest) >= int(first[1:]) + 2:
                        return reply
                    continue
                return reply

    def command_calls(self, name: str) -> int:
        """How many times `name` ran (INFO commandstats)."""
        info = self.command("INFO", "commandstats").decode()
        for line in info.split("\r\n"):
            if line.startswith(f"cmdstat_{name.lower()}:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def upstream():
    server = Upstream("primary")
    yield server
    server.stop()


@pytest.fixture
def make_gateway(tmp_path):
    started = []

    def factory(upstream_url: str, **kwargs) -> Gateway:
        gateway = Gateway(tmp_path, upstream_url, **kwargs)
        started.append(gateway)
        return gateway

    yield factory
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(make_gateway, upstream):
    return make_gateway(upstream.url)


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Sends raw bytes, returns everything the gateway answers until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        s.settimeout(timeout)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    s.settimeout(0.5)
        except socket.timeout:
            pass
        return b"".join(chunks)


def admitted_connection(port: int, path: str = "/held"):
    """A connection the gateway served (a 200 to one GET, left open), or None when it was
    refused (closed or reset): for tests that fill `max_connections`. Poll it with
    `wait_until`, since the harness's readiness probe may still hold a slot for a moment."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        if s.recv(65536).startswith(b"HTTP/1.1 200"):
            return s
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.close()
    return None


def parse_head(head: bytes, first_wins: bool = False):
    """(status, headers dict lowercased) of a response head without its blank line; a
    repeated header keeps its last value, or its first with `first_wins`."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if first_wins:
            headers.setdefault(name.strip().lower(), value.strip())
        else:
            headers[name.strip().lower()] = value.strip()
    return status, headers


def parse_response(raw: bytes):
    """(status, headers dict lowercased, body bytes) of the first response in raw."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    length = int(headers.get("content-length", len(rest)))
    return status, headers, rest[:length]


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


# --- JWT issuer, users and sessions (issue 5) ---------------------------------------------

OWN_ISSUER = "https://gateway.test"
AUDIENCE = "dbaudit-api"


def jwt_session_tail(redis_port: int, pepper_path, signing_key_path, algorithm: str = "RS256",
                     jwt_settings: str = "", issuers: str = "") -> str:
    """`[redis]`, `[auth.api_keys]` and an `[auth.jwt]` with our own issuer (one active
    signing key, scrypt cost 10 unless `jwt_settings` says otherwise) and optional
    `[[auth.jwt.issuers]]` text."""
    settings = jwt_settings if "password_hash_cost" in jwt_settings else "password_hash_cost = 10\n" + jwt_settings
    return redis_keys_tail(redis_port, pepper_path) + f"""
[auth.jwt]
issuer = "{OWN_ISSUER}"
audience = "{AUDIENCE}"
{settings}

[[auth.jwt.signing_keys]]
kid = "gw-{algorithm.lower()}"
algorithm = "{algorithm}"
private_key_file = "{signing_key_path}"
active = true
{issuers}
"""


def add_user(gateway: "Gateway", email: str, scopes, password: str = "password-at-least-12") -> dict:
    """`users add --json` with the password on standard input; returns {id, email, scopes}."""
    result = subprocess.run(
        [gateway_binary(), "users", "add", "--config", str(gateway.config_path), "--email", email,
         "--scopes", ",".join(scopes), "--json"],
        input=password + "\n", capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def set_user_disabled(gateway: "Gateway", email: str, disabled: bool) -> None:
    verb = "disable" if disabled else "enable"
    result = subprocess.run(
        [gateway_binary(), "users", verb, "--config", str(gateway.config_path), "--email", email],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr


def login(gateway: "Gateway", email: str, password: str = "password-at-least-12", session=None):
    client = session or requests
    return client.post(f"{gateway.url}/v1/auth/login", json={"email": email, "password": password}, timeout=10)


# Shared by the JWT and session tests: routes a user session with read:databases and
# read:logs can and cannot use.
USER_ROUTES = """
[[routes]]
method = "GET"
path = "/v1/databases"
scopes = ["read:databases"]

[[routes]]
method = "GET"
path = "/v1/logs"
scopes = ["read:logs"]

[[routes]]
method = "POST"
path = "/v1/policies"
scopes = ["write:policies"]
"""


@pytest.fixture
def pepper(tmp_path):
    """A 32-byte API-key pepper file (required with [redis])."""
    return write_pepper(tmp_path / "pepper")


def write_pepper(path: Path) -> Path:
    """Writes a random 32-byte API-key pepper (hex) to `path` and returns it."""
    path.write_text(os.urandom(32).hex() + "\n")
    return path


# --- Credentials, identity headers and the [redis] block: one copy for every test file ----------

def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def header(record: dict, name: str) -> list:
    """Every value of header `name` in a request the recording upstream saw."""
    return [v for k, v in record["headers"] if k.lower() == name.lower()]


def create_key(gateway: "Gateway", scopes, name: str = "test key", extra=(), rate_limit: str | None = None) -> dict:
    """`keys create --json` against the gateway's config; returns the created key record."""
    tier = ["--rate-limit", rate_limit] if rate_limit else []
    result = subprocess.run(
        [gateway_binary(), "keys", "create", "--config", str(gateway.config_path), "--name", name,
         "--scopes", ",".join(scopes), "--json", *tier, *extra],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def redis_keys_tail(redis_port: int, pepper_path, command_timeout: str | None = "300ms",
                    connect_timeout: str = "300ms", cache: dict | None = None) -> str:
    """The `[redis]` and `[auth.api_keys]` blocks for a gateway that checks API keys, with a
    `[cache]` block when `cache` gives its settings (e.g. {"stale_grace": "60s"}).
    `command_timeout=None` leaves the gateway's default."""
    command_line = f'command_timeout = "{command_timeout}"' if command_timeout else ""
    cache_block = ""
    if cache:
        cache_block = "\n[cache]\n" + "".join(f'{name} = "{value}"\n' for name, value in cache.items())
    return f"""
[redis]
url = "redis://127.0.0.1:{redis_port}"
connect_timeout = "{connect_timeout}"
{command_line}
{cache_block}
[auth.api_keys]
pepper_file = "{pepper_path}"
"""


def seconds_until_refused(url: str, credential: str, timeout: float, since: float | None = None,
                          probes: int = 1):
    """Polls `GET url` with `credential` until `probes` requests in a row (each a new
    connection, so every event loop gets asked) answer 401. Returns the seconds from `since`
    (a `time.monotonic()` reading; default now) to that moment, or None if the credential
    is still accepted after `scaled(timeout)`. The "poll until revoked" of every
    revocation, logout and disable test."""
    start = time.monotonic() if since is None else since
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        statuses = {requests.get(url, headers=bearer(credential), timeout=5).status_code for _ in range(probes)}
        if statuses == {401}:
            return time.monotonic() - start
        time.sleep(0.01)
    return None
