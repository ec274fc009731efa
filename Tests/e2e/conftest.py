"""Harness for the end-to-end tests: real gateway binary, real upstream processes on
loopback, real clients. Every process started here is stopped by its fixture."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
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
                 routes: str = OPEN_ROUTES, tail: str = "", env: dict | None = None, wait: bool = True,
                 port: int | None = None):
        # `port`: chosen by the caller when the configuration must name the gateway's own URL.
        self.port = port or free_port()
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


def admin_port(gateway: Gateway) -> int:
    """The port the gateway's `[admin]` listener (configured on port 0) bound."""
    line = gateway.wait_for_log(lambda l: l.get("msg") == "admin listening")
    return int(line["address"].rsplit(":", 1)[1])


class RedisServer:
    """A real redis-server on a free loopback port, with its data on disk (appendfsync
    always) so a kill -9 and restart keeps the keys. `extra_args` are appended to its
    command line (e.g. `--replicaof`; "{port}" in one stands for its port); `sentinel` (a config text without `port`) runs it as
    a Redis Sentinel instead."""

    def __init__(self, tmp_path: Path, extra_args=(), sentinel: str | None = None):
        self.port = free_port()
        self.dir = tmp_path / f"redis-{self.port}"
        self.dir.mkdir()
        self.extra_args = list(extra_args)
        self.sentinel = sentinel
        self.proc = None
        self.start()

    def start(self) -> None:
        binary = "/usr/bin/redis-server"
        if not Path(binary).exists():
            pytest.fail("redis-server is not installed (make test installs it with scripts/install-deps.sh)")
        if self.sentinel is not None:
            # Sentinel rewrites its config file: one of its own, in its directory.
            config = self.dir / "sentinel.conf"
            if not config.exists():
                config.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n{self.sentinel}\n")
            argv = [binary, str(config), "--sentinel"]
        else:
            argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                    "--appendfsync", "always", "--dir", str(self.dir),
                    *(arg.replace("{port}", str(self.port)) for arg in self.extra_args)]
        self.log = open(self.dir / "server.log", "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
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


def admitted_connection(port: int, path: str = "/held", then: str | None = None):
    """A connection the gateway served (a 200 to one GET, left open), or None when it was
    refused (closed or reset): for tests that fill `max_connections`. Poll it with
    `wait_until`, since the harness's readiness probe may still hold a slot for a moment.
    `then`: a second GET sent and left unanswered (e.g. "/slow?ms=10000"), so the connection
    is inside an exchange, which `max_connections` never closes to admit another (wait for
    the upstream to see it before relying on that)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        if s.recv(65536).startswith(b"HTTP/1.1 200"):
            if then is not None:
                s.sendall(f"GET {then} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
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


# --- OAuth 2.0 (issue 12): an OAuth-enabled gateway, its login and consent forms, a client's
# loopback callback and a headless Chromium ---------------------------------------------------

OAUTH_PUBLIC_CLIENT = "e2e-public"
OAUTH_CONFIDENTIAL_CLIENT = "e2e-confidential"
OAUTH_SCOPES = ["read:databases", "read:logs"]
OAUTH_PASSWORD = "password-at-least-12"
# Registered without a port: RFC 8252 §7.3, any port of the loopback address matches.
OAUTH_LOOPBACK_REDIRECT = "http://127.0.0.1/callback"


def oauth_clients_text(secret_file, redirect_uri: str = OAUTH_LOOPBACK_REDIRECT, scopes=OAUTH_SCOPES,
                       confidential_extra: str = "", public_extra: str = "") -> str:
    """`[[oauth.clients]]` of the two clients every OAuth test starts with: a public native
    app (code + PKCE, refresh) with a loopback redirect URI, and a confidential client that
    may also use client_credentials (its secret read from `secret_file`)."""
    listed = ", ".join(f'"{scope}"' for scope in scopes)
    return f"""
[[oauth.clients]]
id = "{OAUTH_PUBLIC_CLIENT}"
name = "E2E native app"
redirect_uris = ["{redirect_uri}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = [{listed}]
public = true
{public_extra}

[[oauth.clients]]
id = "{OAUTH_CONFIDENTIAL_CLIENT}"
name = "E2E service"
redirect_uris = ["{redirect_uri}"]
grant_types = ["authorization_code", "refresh_token", "client_credentials"]
scopes = [{listed}]
secret_file = "{secret_file}"
{confidential_extra}
"""


def oauth_tail(redis_port: int, pepper_path, signing_key_path, clients: str, oauth_settings: str = "",
               jwt_settings: str = "") -> str:
    """`[redis]`, `[auth.api_keys]`, `[auth.jwt]` with our own issuer (RS256) and `[oauth]`
    with `oauth_settings` and the `clients` text (`oauth_clients_text`)."""
    return jwt_session_tail(redis_port, pepper_path, signing_key_path, "RS256", jwt_settings) + f"""
[oauth]
{oauth_settings}
{clients}
"""


class OAuthSetup:
    """An OAuth-enabled gateway (USER_ROUTES, the two clients of `oauth_clients_text`) on a
    real Redis, with the confidential client's secret, the signing key and `add_user`."""

    def __init__(self, tmp_path: Path, make_gateway, upstream_url: str, redis_port: int,
                 oauth_settings: str = "", jwt_settings: str = "", routes: str = USER_ROUTES):
        from jwks_server import SigningKey
        self.tmp_path = tmp_path
        self.pepper = write_pepper(tmp_path / "oauth-pepper")
        self.signing_key = SigningKey("RS256", kid="gw-rs256")
        self.signing_key_file = tmp_path / "oauth-signing-key.pem"
        self.signing_key_file.write_bytes(self.signing_key.private_pem())
        # Only unreserved characters, as the gateway's own secrets (43 base64url characters).
        self.client_secret = "e2e-secret-" + os.urandom(24).hex()
        self.secret_file = tmp_path / "oauth-client-secret"
        self.secret_file.write_text(self.client_secret + "\n")
        self.secret_file.chmod(0o600)
        self.redis_port = redis_port
        self.tail = oauth_tail(redis_port, self.pepper, self.signing_key_file, oauth_clients_text(self.secret_file),
                               oauth_settings, jwt_settings)
        self.gateway = make_gateway(upstream_url, routes=routes, tail=self.tail)
        self.issuer = OWN_ISSUER
        self.public_client = OAUTH_PUBLIC_CLIENT
        self.confidential_client = OAUTH_CONFIDENTIAL_CLIENT

    @property
    def url(self) -> str:
        return self.gateway.url

    def endpoint(self, name: str) -> str:
        """`/oauth/<name>` of this gateway (authorize, token, revoke, introspect)."""
        return f"{self.gateway.url}/oauth/{name}"

    def metadata(self) -> dict:
        r = requests.get(f"{self.gateway.url}/.well-known/oauth-authorization-server", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def add_user(self, email: str, scopes=OAUTH_SCOPES, password: str = OAUTH_PASSWORD) -> dict:
        return add_user(self.gateway, email, scopes, password)


@pytest.fixture
def oauth_setup(tmp_path, make_gateway, upstream, redis_server) -> OAuthSetup:
    """The OAuth-enabled gateway most OAuth tests use (see OAuthSetup)."""
    return OAuthSetup(tmp_path, make_gateway, upstream.url, redis_server.port)


class HTMLForms:
    """The forms of an HTML page (html.parser, no JavaScript): for each, its action, method,
    every <input> (name, type, value, id) and every <button> (name, value, id)."""

    def __init__(self, text: str):
        from html.parser import HTMLParser
        forms = []

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                attributes = dict(attrs)
                if tag == "form":
                    forms.append({"action": attributes.get("action") or "", "method": (attributes.get("method") or "get").lower(),
                                  "inputs": [], "buttons": []})
                elif tag == "input" and forms:
                    forms[-1]["inputs"].append(attributes)
                elif tag == "button" and forms:
                    forms[-1]["buttons"].append(attributes)

        Parser().feed(text)
        self.forms = forms

    def with_field(self, name: str) -> dict | None:
        """The first form with an input or button named `name`."""
        for form in self.forms:
            if any(field.get("name") == name for field in form["inputs"] + form["buttons"]):
                return form
        return None

    @staticmethod
    def hidden(form: dict) -> dict:
        return {field["name"]: field.get("value") or "" for field in form["inputs"]
                if (field.get("type") or "").lower() == "hidden" and field.get("name")}


def oauth_authorize(gateway_url: str, authorize_url: str, email: str, password: str = OAUTH_PASSWORD,
                    session: requests.Session | None = None, decision: str = "allow", pages: list | None = None) -> str:
    """Walks the gateway's login and consent pages as a browser without JavaScript would:
    GET the authorize URL, post the login form (email, password, its hidden flow and
    csrf_token), then the consent form (`decision`), following the gateway's own 303s.
    Returns the Location of the redirect that leaves the gateway (the client's redirect
    URI with code or error, state and iss). `pages` collects every HTML response seen."""
    from urllib.parse import urljoin
    session = session or requests.Session()
    response = session.get(authorize_url, allow_redirects=False, timeout=10)
    for _ in range(8):
        if response.status_code in (301, 302, 303, 307, 308):
            location = urljoin(response.url, response.headers["Location"])
            if not location.startswith(gateway_url + "/"):
                return location
            response = session.get(location, allow_redirects=False, timeout=10)
            continue
        assert response.status_code == 200, f"{response.request.method} {response.url}: {response.status_code} {response.text[:2000]}"
        if pages is not None:
            pages.append(response)
        forms = HTMLForms(response.text)
        login_form = forms.with_field("password")
        consent_form = forms.with_field("decision")
        if login_form is not None:
            data = HTMLForms.hidden(login_form) | {"email": email, "password": password}
            form = login_form
        elif consent_form is not None:
            data = HTMLForms.hidden(consent_form) | {"decision": decision}
            form = consent_form
        else:
            raise AssertionError(f"neither a login nor a consent form at {response.url}:\n{response.text[:2000]}")
        assert form["method"] == "post", form
        assert {"flow", "csrf_token"} <= data.keys(), f"hidden flow/csrf_token missing: {form}"
        response = session.post(urljoin(response.url, form["action"]), data=data, allow_redirects=False, timeout=10)
        assert response.status_code == 303, f"POST {response.url}: {response.status_code} {response.text[:2000]}"
    raise AssertionError("the authorization did not leave the gateway after 8 steps")


class CallbackServer:
    """A client's loopback redirect target (RFC 8252 §7.3) on 127.0.0.1: records the path and
    query of every request it gets and answers a small HTML page. Runs in a thread."""

    def __init__(self, path: str = "/callback"):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit
        self.path = path
        self.hits = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                hits.append({"path": parts.path, "raw_query": parts.query,
                             "query": {k: v for k, v in parse_qs(parts.query, keep_blank_values=True).items()}})
                body = b"<!doctype html><title>callback</title><h1 id=\"callback\">callback received</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def wait_for_hit(self, timeout: float = 10.0) -> dict:
        hit = wait_until(lambda: self.hits[0] if self.hits else None, timeout)
        assert hit is not None, f"nothing reached the callback {self.url} within {scaled(timeout)}s"
        return hit

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def callback_server():
    server = CallbackServer()
    yield server
    server.stop()


CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def chromium(tmp_path, request):
    """Headless Debian Chromium driven by selenium through Debian's chromedriver. The
    driver's path is given explicitly, so selenium-manager never runs and nothing is
    downloaded (scripts/install-deps.sh installs both packages). Parametrized indirectly
    with False, JavaScript is off. The browser console is kept (driver.get_log("browser"))."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(f"{path} is not installed (make test installs chromium and chromium-driver with scripts/install-deps.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    for argument in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-extensions", "--window-size=1280,900", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    if not getattr(request, "param", True):
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to start its sandbox as root
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(scaled(30))
    yield driver
    driver.quit()


# --- An operator's machine in namespaces: commands as written in the README, host untouched ----

class ScratchSystem:
    """A root shell in its own mount, network and PID namespaces, for running an operator's
    commands exactly as the README writes them (`sudo make install`, files under
    /etc/dbaudit-gateway, Redis on 6379, the gateway on 8080) without touching this machine
    or colliding with tests running beside it.

    /etc, /usr, /var, /opt, /root, /home and /run are copy-on-write overlays of the host's
    (the changes live on a tmpfs and vanish with the namespace), /tmp is an empty tmpfs, and
    the network has only its own loopback. Every process started inside dies with it (its
    shell is PID 1 of the namespace). The shell is root; `sudo` is a stand-in in the
    namespace's /usr/local/bin: `sudo -u USER cmd` execs cmd as USER (setpriv, so a
    background job's pid is cmd's own), plain `sudo cmd` execs cmd.

    Steps run one after another in the same shell (variables carry over) with `set -e`:
    the first failing command ends the shell, and `run` reports the step and its output.
    Needs root (unshare and mount); CI and `make test` run as root.

    `boot_systemd()` then starts a service manager inside it (for the README's systemd
    steps) and moves the shell into that manager's namespaces."""

    OVERLAID = ("/etc", "/usr", "/var", "/opt", "/root", "/home", "/run")

    SUDO_STAND_IN = """#!/bin/sh
if [ "$1" = "-u" ]; then user="$2"; shift 2; exec setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"; fi
exec "$@"
"""

    def __init__(self, tmp_path: Path, env: dict | None = None, cwd: Path = ROOT):
        if os.geteuid() != 0:
            pytest.skip("namespaces and mounts need root (CI and make test run as root)")
        self.directory = tmp_path / "scratch-system"
        self.steps = self.directory / "steps"
        self.steps.mkdir(parents=True)
        (self.directory / "sudo").write_text(self.SUDO_STAND_IN)
        (self.directory / "sudo").chmod(0o755)
        layers = self.directory / "layers"
        layers.mkdir()
        overlays = "\n".join(
            f"mkdir -p {layers}{d}/up {layers}{d}/work && "
            f"mount -t overlay overlay -o lowerdir={d},upperdir={layers}{d}/up,workdir={layers}{d}/work {d}"
            for d in self.OVERLAID if Path(d).is_dir())
        setup = f"""set -e
mount --make-rprivate /
mount -t tmpfs scratch-layers {layers}
{overlays}
mkdir -p /run/scratch-steps && mount --bind {self.steps} /run/scratch-steps
mkdir -p /usr/local/bin && install -m 0755 {self.directory}/sudo /usr/local/bin/sudo
mount -t tmpfs scratch-tmp /tmp
ip link set lo up
"""
        self.step_directory = "/run/scratch-steps"
        self.systemd_cgroup: Path | None = None
        command = ["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc"]
        setup += f"cd {cwd}\necho @@scratch-ready\nexec 2>&1\n"
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            command + ["bash", "--noprofile", "--norc", "-c", setup + "exec bash --noprofile --norc -e -o pipefail -s"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env={**os.environ, "HOME": "/root", **(env or {})}, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not wait_until(lambda: "@@scratch-ready" in self.output or self.proc.poll() is not None, timeout=30) \
                or "@@scratch-ready" not in self.output:
            self.close()
            raise AssertionError("the scratch system did not start:\n" + "\n".join(self.output))
        self.count = 0

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))

    def run(self, script: str, timeout: float = 120.0, name: str = "") -> str:
        """Runs `script` in the shell (stdin /dev/null) and returns what it printed; fails the
        test, with the output so far, when a command of it fails or it takes longer than
        `scaled(timeout)`."""
        self.count += 1
        path = self.steps / f"{self.count:02d}.sh"
        path.write_text(script + "\n")
        marker = f"@@step {self.count} done"
        start = len(self.output)
        self.proc.stdin.write(f"source {self.step_directory}/{path.name} </dev/null\necho '{marker}'\n")
        self.proc.stdin.flush()
        # The marker ends a line of its own, or the step's last line when that had no newline.
        def end() -> int | None:
            return next((i for i, line in enumerate(self.output[start:]) if line.endswith(marker)), None)

        finished = wait_until(lambda: end() is not None or self.proc.poll() is not None, timeout=timeout)
        printed = self.output[start:]
        label = name or f"step {self.count}"
        script_text = "\n".join("    " + line for line in script.splitlines())
        index = end()
        if index is None:
            why = f"failed (the shell exited with {self.proc.returncode})" if finished else "did not finish in time"
            raise AssertionError(f"{label} {why}:\n{script_text}\noutput:\n" + "\n".join(printed))
        last = printed[index][:-len(marker)]
        return "\n".join(printed[:index] + ([last] if last else []))

    # What PID 1 of the nested namespaces does before it becomes systemd: the machine's own
    # devices, kernel settings and cgroups stay out of the service manager's reach (what
    # systemd-nspawn sets up for a container). A private /dev with only the harmless nodes
    # (no host console, ttys or disks) and /dev/console a log file; /sys and /proc/sys
    # read-only, so units that write kernel-wide settings (systemd-sysctl, binfmt, udev) see
    # a container and skip; /sys/fs/cgroup the cgroup2 subtree made for this boot only.
    SYSTEMD_PREPARE = """set -e
read -r _ < {steps}/systemd-go
mkdir -p /run/scratch-dev && mount -t tmpfs -o mode=0755,nosuid scratch-dev /run/scratch-dev
for node in null zero full random urandom tty; do
    touch /run/scratch-dev/$node && mount --bind /dev/$node /run/scratch-dev/$node
done
touch /run/scratch-dev/console && mount --bind {steps}/systemd-console.log /run/scratch-dev/console
mkdir /run/scratch-dev/pts /run/scratch-dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /run/scratch-dev/pts
ln -s pts/ptmx /run/scratch-dev/ptmx && ln -s /proc/self/fd /run/scratch-dev/fd
mount -t tmpfs -o mode=1777,nosuid,nodev shm /run/scratch-dev/shm
mount --move /run/scratch-dev /dev
umount -R /sys/fs/cgroup
for mount in $(awk '$5 == "/sys" || $5 ~ "^/sys/" {{print $5}}' /proc/self/mountinfo); do
    mount -o remount,bind,ro "$mount"
done
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
exec env -i container=other PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --system --unit={unit}
"""

    # Capabilities the nested manager (and so every unit) never gets: loading kernel
    # modules, setting the clock, raw I/O, the kernel log and wake alarms are machine-wide.
    SYSTEMD_DROPPED_CAPABILITIES = "-sys_module,-sys_time,-sys_rawio,-syslog,-wake_alarm,-sys_boot"

    def boot_systemd(self, unit: str = "sysinit.target", timeout: float = 60.0) -> None:
        """Boots systemd (this machine's /lib/systemd/systemd, the version a Debian 12 operator
        runs) as PID 1 of PID, mount and cgroup namespaces nested in this scratch system, with
        `unit` as its boot target, waits until it is running, and then moves the shell into
        its PID and mount namespaces: later steps see the manager as PID 1 and `systemctl`
        talks to it. Call it before the steps, as an operator's machine is booted before they
        start: booting empties /tmp and applies tmpfiles.d (systemd-tmpfiles-setup).

        The boot target is sysinit.target (journald, tmpfiles, sysusers): a unit that a step
        starts pulls in what it needs, while the services this machine's /etc enables for
        multi-user.target (databases, web servers) are not started. The manager's cgroups are
        a subtree of its own on this machine's cgroup2 hierarchy, removed by `close()`.
        Everything it starts dies with the scratch system's PID namespace."""
        systemd = Path("/lib/systemd/systemd")
        cgroup2 = next((line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                        if line.split(" - ")[1].startswith("cgroup2 ")), None)
        if not systemd.exists() or cgroup2 is None:
            pytest.skip(f"booting a service manager needs {systemd} and a cgroup2 hierarchy (mounted: {cgroup2})")
        # The scratch shell runs in this process's cgroup; the manager gets a fresh child of the
        # hierarchy's root, and the launcher moves back out so only the manager's tree is in it.
        own = next(line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))
        self.systemd_cgroup = Path(cgroup2) / f"dbaudit-scratch-{os.getpid()}-{id(self):x}"
        self.systemd_cgroup.mkdir()
        (self.steps / "systemd-prepare.sh").write_text(self.SYSTEMD_PREPARE.format(steps=self.step_directory, unit=unit))
        origin = Path(cgroup2) / own.lstrip("/")
        steps = self.step_directory
        manager = "nsenter --target $__systemd --mount --pid"
        self.run(f"""
: > {steps}/systemd-console.log && rm -f {steps}/systemd-go && mkfifo {steps}/systemd-go
( echo $BASHPID > {self.systemd_cgroup}/cgroup.procs
  exec setpriv --bounding-set {self.SYSTEMD_DROPPED_CAPABILITIES} \
      unshare --cgroup --mount --pid --fork --mount-proc bash {steps}/systemd-prepare.sh
) > {steps}/systemd-launcher.log 2>&1 &
__launcher=$!
until __systemd=$(pgrep -P $__launcher); do sleep 0.05; done
echo $__launcher > {origin}/cgroup.procs
echo go > {steps}/systemd-go
until [ "$(cat /proc/$__systemd/comm)" = systemd ] && {manager} test -S /run/systemd/private; do sleep 0.05; done
{manager} systemctl is-system-running --wait || {{ {manager} systemctl --failed --no-pager; false; }}
""", timeout=timeout, name="booting systemd in the scratch system")
        # The shell becomes a child of `nsenter` in the manager's namespaces (the scratch
        # shell's PID 1 process, now nsenter, stays and ends when the shell ends).
        self.proc.stdin.write(f'exec {manager} --wd="$PWD" -- bash --noprofile --norc -e -o pipefail -s\n')
        self.proc.stdin.flush()
        assert self.run("ps -o comm= -p 1") == "systemd", "the shell did not enter the service manager's namespaces"
        # The journal is copied out while it grows (not as a job of the shell: the README's
        # steps count their jobs), and in full when a failing step ends the shell, once
        # journald has written what the failure logged.
        journal = f"journalctl -b --no-pager -o short-monotonic > {steps}/systemd-journal.log 2>&1"
        self.run(f"""({journal.replace("-b", "-b -f")} &)
trap 'journalctl --sync; {journal}' EXIT""")

    def systemd_journal(self) -> str:
        """The nested manager's journal (its own messages and every unit's output) as copied
        to the steps directory while it ran: there even after a failed step ended the shell."""
        path = self.steps / "systemd-journal.log"
        return path.read_text(errors="replace") if path.exists() else "(no journal)"

    def close(self) -> None:
        # The shell is PID 1 of the namespace: every process inside goes with it.
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        if self.systemd_cgroup is not None:
            # The PID namespace is gone, but its processes leave their cgroups asynchronously.
            tree = self.systemd_cgroup

            def removed() -> bool:
                for directory in sorted((d for d in tree.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
                    try:
                        directory.rmdir()
                    except OSError:
                        return False
                try:
                    tree.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    return False
                return True

            if not wait_until(removed, timeout=30, interval=0.1):
                raise AssertionError(f"the nested service manager's cgroup {tree} could not be removed")
