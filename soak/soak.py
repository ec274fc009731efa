"""The soak: two gateway instances sharing one redis-server, a recording upstream
(soak/upstream.py), a JWKS provider, a load generator that knows for every request whether
it had to be allowed, and faults on a schedule. soak/oracle.py turns the records into the
report and the verdict. Everything runs on 127.0.0.1, is bounded by `seconds`, and stops
every process it started.

    python soak/soak.py --seconds 600 [--results soak/results/<name>]

Exit status 0 when every invariant holds (soak/README.md lists them)."""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
sys.path.insert(0, str(HERE))

from conftest import (AUDIENCE, OWN_ISSUER, Gateway, RedisServer, add_user, create_key, free_port,  # noqa: E402
                      gateway_binary, redis_keys_tail, scaled, set_user_disabled, wait_for_port, write_pepper)
from jwks_server import JWKSServer, SigningKey  # noqa: E402
from test_tls import PKI  # noqa: E402

import oracle  # noqa: E402

IDP = "https://idp.soak.test"
WARM_UP = 10.0
# One fault cycle: (offset in seconds, action). Revocations sit at least 3 s away from a store
# fault so the oracle's 1 s bound is about propagation, not about the store being away.
CYCLE = [
    (0.0, "revoke_key"),
    (2.0, "redis_kill"),
    (5.0, "redis_restart"),
    (9.0, "logout"),
    (11.0, "redis_pause"),
    (15.0, "upstream_slow"),
    (19.0, "upstream_normal"),
    (20.0, "upstream_reset"),
    (23.0, "upstream_normal"),
    (25.0, "upstream_kill"),
    (28.0, "upstream_restart"),
    (31.0, "disable_user"),
    (33.0, "revoke_key"),
    (35.0, "jwks_rotate"),
]
CYCLE_LENGTH = 40.0
PAUSE_MS = 1500
RELOAD_EVERY = 10.0
# The external issuer's `unknown_kid_refetch_interval`: a key the provider adds is used
# within this much (tokens of the rotated-away key keep asking for unknown kids).
KID_REFETCH = 1.0
# The bound within which a revoked, logged-out, disabled or expired credential must be
# refused everywhere, and within which every loop must be back after the store returns.
REVOCATION_BOUND = scaled(1.0)
RECOVERY_BOUND = scaled(2.0)
RATE = 10  # tokens per second of the limited route's policy
BURST = 5


def routes(flip_scope: str) -> str:
    """Config A requires read:databases on /v1/flip, config B read:logs: an API key (only
    read:databases) passes /v1/flip under A and gets 403 under B; a user token passes both."""
    return f"""
[[rate_limits]]
name = "soak"
rate = {RATE}
per = "second"
burst = {BURST}
on_store_unavailable = "deny"

[[routes]]
method = "GET"
path = "/v1/databases"
scopes = ["read:databases"]

[[routes]]
method = "GET"
path = "/v1/flip"
scopes = ["{flip_scope}"]

[[routes]]
method = "GET"
path = "/v1/limited"
scopes = ["read:databases"]
rate_limit = "soak"
"""


CONFIGS = {"A": routes("read:databases"), "B": routes("read:logs")}
# An unknown key in a route: the loader refuses it, so a reload to it must be refused.
INVALID = routes("read:databases").replace('path = "/v1/limited"', 'path = "/v1/limited"\nbogus_key = 1')


class LogTail:
    """Reads a gateway's JSON log incrementally (the log grows with the run)."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = b""

    def new_lines(self) -> list:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        lines = []
        for raw in complete:
            try:
                lines.append(json.loads(raw))
            except ValueError:
                lines.append({"raw": raw.decode(errors="replace")})
        return lines

    def wait_for(self, predicate, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.new_lines():
                if predicate(line):
                    return line
            time.sleep(0.02)
        return None


class UpstreamProcess:
    """soak/upstream.py on a fixed port, restartable on the same port after a kill -9."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.record_path = workdir / "upstream-records.txt"
        self.mode_path = workdir / "upstream-mode.txt"
        self.set_mode("normal")
        self.proc = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "upstream.py"), str(self.port), str(self.record_path),
                                      str(self.mode_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)

    def set_mode(self, mode: str) -> None:
        self.mode_path.write_text(mode)
        time.sleep(0.06)  # the upstream re-reads its mode every 50 ms

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def forwarded_ids(self) -> set:
        return {line for line in self.record_path.read_text().split("\n") if line and line != "-"}


class Credential:
    """One credential and its time-stamped states (monotonic seconds): it must be allowed for
    a request answered before `valid_until`, must be refused for one sent after
    `invalid_from`; in between either is correct. `flip` says whether its scopes satisfy
    /v1/flip under config A and B."""

    def __init__(self, name: str, kind: str, token: str, flip: dict, valid: bool = True):
        self.name = name
        self.kind = kind
        self.token = token
        self.flip = flip
        self.valid_until = float("inf") if valid else float("-inf")
        self.invalid_from = float("inf") if valid else float("-inf")
        # A credential that becomes valid (a token of a key the provider adds later): refused
        # for a request answered before `refused_until`, allowed for one sent after `allowed_from`.
        self.refused_until = float("-inf")
        self.allowed_from = float("-inf")

    def state_change(self, started: float, finished: float, bound: float = REVOCATION_BOUND) -> None:
        self.valid_until = min(self.valid_until, started)
        self.invalid_from = min(self.invalid_from, finished + bound)

    def summary(self) -> dict:
        return {"kind": self.kind, "valid_until": self.valid_until, "invalid_from": self.invalid_from, "flip": self.flip,
                "refused_until": self.refused_until, "allowed_from": self.allowed_from}


class Soak:
    def __init__(self, seconds: float, workdir: Path, results: Path, workers: int = 6):
        self.seconds = seconds
        self.workdir = workdir
        self.results = results
        self.workers = workers
        self.cycles = max(1, int((seconds - WARM_UP - 12.0) // CYCLE_LENGTH))
        self.records = []  # (id, gateway index, credential, route, t_send, t_recv, status, code)
        self.records_lock = threading.Lock()
        self.events = []  # (kind, start, end, detail)
        self.samples = []  # (t, gateway index, rss KiB, fds)
        self.stop = threading.Event()
        self.creds = {}
        self.pools = {"revoke": [], "logout": [], "disable": []}
        self.config_timeline = [(float("-inf"), "A")]  # (time the config is certainly active, name)
        self.reload_windows = []  # (sighup sent, reload logged)
        self.gateways = []
        self.redis = None
        self.upstream = None
        self.jwks = None
        self.load_started = 0.0

    # --- setup --------------------------------------------------------------------------------

    def setup(self) -> None:
        self.redis = RedisServer(self.workdir)
        self.upstream = UpstreamProcess(self.workdir)
        self.ext_key = SigningKey("RS256", kid="ext-current")
        self.ext_old = SigningKey("RS256", kid="ext-rotated-away")
        self.jwks = JWKSServer()
        self.jwks.set_keys([self.ext_key])
        own_key = SigningKey("RS256", kid="gw-rs256")
        key_file = self.workdir / "signing-key.pem"
        key_file.write_bytes(own_key.private_pem())
        pepper = write_pepper(self.workdir / "pepper")
        # All the load comes from 127.0.0.1 and includes failing credentials: the per-address
        # limit of failed authentications is off (it has its own tests).
        # A command timeout of 1 s: on a machine shared with builds, a starved redis-server
        # (appendfsync always) can miss 300 ms without any fault injected.
        timeout = f"{int(scaled(1.0) * 1000)}ms"
        self.tail = redis_keys_tail(self.redis.port, pepper, command_timeout=timeout,
                                    cache={"stale_grace": "10m"}) + f"""
failures_per_address = 0

[auth.jwt]
issuer = "{OWN_ISSUER}"
audience = "{AUDIENCE}"
password_hash_cost = 10
login_attempts_per_address = 100000
login_attempts_per_account = 100000

[[auth.jwt.signing_keys]]
kid = "gw-rs256"
algorithm = "RS256"
private_key_file = "{key_file}"
active = true

[[auth.jwt.issuers]]
issuer = "{IDP}"
jwks_url = "{self.jwks.url}"
audiences = ["{AUDIENCE}"]
unknown_kid_refetch_interval = "{KID_REFETCH:g}s"
"""
        # TLS on both instances; every valid reload also rotates the certificate between two
        # CAs' leaves (the clients trust both; a fresh handshake must present the new one).
        (self.workdir / "pki").mkdir()
        self.pki = PKI(self.workdir / "pki")
        self.tls_client = ssl.create_default_context(cafile=self.pki.path("ca.pem"))
        self.tls_client.load_verify_locations(self.pki.path("ca2.pem"))
        self.live_cert, self.live_key = self.workdir / "live.pem", self.workdir / "live.key"
        self.certificate = "server"
        self.install_certificate("server")
        self.server_tls = f"""
[server.tls]
certificate_file = "{self.live_cert}"
private_key_file = "{self.live_key}"
"""
        for _ in range(2):
            self.gateways.append(Gateway(self.workdir, self.upstream.url, routes=CONFIGS["A"], tail=self.tail,
                                         server=self.server_tls))
        self.logs = [LogTail(g.log_path) for g in self.gateways]
        # The CLI (keys, users) reads a file of its own: the gateways' files are rewritten by
        # the reloads, an invalid one among them.
        self.cli_config = SimpleNamespace(config_path=self.workdir / "cli.conf")
        self.cli_config.config_path.write_bytes(self.gateways[0].config_path.read_bytes())
        self.make_credentials()
        self.wait_until_ready()

    def wait_until_ready(self, bound: float = 30.0) -> None:
        """Before the load: every gateway accepts a valid key and a valid external JWT, so the
        run starts from a served state (a gateway whose first JWKS fetch failed answers 503
        for the provider's tokens until it fetched them, which is not what the soak measures)."""
        for index in range(len(self.gateways)):
            for name in ("key-valid-0", "ext-valid"):
                deadline = time.monotonic() + bound
                while True:
                    conn = self.connection(index)
                    try:
                        conn.request("GET", "/v1/databases",
                                     headers={"Authorization": f"Bearer {self.creds[name].token}"})
                        status = conn.getresponse().status
                    except OSError:
                        status = -1
                    finally:
                        conn.close()
                    if status == 200:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"gateway {index} did not accept {name} within {bound} s (last {status})")
                    time.sleep(0.2)

    def install_certificate(self, leaf: str) -> None:
        for source, target in ((f"{leaf}.pem", self.live_cert), (f"{leaf}.key", self.live_key)):
            shutil.copy(self.pki.path(source), f"{target}.tmp")
            os.replace(f"{target}.tmp", target)

    def presented_organisation(self, index: int) -> str:
        """The O= of the certificate a fresh handshake with gateway `index` presents."""
        with socket.create_connection(("127.0.0.1", self.gateways[index].port), timeout=10) as raw:
            with self.tls_client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                subject = dict(item[0] for item in tls.getpeercert()["subject"])
                return subject.get("organizationName", "")

    def connection(self, index: int) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.gateways[index].port, timeout=10, context=self.tls_client)

    def add(self, cred: Credential) -> Credential:
        self.creds[cred.name] = cred
        return cred

    def make_credentials(self) -> None:
        g = self.cli_config
        api_flip = {"A": True, "B": False}
        user_flip = {"A": True, "B": True}
        for i in range(3):
            self.add(Credential(f"key-valid-{i}", "api_key", create_key(g, ["read:databases"])["key"], api_flip))
        for i in range(2 * self.cycles):
            cred = self.add(Credential(f"key-revocable-{i}", "api_key", "", api_flip))
            record = create_key(g, ["read:databases"], name=cred.name)
            cred.token, cred.key_id = record["key"], record["id"]
            self.pools["revoke"].append(cred)
        revoked = create_key(g, ["read:databases"], name="revoked at setup")
        self.cli("keys", "revoke", revoked["id"])
        self.add(Credential("key-revoked", "api_key", revoked["key"], api_flip, valid=False))
        # Expires within a second of its creation (the store keeps whole Unix seconds).
        started = time.monotonic()
        expired = create_key(g, ["read:databases"], name="expired", extra=["--expires-in", "1"])
        self.add(Credential("key-expired", "api_key", expired["key"], api_flip)).state_change(
            started, time.monotonic() + 1.0)
        # Expires in the middle of the run. The stored expiry may be truncated to whole
        # seconds, so it must be allowed only until one second before it.
        lifetime = int(WARM_UP + (self.seconds - WARM_UP) / 2)
        started = time.monotonic()
        expiring = create_key(g, ["read:databases"], name="expiring", extra=["--expires-in", str(lifetime)])
        cred = self.add(Credential("key-expiring", "api_key", expiring["key"], api_flip))
        cred.state_change(started + lifetime - 1.0, time.monotonic() + lifetime)
        # Never issued: a valid key with its secret altered (same shape and length).
        genuine = self.creds["key-valid-0"].token
        forged = genuine[:-6] + "".join(random.choice("abcdefghijk") for _ in range(6))
        self.add(Credential("key-never-issued", "api_key", forged, api_flip, valid=False))
        self.limited = create_key(g, ["read:databases"], name="limited")["key"]
        # Own JWTs: a stable user; users whose one session is logged out (their second session
        # must keep working); users disabled.
        add_user(g, "stable@soak.test", ["read:databases", "read:logs"])
        self.add(Credential("jwt-stable", "own_jwt", self.login_tokens("stable@soak.test")[0], user_flip))
        for i in range(self.cycles):
            email = f"logout-{i}@soak.test"
            add_user(g, email, ["read:databases", "read:logs"])
            tokens = self.login_tokens(email)
            session = [self.add(Credential(f"jwt-logout-{i}-{n}", "own_jwt", t, user_flip)) for n, t in enumerate(tokens)]
            self.add(Credential(f"jwt-other-session-{i}", "own_jwt", self.login_tokens(email)[0], user_flip))
            self.pools["logout"].append(session)
            email = f"disable-{i}@soak.test"
            add_user(g, email, ["read:databases", "read:logs"])
            cred = self.add(Credential(f"jwt-disable-{i}", "own_jwt", self.login_tokens(email)[0], user_flip))
            cred.email = email
            self.pools["disable"].append(cred)
        add_user(g, "flow@soak.test", ["read:databases", "read:logs"])
        # External JWTs: valid for the whole run, expired, and signed by a key the provider
        # rotated away (not in its key set).
        now = int(time.time())
        claims = {"iss": IDP, "aud": AUDIENCE, "sub": "ext-user", "scope": "read:databases read:logs", "iat": now,
                  "nbf": now - 5, "exp": now + int(self.seconds) + 3600}
        self.add(Credential("ext-valid", "ext_jwt", self.ext_key.sign_pyjwt(claims), user_flip))
        self.add(Credential("ext-expired", "ext_jwt",
                            self.ext_key.sign_pyjwt({**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}),
                            user_flip, valid=False))
        self.add(Credential("ext-rotated-away", "ext_jwt", self.ext_old.sign_pyjwt(claims), user_flip, valid=False))
        # Keys the provider publishes during the run (one per cycle): their tokens are refused
        # until then, and allowed once the gateway has had time to refetch the key set.
        self.ext_added = []
        for i in range(self.cycles):
            key = SigningKey("RS256", kid=f"ext-added-{i}")
            cred = self.add(Credential(f"ext-added-{i}", "ext_jwt", key.sign_pyjwt(claims), user_flip))
            cred.refused_until = cred.allowed_from = float("inf")
            self.ext_added.append((key, cred))
        self.published = [self.ext_key]

    def login_tokens(self, email: str) -> list:
        """A login and one refresh: two access tokens of one session (same `sid`)."""
        first = self.json_post(0, "/v1/auth/login", {"email": email, "password": "password-at-least-12"})
        second = self.json_post(1, "/v1/auth/refresh", {"refresh_token": first["refresh_token"]})
        return [first["access_token"], second["access_token"]]

    def json_post(self, index: int, path: str, body: dict, token: str | None = None) -> dict:
        status, data = self.post(index, path, body, token)
        if status != 200:
            raise RuntimeError(f"{path}: {status} {data[:300]!r}")
        return json.loads(data)

    def post(self, index: int, path: str, body: dict | None, token: str | None = None):
        conn = self.connection(index)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            conn.request("POST", path, body=json.dumps(body) if body is not None else b"", headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def cli(self, *args) -> None:
        result = subprocess.run([gateway_binary(), args[0], args[1], "--config", str(self.cli_config.config_path),
                                 *args[2:]], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"{args}: {result.stderr}")

    # --- load ---------------------------------------------------------------------------------

    def record(self, *row) -> None:
        with self.records_lock:
            self.records.append(row)

    def exchange(self, conns: dict, index: int, method: str, path: str, token: str | None, name: str,
                 body: bytes | None = None):
        """One request on this thread's keep-alive connection to gateway `index`, recorded;
        returns (status, body bytes). A transport failure is recorded as status -1."""
        soak_id = f"{threading.get_ident() % 100000}-{time.monotonic_ns()}"
        headers = {"X-Soak-Id": soak_id}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        sent = time.monotonic()
        try:
            conn = conns.get(index)
            if conn is None:
                conn = conns[index] = self.connection(index)
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            status = response.status
            code = ""
            if status >= 400:
                try:
                    code = json.loads(data).get("error", "")
                except ValueError:
                    code = "non-json"
            if response.will_close:
                conn.close()
                conns.pop(index, None)
        except (OSError, http.client.HTTPException) as error:
            status, code, data = -1, type(error).__name__, b""
            conns.pop(index, None)
        self.record(soak_id, index, name, path, sent, time.monotonic(), status, code)
        return status, data

    def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        conns = {}
        names = sorted(self.creds)
        while not self.stop.is_set():
            cred = self.creds[rng.choice(names)]
            path = "/v1/flip" if rng.random() < 0.3 else "/v1/databases"
            self.exchange(conns, rng.randrange(2), "GET", path, cred.token, cred.name)

    def limited_worker(self, index: int) -> None:
        """Paced demand on the rate-limited route, about 3x its rate in total."""
        conns = {}
        period = 1.0 / (RATE * 3 / 4)  # four of these threads
        next_at = time.monotonic()
        while not self.stop.is_set():
            self.exchange(conns, index, "GET", "/v1/limited", self.limited, "limited")
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()

    def flow_worker(self) -> None:
        """Login, use, refresh, use: each step must succeed (503 only during a store outage)."""
        conns = {}
        index = 0
        while not self.stop.is_set():
            index = 1 - index
            body = json.dumps({"email": "flow@soak.test", "password": "password-at-least-12"}).encode()
            status, data = self.exchange(conns, index, "POST", "/v1/auth/login", None, "flow-login", body)
            if status == 200:
                tokens = json.loads(data)
                self.exchange(conns, index, "GET", "/v1/databases", tokens["access_token"], "flow-access")
                body = json.dumps({"refresh_token": tokens["refresh_token"]}).encode()
                status, data = self.exchange(conns, 1 - index, "POST", "/v1/auth/refresh", None, "flow-refresh", body)
                if status == 200:
                    self.exchange(conns, index, "GET", "/v1/databases", json.loads(data)["access_token"], "flow-access")
            self.stop.wait(0.5)

    def sampler(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic()
            for index, gateway in enumerate(self.gateways):
                try:
                    rss = gateway.rss_kib()
                    fds = len(os.listdir(f"/proc/{gateway.proc.pid}/fd"))
                except (OSError, KeyError):
                    continue
                self.samples.append((now, index, rss, fds))
            self.stop.wait(0.5)

    # --- faults -------------------------------------------------------------------------------

    def event(self, kind: str, start: float, end: float, detail: str = "") -> None:
        self.events.append((kind, start, end, detail))

    def run_action(self, action: str, state: dict) -> None:
        now = time.monotonic()
        if action == "revoke_key":
            cred = self.pools["revoke"].pop(0)
            self.cli("keys", "revoke", cred.key_id)
            cred.state_change(now, time.monotonic())
            self.event("revoke_key", now, time.monotonic(), cred.name)
        elif action == "logout":
            session = self.pools["logout"].pop(0)
            status, data = self.post(state["logout_gateway"], "/v1/auth/logout", None, session[0].token)
            state["logout_gateway"] = 1 - state["logout_gateway"]
            if status not in (200, 204):
                raise RuntimeError(f"logout answered {status}: {data[:200]!r}")
            for cred in session:
                cred.state_change(now, time.monotonic())
            self.event("logout", now, time.monotonic(), session[0].name)
        elif action == "disable_user":
            cred = self.pools["disable"].pop(0)
            set_user_disabled(self.cli_config, cred.email, True)
            cred.state_change(now, time.monotonic())
            self.event("disable_user", now, time.monotonic(), cred.name)
        elif action == "jwks_rotate":
            key, cred = self.ext_added.pop(0)
            self.published.append(key)
            self.jwks.set_keys(self.published)
            cred.refused_until = now
            cred.allowed_from = time.monotonic() + KID_REFETCH + REVOCATION_BOUND
            self.event("jwks_rotate", now, time.monotonic(), cred.name)
        elif action == "redis_kill":
            self.redis.kill9()
            state["redis_down"] = now
        elif action == "redis_restart":
            self.redis.start()
            self.event("redis_kill", state.pop("redis_down"), time.monotonic(), "kill -9, restart on the same port")
        elif action == "redis_pause":
            self.redis.command("CLIENT", "PAUSE", str(PAUSE_MS), "ALL")
            self.event("redis_pause", now, now + PAUSE_MS / 1000, f"CLIENT PAUSE {PAUSE_MS} ALL")
        elif action in ("upstream_slow", "upstream_reset"):
            self.upstream.set_mode(action.split("_")[1])
            state["upstream_fault"] = (action, now)
        elif action == "upstream_normal":
            self.upstream.set_mode("normal")
            kind, start = state.pop("upstream_fault")
            self.event(kind, start, time.monotonic())
        elif action == "upstream_kill":
            self.upstream.kill9()
            state["upstream_fault"] = ("upstream_kill", now)
        elif action == "upstream_restart":
            self.upstream.start()
            kind, start = state.pop("upstream_fault")
            self.event(kind, start, time.monotonic(), "kill -9, restart on the same port")

    def faults(self) -> None:
        state = {"logout_gateway": 0}
        schedule = sorted((self.load_started + WARM_UP + 2.0 + c * CYCLE_LENGTH + offset, action)
                          for c in range(self.cycles) for offset, action in CYCLE)
        for at, action in schedule:
            if self.stop.wait(max(0.0, at - time.monotonic())):
                return
            try:
                self.run_action(action, state)
            except Exception as error:  # a harness failure is reported, not hidden
                self.event("harness_error", time.monotonic(), time.monotonic(), f"{action}: {error}")

    def reloads(self) -> None:
        """SIGHUP to both instances every RELOAD_EVERY seconds, alternating configs A and B;
        every third time an invalid file first, which must be refused."""
        active = "A"
        count = 0
        next_at = self.load_started + RELOAD_EVERY / 2
        end = self.load_started + self.seconds - 6.0
        while next_at < end:
            if self.stop.wait(max(0.0, next_at - time.monotonic())):
                return
            count += 1
            if count % 3 == 0:
                self.reload(INVALID, "invalid", expect="reload failed")
                for gateway in self.gateways:  # back to the valid file, without a signal
                    gateway.routes = CONFIGS[active]
                    gateway.write_config(self.upstream.url, server=self.server_tls)
            active = "B" if active == "A" else "A"
            self.reload(CONFIGS[active], active, expect="configuration reloaded")
            next_at += RELOAD_EVERY

    def reload(self, routes_text: str, name: str, expect: str) -> None:
        for gateway in self.gateways:
            gateway.routes = routes_text
            gateway.write_config(self.upstream.url, server=self.server_tls)
        rotate = name != "invalid"
        if rotate:
            self.certificate = "server2" if self.certificate == "server" else "server"
            self.install_certificate(self.certificate)
        for log in self.logs:
            log.new_lines()
        sent = time.monotonic()
        for gateway in self.gateways:
            gateway.signal(signal.SIGHUP)
        done = [log.wait_for(lambda line: str(line.get("msg", "")).startswith(expect), 10.0) for log in self.logs]
        logged = time.monotonic()
        ok = all(line is not None for line in done)
        self.event("reload" if name != "invalid" else "reload_invalid", sent, logged,
                   f"config {name}: {'as expected' if ok else 'NO ' + repr(expect) + ' LOGGED'}")
        if name != "invalid":
            self.reload_windows.append((sent, logged))
            self.config_timeline.append((logged, name))
        if not ok:
            self.event("harness_error", logged, logged, f"reload to {name}: no {expect!r} in a log within 10 s")
        if rotate:
            expected = "first" if self.certificate == "server" else "second"
            try:
                presented = [self.presented_organisation(index) for index in range(len(self.gateways))]
            except (OSError, ssl.SSLError) as error:
                presented = [repr(error)]
            verdict = "as expected" if presented == [expected] * len(self.gateways) else f"presented {presented}"
            self.event("cert_rotation", sent, time.monotonic(), f"O={expected}: {verdict}")

    # --- run ----------------------------------------------------------------------------------

    def run(self) -> dict:
        threads = [threading.Thread(target=self.worker, args=(n,), daemon=True) for n in range(self.workers)]
        threads += [threading.Thread(target=self.limited_worker, args=(n % 2,), daemon=True) for n in range(4)]
        threads += [threading.Thread(target=self.flow_worker, daemon=True),
                    threading.Thread(target=self.sampler, daemon=True)]
        self.load_started = time.monotonic()
        control = [threading.Thread(target=self.faults, daemon=True), threading.Thread(target=self.reloads, daemon=True)]
        for thread in threads + control:
            thread.start()
        self.stop.wait(self.seconds)
        self.stop.set()
        for thread in threads + control:
            thread.join(timeout=30)
        forwarded = self.upstream.forwarded_ids()
        return oracle.evaluate(
            records=list(self.records), events=list(self.events), samples=list(self.samples),
            creds={name: c.summary() for name, c in self.creds.items()}, config_timeline=self.config_timeline,
            reload_windows=self.reload_windows, forwarded=forwarded, load_started=self.load_started,
            warm_up=WARM_UP, seconds=self.seconds, rate=RATE, burst=BURST, results=self.results,
            recovery_bound=RECOVERY_BOUND, revocation_bound=REVOCATION_BOUND)

    def close(self) -> None:
        for gateway in self.gateways:
            gateway.stop()
        for part in (self.upstream, self.redis):
            if part is not None:
                (part.kill9 if part is self.upstream else part.stop)()
        if self.jwks is not None:
            self.jwks.stop()


def run_soak(seconds: float, results: Path, workdir: Path | None = None) -> dict:
    """Sets up, runs `seconds` of load and faults, tears down; returns the report (its
    `failures` list is empty when every invariant held)."""
    results.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        soak = Soak(seconds, Path(workdir or scratch), results)
        try:
            soak.setup()
            return soak.run()
        finally:
            soak.close()
            for index, gateway in enumerate(soak.gateways):
                # The gateways' logs go with the report (the scratch directory does not stay).
                try:
                    (results / f"gateway-{index}.log").write_bytes(gateway.log_path.read_bytes()[-20_000_000:])
                except OSError:
                    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "600")))
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    if args.seconds < 60:
        parser.error("--seconds must be at least 60 (one fault cycle after the warm-up)")
    results = args.results or HERE / "results" / time.strftime(f"%Y%m%d-%H%M%S-{int(args.seconds)}s")
    report = run_soak(args.seconds, results)
    print(report["summary_text"])
    print(f"report: {results}")
    return 0 if not report["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
