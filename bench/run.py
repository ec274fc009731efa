#!/usr/bin/env python3
"""Benchmark harness: dbaudit-gateway side by side with nginx and HAProxy, in one run.

Run through `make bench` / `make bench-quick` (they install nginx, haproxy, redis-server
and wrk, and build the release binary first). See bench/README.md for how to read the
numbers. Python 3 standard library only.

What one run does:
  1. makes a private temp dir, picks free loopback ports, starts the upstream (its own
     nginx answering 200 {"databases":[]}) pinned to the load core;
  2. for each scenario in SCENARIOS whose gateway feature exists: starts the Redis it
     needs on the load core (one redis-server; for the Redis mode variants also a Sentinel
     set and a 3-primary cluster), the gateway and the peers (each pinned to the proxy
     core), runs the pre-flight checks on every one of
     them (the same work: status, body, forwarded headers, keep-alive ...), then times
     them interleaved (A B C A B C ...) with wrk, sampling CPU time and peak RSS of each
     proxy's process tree from /proc;
     then (Settings.counts) counts per request on each proxy: system calls (strace -c),
     instructions (the proxy again under callgrind) and the gateway's CPU profile (perf
     record); the idle-connections scenario instead holds 10,000 idle keep-alive
     connections to each proxy (bench/idle-clients.py) and reads its RSS;
  3. prints a Markdown report (issue 15's targets with MET / MISSED, then per scenario
     medians with min-max, ratios to the peers measured in the same run, the counts),
     writes bench/results/latest.json and appends the run's summary to
     bench/results/history.jsonl (the report shows the previous figures beside);
  4. stops everything it started: at the end, on an error, on Ctrl-C or SIGTERM.

Exit status: 0 when every timed scenario passed its pre-flight and every run was valid;
1 when a pre-flight failed (that scenario was not timed) or a run was invalid (errors,
non-2xx responses, a proxy that died); 2 on a setup problem (missing tool, no binary).
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import datetime as _dt
import hashlib
import hmac
import http.client
import json
import os
import platform
import re
import random
import resource
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PEERS_DIR = BENCH / "peers"
GATEWAY_DIR = BENCH / "gateway"
WRK_SCRIPT = BENCH / "wrk" / "report.lua"
WRK_ROTATE_SCRIPT = BENCH / "wrk" / "rotate-keys.lua"  # a different API key on every request
WRK_TOKEN_SCRIPT = BENCH / "wrk" / "token-post.lua"  # POST /oauth/token (the token endpoint's throughput)
AUTH_SERVICE = PEERS_DIR / "auth-service.py"  # the Redis-backed auth service nginx auth_request asks
DEFAULT_BINARY = ROOT / ".build" / "release" / "dbaudit-gateway"
DEFAULT_OUT = BENCH / "results" / "latest.json"
DEFAULT_HISTORY = BENCH / "results" / "history.jsonl"  # committed: one line per run
IDLE_CLIENTS = BENCH / "idle-clients.py"  # the idle-connections scenario's client
VALGRIND_SHIM = BENCH / "valgrind-sigsuspend.c"  # preloaded into the gateway under valgrind

UPSTREAM_BODY = b'{"databases":[]}'
REQUEST_PATH = "/v1/databases"
CLK_TCK = os.sysconf("SC_CLK_TCK")
OTHER_LOAD_WARN = 10.0  # % of one core used by foreign processes on our cores: the run was disturbed
IDLE_RSS_TARGET_MIB = 64  # the gateway's RSS with the idle-connections scenario's connections open (issue 15)


# --------------------------------------------------------------------------------------
# Settings


@dataclass
class Settings:
    mode: str
    repetitions: int
    duration_s: int
    warmup_s: int
    concurrency: list[int]
    binary: Path
    out: Path
    only: Optional[set[str]]
    pin: bool
    keep_tmp: bool
    quiet_wait_s: int
    retries: int
    report: Optional[Path]
    # What bench/run.py counts per request besides timing: "syscalls" (strace -c attached
    # to each proxy for one wrk run) and "instructions" (the proxy started again under
    # valgrind's callgrind for one wrk run).
    counts: frozenset = frozenset()
    count_seconds: int = 3
    idle_connections: int = 10_000
    history: Optional[Path] = None  # earlier runs (the previous figures); None: none
    record: bool = False  # append this run's summary to `history`


def parse_counts(text: str) -> Optional[frozenset]:
    """--counts: "none" or a comma-separated subset of syscalls, instructions, profile; None if invalid."""
    words = {w.strip() for w in text.split(",") if w.strip()}
    if words == {"none"}:
        return frozenset()
    return frozenset(words) if words and words <= {"syscalls", "instructions", "profile"} else None


def parse_args(argv: list[str]) -> Settings:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 repetition, 3 s runs, concurrency 50 only (< 3 min)")
    p.add_argument("--repetitions", type=int, help="interleaved rounds per concurrency (default 3; quick 1)")
    p.add_argument("--duration", type=int, help="seconds per timed run (default 10; quick 3)")
    p.add_argument("--warmup", type=int, help="seconds of untimed load before each timed run (default 2; quick 1)")
    p.add_argument("--concurrency", help="comma-separated connection counts (default 50,200; quick 50)")
    p.add_argument("--scenario", action="append", help="run only this scenario id (repeatable)")
    p.add_argument("--gateway-bin", default=str(DEFAULT_BINARY), help="gateway binary (default: release build)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores with taskset")
    p.add_argument("--keep-tmp", action="store_true", help="keep the private temp dir (configs, logs)")
    p.add_argument("--quiet-wait", type=int,
                   help="before each run, wait up to this many seconds for other processes to leave the "
                        "benchmark cores (default 30; quick 10)")
    p.add_argument("--report", metavar="JSON", help="only print the Markdown report of a saved results file")
    p.add_argument("--retries", type=int,
                   help="rerun a run disturbed by other processes up to this many times (default 2; quick 1)")
    p.add_argument("--counts", help="after the timed runs: 'syscalls' (strace -c), 'instructions' (callgrind, scenarios "
                                    + ", ".join(sorted(INSTRUCTION_SCENARIOS)) + "), 'profile' (perf record of the "
                                    "gateway), comma-separated, or 'none' (default syscalls,instructions,profile; quick "
                                    "syscalls,profile)")
    p.add_argument("--count-seconds", type=int, default=3, help="length of the wrk run of each count (default 3)")
    p.add_argument("--idle-connections", type=int, default=10_000,
                   help="idle keep-alive connections of the idle-connections scenario (default 10000)")
    p.add_argument("--history", default=str(DEFAULT_HISTORY),
                   help="history file the run's summary is appended to (JSON lines; default bench/results/history.jsonl)")
    p.add_argument("--no-history", action="store_true",
                   help="do not append this run to the history (its previous figures are still shown)")
    a = p.parse_args(argv)
    quick = a.quick
    s = Settings(
        mode="quick" if quick else "full",
        repetitions=a.repetitions if a.repetitions is not None else (1 if quick else 3),
        duration_s=a.duration if a.duration is not None else (3 if quick else 10),
        warmup_s=a.warmup if a.warmup is not None else (1 if quick else 2),
        concurrency=[int(x) for x in a.concurrency.split(",")] if a.concurrency else ([50] if quick else [50, 200]),
        binary=Path(a.gateway_bin).absolute(),
        out=Path(a.out).absolute(),
        only=set(a.scenario) if a.scenario else None,
        pin=not a.no_pin,
        keep_tmp=a.keep_tmp,
        quiet_wait_s=a.quiet_wait if a.quiet_wait is not None else (10 if quick else 30),
        retries=a.retries if a.retries is not None else (1 if quick else 2),
        report=Path(a.report) if a.report else None,
        counts=parse_counts(a.counts if a.counts is not None
                            else ("syscalls,profile" if quick else "syscalls,instructions,profile")),
        count_seconds=a.count_seconds,
        idle_connections=a.idle_connections,
        history=Path(a.history).absolute(),
        record=not a.no_history,
    )
    if s.counts is None:
        p.error("--counts: none, or some of syscalls, instructions, profile (comma-separated)")
    if s.count_seconds < 1 or not 1 <= s.idle_connections <= 100_000:
        p.error("--count-seconds must be positive, --idle-connections 1..100000")
    if s.repetitions < 1 or s.duration_s < 1 or s.warmup_s < 0 or not s.concurrency or min(s.concurrency) < 1:
        p.error("repetitions, duration and concurrency must be positive")
    if s.quiet_wait_s < 0 or s.retries < 0:
        p.error("--quiet-wait and --retries must not be negative")
    return s


# --------------------------------------------------------------------------------------
# Processes: everything started here is registered and stopped in reverse order.


class Interrupted(Exception):
    pass


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    # Runs in the child between fork and exec: if the harness dies without cleaning up
    # (SIGKILL), the kernel sends the child SIGTERM. Kept across exec (not set-uid).
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Managed:
    """One started process (its own session/process group) with its log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cpu: Optional[int], stop_signal=signal.SIGTERM):
        self.name = name
        self.log_path = log_path
        self.stop_signal = stop_signal
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv  # taskset execs: the pid is the program's
        self.argv = argv
        self.cpu = cpu
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup,
            cwd=str(log_path.parent),
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 8.0) -> None:
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, self.stop_signal)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the process group (nginx workers of a killed master, ...).
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class Registry:
    def __init__(self) -> None:
        self.items: list[Managed] = []

    def start(self, *args, **kwargs) -> Managed:
        m = Managed(*args, **kwargs)
        self.items.append(m)
        return m

    def stop(self, m: Managed) -> None:
        m.stop()
        if m in self.items:
            self.items.remove(m)

    def stop_all(self) -> None:
        while self.items:
            self.items.pop().stop()


REGISTRY = Registry()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: Managed, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} before listening on {port}:\n{proc.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.3):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not listen on 127.0.0.1:{port} within {timeout:.0f}s:\n{proc.log_tail()}")


# --------------------------------------------------------------------------------------
# /proc sampling: CPU time (utime + stime, all threads) and peak RSS over a process tree.


def proc_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return pids


def cpu_ticks(pids: list[int]) -> dict[int, tuple[int, int]]:
    out = {}
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[p] = (int(fields[11]), int(fields[12]))  # utime, stime (fields 14, 15)
        except (OSError, IndexError, ValueError):
            pass
    return out


def cpu_delta_s(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> tuple[float, float]:
    user = sys_ = 0
    for p, (u, s) in after.items():
        u0, s0 = before.get(p, (0, 0))
        user += u - u0
        sys_ += s - s0
    return user / CLK_TCK, sys_ / CLK_TCK


def cpu_stat(cpus: list[int]) -> tuple[int, int]:
    """(user + nice + system + irq + softirq, steal) ticks of these CPUs from /proc/stat.
    With tick-based accounting a tick spent in softirq (loopback TCP receive) is charged to
    the interrupted task's stime and to the CPU's softirq column, so both count here."""
    busy = steal = 0
    wanted = {f"cpu{c}" for c in cpus}
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] in wanted:
                v = [int(x) for x in parts[1:]]
                busy += v[0] + v[1] + v[2] + v[5] + v[6]  # user nice system (not idle iowait) irq softirq
                steal += v[7] if len(v) > 7 else 0
    return busy, steal


def wait_for_quiet(cpus: list[int], max_wait_s: float, background: tuple[int, ...] = ()) -> tuple[float, float]:
    """Waits (at most max_wait_s) until processes other than ours use less than
    OTHER_LOAD_WARN % of a core on `cpus` over half a second, while nothing of ours is
    loaded (`background`: our idle processes that still tick, e.g. sentinels). Returns
    (seconds waited, last measured %)."""
    start = time.monotonic()
    me = [os.getpid(), *background]
    while True:
        b0, m0 = cpu_stat(cpus)[0], cpu_ticks(me)
        time.sleep(0.5)
        b1, m1 = cpu_stat(cpus)[0], cpu_ticks(me)
        other = 100 * max(0.0, (b1 - b0) / CLK_TCK - sum(cpu_delta_s(m0, m1))) / 0.5
        waited = time.monotonic() - start
        if other < OTHER_LOAD_WARN or waited >= max_wait_s:
            return waited, other
        time.sleep(1.0)


def reset_peak_rss(pids: list[int]) -> bool:
    ok = True
    for p in pids:
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        except OSError:
            ok = False
    return ok


def peak_rss_kib(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


# --------------------------------------------------------------------------------------
# Templates: {{name}} placeholders (nginx and HAProxy use $ and %), all must be filled.


def render(template: Path, values: dict[str, object]) -> str:
    text = template.read_text()

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key not in values:
            raise KeyError(f"{template}: no value for {{{{{key}}}}}")
        return str(values[key])

    return re.sub(r"\{\{([a-z_][a-z0-9_]*)\}\}", sub, text)


# --------------------------------------------------------------------------------------
# Pre-flight checks: each proxy must do the same work before it is timed. A check raises
# CheckFailed with a sentence saying what differed.


class CheckFailed(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    will_close: bool


def connect(port: int, tls: bool = False) -> http.client.HTTPConnection:
    if tls:  # the benchmark's own self-signed certificate: encryption is the point, not trust
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    return http.client.HTTPConnection("127.0.0.1", port, timeout=5)


def http_request(port: int, path: str, headers: Optional[dict[str, str]] = None,
                 conn: Optional[http.client.HTTPConnection] = None, method: str = "GET",
                 tls: bool = False) -> Response:
    own = conn is None
    c = conn or connect(port, tls)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, body, r.will_close)
    finally:
        if own:
            c.close()


@dataclass(frozen=True)
class Check:
    """A named pre-flight check: fn(target) raises CheckFailed when the proxy differs; it may
    return a sentence saying what it saw (kept with the result, e.g. which Redis node)."""
    name: str
    fn: Callable[["Target"], Optional[str]]


@dataclass
class Target:
    """A running proxy the checks and the load are aimed at."""
    name: str
    kind: str
    port: int
    upstream_port: int
    process: Managed
    request_headers: dict[str, str]
    tls: bool = False
    does_auth: bool = False
    # What the upstream must see from a proxy doing auth (does_auth), by X-DBAudit-* name
    # in lower case ("subject", "scopes", "credential", "key_id"); a proxy without auth
    # must blank them all.
    identity: dict[str, str] = field(default_factory=dict)
    # Other credentials of the scenario by name (headers replacing request_headers'):
    # "revoked", "rotation" (a few keys of the rotation) ... for the auth checks.
    credentials: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    # Processes doing part of this proxy's work (the auth service behind nginx
    # auth_request): their CPU time and RSS are counted as the proxy's.
    helpers: list[Managed] = field(default_factory=list)
    wrk_script: Path = WRK_SCRIPT
    wrk_args: list[str] = field(default_factory=list)
    rotation: Optional[tuple[Path, int]] = None  # (keys file, key count): wrk rotates keys
    rotation_next: int = 0  # where the next wrk run against this proxy starts in the rotation
    admin_port: int = 0  # the gateway's admin listener (cache counters), 0: none
    cache_expect: Optional[str] = None  # Scenario.gateway_cache, for a gateway
    cache_metric: str = "credential"  # Scenario.gateway_cache_metric: which cache's counters
    # A gateway's rate-limit decisions during a timed run (admin counters): "redis" (one
    # Redis decision per request, none local or as a fallback) or "none" (no decision: the
    # reference without a limit); None: not checked.
    rate_limit_expect: Optional[str] = None
    rate_limited: bool = False  # the scenario's rate-limit checks apply (the gateway, Peer.rate_limited)
    uses_redis: bool = False  # the scenario has Redis: its CPU per request is reported
    # The Redis this proxy works with (its CPU is the "Redis CPU µs/req" of its runs): for a
    # gateway its deployment (Peer.redis), for nginx/HAProxy peers the harness's redis-server.
    redis: Optional["RedisDeployment"] = None
    # Starts another instance of this proxy with the same configuration on a new port, its
    # command prefixed by `wrapper` (valgrind for the instruction counts): (name, port,
    # wrapper) -> the process. None: cannot be started again (not counted).
    launch: Optional[Callable[[str, int, list[str]], "Managed"]] = None
    redis_variant: bool = False  # a gateway on another Redis mode (Peer.redis not "single")


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


def check_status_and_body(t: Target) -> None:
    r = http_request(t.port, REQUEST_PATH, t.request_headers, tls=t.tls)
    _expect(r.status == 200, f"GET {REQUEST_PATH} answered {r.status}, expected 200: {r.body[:200]!r}")
    _expect(r.body == UPSTREAM_BODY, f"body {r.body[:200]!r} is not the upstream's {UPSTREAM_BODY!r}")
    _expect(r.headers.get("content-type", "").startswith("application/json"),
            f"Content-Type {r.headers.get('content-type')!r} is not the upstream's application/json")


def check_request_id_and_forwarding(t: Target) -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "gopher",
               "X-DBAudit-Subject": "mallory", "Host": "api.example.test"}
    r = http_request(t.port, "/__bench/echo", {**t.request_headers, **spoofed}, tls=t.tls)
    _expect(r.status == 200, f"GET /__bench/echo answered {r.status}: {r.body[:200]!r}")
    rid = r.headers.get("x-request-id", "")
    _expect(rid != "", "the response has no X-Request-Id")
    seen = json.loads(r.body)
    _expect(seen["x_request_id"] == rid,
            f"the upstream got X-Request-Id {seen['x_request_id']!r}, the client {rid!r}")
    _expect(seen["x_forwarded_for"] == "127.0.0.1",
            f"the upstream got X-Forwarded-For {seen['x_forwarded_for']!r}, expected the client address only")
    proto = "https" if t.tls else "http"
    _expect(seen["x_forwarded_proto"] == proto, f"the upstream got X-Forwarded-Proto {seen['x_forwarded_proto']!r}, "
                                                 f"expected {proto!r}")
    _expect(seen["x_forwarded_host"] == "api.example.test",
            f"the upstream got X-Forwarded-Host {seen['x_forwarded_host']!r}")
    _expect(seen["host"] == f"127.0.0.1:{t.upstream_port}",
            f"the upstream got Host {seen['host']!r}, expected its own host:port")
    want = t.identity.get("subject", "") if t.does_auth else ""
    _expect(seen["x_dbaudit_subject"] == want,
            "a client X-DBAudit-Subject header reached the upstream" if seen["x_dbaudit_subject"] == "mallory"
            else f"the upstream got X-DBAudit-Subject {seen['x_dbaudit_subject']!r}, expected {want!r}")


def check_keep_alive_both_sides(t: Target) -> None:
    conn = connect(t.port, t.tls)
    try:
        counts = []
        for i in range(6):
            r = http_request(t.port, "/__bench/echo", t.request_headers, conn=conn)
            _expect(r.status == 200, f"request {i + 1} on one connection answered {r.status}")
            _expect(not r.will_close, f"the proxy closed the client connection after request {i + 1}")
            counts.append(json.loads(r.body)["connection_requests"])
        _expect(max(counts) >= 2, f"every request opened a new upstream connection (upstream counts {counts})")
    finally:
        conn.close()


def check_rejects(name: str, headers: dict[str, Optional[str]], status: int = 401) -> Check:
    """For auth scenarios: the proxy refuses the timed request with `headers` changed (a
    value of None removes the header: no credential; an expired or `alg: none` token ...)
    with `status`."""

    def fn(t: Target) -> None:
        sent = {k: v for k, v in {**t.request_headers, **headers}.items() if v is not None}
        r = http_request(t.port, REQUEST_PATH, sent, tls=t.tls)
        _expect(r.status == status, f"{name}: answered {r.status}, expected {status}")

    return Check(f"rejects {name} with {status}", fn)


def check_rejects_tampered(header: str = "Authorization", status: int = 401) -> Check:
    """For auth scenarios: the timed request's credential with its last character changed
    (a broken signature, a wrong key) is refused with `status`."""

    def fn(t: Target) -> None:
        value = t.request_headers.get(header)
        _expect(bool(value), f"the scenario sends no {header} to tamper with")
        tampered = value[:-1] + ("A" if value[-1] != "A" else "B")
        r = http_request(t.port, REQUEST_PATH, {**t.request_headers, header: tampered}, tls=t.tls)
        _expect(r.status == status, f"a tampered {header}: answered {r.status}, expected {status}")

    return Check(f"rejects a tampered {header} with {status}", fn)


def check_identity_headers(t: Target) -> None:
    """For auth scenarios: the upstream receives the principal behind the credential as
    X-DBAudit-* (client values replaced) and, like the gateway, no Authorization."""
    spoofed = {"X-DBAudit-Subject": "mallory", "X-DBAudit-Scopes": "admin", "X-DBAudit-Key-Id": "key_spoofed",
               "X-DBAudit-Credential": "jwt", "X-DBAudit-Client-Id": "spoofed"}
    r = http_request(t.port, "/__bench/echo", {**t.request_headers, **spoofed}, tls=t.tls)
    _expect(r.status == 200, f"GET /__bench/echo answered {r.status}: {r.body[:200]!r}")
    seen = json.loads(r.body)
    _expect(bool(t.identity), "the scenario says nothing about the identity the upstream must see")
    for name, want in sorted(t.identity.items()):
        got = seen.get(f"x_dbaudit_{name}")
        _expect(got == want, f"the upstream got X-DBAudit-{name.replace('_', '-').title()} {got!r}, expected {want!r}")
    if "client_id" not in t.identity:  # an OAuth identity names its client (checked above)
        _expect(seen["x_dbaudit_client_id"] == "", "a client X-DBAudit-Client-Id header reached the upstream")
    _expect(seen["authorization"] == "", "the credential (Authorization) reached the upstream")


def check_rejects_credential(name: str, what: str, status: int = 401) -> Check:
    """For auth scenarios: every credential of t.credentials[name] (made by the scenario's
    prepare: a revoked key, a well-formed key that was never stored ...) gets `status`."""

    def fn(t: Target) -> None:
        creds = t.credentials.get(name)
        _expect(bool(creds), f"the scenario made no {what}")
        for headers in creds:
            r = http_request(t.port, REQUEST_PATH, {**t.request_headers, **headers}, tls=t.tls)
            _expect(r.status == status, f"{what}: answered {r.status}, expected {status}")

    return Check(f"rejects {what} with {status}", fn)


def check_accepts_rotation(t: Target) -> None:
    """For scenarios where wrk sends a different credential on every request: a few of
    them, from all over the list, are accepted (200, upstream body)."""
    creds = t.credentials.get("rotation")
    _expect(bool(creds), "the scenario made no rotation of keys")
    for i, headers in enumerate(creds):
        r = http_request(t.port, REQUEST_PATH, {**t.request_headers, **headers}, tls=t.tls)
        _expect(r.status == 200 and r.body == UPSTREAM_BODY,
                f"key {i + 1} of the rotation sample: answered {r.status} {r.body[:100]!r}, expected 200 and the upstream's body")


def check_alive_after_checks(t: Target) -> None:
    _expect(t.process.alive(), f"{t.name} exited (status {t.process.popen.returncode})")
    for h in t.helpers:
        _expect(h.alive(), f"{h.name} exited (status {h.popen.returncode})")


PROXY_CHECKS = (
    Check("200 with the upstream's body", check_status_and_body),
    Check("X-Request-Id + X-Forwarded-* set, client values and X-DBAudit-* dropped", check_request_id_and_forwarding),
    Check("keep-alive to the client and pooled keep-alive to the upstream", check_keep_alive_both_sides),
)


# --------------------------------------------------------------------------------------
# Scenarios: a table. Each names the gateway config template it needs, the peers doing
# the same work, the checks every proxy must pass, and the gateway config sections the
# feature brings (probed with `check-config`: while the gateway rejects them as unknown,
# the scenario is listed as skipped, never timed).


@dataclass(frozen=True)
class Peer:
    name: str  # unique within the scenario; also the column label
    # "nginx" | "haproxy" | "gateway": a second gateway process (the same binary, on the
    # proxy core like the others) as the reference, e.g. the same scenario without the
    # feature being measured (rate limiting)
    kind: str
    template: str  # file under bench/peers/ (under bench/gateway/ for kind "gateway")
    does_auth: bool = False  # False: a reference doing the proxy work only (auth_checks do not apply)
    # Template values of this peer only, over the scenario's (e.g. route_rate_limit).
    values: tuple[tuple[str, str], ...] = ()
    # The scenario's rate_limit_checks apply (headers, a low limit answering 429).
    rate_limited: bool = False
    # Start bench/peers/auth-service.py (on the proxy core, its CPU counted as this peer's)
    # and pass its port as {{auth_port}}; templates without it may still use {{auth_port}}
    # for a server block of their own.
    auth_service: bool = False
    # For kind "gateway": the Redis deployment it is configured for ({{redis_target}} in its
    # template): "single" (the harness's redis-server, as the gateway under test),
    # "sentinel" or "cluster". A peer with another mode than "single" is a variant of the
    # gateway under test: the report puts it beside the single-Redis figure (ratios
    # variant ÷ gateway) instead of in the gateway ÷ peer table.
    redis: str = "single"


@dataclass
class Prepared:
    """What a scenario's prepare() made: the headers every request carries (the
    credential), extra template values, the identity the upstream must then see from a
    proxy doing auth, other credentials for the auth checks, and, for wrk, a file of keys
    to send one after the other instead of request_headers' credential."""
    headers: dict[str, str] = field(default_factory=dict)
    values: dict[str, object] = field(default_factory=dict)
    identity: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    rotation: Optional[tuple[Path, int]] = None  # (file with one key a line, number of keys)


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    requires: tuple[str, ...]  # gateway config sections of the feature, e.g. "redis", "auth.jwt"
    gateway_config: str  # file under bench/gateway/
    peers: tuple[Peer, ...]
    checks: tuple[Check, ...] = PROXY_CHECKS  # every proxy
    auth_checks: tuple[Check, ...] = ()  # the gateway and every peer with does_auth
    tls: bool = False  # clients speak HTTPS to every proxy (wrk, checks)
    request_headers: tuple[tuple[str, str], ...] = ()  # sent on every request (the credential)
    services: tuple[str, ...] = ()  # extra services beyond the upstream: "redis"
    # Runs after the services started, before the proxies: creates credentials (an API key
    # in Redis, an RSA key pair and a signed JWT ...) in ctx.tmp. Returns a Prepared: the
    # headers to send on every request (added to request_headers), extra template values
    # (e.g. the path of a public key for HAProxy's jwt_verify), the identity the upstream
    # must see ...
    prepare: Optional[Callable[["Context"], "Prepared"]] = None
    targets: str = ""  # the performance target, quoted in the report
    # "hit" or "miss": what the gateway's credential cache must do during a timed run. The
    # gateway config then has an admin listener ({{admin_port}}); its cache counters are
    # read before and after each timed run, and a run where the cache did otherwise is
    # invalid (it did not measure the path it claims to).
    gateway_cache: Optional[str] = None
    # Whose counters gateway_cache is about: "credential" (API keys,
    # dbgw_credential_cache_*) or "jwt" (the verified-token cache, dbgw_jwt_cache_*).
    gateway_cache_metric: str = "credential"
    # Template values of the gateway under test only (a peer of kind "gateway" has its own).
    gateway_values: tuple[tuple[str, str], ...] = ()
    # "redis": the gateway under test must make one Redis rate-limit decision per request
    # (admin counters, before and after each timed run; a decision made locally or as a
    # fallback makes the run invalid); a peer of kind "gateway" without rate_limited must
    # make none. The gateway config then has an admin listener.
    rate_limit: Optional[str] = None
    # Checks for the gateway and every peer with rate_limited (RateLimit headers, 429 from a
    # low limit): a peer that does not limit is never compared as if it did.
    rate_limit_checks: tuple[Check, ...] = ()
    notes: str = ""  # printed under the scenario's table
    # Runs once the gateway under test listens, before the peers start: what only the
    # running gateway can make (an access token from its own token endpoint). Its Prepared
    # is merged into prepare()'s (headers, identity, credentials, values).
    after_gateway_start: Optional[Callable[["Context", int, "Prepared"], "Prepared"]] = None
    # After the proxy runs: load the gateway's own POST /oauth/token (client_credentials)
    # with wrk and report its throughput (token_endpoint_runs).
    token_endpoint: bool = False
    # For a peer on the Redis Cluster (Peer.redis "cluster"), whose stores use another key
    # layout than prepare() writes: makes its credentials through the running gateway's own
    # CLI (given its config file) and returns them as a Prepared (headers, identity,
    # credentials) replacing the scenario's for that peer.
    cluster_credentials: Optional[Callable[["Context", Path], "Prepared"]] = None
    # "load": timed with wrk (the table, the ratios, the counts); "idle": no load, the RSS of
    # each proxy holding Settings.idle_connections idle keep-alive client connections.
    kind: str = "load"


NGINX_PROXY = Peer("nginx", "nginx", "nginx-proxy.conf")
HAPROXY_MAXCONN = 8000  # {{maxconn}} of haproxy-proxy.cfg (the idle-connections scenario raises it)
AUTH_CHECKS = (check_rejects("a request without a credential", {"Authorization": None}), check_rejects_tampered())
HAPROXY_PROXY = Peer("haproxy", "haproxy", "haproxy-proxy.cfg")


# --------------------------------------------------------------------------------------
# API keys (scenarios api-key-redis and api-key-miss): made here as the gateway makes
# them (`keys create`), stored in the harness's Redis in the gateway's layout.

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
API_KEY_PREFIX = "dbgw:"  # the gateway's default [redis] key_prefix
API_KEY_SCOPES = ["read:databases"]  # what the route GET /v1/databases/** needs
API_KEY_OWNER = "bench-client"
MISS_KEYS = 200_000  # twice the gateway's default cache (max_entries 100000)


def api_key_checksum(body: str) -> str:
    """6 base62 digits of the CRC32 (IEEE, zlib) of everything before them."""
    value = zlib.crc32(body.encode())
    digits = []
    for _ in range(6):
        digits.append(BASE62[value % 62])
        value //= 62
    return "".join(reversed(digits))


_BASE62_OF_BYTE = bytes(BASE62[b % 62].encode()[0] for b in range(256))  # slightly biased: fine for a benchmark


def make_api_key(rng: random.Random) -> str:
    body = "dbaudit_live_" + rng.randbytes(32).translate(_BASE62_OF_BYTE).decode()
    return body + api_key_checksum(body)


def api_key_hash(pepper: str, key: str) -> str:
    """What the gateway stores: HMAC-SHA256(pepper, key), lowercase hex."""
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def resp_command(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def ensure_pepper(ctx: "Context") -> str:
    """The pepper every API-key scenario shares (one Redis), written once per run."""
    path = ctx.tmp / "api-key-pepper"
    if not path.exists():
        path.write_text(secrets.token_hex(32) + "\n")
        os.chmod(path, 0o600)
    return path.read_text().strip()


def store_api_keys(ctx: "Context", pepper: str, keys: list[tuple[str, str, bool]], tag: str) -> None:
    """Stores (key, id, revoked) records in the gateway's layout with `redis-cli --pipe`:
    SET dbgw:apikey:<hash> <record JSON>, SET dbgw:apikey-id:<id> <hash>, SADD dbgw:apikeys <id>."""
    now = int(time.time())
    path = ctx.tmp / f"api-keys-{tag}.resp"
    # The record's JSON (what APIKeyRecord decodes); the fields that vary are hex or base62.
    fixed = (f'"name":{json.dumps("bench " + tag)},"scopes":{json.dumps(API_KEY_SCOPES)},'
             f'"owner":{json.dumps(API_KEY_OWNER)},"created_at":{now},"expires_at":null')
    with open(path, "wb") as f:
        for key, key_id, revoked in keys:
            h = api_key_hash(pepper, key)
            record = (f'{{"id":"{key_id}",{fixed},"revoked":{"true" if revoked else "false"},'
                      f'"last_used_at":null,"last4":"{key[-4:]}","environment":"live"}}')
            f.write(resp_command("SET", f"{API_KEY_PREFIX}apikey:{h}", record))
            f.write(resp_command("SET", f"{API_KEY_PREFIX}apikey-id:{key_id}", h))
            f.write(resp_command("SADD", f"{API_KEY_PREFIX}apikeys", key_id))
    # Into every Redis of the scenario with the single-Redis layout: the harness's own, and
    # the Sentinel set's primary (its replica copies them). A cluster has the tagged layout:
    # its gateway's keys come from the gateway itself (Scenario.cluster_credentials).
    for port in [ctx.redis_port] + ctx.plain_layout_ports:
        with open(path, "rb") as f:
            r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--pipe"], stdin=f,
                               capture_output=True, text=True, timeout=120)
        if r.returncode != 0 or "errors: 0" not in r.stdout:
            raise RuntimeError(f"redis-cli --pipe to port {port} failed (exit {r.returncode}): "
                               f"{(r.stdout + r.stderr)[-500:]}")
    path.unlink()


def key_id(rng: random.Random) -> str:
    return "key_" + "%016x" % rng.getrandbits(64)


def prepare_api_keys(ctx: "Context", count: int, tag: str) -> tuple[Prepared, list[str], str]:
    """`count` valid keys, one revoked key and one well-formed key never stored."""
    pepper = ensure_pepper(ctx)
    rng = random.Random(secrets.randbits(64))
    keys = [(make_api_key(rng), key_id(rng), False) for _ in range(count)]
    revoked = (make_api_key(rng), key_id(rng), True)
    unknown = make_api_key(rng)
    store_api_keys(ctx, pepper, keys + [revoked], tag)
    first_key, first_id, _ = keys[0]
    p = Prepared(
        headers={"Authorization": f"Bearer {first_key}"},
        values={"pepper_file": ctx.tmp / "api-key-pepper", "api_key": first_key, "key_id": first_id,
                "subject": API_KEY_OWNER, "scopes": " ".join(API_KEY_SCOPES)},
        identity={"subject": API_KEY_OWNER, "scopes": " ".join(API_KEY_SCOPES), "credential": "api_key",
                  "key_id": first_id},
        credentials={"revoked": [{"Authorization": f"Bearer {revoked[0]}"}],
                     "unknown": [{"Authorization": f"Bearer {unknown}"}]},
    )
    return p, [k for k, _, _ in keys], pepper


def prepare_api_key_hit(ctx: "Context", tag: str = "hit") -> Prepared:
    """One key, sent on every request (the gateway's cache answers after the first)."""
    p, keys, pepper = prepare_api_keys(ctx, 1, tag)
    # HAProxy's local "cache": HMAC(pepper, key) -> subject|scopes|key id.
    api_key_map = ctx.tmp / f"api-keys-{tag}.map"
    api_key_map.write_text(f"{api_key_hash(pepper, keys[0])} {API_KEY_OWNER}|{' '.join(API_KEY_SCOPES)}|{p.values['key_id']}\n")
    p.values["api_key_map"] = api_key_map
    p.values["pepper_b64"] = base64.b64encode(pepper.encode()).decode()
    return p


def prepare_api_key_miss(ctx: "Context") -> Prepared:
    """MISS_KEYS keys that wrk sends one after the other, more than the gateway's cache holds."""
    p, keys, _ = prepare_api_keys(ctx, MISS_KEYS, "miss")
    keys_file = ctx.tmp / "api-keys-miss.txt"
    keys_file.write_text("\n".join(keys) + "\n")
    p.rotation = (keys_file, len(keys))
    p.credentials["rotation"] = [{"Authorization": f"Bearer {keys[i]}"} for i in (1, len(keys) // 2, len(keys) - 1)]
    return p


API_KEY_AUTH_CHECKS = AUTH_CHECKS + (
    check_rejects_credential("unknown", "a well-formed API key that was never stored"),
    check_rejects_credential("revoked", "a revoked API key"),
    Check("the upstream gets X-DBAudit-Subject/-Scopes/-Credential/-Key-Id, client values and Authorization dropped",
          check_identity_headers),
)


def prepare_api_key_bucket(ctx: "Context") -> Prepared:
    """api-key-redis-bucket: one key of its own (its own rate-limit buckets), as the hit path."""
    return prepare_api_key_hit(ctx, "bucket")


def gateway_cli(ctx: "Context", args: list[str]) -> str:
    r = subprocess.run([str(ctx.settings.binary), *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"dbaudit-gateway {' '.join(args[:2])} failed (exit {r.returncode}): {r.stderr[-500:]}")
    return r.stdout


# Keys besides the timed one for the cluster's pre-flight: one request each on the low-limit
# route gives each its own long-lived bucket, and buckets of this many keys all in the slots
# of one primary (odds 3^-10 with the timed key's) would mean the client does not spread them.
CLUSTER_SPREAD_KEYS = 10


def cluster_api_key_credentials(ctx: "Context", conf: Path) -> Prepared:
    """The gateway on the Redis Cluster keeps its stores under another key layout (a hash
    tag, see docs/redis.md): its key, its revoked key and the keys whose buckets must spread
    over the primaries ("spread") are made by the gateway's own CLI (`keys create`, `keys
    revoke`) with that gateway's config, so they are where it looks whatever the layout.
    Same owner and scopes as the scenario's key."""
    def create(name: str) -> dict:
        return json.loads(gateway_cli(ctx, ["keys", "create", "--config", str(conf), "--name", name, "--scopes",
                                            ",".join(API_KEY_SCOPES), "--owner", API_KEY_OWNER, "--json"]))
    key, revoked = create("bench cluster"), create("bench cluster revoked")
    gateway_cli(ctx, ["keys", "revoke", "--config", str(conf), revoked["id"]])
    spread = [create(f"bench cluster spread {i}") for i in range(CLUSTER_SPREAD_KEYS)]
    return Prepared(
        headers={"Authorization": f"Bearer {key['key']}"},
        identity={"subject": API_KEY_OWNER, "scopes": " ".join(API_KEY_SCOPES), "credential": "api_key",
                  "key_id": key["id"]},
        credentials={"revoked": [{"Authorization": f"Bearer {revoked['key']}"}],
                     "spread": [{"Authorization": f"Bearer {k['key']}"} for k in spread]},
    )


# --------------------------------------------------------------------------------------
# JWTs (scenarios jwt-rs256 and jwt-redis-bucket): an RSA key pair made here with the
# openssl CLI (no Python package needed), its public half given to the gateway as a JWKS
# file (an external issuer) and to HAProxy's jwt_verify as a PEM file, and RS256 access
# tokens signed with `openssl dgst -sha256 -sign`: the one wrk sends, and the bad ones the
# pre-flight sends (bad signature, another key, changed payload, expired, alg none ...).

JWT_ISSUER = "https://idp.bench"
JWT_AUDIENCE = "dbaudit-api"
JWT_KID = "bench"
JWT_SCOPES = "read:databases"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(args: list[str], data: Optional[bytes] = None) -> bytes:
    r = subprocess.run(["openssl"] + args, input=data, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {r.stderr.decode(errors='replace')[-500:]}")
    return r.stdout


def make_rsa_key(path: Path) -> dict:
    """An RSA-2048 private key in PEM at `path`, its public key in PEM next to it
    (`<path>.pub`) for HAProxy; returns the public JWK (kty, n, e) for the gateway."""
    openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path)])
    os.chmod(path, 0o600)
    openssl(["pkey", "-in", str(path), "-pubout", "-out", str(path) + ".pub"])
    text = openssl(["pkey", "-in", str(path), "-noout", "-text"]).decode()
    # "modulus:\n    00:a1:f7:...\npublicExponent: 65537 (0x10001)"
    m = re.search(r"^modulus:\s*\n((?:\s+[0-9a-f:]+\n)+)publicExponent: (\d+)", text, re.M)
    if not m:
        raise RuntimeError(f"could not read the modulus of {path}")
    modulus = bytes.fromhex(re.sub(r"[\s:]", "", m.group(1))).lstrip(b"\0")
    exponent = int(m.group(2))
    return {"kty": "RSA", "n": b64url(modulus), "e": b64url(exponent.to_bytes((exponent.bit_length() + 7) // 8, "big"))}


def mint_jwt(header: dict, claims: dict, key: Optional[Path] = None, hmac_secret: Optional[bytes] = None) -> str:
    """A compact JWS: RS256 with `key` (openssl), HS256 with `hmac_secret`, or unsigned."""
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":")).encode())).encode()
    if key is not None:
        signature = openssl(["dgst", "-sha256", "-sign", str(key)], signing_input)
    elif hmac_secret is not None:
        signature = hmac.new(hmac_secret, signing_input, hashlib.sha256).digest()
    else:
        signature = b""
    return signing_input.decode() + "." + b64url(signature)


def prepare_jwt(ctx: "Context", tag: str) -> Prepared:
    """The key pair, the JWKS file, the token wrk sends (valid for 6 hours, the same on every
    request: a verified-token cache hit after the first) and the tokens every proxy doing
    auth must refuse. Each scenario has its own subject (its own rate-limit buckets)."""
    key = ctx.tmp / f"jwt-{tag}.pem"
    jwk = make_rsa_key(key)
    jwks = ctx.tmp / f"jwt-{tag}.jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": JWT_KID, "use": "sig", "alg": "RS256"}]}) + "\n")
    public_pem = Path(str(key) + ".pub")
    other_key = ctx.tmp / f"jwt-{tag}-other.pem"
    make_rsa_key(other_key)
    ensure_pepper(ctx)  # with [redis] the gateway also serves API keys and wants their pepper
    now = int(time.time())
    subject = f"bench-user-{tag}"
    header = {"alg": "RS256", "kid": JWT_KID, "typ": "at+jwt"}
    claims = {"iss": JWT_ISSUER, "sub": subject, "aud": JWT_AUDIENCE, "iat": now - 60, "nbf": now - 60,
              "exp": now + 6 * 3600, "jti": secrets.token_hex(16), "scope": JWT_SCOPES}

    def fresh(**changes) -> dict:
        return {**claims, "jti": secrets.token_hex(16), **changes}

    token = mint_jwt(header, claims, key)
    h, payload, sig = token.split(".")
    # A signature byte changed in the middle (a valid base64url character for another one,
    # so it decodes to different bytes whatever the decoder does with trailing bits).
    mid = len(sig) // 2
    bad_sig = sig[:mid] + ("A" if sig[mid] != "A" else "B") + sig[mid + 1:]
    altered = b64url(json.dumps({**claims, "scope": "admin read:databases"}, separators=(",", ":")).encode())
    bad = {
        "bad_signature": h + "." + payload + "." + bad_sig,
        "other_key": mint_jwt(header, fresh(), other_key),
        "altered_payload": h + "." + altered + "." + sig,
        "expired": mint_jwt(header, fresh(iat=now - 7200, nbf=now - 7200, exp=now - 3600), key),
        "not_yet_valid": mint_jwt(header, fresh(nbf=now + 3600, exp=now + 7200), key),
        "alg_none": mint_jwt({"alg": "none", "typ": "at+jwt"}, fresh()),
        "hs256_public_key": mint_jwt({"alg": "HS256", "kid": JWT_KID, "typ": "at+jwt"}, fresh(),
                                     hmac_secret=public_pem.read_bytes()),
        "wrong_audience": mint_jwt(header, fresh(aud="another-api"), key),
        "wrong_issuer": mint_jwt(header, fresh(iss="https://evil.bench"), key),
        "wrong_type": mint_jwt({**header, "typ": "JWT"}, fresh(), key),
    }
    return Prepared(
        headers={"Authorization": f"Bearer {token}"},
        values={"jwt_issuer": JWT_ISSUER, "jwt_audience": JWT_AUDIENCE, "jwt_jwks_file": jwks,
                "jwt_public_key": public_pem, "pepper_file": ctx.tmp / "api-key-pepper"},
        identity={"subject": subject, "scopes": JWT_SCOPES, "credential": "jwt", "key_id": ""},
        credentials={name: [{"Authorization": f"Bearer {t}"}] for name, t in bad.items()},
    )


JWT_AUTH_CHECKS = (
    check_rejects("a request without a credential", {"Authorization": None}),
    # Not check_rejects_tampered(): its last-character change can leave an RS256
    # signature's bytes unchanged (the last base64url character of 256 bytes carries 2
    # bits), which only a strict decoder refuses; these change what is signed or verified.
    check_rejects_credential("bad_signature", "a token with a changed signature byte"),
    check_rejects_credential("other_key", "a token signed by another RSA key (same kid)"),
    check_rejects_credential("altered_payload", "a token whose payload was changed after signing"),
    check_rejects_credential("expired", "a token expired an hour ago"),
    check_rejects_credential("not_yet_valid", "a token valid only from an hour from now (nbf)"),
    check_rejects_credential("alg_none", "an alg: none token"),
    check_rejects_credential("hs256_public_key", "an HS256 token keyed with the RSA public key"),
    check_rejects_credential("wrong_audience", "a token for another audience"),
    check_rejects_credential("wrong_issuer", "a token from another issuer"),
    check_rejects_credential("wrong_type", "a token with typ JWT instead of at+jwt"),
    Check("the upstream gets X-DBAudit-Subject/-Scopes/-Credential (jwt, no key id), client values and "
          "Authorization dropped", check_identity_headers),
)


# --------------------------------------------------------------------------------------
# OAuth client credentials (scenario oauth-client-credentials): the gateway is the issuer.
# prepare_oauth makes its RS256 signing key (openssl) and the client secret; once the
# gateway runs, obtain_oauth_token asks its token endpoint for the access token wrk sends
# (client_credentials, client_secret_basic) and mints, with the same key, the tokens every
# proxy doing auth must refuse. After the proxy runs the token endpoint itself is loaded
# (token_endpoint_runs).

OAUTH_ISSUER = "https://gateway.bench"
OAUTH_KID = "bench-gw"
OAUTH_CLIENT_ID = "bench-cc"
TOKEN_PATH = "/oauth/token"
TOKEN_BODY = "grant_type=client_credentials&scope=read%3Adatabases"
# [oauth] settings of the benchmark: the token endpoint's per-client and per-address limits
# far above what one core can sign, so the throughput run measures signing, not the limiter.
OAUTH_SETTINGS = "token_requests_per_client = 1000000\ntoken_requests_per_address = 1000000"


def prepare_oauth(ctx: "Context") -> Prepared:
    key = ctx.tmp / "oauth-signing.pem"
    make_rsa_key(key)
    secret = "bench_cs_" + secrets.token_urlsafe(32)  # unreserved characters only
    secret_file = ctx.tmp / "oauth-client-secret"
    secret_file.write_text(secret + "\n")
    os.chmod(secret_file, 0o600)
    ensure_pepper(ctx)
    return Prepared(values={
        "jwt_issuer": OAUTH_ISSUER, "jwt_audience": JWT_AUDIENCE, "jwt_kid": OAUTH_KID, "jwt_private_key": key,
        "jwt_public_key": Path(str(key) + ".pub"), "pepper_file": ctx.tmp / "api-key-pepper",
        "oauth_client_id": OAUTH_CLIENT_ID, "oauth_secret_file": secret_file, "oauth_settings": OAUTH_SETTINGS,
        "oauth_client_secret": secret,
    })


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def obtain_oauth_token(ctx: "Context", port: int, prepared: Prepared) -> Prepared:
    """The access token from the running gateway's token endpoint, and the tokens to refuse.
    A wrong client secret must get 401 invalid_client first: a token endpoint that hands
    out tokens to anyone is not what is measured."""
    values = prepared.values
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    def post(secret: str) -> Response:
        c = connect(port)
        try:
            c.request("POST", TOKEN_PATH, body=TOKEN_BODY,
                      headers={**headers, "Authorization": basic_auth(OAUTH_CLIENT_ID, secret)})
            r = c.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read(), r.will_close)
        finally:
            c.close()

    wrong = post(values["oauth_client_secret"] + "x")
    if wrong.status != 401 or b"invalid_client" not in wrong.body:
        raise RuntimeError(f"POST {TOKEN_PATH} with a wrong client secret answered {wrong.status} {wrong.body[:200]!r}, "
                           "expected 401 invalid_client")
    r = post(values["oauth_client_secret"])
    if r.status != 200:
        raise RuntimeError(f"POST {TOKEN_PATH} (client_credentials) answered {r.status}: {r.body[:300]!r}")
    body = json.loads(r.body)
    token = body.get("access_token", "")
    if body.get("token_type") != "Bearer" or token.count(".") != 2 or r.headers.get("cache-control") != "no-store":
        raise RuntimeError(f"POST {TOKEN_PATH}: not a JWT bearer token response with Cache-Control: no-store: "
                           f"{r.headers} {r.body[:300]!r}")
    h, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    header = json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))
    if header.get("typ") != "at+jwt" or claims.get("client_id") != OAUTH_CLIENT_ID or claims.get("aud") != JWT_AUDIENCE:
        raise RuntimeError(f"the token endpoint's token is not an RFC 9068 token of {OAUTH_CLIENT_ID} for "
                           f"{JWT_AUDIENCE}: header {header}, claims {claims}")
    key = Path(values["jwt_private_key"])
    other_key = ctx.tmp / "oauth-other.pem"
    make_rsa_key(other_key)
    now = int(time.time())

    def fresh(**changes) -> dict:
        return {**claims, "jti": secrets.token_hex(16), **changes}

    mid = len(sig) // 2
    bad_sig = sig[:mid] + ("A" if sig[mid] != "A" else "B") + sig[mid + 1:]
    altered = b64url(json.dumps({**claims, "scope": "admin read:databases"}, separators=(",", ":")).encode())
    bad = {
        "bad_signature": h + "." + payload + "." + bad_sig,
        "other_key": mint_jwt(header, fresh(), other_key),
        "altered_payload": h + "." + altered + "." + sig,
        "expired": mint_jwt(header, fresh(iat=now - 7200, nbf=now - 7200, exp=now - 3600), key),
        "not_yet_valid": mint_jwt(header, fresh(nbf=now + 3600, exp=now + 7200), key),
        "alg_none": mint_jwt({"alg": "none", "typ": "at+jwt"}, fresh()),
        "hs256_public_key": mint_jwt({"alg": "HS256", "kid": header.get("kid", OAUTH_KID), "typ": "at+jwt"}, fresh(),
                                     hmac_secret=Path(values["jwt_public_key"]).read_bytes()),
        "wrong_audience": mint_jwt(header, fresh(aud="another-api"), key),
        "wrong_issuer": mint_jwt(header, fresh(iss="https://evil.bench"), key),
        "wrong_type": mint_jwt({**header, "typ": "JWT"}, fresh(), key),
    }
    return Prepared(
        headers={"Authorization": f"Bearer {token}"},
        identity={"subject": str(claims["sub"]), "scopes": JWT_SCOPES, "credential": "oauth", "key_id": "",
                  "client_id": OAUTH_CLIENT_ID},
        credentials={name: [{"Authorization": f"Bearer {t}"}] for name, t in bad.items()},
        values={"token_endpoint_authorization": basic_auth(OAUTH_CLIENT_ID, values["oauth_client_secret"])},
    )


OAUTH_AUTH_CHECKS = JWT_AUTH_CHECKS[:-1] + (
    Check("the upstream gets X-DBAudit-Subject/-Scopes/-Credential (oauth) and -Client-Id, client values and "
          "Authorization dropped", check_identity_headers),
)


# --------------------------------------------------------------------------------------
# Rate limits (scenarios jwt-redis-bucket and api-key-redis-bucket): every config has a
# policy "bench" on the timed route, high enough that nothing is refused during a run, and
# a pre-flight-only route /__bench/limited with 3 requests per hour per principal.

RATE_LIMIT_POLICY = "bench"
LIMITED_PATH = "/__bench/limited"
LIMITED_BURST = 3


def check_rate_limit_headers(t: Target) -> None:
    """Admitted responses of the timed route carry RateLimit-Policy and RateLimit naming
    the policy (draft-ietf-httpapi-ratelimit-headers)."""
    r = http_request(t.port, REQUEST_PATH, t.request_headers, tls=t.tls)
    _expect(r.status == 200, f"GET {REQUEST_PATH} answered {r.status}")
    policy, limit = r.headers.get("ratelimit-policy", ""), r.headers.get("ratelimit", "")
    _expect(re.search(rf'"{RATE_LIMIT_POLICY}";q=\d+', policy) is not None,
            f"RateLimit-Policy {policy!r} does not name the policy {RATE_LIMIT_POLICY!r} with a quota")
    _expect(re.search(rf'"{RATE_LIMIT_POLICY}";r=\d+', limit) is not None,
            f"RateLimit {limit!r} does not give the remaining quota of {RATE_LIMIT_POLICY!r}")


def check_low_limit_refuses(t: Target) -> None:
    """A route limited to LIMITED_BURST requests: those are admitted, the next gets 429
    with Retry-After (the limiter refuses, it does not only count)."""
    statuses = []
    retry_after = ""
    for _ in range(LIMITED_BURST + 1):
        r = http_request(t.port, LIMITED_PATH, t.request_headers, tls=t.tls)
        statuses.append(r.status)
        retry_after = r.headers.get("retry-after", "")
    want = [200] * LIMITED_BURST + [429]
    _expect(statuses == want, f"GET {LIMITED_PATH} x{LIMITED_BURST + 1} answered {statuses}, expected {want}")
    _expect(retry_after.isdigit() and int(retry_after) > 0, f"the 429 has Retry-After {retry_after!r}")


RATE_LIMIT_CHECKS = (
    Check("RateLimit-Policy and RateLimit on admitted responses", check_rate_limit_headers),
    Check(f"a limit of {LIMITED_BURST} answers {LIMITED_BURST} x 200 then 429 with Retry-After", check_low_limit_refuses),
)
WITH_RATE_LIMIT = (("route_rate_limit", f'rate_limit = "{RATE_LIMIT_POLICY}"'),)
WITHOUT_RATE_LIMIT = (("route_rate_limit", "# no rate limit: the reference without one"),)


# --------------------------------------------------------------------------------------
# TLS (scenario tls): one certificate for the gateway and nginx, and a check that both
# negotiate the same protocol and cipher, so the ratio compares the same cryptography.

TLS_EXPECTED = ("TLSv1.3", "TLS_AES_256_GCM_SHA384")


def prepare_tls(ctx: "Context") -> Prepared:
    """An ECDSA P-256 certificate for 127.0.0.1 (self-signed: the clients encrypt, they do
    not verify; trust is not what is measured)."""
    key, cert = ctx.tmp / "bench-tls.key", ctx.tmp / "bench-tls.pem"
    for argv in (["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)],
                 ["openssl", "req", "-x509", "-new", "-key", str(key), "-sha256", "-days", "30", "-subj",
                  "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-out", str(cert)]):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {r.stderr}")
    return Prepared(values={"tls_certificate": cert, "tls_key": key})


def check_tls_parameters(t: Target) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", t.port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            got = (tls.version(), tls.cipher()[0])
    _expect(got == TLS_EXPECTED, f"negotiated {got}, expected {TLS_EXPECTED} (the same as every proxy)")


def check_hsts(t: Target) -> None:
    r = http_request(t.port, REQUEST_PATH, t.request_headers, tls=True)
    _expect(r.headers.get("strict-transport-security") == "max-age=31536000",
            f"Strict-Transport-Security is {r.headers.get('strict-transport-security')!r}")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        id="plain",
        title="(1) plain reverse proxy",
        requires=(),
        gateway_config="plain.conf",
        peers=(NGINX_PROXY, HAPROXY_PROXY),
        targets="req/s >= 0.9x nginx, CPU µs/req <= 1.15x nginx, p99 <= nginx's (at c=50 and c=200); the base every "
                "auth scenario is measured against",
    ),
    # Later scenarios: their templates and prepare() are written with the feature.
    Scenario(
        id="api-key-redis",
        title="(2) API key via Redis (local cache hit)",
        requires=("auth.api_keys", "redis", "cache"),
        gateway_config="api-key-redis.conf",
        peers=(NGINX_PROXY,
               Peer("nginx-auth-request", "nginx", "nginx-auth-request.conf", does_auth=True),
               Peer("haproxy-api-key", "haproxy", "haproxy-api-key.cfg", does_auth=True)),
        auth_checks=API_KEY_AUTH_CHECKS,
        services=("redis",),
        prepare=prepare_api_key_hit,
        gateway_cache="hit",
        targets="req/s >= 0.85x nginx plain proxy",
        notes="nginx-auth-request: an auth_request subrequest per request to a second server block of the same "
              "nginx worker that looks the key up in a `map` (an auth service answering from a local cache, "
              "no hashing). haproxy-api-key: HMAC-SHA256(pepper, key) and a `map` lookup of the hash in-process "
              "(the gateway's cache-hit work minus the format/CRC32 check).",
    ),
    Scenario(
        id="jwt-rs256",
        title="(3) RS256 JWT (verified-token cache hit) vs HAProxy jwt_verify",
        requires=("auth.jwt",),
        gateway_config="jwt-rs256.conf",
        peers=(NGINX_PROXY, Peer("haproxy-jwt", "haproxy", "haproxy-jwt.cfg", does_auth=True)),
        auth_checks=JWT_AUTH_CHECKS,
        prepare=lambda ctx: prepare_jwt(ctx, "rs256"),
        gateway_cache="hit",
        gateway_cache_metric="jwt",
        targets="req/s >= 0.85x nginx plain proxy and >= 2x HAProxy with jwt_verify",
        notes="One RS256 token (RSA-2048, minted by the harness with openssl) on every request: the gateway "
              "verifies it once and then answers from its event loop's verified-token cache. haproxy-jwt checks "
              "alg, typ, iss, aud, exp, nbf, sub and scope with jwt_header_query/jwt_payload_query and the "
              "signature with jwt_verify on every request (HAProxy has no such cache).",
    ),
    Scenario(
        id="oauth-client-credentials",
        title="(3b) OAuth client credentials: the gateway's own JWT access token (verified-token cache hit) "
              "vs HAProxy jwt_verify; token endpoint throughput",
        requires=("auth.jwt", "redis", "oauth"),
        gateway_config="oauth-client-credentials.conf",
        peers=(NGINX_PROXY, Peer("haproxy-oauth", "haproxy", "haproxy-oauth.cfg", does_auth=True)),
        auth_checks=OAUTH_AUTH_CHECKS,
        services=("redis",),
        prepare=prepare_oauth,
        after_gateway_start=obtain_oauth_token,
        token_endpoint=True,
        gateway_cache="hit",
        gateway_cache_metric="jwt",
        targets="as jwt-rs256: >= 2x HAProxy with jwt_verify; p99 no worse than nginx's at c=50",
        notes="The token wrk sends comes from the gateway itself: POST /oauth/token with client_credentials "
              "(client bench-cc, client_secret_basic) at set-up, an RS256 JWT (typ at+jwt, client_id) signed with the "
              "gateway's [auth.jwt] key; after the first request the gateway answers from its verified-token cache, "
              "as in jwt-rs256, and passes X-DBAudit-Credential oauth and X-DBAudit-Client-Id upstream. "
              "haproxy-oauth: haproxy-jwt's checks on every request with the gateway's public key, plus client_id "
              "required and forwarded. The token endpoint table: wrk POSTs the same client_credentials request "
              "(bench/wrk/token-post.lua) to the gateway alone; every answer must be 200 (a new RS256 signature "
              "each, made on the gateway's thread pool, not its event loop).",
    ),
    Scenario(
        id="jwt-redis-bucket",
        title="(4) JWT + Redis token bucket vs HAProxy jwt_verify + stick table",
        requires=("auth.jwt", "rate_limits", "redis"),
        gateway_config="jwt-redis-bucket.conf",
        gateway_values=WITH_RATE_LIMIT,
        peers=(NGINX_PROXY,
               Peer("gateway-no-limit", "gateway", "jwt-redis-bucket.conf", does_auth=True, values=WITHOUT_RATE_LIMIT),
               Peer("haproxy-jwt-stick", "haproxy", "haproxy-jwt-stick.cfg", does_auth=True, rate_limited=True)),
        auth_checks=JWT_AUTH_CHECKS,
        rate_limit="redis",
        rate_limit_checks=RATE_LIMIT_CHECKS,
        services=("redis",),
        prepare=lambda ctx: prepare_jwt(ctx, "bucket"),
        gateway_cache="hit",
        gateway_cache_metric="jwt",
        targets="req/s >= 0.7x nginx plain proxy (exact shared buckets in Redis)",
        notes="The gateway under test: the JWT of jwt-rs256 (cache hit) + a token bucket in Redis, one EVALSHA per "
              "request (admin counters checked: every request one Redis decision). gateway-no-limit: the same "
              "config and token without rate_limit on the route (the ratio is the cost of the limit). "
              "haproxy-jwt-stick: haproxy-jwt's checks + a stick table keyed by sub (http_req_rate over 1 s, in "
              "process memory, not shared between instances) and the same RateLimit headers. Redis runs on the "
              "load core; its CPU is in load core %.",
    ),
    Scenario(
        id="tls",
        title="(5) TLS keep-alive vs nginx TLS",
        requires=("server.tls",),
        gateway_config="tls.conf",
        peers=(Peer("nginx-tls", "nginx", "nginx-tls.conf"),),
        checks=PROXY_CHECKS + (Check(f"TLS: {' '.join(TLS_EXPECTED)} negotiated", check_tls_parameters),
                               Check("Strict-Transport-Security on the response", check_hsts)),
        tls=True,
        prepare=prepare_tls,
        targets="req/s >= 0.9x nginx TLS",
        notes="Keep-alive: wrk opens its connections once, so this measures record encryption and decryption "
              "on the request path, not handshakes. Both servers use the same ECDSA P-256 certificate, "
              "TLS 1.3 with TLS_AES_256_GCM_SHA384 (checked before timing) and add HSTS.",
    ),
    Scenario(
        id="api-key-miss",
        title="(6) API key, cache miss (a Redis lookup per request)",
        requires=("auth.api_keys", "redis", "cache"),
        gateway_config="api-key-miss.conf",
        peers=(NGINX_PROXY,
               Peer("nginx-auth-redis", "nginx", "nginx-auth-redis.conf", does_auth=True, auth_service=True)),
        auth_checks=API_KEY_AUTH_CHECKS + (Check("other keys of the rotation answer 200", check_accepts_rotation),),
        services=("redis",),
        prepare=prepare_api_key_miss,
        gateway_cache="miss",
        targets="req/s >= 1.5x nginx auth_request + Redis auth service (nginx-auth-redis)",
        notes=f"wrk sends a different key on every request, going round {MISS_KEYS:,} stored keys (more than the "
              "gateway's 100,000-entry cache), so every gateway request is a cache miss: HMAC, Redis GET, record "
              "decoded; the gateway also writes last_used_at (a Redis SET, not waited for) for every key not used "
              "in the last minute, here every request. nginx-auth-redis: auth_request to bench/peers/auth-service.py "
              "(Python asyncio, one Redis GET per request, no cache, no last_used_at write), whose CPU is counted "
              "in the peer's CPU µs/req and proxy core %; it is probably that peer's bottleneck. Redis runs on the "
              "load core; its CPU is in load core %.",
    ),
    Scenario(
        id="api-key-redis-bucket",
        title="(7) API key (local cache hit) + Redis token bucket vs HAProxy api-key map + stick table",
        requires=("auth.api_keys", "redis", "cache", "rate_limits"),
        gateway_config="api-key-redis-bucket.conf",
        gateway_values=WITH_RATE_LIMIT,
        peers=(NGINX_PROXY,
               Peer("gateway-no-limit", "gateway", "api-key-redis-bucket.conf", does_auth=True,
                    values=WITHOUT_RATE_LIMIT),
               Peer("haproxy-api-key-stick", "haproxy", "haproxy-api-key-stick.cfg", does_auth=True,
                    rate_limited=True),
               # The same gateway config on the two other Redis deployments (variants, beside the
               # single-Redis figure): every request is one EVALSHA, the path that touches Redis.
               Peer("gateway-sentinel", "gateway", "api-key-redis-bucket.conf", does_auth=True,
                    values=WITH_RATE_LIMIT, rate_limited=True, redis="sentinel"),
               Peer("gateway-cluster", "gateway", "api-key-redis-bucket.conf", does_auth=True,
                    values=WITH_RATE_LIMIT, rate_limited=True, redis="cluster")),
        auth_checks=API_KEY_AUTH_CHECKS,
        rate_limit="redis",
        rate_limit_checks=RATE_LIMIT_CHECKS,
        services=("redis", "redis-sentinel", "redis-cluster"),
        prepare=prepare_api_key_bucket,
        cluster_credentials=cluster_api_key_credentials,
        gateway_cache="hit",
        targets="req/s >= 0.7x nginx plain proxy (exact shared buckets in Redis)",
        notes="The gateway under test: api-key-redis (one key, credential cache hit) + a token bucket in Redis, "
              "one EVALSHA per request (admin counters checked: every request one Redis decision). "
              "gateway-no-limit: the same config and key without rate_limit on the route, i.e. api-key-redis (the "
              "ratio is the cost of the limit). haproxy-api-key-stick: haproxy-api-key's HMAC + map lookup + a "
              "stick table keyed by the key id (http_req_rate over 1 s, in process memory, not shared between "
              "instances) and the same RateLimit headers. gateway-sentinel and gateway-cluster: the gateway under "
              "test's config with [redis] sentinels + master_name (it finds the primary through the sentinels and "
              "checks its ROLE) or cluster_nodes (slot map, one connection per primary, each EVALSHA sent to the "
              "primary serving its bucket's slot: with one key, always the same one); the cluster gateway's key is "
              "made with its own `keys create` (the cluster's key layout). Redis runs on the load core; its CPU is "
              "in load core %.",
    ),
    Scenario(
        id="idle-connections",
        title="(8) idle keep-alive connections: resident memory",
        requires=(),
        gateway_config="plain.conf",
        peers=(NGINX_PROXY, HAPROXY_PROXY),
        kind="idle",
        targets=f"the gateway's RSS ≤ {IDLE_RSS_TARGET_MIB} MiB with 10,000 idle keep-alive client connections open",
        notes="bench/idle-clients.py (on the load core) opens the connections, at most 200 connecting at a time, "
              "sends GET /v1/databases on each and reads the 200, then leaves them open; one second later the "
              "harness counts the proxy's ESTABLISHED sockets on its port in /proc/net/tcp, reads VmRSS of the "
              "proxy's processes (nginx: master + worker) and counts again: a figure is valid only when every "
              "connection was open at both counts. The configs of the plain scenario (gateway max_connections "
              "20000, idle_timeout 300 s; nginx worker_connections 16384, keepalive_timeout 300 s; HAProxy "
              "maxconn raised to the connection count when the descriptor limit allows it).",
    ),
)


def probe_section(binary: Path, workdir: Path, section: str) -> bool:
    """True when the gateway's config loader knows `section` (it may still want keys)."""
    path = workdir / f"probe-{section.replace('.', '-')}.conf"
    header = "[[rate_limits]]" if section == "rate_limits" else f"[{section}]"
    path.write_text(f'[upstream]\nurl = "http://127.0.0.1:9"\n\n{header}\n')
    r = subprocess.run([str(binary), "check-config", "--config", str(path)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode == 0:
        return True
    # Rejected: known only if a problem names a key inside the section ("redis.url: is
    # required"); "auth: unknown key", or no evidence either way, means not implemented.
    for line in (r.stdout + r.stderr).splitlines():
        m = re.search(r": ([A-Za-z_.\[\]0-9]+): (.*)$", line)
        if m and m.group(1).startswith(section) and "unknown key" not in m.group(2):
            return True
    return False


def peer_template(peer: Peer) -> Path:
    return (GATEWAY_DIR if peer.kind == "gateway" else PEERS_DIR) / peer.template


def feature_available(s: Scenario, binary: Path, workdir: Path) -> tuple[bool, str]:
    for section in s.requires:
        if not probe_section(binary, workdir, section):
            return False, "skipped: feature not implemented yet"
    files = [GATEWAY_DIR / s.gateway_config] + [peer_template(peer) for peer in s.peers]
    if any(peer.auth_service for peer in s.peers):
        files.append(AUTH_SERVICE)
    missing = [str(p.relative_to(ROOT)) for p in files if not p.exists()]
    if missing:
        # The config sections can land before the request path uses them; the scenario's
        # templates are written with the feature (and its pre-flight proves it works).
        known = ", ".join(f"[{r}]" for r in s.requires)
        return False, (f"skipped: feature not implemented yet in the benchmark (the gateway's config accepts "
                       f"{known}; missing: {', '.join(missing)})")
    return True, ""


# --------------------------------------------------------------------------------------
# Starting things


@dataclass
class Context:
    settings: Settings
    tmp: Path
    load_cpu: Optional[int]
    proxy_cpu: Optional[int]
    upstream_port: int = 0
    upstream: Optional[Managed] = None
    redis_port: int = 0
    redis: Optional[Managed] = None  # on the load core: its CPU counts as the load side's
    # The Redis deployments started so far by mode ("single", "sentinel", "cluster"), all on
    # the load core, kept until the end of the run (stopped with everything else).
    redis_deployments: dict[str, "RedisDeployment"] = field(default_factory=dict)
    # Other Redis servers the scenario being prepared stores API keys in with the
    # single-Redis layout (the Sentinel set's primary), besides redis_port.
    plain_layout_ports: list[int] = field(default_factory=list)
    quiet_budget_s: float = 0.0  # what is left of the time the whole run may spend waiting for quiet

    @property
    def redis_processes(self) -> list[Managed]:
        """Every Redis process of the run (their CPU is ours, on the load core)."""
        return [m for d in self.redis_deployments.values() for m in d.processes]

    @property
    def cpus(self) -> list[int]:
        """The CPUs whose load is accounted: the two pinned ones, or all."""
        if self.proxy_cpu is not None and self.load_cpu is not None:
            return [self.load_cpu, self.proxy_cpu]
        return sorted(os.sched_getaffinity(0))

    @property
    def upstream_keepalive(self) -> int:
        return max(256, max(self.settings.concurrency))


# Starting a proxy under valgrind takes much longer than natively.
def start_timeout(wrapper: list[str]) -> float:
    return 180.0 if wrapper else 20.0


def start_nginx(ctx: Context, name: str, template: Path, values: dict, cpu: Optional[int], port: int,
                wrapper: Optional[list[str]] = None) -> Managed:
    conf = ctx.tmp / f"{name}.conf"
    text = render(template, {"dir": ctx.tmp, "name": name, **values})
    if wrapper:  # under valgrind: one process doing the worker's job (callgrind does not follow a forked worker)
        text = text.replace("master_process on;", "master_process off;")
    conf.write_text(text)
    check = subprocess.run(["nginx", "-t", "-q", "-p", str(ctx.tmp), "-c", str(conf), "-e", str(ctx.tmp / f"{name}.error.log")],
                           capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t rejected {conf}:\n{check.stderr}")
    m = REGISTRY.start(name, [*(wrapper or []), "nginx", "-p", str(ctx.tmp), "-c", str(conf), "-e",
                              str(ctx.tmp / f"{name}.error.log")],
                       ctx.tmp / f"{name}.out.log", cpu, stop_signal=signal.SIGTERM)
    wait_for_port(port, m, start_timeout(wrapper or []))
    return m


def start_haproxy(ctx: Context, name: str, template: Path, values: dict, cpu: Optional[int], port: int,
                  wrapper: Optional[list[str]] = None) -> Managed:
    conf = ctx.tmp / f"{name}.cfg"
    conf.write_text(render(template, {"dir": ctx.tmp, "name": name, "maxconn": HAPROXY_MAXCONN, **values}))
    check = subprocess.run(["haproxy", "-c", "-q", "-f", str(conf)], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy -c rejected {conf}:\n{check.stdout}{check.stderr}")
    m = REGISTRY.start(name, [*(wrapper or []), "haproxy", "-db", "-f", str(conf)], ctx.tmp / f"{name}.out.log", cpu,
                       stop_signal=signal.SIGTERM)
    wait_for_port(port, m, start_timeout(wrapper or []))
    return m


def gateway_config_path(ctx: Context, s: Scenario, name: str) -> Path:
    return ctx.tmp / f"{name}-{s.id}.conf"


def without_debug_info(ctx: Context) -> Path:
    """A copy of the gateway binary without its DWARF sections (the symbol table stays, so
    functions keep their names) for valgrind, whose reader (3.19) gives up on the Swift
    toolchain's DWARF 5. Made once per run in the temp dir."""
    copy = ctx.tmp / "dbaudit-gateway.nodebug"
    if not copy.exists():
        r = subprocess.run(["strip", "--strip-debug", "-o", str(copy), str(ctx.settings.binary)], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"strip --strip-debug {ctx.settings.binary} failed: {r.stderr[-300:]}")
    return copy


def valgrind_sigsuspend_shim(ctx: Context) -> Path:
    """bench/valgrind-sigsuspend.c built once per run (cc) into the temp dir: the gateway runs
    under valgrind 3.19 only with it preloaded (the file says why)."""
    shim = ctx.tmp / "valgrind-sigsuspend.so"
    if not shim.exists():
        r = subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(VALGRIND_SHIM)], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"cc {VALGRIND_SHIM.name} failed: {r.stderr[-300:]}")
    return shim


def start_gateway(ctx: Context, s: Scenario, port: int, admin_port: int, extra_values: dict[str, object],
                  name: str = "gateway", template: Optional[Path] = None, redis_mode: str = "single",
                  wrapper: Optional[list[str]] = None) -> Managed:
    """The gateway under test (`name` "gateway", the scenario's config), or a peer of kind
    "gateway" (its own name and template). `redis_mode` picks the Redis deployment its
    {{redis_target}} lines reach (started before)."""
    conf = gateway_config_path(ctx, s, name)
    deployment = ctx.redis_deployments.get(redis_mode)
    if redis_mode != "single" and deployment is None:
        raise RuntimeError(f"{name}: no Redis {redis_mode} deployment was started (Scenario.services)")
    redis_target = deployment.gateway_redis() if deployment else f'url = "redis://127.0.0.1:{ctx.redis_port}"'
    conf.write_text(render(template or GATEWAY_DIR / s.gateway_config, {
        "dir": ctx.tmp, "port": port, "upstream_port": ctx.upstream_port, "event_loops": 1,
        "upstream_keepalive": ctx.upstream_keepalive, "redis_port": ctx.redis_port, "admin_port": admin_port,
        "redis_target": redis_target, **extra_values,
    }))
    binary = str(without_debug_info(ctx) if wrapper else ctx.settings.binary)
    check = subprocess.run([binary, "check-config", "--config", str(conf)], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"check-config rejected {conf} (exit {check.returncode}):\n{check.stdout}{check.stderr}")
    m = REGISTRY.start(name, [*(wrapper or []), binary, "run", "--config", str(conf)], ctx.tmp / f"{name}-{s.id}.log",
                       ctx.proxy_cpu, stop_signal=signal.SIGTERM)
    wait_for_port(port, m, start_timeout(wrapper or []))
    return m


def start_upstream(ctx: Context) -> None:
    ctx.upstream_port = free_port()
    ctx.upstream = start_nginx(ctx, "upstream", PEERS_DIR / "upstream-nginx.conf",
                               {"upstream_port": ctx.upstream_port}, ctx.load_cpu, ctx.upstream_port)
    r = http_request(ctx.upstream_port, REQUEST_PATH)
    if r.status != 200 or r.body != UPSTREAM_BODY:
        raise RuntimeError(f"the upstream answered {r.status} {r.body!r}")


def redis_server_argv(port: int, workdir: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """A private redis-server on loopback without persistence (every Redis of the run)."""
    return ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--protected-mode", "yes", *extra]


def start_redis(ctx: Context) -> Managed:
    """For the Redis scenarios: a private redis-server on loopback, no persistence."""
    if ctx.redis_port:
        return next(m for m in REGISTRY.items if m.name == "redis")
    ctx.redis_port = free_port()
    m = REGISTRY.start("redis", redis_server_argv(ctx.redis_port, ctx.tmp), ctx.tmp / "redis.log", ctx.load_cpu)
    wait_for_port(ctx.redis_port, m)
    ctx.redis = m
    ctx.redis_deployments["single"] = RedisDeployment("single", [m], [ctx.redis_port], ctx.load_cpu,
                                                      roles=["redis-server"])
    return m


# --------------------------------------------------------------------------------------
# Redis in Sentinel and Cluster mode: the same request path (a scenario's gateway "variants",
# Peer.redis) against a primary the gateway finds through Sentinel and against a 3-primary
# Redis Cluster, beside the single redis-server. Every process on the load core, on loopback,
# without persistence, registered like the rest (stopped at the end, on errors, on Ctrl-C).

SENTINEL_MASTER = "bench-primary"
CLUSTER_PRIMARIES = 3
CLUSTER_SLOTS = 16384
PLURAL = {"primary": "primaries"}
REDIS_MODE_LABELS = {"single": "one redis-server", "sentinel": "Sentinel-discovered primary",
                     "cluster": f"{CLUSTER_PRIMARIES}-primary Redis Cluster"}


class RedisReplyError(Exception):
    """An error reply (-ERR ...) from Redis."""


def _read_reply(f) -> object:
    line = f.readline(1 << 20)
    if not line.endswith(b"\r\n"):
        raise ConnectionError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisReplyError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = f.read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("Redis closed the connection")
        return data[:-2]
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_read_reply(f) for _ in range(size)]
    raise ValueError(f"not a RESP2 reply: {line[:80]!r}")


def redis_call(port: int, *args: str | bytes, timeout: float = 5.0) -> object:
    """One command on a fresh loopback connection: the parsed RESP2 reply (bulk strings as
    bytes); RedisReplyError for an error reply. For setting up and checking the Redis
    deployments, never on the measured path."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(resp_command(*args))
        with sock.makefile("rb") as f:
            return _read_reply(f)


def redis_info(port: int, section: str) -> dict[str, str]:
    text = redis_call(port, "INFO", section)
    return dict(line.split(":", 1) for line in text.decode().splitlines() if ":" in line and not line.startswith("#"))


def wait_for(what: str, condition: Callable[[], bool], timeout: float, procs: list[Managed]) -> None:
    """Polls `condition` (Redis errors and refused connections count as not yet) until it
    holds; RuntimeError naming `what` after `timeout` or when one of `procs` exited."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for m in procs:
            if not m.alive():
                raise RuntimeError(f"{m.name} exited with {m.popen.returncode} while waiting for {what}:\n{m.log_tail()}")
        try:
            if condition():
                return
        except (OSError, RedisReplyError, ValueError, TypeError) as e:  # TypeError: no answer yet (nil)
            last = f" (last error: {e})"
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}{last}")


@dataclass
class RedisDeployment:
    """The Redis processes one gateway mode talks to. `data_ports`: the redis-server
    processes holding data (single: one; sentinel: primary then replica; cluster: the
    primaries); `sentinel_ports`: the sentinels (Sentinel mode). Touched by the harness's
    main thread only."""
    mode: str
    processes: list[Managed]
    data_ports: list[int]
    cpu: Optional[int]
    roles: list[str]  # what each process is, for the report ("primary", "sentinel" ...)
    sentinel_ports: list[int] = field(default_factory=list)

    def gateway_redis(self) -> str:
        """The gateway's [redis] lines reaching this deployment ({{redis_target}})."""
        if self.mode == "sentinel":
            nodes = ", ".join(f'"127.0.0.1:{p}"' for p in self.sentinel_ports)
            return f'sentinels = [{nodes}]\nmaster_name = "{SENTINEL_MASTER}"'
        if self.mode == "cluster":
            return "cluster_nodes = [" + ", ".join(f'"127.0.0.1:{p}"' for p in self.data_ports) + "]"
        return f'url = "redis://127.0.0.1:{self.data_ports[0]}"'

    def describe(self) -> dict:
        counts: dict[str, int] = {}
        for role in self.roles:
            counts[role] = counts.get(role, 0) + 1
        return {"mode": self.mode, "label": REDIS_MODE_LABELS[self.mode], "processes": len(self.processes),
                "roles": counts, "cpu": self.cpu, "ports": self.data_ports + self.sentinel_ports}


def start_redis_node(ctx: Context, name: str, extra: tuple[str, ...] = ()) -> tuple[Managed, int]:
    """One redis-server of a Sentinel set or cluster, in a directory of its own (a cluster
    node writes nodes.conf there), on the load core."""
    port = free_port()
    workdir = ctx.tmp / name
    workdir.mkdir()
    m = REGISTRY.start(name, redis_server_argv(port, workdir, extra), workdir / "redis.log", ctx.load_cpu)
    wait_for_port(port, m)
    return m, port


def sentinel_master(port: int) -> dict[str, str]:
    """SENTINEL MASTER <name> as a dict (what this sentinel knows of the primary)."""
    reply = redis_call(port, "SENTINEL", "MASTER", SENTINEL_MASTER)
    values = [v.decode() if isinstance(v, bytes) else str(v) for v in reply]
    return dict(zip(values[::2], values[1::2]))


def sentinel_primary(port: int) -> str:
    """The primary's host:port as this sentinel names it to clients."""
    host, primary_port = redis_call(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER)
    return f"{host.decode()}:{primary_port.decode()}"


def start_redis_sentinel(ctx: Context) -> RedisDeployment:
    """A primary, its replica and three sentinels (quorum 2) monitoring it; returns once the
    replica is in sync and every sentinel knows the replica and the two other sentinels.
    Failure detection keeps Sentinel's default (30 s down-after): a loaded load core must
    never look like a dead primary during a timed run."""
    if "sentinel" in ctx.redis_deployments:
        return ctx.redis_deployments["sentinel"]
    primary, primary_port = start_redis_node(ctx, "redis-sentinel-primary")
    procs = [primary]
    try:
        replica, replica_port = start_redis_node(ctx, "redis-sentinel-replica",
                                                 ("--replicaof", "127.0.0.1", str(primary_port)))
        procs.append(replica)
        sentinel_ports = []
        for i in range(1, 4):
            port = free_port()
            workdir = ctx.tmp / f"redis-sentinel-{i}"
            workdir.mkdir()
            conf = workdir / "sentinel.conf"  # Sentinel rewrites its config: one of its own
            conf.write_text(f"port {port}\nbind 127.0.0.1\nprotected-mode yes\ndir {workdir}\n"
                            f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary_port} 2\n")
            m = REGISTRY.start(f"redis-sentinel-{i}", ["redis-server", str(conf), "--sentinel"],
                               workdir / "sentinel.log", ctx.load_cpu)
            procs.append(m)
            wait_for_port(port, m)
            sentinel_ports.append(port)
        wait_for("the Sentinel replica to be in sync with its primary",
                 lambda: redis_info(replica_port, "replication").get("master_link_status") == "up", 30, procs)

        def settled() -> bool:
            for port in sentinel_ports:
                info = sentinel_master(port)
                if info.get("num-slaves") != "1" or info.get("num-other-sentinels") != "2":
                    return False
                if sentinel_primary(port) != f"127.0.0.1:{primary_port}":
                    return False
            return True
        # Sentinels find the replica and each other through the primary (hello messages every 2 s).
        wait_for("the three sentinels to know the replica and each other", settled, 40, procs)
    except BaseException:
        for m in reversed(procs):
            REGISTRY.stop(m)
        raise
    d = RedisDeployment("sentinel", procs, [primary_port, replica_port], ctx.load_cpu,
                        roles=["primary", "replica", "sentinel", "sentinel", "sentinel"],
                        sentinel_ports=sentinel_ports)
    ctx.redis_deployments["sentinel"] = d
    return d


def cluster_slot_owners(port: int) -> list[tuple[int, int, int]]:
    """(first slot, last slot, primary port) for every slot range, from CLUSTER SLOTS."""
    out = []
    for entry in redis_call(port, "CLUSTER", "SLOTS"):
        first, last, primary = entry[0], entry[1], entry[2]
        out.append((int(first), int(last), int(primary[1])))
    return sorted(out)


def start_redis_cluster(ctx: Context) -> RedisDeployment:
    """Three primaries (no replicas) made a cluster by `redis-cli --cluster create` (slots
    split in three); returns once every node says cluster_state:ok, knows the three and
    every slot is served."""
    if "cluster" in ctx.redis_deployments:
        return ctx.redis_deployments["cluster"]
    procs, ports = [], []
    try:
        for i in range(1, CLUSTER_PRIMARIES + 1):
            # The cluster bus on a free port of its own (not port + 10000, which may be taken).
            m, port = start_redis_node(ctx, f"redis-cluster-{i}", (
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
                "--cluster-port", str(free_port())))
            procs.append(m)
            ports.append(port)
        r = subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                            "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed (exit {r.returncode}): {(r.stdout + r.stderr)[-800:]}")

        def settled() -> bool:
            for port in ports:
                info = redis_call(port, "CLUSTER", "INFO").decode()
                if ("cluster_state:ok" not in info or f"cluster_known_nodes:{CLUSTER_PRIMARIES}" not in info
                        or f"cluster_slots_assigned:{CLUSTER_SLOTS}" not in info):
                    return False
            owners = {p for _, _, p in cluster_slot_owners(ports[0])}
            return owners == set(ports)
        wait_for("the cluster to be ok on every node (3 primaries, every slot served)", settled, 40, procs)
    except BaseException:
        for m in reversed(procs):
            REGISTRY.stop(m)
        raise
    d = RedisDeployment("cluster", procs, ports, ctx.load_cpu, roles=["primary"] * CLUSTER_PRIMARIES)
    ctx.redis_deployments["cluster"] = d
    return d


def redis_scan(port: int, pattern: str) -> list[bytes]:
    """Every key of this node matching `pattern` (SCAN, bounded: the benchmark's keyspaces
    are small where this is used)."""
    found, cursor = [], b"0"
    for _ in range(10_000):
        cursor, keys = redis_call(port, "SCAN", cursor, "MATCH", pattern, "COUNT", "1000")
        found.extend(keys)
        if cursor == b"0":
            return found
    raise RuntimeError(f"SCAN {pattern} on port {port} did not finish")


def node_address(text: str) -> str:
    """host:port of a node as /readyz names it (`redis://127.0.0.1:6379` or `127.0.0.1:6379`)."""
    return re.sub(r"^rediss?://", "", text.strip()).rstrip("/")


def readyz_checks(t: Target) -> dict[str, str]:
    r = http_request(t.admin_port, "/readyz")
    _expect(r.status == 200, f"{t.name}'s /readyz answered {r.status}: {r.body[:300]!r}")
    body = json.loads(r.body)
    _expect(body.get("status") == "ready" and body.get("checks", {}).get("redis") == "ok",
            f"{t.name}'s /readyz is not ready with Redis ok: {body}")
    return body["checks"]


def bucket_key_nodes(d: RedisDeployment, policy: str) -> list[int]:
    """The data nodes of `d` holding a token bucket of `policy` (the gateway's key layout:
    <prefix>rl:<policy>:...)."""
    return [port for port in d.data_ports if redis_scan(port, f"{API_KEY_PREFIX}rl:{policy}:*")]


def fresh_bucket_nodes(t: Target, d: RedisDeployment) -> list[int]:
    """The nodes holding the timed route's bucket right after a request of t's: a bucket
    that refills within a second (policy "bench") lives about that long in Redis, so it is
    looked for at once, a few times."""
    for _ in range(5):
        r = http_request(t.port, REQUEST_PATH, t.request_headers, tls=t.tls)
        _expect(r.status == 200, f"GET {REQUEST_PATH} answered {r.status}")
        nodes = bucket_key_nodes(d, RATE_LIMIT_POLICY)
        if nodes:
            return nodes
    return []


def check_redis_mode(t: Target) -> str:
    """For a gateway of a scenario with Redis mode variants: the mode is real. /readyz names
    the node the gateway uses (single: the harness's redis-server; Sentinel: the primary the
    three sentinels name, a primary, not the replica) or the cluster's three primaries; and
    for Sentinel and Cluster the token buckets the pre-flight requests wrote are in that
    deployment (on its primary; on the cluster's nodes, which are listed). Returns what it
    saw, for the report."""
    d = t.redis
    _expect(d is not None, f"{t.name} has no Redis deployment")
    checks = readyz_checks(t)
    if d.mode == "cluster":
        named = {node_address(n) for n in checks.get("redis_cluster_nodes", "").split(",")}
        want = {f"127.0.0.1:{p}" for p in d.data_ports}
        _expect(named == want, f"/readyz redis_cluster_nodes {checks.get('redis_cluster_nodes')!r}, expected the "
                               f"{len(want)} primaries {sorted(want)}")
        _expect("redis_node" not in checks, f"/readyz names a single node on a cluster: {checks}")
        owners = {p for _, _, p in cluster_slot_owners(d.data_ports[0])}
        _expect(owners == set(d.data_ports), f"the cluster's slots are served by {sorted(owners)}, "
                                             f"not by the {len(d.data_ports)} primaries")
        where = {}
        for policy in (RATE_LIMIT_POLICY, "bench-low"):
            nodes = fresh_bucket_nodes(t, d) if policy == RATE_LIMIT_POLICY else bucket_key_nodes(d, policy)
            _expect(bool(nodes), f"no token bucket of policy {policy!r} on any cluster node after the pre-flight "
                                 "requests (the decisions were not made on the cluster)")
            where[policy] = nodes
        # One request per other key on the low-limit route: each its own bucket (an hour long),
        # in the slot of its name; together they must land on more than one primary.
        spread = t.credentials.get("spread", [])
        _expect(bool(spread), "the scenario made no keys to spread buckets over the cluster")
        for headers in spread:
            r = http_request(t.port, LIMITED_PATH, {**t.request_headers, **headers}, tls=t.tls)
            _expect(r.status == 200, f"GET {LIMITED_PATH} with another key answered {r.status}")
        low = {p: len(redis_scan(p, f"{API_KEY_PREFIX}rl:bench-low:*")) for p in d.data_ports}
        _expect(sum(1 for n in low.values() if n) >= 2,
                f"the bench-low buckets of {1 + len(spread)} keys are all on one primary ({low}): the gateway did "
                "not route them by slot")
        where["bench-low"] = [p for p in sorted(low) if low[p]]
        records = [p for p in d.data_ports if redis_scan(p, f"{API_KEY_PREFIX}*apikey:*")]
        _expect(bool(records), "no API key record on any cluster node")
        return (f"/readyz redis_cluster_nodes lists the {len(want)} primaries (ports "
                f"{', '.join(map(str, sorted(d.data_ports)))}); buckets: {RATE_LIMIT_POLICY} (the timed key) on port "
                f"{', '.join(map(str, where[RATE_LIMIT_POLICY]))}, bench-low of {1 + len(spread)} keys on ports "
                + ", ".join(f"{p} ({low[p]})" for p in where["bench-low"])
                + f"; API key records on port {', '.join(map(str, records))}")
    node, role = node_address(checks.get("redis_node", "")), checks.get("redis_role")
    if d.mode == "sentinel":
        primary = f"127.0.0.1:{d.data_ports[0]}"
        named = {sentinel_primary(port) for port in d.sentinel_ports}
        _expect(named == {primary}, f"the sentinels name {sorted(named)} as the primary, expected {primary}")
        _expect(node == primary and role == "primary",
                f"/readyz redis_node {node!r} redis_role {role!r}, expected the Sentinel-named primary {primary} "
                "(role primary)")
        for policy in (RATE_LIMIT_POLICY, "bench-low"):
            nodes = fresh_bucket_nodes(t, d) if policy == RATE_LIMIT_POLICY else bucket_key_nodes(d, policy)
            _expect(nodes[:1] == [d.data_ports[0]],
                    f"no token bucket of policy {policy!r} on the Sentinel primary after the pre-flight requests")
        return (f"the {len(d.sentinel_ports)} sentinels and /readyz name {primary} (role primary; replica port "
                f"{d.data_ports[1]}); the buckets are on the primary")
    want = f"127.0.0.1:{d.data_ports[0]}"
    _expect(node == want and role == "primary",
            f"/readyz redis_node {node!r} redis_role {role!r}, expected the single redis-server {want} (primary)")
    return f"/readyz redis_node {node} (role primary)"


def redis_mode_check(mode: str) -> Check:
    what = {"single": "/readyz: redis_node is the single redis-server, role primary",
            "sentinel": "/readyz: redis_node is the primary the 3 sentinels name, role primary; the buckets are on it",
            "cluster": f"/readyz: redis_cluster_nodes lists the {CLUSTER_PRIMARIES} primaries; the buckets are on "
                       f"cluster nodes, those of {1 + CLUSTER_SPREAD_KEYS} keys on more than one"}[mode]
    return Check(f"Redis {mode}: {what}", check_redis_mode)


def start_auth_service(ctx: Context, name: str, port: int, values: dict[str, object]) -> Managed:
    """bench/peers/auth-service.py for a peer with auth_service: on the proxy core."""
    m = REGISTRY.start(name, [sys.executable, str(AUTH_SERVICE), "--port", str(port), "--redis-port", str(ctx.redis_port),
                              "--pepper-file", str(values["pepper_file"]), "--key-prefix", API_KEY_PREFIX,
                              "--scope", API_KEY_SCOPES[0]],
                       ctx.tmp / f"{name}.log", ctx.proxy_cpu)
    wait_for_port(port, m)
    return m


# --------------------------------------------------------------------------------------
# Load: wrk -t1 -cN -dDs --latency, pinned to the load core.


WRK_TEXT_LATENCY = re.compile(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def run_wrk(ctx: Context, port: int, concurrency: int, duration_s: int, headers: dict[str, str],
            tls: bool = False, script: Path = WRK_SCRIPT, script_args: Optional[list[str]] = None,
            path: str = REQUEST_PATH) -> dict:
    argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration_s}s", "--latency", "-s", str(script)]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(f"{'https' if tls else 'http'}://127.0.0.1:{port}{path}")
    if script_args:
        argv += ["--"] + script_args
    if ctx.load_cpu is not None:
        argv = ["taskset", "-c", str(ctx.load_cpu)] + argv
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                         preexec_fn=_child_setup)
    try:
        out, _ = p.communicate(timeout=duration_s + 30)
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        raise
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = out.decode(errors="replace")
    m = re.search(r"^BENCH_JSON (\{.*\})$", text, re.M)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed (exit {p.returncode}):\n{text[-2000:]}")
    result = json.loads(m.group(1))
    result["load_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # A script that builds its requests in init() (rotate-keys.lua) says how much CPU that
    # took before wrk's clock started: not part of the load during the run.
    init = re.search(r"^BENCH_INIT_CPU_S ([\d.]+)$", text, re.M)
    result["init_cpu_s"] = float(init.group(1)) if init else 0.0
    result["load_cpu_s"] = max(0.0, result["load_cpu_s"] - result["init_cpu_s"])
    return result


def wrk_load(ctx: Context, t: Target, concurrency: int, duration_s: int) -> dict:
    """One wrk run against `t`: its credential on every request, or, for a rotation, the
    next keys of the list (continuing where the previous run against `t` stopped)."""
    if t.rotation is None:
        return run_wrk(ctx, t.port, concurrency, duration_s, t.request_headers, t.tls)
    keys_file, count = t.rotation
    w = run_wrk(ctx, t.port, concurrency, duration_s, t.request_headers, t.tls, WRK_ROTATE_SCRIPT,
                [str(keys_file), str(t.rotation_next)])
    # Completed requests, plus the ones in flight when wrk stopped, plus the one wrk's
    # start-up takes to look at the script's request().
    t.rotation_next = (t.rotation_next + int(w["requests"]) + concurrency + 1) % count
    return w


RATE_LIMIT_STORES = ("redis", "local", "local_fallback")
CACHE_POSITIVE_TTL_S = 30  # [cache] positive_ttl of the API-key gateway configs


def gateway_counters(t: Target) -> tuple[Optional[dict[str, int]], str]:
    """The counters of a gateway's admin /metrics the harness checks a timed run with: the
    hits and misses of the cache the scenario measures (t.cache_metric: credential or jwt)
    and, when t.rate_limit_expect is set, the rate-limit decisions by store. None and why
    not when they cannot be read."""
    if not t.admin_port:
        return None, ""
    try:
        r = http_request(t.admin_port, "/metrics")
    except (OSError, http.client.HTTPException) as e:
        return None, f"{t.name}'s /metrics could not be read: {e}"
    if r.status != 200:
        return None, f"{t.name}'s /metrics answered {r.status}"
    text = r.body.decode(errors="replace")
    wanted = {}
    if t.cache_expect:
        wanted["cache_hits"] = f"dbgw_{t.cache_metric}_cache_hits_total"
        wanted["cache_misses"] = f"dbgw_{t.cache_metric}_cache_misses_total"
    if t.rate_limit_expect:
        for store in RATE_LIMIT_STORES:
            wanted[f"rl_{store}"] = f'dbgw_rate_limit_decisions_total{{store="{store}"}}'
    out = {}
    for key, name in wanted.items():
        m = re.search(rf"^{re.escape(name)} (\d+)$", text, re.M)
        if not m:
            return None, f"{t.name}'s /metrics has no {name}"
        out[key] = int(m.group(1))
    return out, ""


# --------------------------------------------------------------------------------------
# One scenario


@dataclass
class RunResult:
    proxy: str
    concurrency: int
    repetition: int
    valid: bool
    problems: list[str]
    requests: int = 0
    duration_s: float = 0.0
    req_per_s: float = 0.0
    cpu_us_per_req: float = 0.0
    cpu_user_us_per_req: float = 0.0
    cpu_sys_us_per_req: float = 0.0
    proxy_cpu_percent: float = 0.0
    load_core_cpu_percent: float = 0.0
    other_cpu_percent: float = 0.0
    steal_percent: float = 0.0
    quiet_wait_s: float = 0.0
    quiet_before: bool = True
    attempts: int = 1
    latency_p50_us: float = 0.0
    latency_p90_us: float = 0.0
    latency_p99_us: float = 0.0
    latency_max_us: float = 0.0
    errors: int = 0
    errors_detail: dict = field(default_factory=dict)
    non_2xx: int = 0
    peak_rss_kib: int = 0
    helper_cpu_us_per_req: Optional[float] = None  # of cpu_us_per_req: the auth service behind the peer
    redis_cpu_us_per_req: Optional[float] = None  # the harness's Redis (on the load core)
    cache_hits: Optional[int] = None  # the gateway's credential cache during the timed run
    cache_misses: Optional[int] = None
    rate_limit_decisions: Optional[dict] = None  # a gateway's rate-limit decisions by store during the timed run


def timed_run(ctx: Context, t: Target, concurrency: int, rep: int) -> RunResult:
    s = ctx.settings
    headers = t.request_headers
    # Wait for the machine to be quiet, within what is left of the run's waiting budget, so
    # a machine that stays busy (a test suite next door) costs the run a bounded time.
    waited, other_before = wait_for_quiet(ctx.cpus, min(s.quiet_wait_s, ctx.quiet_budget_s),
                                          tuple(m.pid for m in ctx.redis_processes))
    ctx.quiet_budget_s = max(0.0, ctx.quiet_budget_s - waited)
    if s.warmup_s > 0:
        wrk_load(ctx, t, concurrency, s.warmup_s)  # untimed: pools filled, caches warm
    counters0, counters_error0 = gateway_counters(t)
    def tree() -> list[int]:
        return proc_tree(t.process.pid) + [p for h in t.helpers for p in proc_tree(h.pid)]
    pids = tree()
    helper_pids = [p for h in t.helpers for p in proc_tree(h.pid)]
    up_pids = proc_tree(ctx.upstream.pid)
    # Every Redis process of the run is on the load core (load core %, and ours in "other
    # %"); the proxy's own Redis deployment is its "Redis CPU µs/req".
    redis_pids = [p for m in ctx.redis_processes for p in proc_tree(m.pid)]
    own_redis_pids = [p for m in (t.redis.processes if t.redis else []) for p in proc_tree(m.pid)]
    reset_peak_rss(pids)
    me = [os.getpid()]
    cpu0, up0, me0, stat0 = cpu_ticks(pids), cpu_ticks(up_pids), cpu_ticks(me), cpu_stat(ctx.cpus)
    redis0 = cpu_ticks(redis_pids)
    w = wrk_load(ctx, t, concurrency, s.duration_s)
    stat1 = cpu_stat(ctx.cpus)
    pids_after = sorted(set(pids) | set(tree()))
    cpu1, up1, me1, redis1 = cpu_ticks(pids_after), cpu_ticks(up_pids), cpu_ticks(me), cpu_ticks(redis_pids)
    counters1, counters_error1 = gateway_counters(t)
    rss = peak_rss_kib(pids_after)
    user_s, sys_s = cpu_delta_s(cpu0, cpu1)
    up_user, up_sys = cpu_delta_s(up0, up1)
    # Redis (the Redis scenarios) runs on the load core with wrk and the upstream.
    redis_s = sum(cpu_delta_s(redis0, redis1))
    own_redis_s = sum(cpu_delta_s({p: v for p, v in redis0.items() if p in own_redis_pids},
                                  {p: v for p, v in redis1.items() if p in own_redis_pids}))
    helper_s = sum(cpu_delta_s({p: v for p, v in cpu0.items() if p in helper_pids},
                               {p: v for p, v in cpu1.items() if p in helper_pids}))
    n = int(w["requests"])
    dur = w["duration_us"] / 1e6
    errors = {k: int(w[k]) for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout")}
    r = RunResult(proxy=t.name, concurrency=concurrency, repetition=rep, valid=True, problems=[])
    r.quiet_wait_s = round(waited, 1)
    r.quiet_before = other_before < OTHER_LOAD_WARN
    r.requests, r.duration_s = n, dur
    r.req_per_s = n / dur if dur > 0 else 0.0
    if n > 0:
        r.cpu_us_per_req = (user_s + sys_s) * 1e6 / n
        r.cpu_user_us_per_req = user_s * 1e6 / n
        r.cpu_sys_us_per_req = sys_s * 1e6 / n
        if t.helpers:
            r.helper_cpu_us_per_req = helper_s * 1e6 / n
        if t.uses_redis:
            r.redis_cpu_us_per_req = own_redis_s * 1e6 / n
    r.proxy_cpu_percent = 100 * (user_s + sys_s) / dur if dur else 0.0
    r.load_core_cpu_percent = 100 * (w["load_cpu_s"] + up_user + up_sys + redis_s) / dur if dur else 0.0
    # Anything else that ran on the cores we use (a compiler, another benchmark ...):
    # their busy time minus what our processes account for. A few % is noise; more means
    # the run was disturbed.
    ours = user_s + sys_s + up_user + up_sys + redis_s + w["load_cpu_s"] + sum(cpu_delta_s(me0, me1))
    if dur:
        r.other_cpu_percent = max(0.0, 100 * ((stat1[0] - stat0[0]) / CLK_TCK - ours) / dur)
        r.steal_percent = 100 * (stat1[1] - stat0[1]) / CLK_TCK / dur
    r.latency_p50_us, r.latency_p90_us = w["latency_p50_us"], w["latency_p90_us"]
    r.latency_p99_us, r.latency_max_us = w["latency_p99_us"], w["latency_max_us"]
    r.errors, r.errors_detail, r.non_2xx = sum(errors.values()), errors, int(w["non_2xx"])
    r.peak_rss_kib = rss
    if n == 0:
        r.problems.append("no request completed")
    if r.errors:
        r.problems.append("socket errors " + ", ".join(f"{k[7:]} {v}" for k, v in errors.items() if v))
    if r.non_2xx:
        r.problems.append(f"{r.non_2xx} responses with status >= 400")
    if not t.process.alive():
        r.problems.append(f"{t.name} exited during the run (status {t.process.popen.returncode})")
    for h in t.helpers:
        if not h.alive():
            r.problems.append(f"{h.name} exited during the run (status {h.popen.returncode})")
    if counters_error0 or counters_error1:
        r.problems.append(counters_error0 or counters_error1)
    if counters0 is not None and counters1 is not None:
        delta = {k: counters1[k] - counters0[k] for k in counters1}
        if t.cache_expect:
            r.cache_hits, r.cache_misses = delta["cache_hits"], delta["cache_misses"]
            lookups = r.cache_hits + r.cache_misses
            if t.cache_expect == "miss" and r.cache_hits > 0.001 * max(lookups, 1):
                r.problems.append(f"the gateway's cache answered {r.cache_hits} of {lookups} lookups: not the miss path")
            # On the hit path a positive entry goes stale every positive_ttl and is fetched
            # again; the gateway does not coalesce that refresh, so every request arriving
            # while it is under way misses too (up to one per client connection). That is
            # part of the hit path's steady state, not the miss path.
            refreshes = 1 + int(dur // CACHE_POSITIVE_TTL_S)
            allowed = max(0.001 * max(lookups, 1), concurrency * refreshes)
            if t.cache_expect == "hit" and r.cache_misses > allowed:
                r.problems.append(f"{r.cache_misses} of {lookups} lookups missed the gateway's cache: not the hit path")
            if n > 0 and lookups < n:
                r.problems.append(f"the gateway's cache saw {lookups} lookups for {n} requests")
        if t.rate_limit_expect:
            r.rate_limit_decisions = {store: delta[f"rl_{store}"] for store in RATE_LIMIT_STORES}
            made = sum(r.rate_limit_decisions.values())
            if t.rate_limit_expect == "none" and made:
                r.problems.append(f"the reference without a rate limit made {made} rate-limit decisions")
            if t.rate_limit_expect == "redis":
                if n > 0 and r.rate_limit_decisions["redis"] < n:
                    r.problems.append(f"{r.rate_limit_decisions['redis']} Redis rate-limit decisions for {n} requests")
                if made != r.rate_limit_decisions["redis"]:
                    r.problems.append("rate-limit decisions made without Redis: " + ", ".join(
                        f"{k} {v}" for k, v in r.rate_limit_decisions.items() if k != "redis" and v))
    r.valid = not r.problems
    return r


def run_scenario(ctx: Context, s: Scenario) -> dict:
    result: dict = {"id": s.id, "title": s.title, "status": "", "preflight": [], "runs": [], "targets": s.targets,
                    "notes": s.notes, "cache_metric": s.gateway_cache_metric}
    variants = redis_variants(s)
    if variants:
        # Which Redis each gateway of the scenario used, and what ran for each (the report
        # puts the variants beside the single-Redis figure).
        result["redis_modes"] = {"gateway": "single",
                                 **{p.name: p.redis for p in s.peers if p.kind == "gateway" and p.redis != "single"}}
    started: list[Managed] = []
    targets: list[Target] = []
    headers = dict(s.request_headers)
    prepared = Prepared()
    try:
        try:
            if "redis" in s.services:
                start_redis(ctx)
            ctx.plain_layout_ports = []
            if "redis-sentinel" in s.services:
                t0 = time.monotonic()
                d = start_redis_sentinel(ctx)
                ctx.plain_layout_ports.append(d.data_ports[0])
                log(f"  Redis Sentinel set ready in {time.monotonic() - t0:.1f} s: primary {d.data_ports[0]}, "
                    f"replica {d.data_ports[1]}, sentinels {d.sentinel_ports}")
            if "redis-cluster" in s.services:
                t0 = time.monotonic()
                d = start_redis_cluster(ctx)
                log(f"  Redis Cluster ready in {time.monotonic() - t0:.1f} s: primaries {d.data_ports}")
            if variants:
                result["redis_deployments"] = {m: ctx.redis_deployments[m].describe()
                                               for m in ["single"] + variants if m in ctx.redis_deployments}
            if s.prepare is not None:
                t0 = time.monotonic()
                prepared = s.prepare(ctx)
                headers.update(prepared.headers)
                log(f"  prepared the credentials in {time.monotonic() - t0:.1f} s")
            extra_values = prepared.values
            gateway_target: Optional[Target] = None

            def target(name: str, kind: str, port: int, m: Managed, does_auth: bool, redis_mode: str = "single",
                       own: Optional[Prepared] = None, **kw) -> Target:
                # `own`: credentials of this target's own (a gateway on another key layout).
                return Target(name, kind, port, ctx.upstream_port, m, {**headers, **(own.headers if own else {})},
                              s.tls, does_auth, identity=own.identity if own else prepared.identity,
                              credentials={**prepared.credentials, **(own.credentials if own else {})},
                              rotation=prepared.rotation, uses_redis="redis" in s.services,
                              redis=ctx.redis_deployments.get(redis_mode), **kw)

            admin = bool(s.gateway_cache or s.rate_limit)  # the gateway configs then have [admin]
            port, admin_port = free_port(), (free_port() if admin else 0)
            gw_values = {**extra_values, **dict(s.gateway_values)}
            gw = start_gateway(ctx, s, port, admin_port, gw_values)
            started.append(gw)

            def launch_gateway(name: str, port: int, wrapper: list[str], values: dict = gw_values,
                               template: Optional[Path] = None, redis_mode: str = "single") -> Managed:
                return start_gateway(ctx, s, port, free_port() if admin else 0, values, name=name, template=template,
                                     redis_mode=redis_mode, wrapper=wrapper)
            if s.after_gateway_start is not None:
                more = s.after_gateway_start(ctx, port, prepared)
                headers.update(more.headers)
                prepared.identity.update(more.identity)
                prepared.credentials.update(more.credentials)
                prepared.values.update(more.values)
                log("  obtained the credential from the running gateway")
            targets.append(target("gateway", "gateway", port, gw, True, admin_port=admin_port,
                                  cache_expect=s.gateway_cache, cache_metric=s.gateway_cache_metric,
                                  rate_limit_expect=s.rate_limit, rate_limited=s.rate_limit is not None,
                                  launch=launch_gateway))
            gateway_target = targets[-1]
            for peer in s.peers:
                port, auth_port = free_port(), free_port()
                if peer.kind == "gateway":  # a second gateway as the reference, checked like the first
                    admin_port = free_port() if admin else 0
                    peer_values = {**extra_values, **dict(peer.values)}
                    m = start_gateway(ctx, s, port, admin_port, peer_values,
                                      name=peer.name, template=peer_template(peer), redis_mode=peer.redis)
                    started.append(m)
                    own = None
                    if peer.redis == "cluster" and s.cluster_credentials is not None:
                        own = s.cluster_credentials(ctx, gateway_config_path(ctx, s, peer.name))
                        log(f"  {peer.name}: its own credentials made through the gateway's CLI on the cluster")
                    targets.append(target(peer.name, "gateway", port, m, peer.does_auth, redis_mode=peer.redis,
                                          own=own, admin_port=admin_port,
                                          cache_expect=s.gateway_cache, cache_metric=s.gateway_cache_metric,
                                          rate_limit_expect=("redis" if peer.rate_limited else "none") if s.rate_limit else None,
                                          rate_limited=peer.rate_limited, redis_variant=peer.redis != "single",
                                          launch=(None if own else
                                                  lambda name, port, wrapper, v=peer_values, p=peer: launch_gateway(
                                                      name, port, wrapper, v, peer_template(p), p.redis))))
                    continue
                values = {"port": port, "upstream_port": ctx.upstream_port, "auth_port": auth_port,
                          "upstream_keepalive": ctx.upstream_keepalive, "redis_port": ctx.redis_port, **extra_values,
                          **dict(peer.values)}
                if s.kind == "idle" and peer.kind == "haproxy":
                    # HAProxy reserves two descriptors per connection (client and server side).
                    need = 2 * (ctx.settings.idle_connections + 100) + 300
                    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
                    if need > limit:
                        result.setdefault("idle_not_run", []).append(
                            f"{peer.name}: HAProxy wants {need:,} file descriptors for "
                            f"{ctx.settings.idle_connections:,} connections (two per connection), the limit here is "
                            f"{limit:,} (ulimit -n)")
                        continue
                    values["maxconn"] = ctx.settings.idle_connections + 100
                helpers = []
                if peer.auth_service:
                    helper = start_auth_service(ctx, f"{peer.name}-auth-service", auth_port, values)
                    started.append(helper)
                    helpers.append(helper)
                start = start_nginx if peer.kind == "nginx" else start_haproxy
                m = start(ctx, peer.name, peer_template(peer), values, ctx.proxy_cpu, port)
                started.append(m)

                def launch_peer(name: str, port: int, wrapper: list[str], v: dict = values, p: Peer = peer,
                                start=start) -> Managed:
                    # A second server block of the peer's own ({{auth_port}} without a helper) gets a new port.
                    more = {} if p.auth_service else {"auth_port": free_port()}
                    return start(ctx, name, peer_template(p), {**v, "port": port, **more}, ctx.proxy_cpu, port, wrapper)
                targets.append(target(peer.name, peer.kind, port, m, peer.does_auth, helpers=helpers,
                                      rate_limited=peer.rate_limited, launch=launch_peer))
        except (RuntimeError, KeyError, ValueError, OSError, subprocess.SubprocessError, RedisReplyError) as e:
            result["status"] = "start_failed"
            result["detail"] = str(e)
            log(f"  could not start the scenario: {e}")
            return result

        # Pre-flight: every proxy, every check; nothing is timed unless all pass.
        failed = False
        for t in targets:
            checks = (list(s.checks) + (list(s.auth_checks) if t.does_auth else [])
                      + (list(s.rate_limit_checks) if t.rate_limited else []))
            if variants and t.kind == "gateway" and t.admin_port and t.redis is not None:
                checks.append(redis_mode_check(t.redis.mode))  # after the requests that wrote the buckets
            checks.append(Check("still running", check_alive_after_checks))
            for c in checks:
                try:
                    seen = c.fn(t)
                    result["preflight"].append({"proxy": t.name, "check": c.name, "ok": True,
                                                **({"detail": seen} if seen else {})})
                except (CheckFailed, OSError, http.client.HTTPException, ValueError, KeyError, RedisReplyError,
                        RuntimeError) as e:
                    failed = True
                    result["preflight"].append({"proxy": t.name, "check": c.name, "ok": False, "detail": str(e)})
                    log(f"  pre-flight FAILED: {t.name}: {c.name}: {e}")
        if failed:
            result["status"] = "preflight_failed"
            return result
        log(f"  pre-flight passed: {', '.join(t.name for t in targets)}")

        if s.kind == "idle":
            result["idle"] = [idle_run(ctx, t, ctx.settings.idle_connections) for t in targets]
            result["status"] = "ok" if all(r["valid"] for r in result["idle"]) else "invalid"
            return result

        # Timed, interleaved: for each concurrency, rounds of A B C.
        dead: set[str] = set()
        for c in ctx.settings.concurrency:
            for rep in range(1, ctx.settings.repetitions + 1):
                for t in targets:
                    if t.name in dead:
                        continue
                    r = last = timed_run(ctx, t, c, rep)
                    attempt = 1
                    # Rerun a valid run that something else disturbed, but only when the
                    # machine was quiet just before it (a passing disturbance): on a machine
                    # that stays busy a rerun would be just as disturbed.
                    while (r.valid and attempt <= ctx.settings.retries and last.quiet_before
                           and max(last.other_cpu_percent, last.steal_percent) > OTHER_LOAD_WARN):
                        log(f"  c={c} rep {rep} {t.name:>9}: disturbed (other processes "
                            f"{max(last.other_cpu_percent, last.steal_percent):.0f}% of a core), running it again")
                        attempt += 1
                        last = timed_run(ctx, t, c, rep)
                        if not last.valid or last.other_cpu_percent <= r.other_cpu_percent:
                            r = last
                    r.attempts = attempt
                    result["runs"].append(r.__dict__)
                    flag = "" if r.valid else "  INVALID: " + "; ".join(r.problems)
                    log(f"  c={c} rep {rep} {t.name:>9}: {r.req_per_s:>9,.0f} req/s  {r.cpu_us_per_req:5.1f} CPU us/req"
                        f"  p99 {r.latency_p99_us:>7,.0f} us  proxy CPU {r.proxy_cpu_percent:3.0f}%"
                        f"  load core {r.load_core_cpu_percent:3.0f}%  other {r.other_cpu_percent:3.0f}%{flag}")
                    if not t.process.alive():
                        dead.add(t.name)
                        log(f"  {t.name} is gone; its log ends with:\n{t.process.log_tail()}")
        if s.token_endpoint and gateway_target is not None and "gateway" not in dead:
            result["token_endpoint"] = token_endpoint_runs(ctx, gateway_target, prepared.values)
        if ctx.settings.counts:
            result["counts"] = count_runs(ctx, s, [t for t in targets if t.name not in dead])
        valid = (all(r["valid"] for r in result["runs"]) and not dead
                 and all(r["valid"] for r in result.get("token_endpoint", [])))
        result["status"] = "ok" if valid else "invalid"
        return result
    finally:
        ctx.plain_layout_ports = []
        for m in reversed(started):
            REGISTRY.stop(m)


def redis_variants(s: Scenario) -> list[str]:
    """The Redis modes other than "single" the scenario's gateway peers run on."""
    return list(dict.fromkeys(p.redis for p in s.peers if p.kind == "gateway" and p.redis != "single"))


class ProxyProbe:
    """While the token endpoint is loaded: one client asking the proxy path (GET
    REQUEST_PATH with the scenario's cached token) again and again on one keep-alive
    connection, recording each latency. If the endpoint signed on the event loop, every probe
    would wait behind the signatures queued there; signed on the thread pool, the loop
    answers the probe between them. Runs in a thread of the harness."""

    def __init__(self, port: int, headers: dict[str, str]):
        self.port, self.headers = port, headers
        self.latencies_us: list[float] = []
        self.failures = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        conn = connect(self.port)
        try:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    r = http_request(self.port, REQUEST_PATH, self.headers, conn=conn)
                except (OSError, http.client.HTTPException):
                    self.failures += 1
                    conn.close()
                    conn = connect(self.port)
                    continue
                if r.status != 200:
                    self.failures += 1
                self.latencies_us.append((time.monotonic() - t0) * 1e6)
                time.sleep(0.005)  # a light, steady probe: ~200 requests/s at most
        finally:
            conn.close()

    def percentile(self, q: float) -> float:
        if not self.latencies_us:
            return 0.0
        ordered = sorted(self.latencies_us)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def token_endpoint_runs(ctx: Context, t: Target, values: dict) -> list[dict]:
    """The gateway's POST /oauth/token under load (client_credentials, client_secret_basic,
    the same request every time), for each concurrency and round: tokens per second, the
    gateway's CPU per token, latency, and the latency of a probe on the proxy path meanwhile
    (ProxyProbe). A run with any error or status >= 400 (load or probe) is invalid."""
    s = ctx.settings
    headers = {"Authorization": values["token_endpoint_authorization"]}
    runs = []
    for c in s.concurrency:
        for rep in range(1, s.repetitions + 1):
            waited, other_before = wait_for_quiet(ctx.cpus, min(s.quiet_wait_s, ctx.quiet_budget_s),
                                                  tuple(m.pid for m in ctx.redis_processes))
            ctx.quiet_budget_s = max(0.0, ctx.quiet_budget_s - waited)
            if s.warmup_s > 0:
                run_wrk(ctx, t.port, c, s.warmup_s, headers, script=WRK_TOKEN_SCRIPT, script_args=[TOKEN_BODY],
                        path=TOKEN_PATH)
            pids = proc_tree(t.process.pid)
            others = [os.getpid()] + [p for m in ctx.redis_processes for p in proc_tree(m.pid)]
            probe = ProxyProbe(t.port, t.request_headers)
            cpu0, stat0, others0 = cpu_ticks(pids), cpu_stat(ctx.cpus), cpu_ticks(others)
            probe.thread.start()
            try:
                w = run_wrk(ctx, t.port, c, s.duration_s, headers, script=WRK_TOKEN_SCRIPT, script_args=[TOKEN_BODY],
                            path=TOKEN_PATH)
            finally:
                probe.stop.set()
                probe.thread.join(timeout=10)
            stat1, others1 = cpu_stat(ctx.cpus), cpu_ticks(others)
            cpu1 = cpu_ticks(sorted(set(pids) | set(proc_tree(t.process.pid))))
            user_s, sys_s = cpu_delta_s(cpu0, cpu1)
            n, dur = int(w["requests"]), w["duration_us"] / 1e6
            errors = sum(int(w[k]) for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout"))
            problems = []
            if n == 0:
                problems.append("no request completed")
            if errors:
                problems.append(f"{errors} socket errors")
            if int(w["non_2xx"]):
                problems.append(f"{int(w['non_2xx'])} responses with status >= 400")
            if not t.process.alive():
                problems.append("the gateway exited during the run")
            if probe.failures or not probe.latencies_us:
                problems.append(f"the proxy-path probe failed {probe.failures} time(s) of {len(probe.latencies_us)}")
            other = 0.0
            if dur:
                ours = user_s + sys_s + w["load_cpu_s"] + sum(cpu_delta_s(others0, others1))
                other = max(0.0, 100 * ((stat1[0] - stat0[0]) / CLK_TCK - ours) / dur)
            r = {"concurrency": c, "repetition": rep, "requests": n, "duration_s": dur,
                 "req_per_s": n / dur if dur else 0.0,
                 "cpu_us_per_req": (user_s + sys_s) * 1e6 / n if n else 0.0,
                 "proxy_cpu_percent": 100 * (user_s + sys_s) / dur if dur else 0.0,
                 "latency_p50_us": w["latency_p50_us"], "latency_p99_us": w["latency_p99_us"],
                 "errors": errors, "non_2xx": int(w["non_2xx"]), "other_cpu_percent": other,
                 "probe_requests": len(probe.latencies_us), "probe_p50_us": probe.percentile(50),
                 "probe_p99_us": probe.percentile(99),
                 "quiet_before": other_before < OTHER_LOAD_WARN, "valid": not problems, "problems": problems}
            runs.append(r)
            flag = "" if r["valid"] else "  INVALID: " + "; ".join(problems)
            log(f"  c={c} rep {rep} POST {TOKEN_PATH}: {r['req_per_s']:>7,.0f} tokens/s  {r['cpu_us_per_req']:7.1f} CPU us/token"
                f"  p99 {r['latency_p99_us']:>9,.0f} us  proxy-path probe p50 {r['probe_p50_us']:,.0f} us"
                f"  proxy CPU {r['proxy_cpu_percent']:3.0f}%  other {other:3.0f}%{flag}")
    return runs


# --------------------------------------------------------------------------------------
# Idle connections (scenario idle-connections): each proxy holds N idle keep-alive client
# connections (bench/idle-clients.py on the load core: one request each, response read,
# then left open); the proxy's resident memory is read while they are open.

def established(port: int) -> tuple[int, int]:
    """ESTABLISHED TCP connections involving 127.0.0.1:`port` from /proc/net/tcp: (server
    side: the proxy's sockets with that local port, client side: sockets connected to it)."""
    want = f":{port:04X}"
    server = client = 0
    with open("/proc/net/tcp") as f:
        next(f, None)
        for line in f:
            parts = line.split(None, 4)
            if len(parts) < 4 or parts[3] != "01":  # 01: TCP_ESTABLISHED
                continue
            server += parts[1].endswith(want)
            client += parts[2].endswith(want)
    return server, client


def rss_kib(pids: list[int]) -> int:
    """VmRSS summed over `pids` (nginx: master + worker)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


class IdleClients:
    """bench/idle-clients.py holding `count` connections to `port` until close(). Started
    and stopped by the harness's main thread; its own process group, killed with it."""

    def __init__(self, port: int, count: int, headers: dict[str, str], cpu: Optional[int], max_seconds: float = 300):
        argv = [sys.executable, str(IDLE_CLIENTS), "--port", str(port), "--connections", str(count),
                "--max-seconds", str(max_seconds)]
        for k, v in headers.items():
            argv += ["--header", f"{k}: {v}"]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True, preexec_fn=_child_setup, text=True)

    def read_line(self, timeout: float) -> str:
        import select
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"bench/idle-clients.py said nothing within {timeout:.0f} s")
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"bench/idle-clients.py exited (status {self.popen.wait()})")
        return line.strip()

    def opened(self, timeout: float = 180) -> tuple[int, int, str]:
        """(connections open, failed, first error) once every connection was tried."""
        line = self.read_line(timeout)
        m = re.match(r"^OPEN (\d+) FAILED (\d+) ?(.*)$", line)
        if not m:
            raise RuntimeError(f"bench/idle-clients.py: {line}")
        return int(m.group(1)), int(m.group(2)), m.group(3)

    def close(self) -> str:
        """Asks the client to close everything and waits for it (killed if it does not exit)."""
        last = ""
        try:
            if self.popen.poll() is None:
                self.popen.stdin.write("close\n")
                self.popen.stdin.flush()
                last = self.read_line(60)
            self.popen.wait(timeout=30)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
            last = f"{type(e).__name__}: {e}"
        finally:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.popen.wait()
        return last


def idle_run(ctx: Context, t: Target, count: int) -> dict:
    """`count` idle keep-alive connections to `t`, then its RSS. Valid only when every
    connection got its 200 and the proxy's side of each is ESTABLISHED right before and
    after the RSS is read (the connections were really open when it was measured)."""
    def tree() -> list[int]:
        return proc_tree(t.process.pid) + [p for h in t.helpers for p in proc_tree(h.pid)]
    before = rss_kib(tree())
    out = {"proxy": t.name, "connections": count, "rss_before_kib": before}
    problems = []
    t0 = time.monotonic()
    clients = IdleClients(t.port, count, t.request_headers, ctx.load_cpu)
    try:
        ok, failed, first_error = clients.opened()
        out["open_s"] = round(time.monotonic() - t0, 1)
        out["opened"], out["failed"] = ok, failed
        if failed:
            problems.append(f"{failed} connections failed ({first_error})")
        time.sleep(1.0)  # let the proxy finish whatever the last responses left (buffers freed)
        server0, client0 = established(t.port)
        rss = rss_kib(tree())
        server1, _ = established(t.port)
        out.update(rss_kib=rss, rss_mib=rss / 1024, established_before=server0, established_after=server1,
                   established_client_side=client0)
        out["kib_per_connection"] = (rss - before) / count
        if min(server0, server1, client0) < count:
            problems.append(f"only {min(server0, server1)} of {count} connections ESTABLISHED on the proxy's side "
                            f"({client0} on the clients' side) when its RSS was read")
    except RuntimeError as e:
        problems.append(str(e))
    finally:
        out["closed"] = clients.close()
    if not t.process.alive():
        problems.append(f"{t.name} exited (status {t.process.popen.returncode})")
    out["valid"], out["problems"] = not problems, problems
    log(f"  {t.name:>9}: {count:,} idle connections: RSS {out.get('rss_mib', 0):.1f} MiB (before "
        f"{before / 1024:.1f} MiB), ESTABLISHED {out.get('established_before', 0):,}/{out.get('established_after', 0):,}"
        + ("" if not problems else "  INVALID: " + "; ".join(problems)))
    # Let the kernel finish the closes before the next proxy is measured.
    deadline = time.monotonic() + 10
    while established(t.port)[0] and time.monotonic() < deadline:
        time.sleep(0.2)
    return out


# --------------------------------------------------------------------------------------
# Counts per request (Settings.counts), after a scenario's timed runs, one wrk run each at
# COUNT_CONCURRENCY: system calls (strace -c -f attached to the proxy's processes) and
# instructions (the proxy started again under valgrind --tool=callgrind, counters zeroed
# after a warm-up, dumped after the run). Both move far less with machine noise than req/s.

COUNT_CONCURRENCY = 10
# Callgrind runs the proxy ~50x slower: only where the targets are, on the gateway, nginx
# and HAProxy (not on a second gateway process, not on a peer whose auth service is Python).
INSTRUCTION_SCENARIOS = frozenset({"plain", "api-key-redis", "jwt-rs256", "api-key-redis-bucket", "jwt-redis-bucket"})
STRACE_LINE = re.compile(r"^\s*([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$")


def parse_strace_summary(text: str) -> dict:
    """`strace -c` output -> {"total": calls, "errors": n, "syscalls": {name: calls}}."""
    calls: dict[str, int] = {}
    total = errors = None
    for line in text.splitlines():
        m = STRACE_LINE.match(line)
        if not m:
            continue
        name, n, err = m.group(6), int(m.group(4)), int(m.group(5) or 0)
        if name == "total":
            total, errors = n, err
        else:
            calls[name] = calls.get(name, 0) + n
    if total is None:
        raise ValueError("no total line in the strace -c output")
    return {"total": total, "errors": errors, "syscalls": calls}


def parse_callgrind_total(text: str) -> int:
    """The Ir count of a callgrind output file (its `totals:` line, else `summary:`)."""
    for key in ("totals:", "summary:"):
        for line in text.splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    raise ValueError("no totals: or summary: line in the callgrind output")


def parse_callgrind_functions(text: str, top: int = 8) -> list[dict]:
    """The `top` functions of a callgrind output file by self cost (Ir spent in the function
    itself, not in what it calls): name, Ir and % of the file's total. Read from the
    format directly: the cost line right after a `calls=` line is the inclusive cost of
    that call, so it is not the caller's own."""
    names: dict[str, str] = {}
    own: dict[str, int] = {}
    fn = "?"
    after_call = False
    for line in text.splitlines():
        if line.startswith(("fn=", "cfn=")):  # both define compressed names: "(id) name", later "(id)"
            m = re.match(r"^c?fn=(?:\((\d+)\))?\s*(.*)$", line)
            ident, name = m.group(1), m.group(2)
            if ident and name:
                names[ident] = name
            if line.startswith("fn="):
                fn = name or names.get(ident or "", "?")
            continue
        if line.startswith("calls="):
            after_call = True
            continue
        if line and (line[0].isdigit() or line[0] in "+-*"):
            parts = line.split()
            if after_call:
                after_call = False
                continue
            if len(parts) >= 2:
                own[fn] = own.get(fn, 0) + int(parts[1])
    total = sum(own.values())
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    return [{"function": name, "ir": ir, "percent": 100 * ir / total if total else 0.0} for name, ir in ranked]


def demangle(names: list[str]) -> list[str]:
    """Swift symbols made readable with `swift demangle --simplified` when it is there."""
    tool = shutil.which("swift-demangle")
    argv = [tool, "--simplified"] if tool else (["swift", "demangle", "--simplified"] if shutil.which("swift") else None)
    if not argv or not names:
        return names
    try:
        r = subprocess.run(argv, input="\n".join(names) + "\n", capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return names
    lines = r.stdout.splitlines()
    return lines if r.returncode == 0 and len(lines) == len(names) else names


def _wrk_problems(w: dict) -> list[str]:
    problems = []
    errors = sum(int(w[k]) for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout"))
    if int(w["requests"]) == 0:
        problems.append("no request completed")
    if errors:
        problems.append(f"{errors} socket errors")
    if int(w["non_2xx"]):
        problems.append(f"{int(w['non_2xx'])} responses with status >= 400")
    return problems


def count_syscalls(ctx: Context, t: Target) -> dict:
    """strace -c -f attached to every process of `t` (and its helpers) for one wrk run:
    system calls per completed request, and the three most frequent."""
    seconds = ctx.settings.count_seconds
    wrk_load(ctx, t, COUNT_CONCURRENCY, 1)  # warm: pools filled, caches hit
    pids = proc_tree(t.process.pid) + [p for h in t.helpers for p in proc_tree(h.pid)]
    out_file = ctx.tmp / f"strace-{t.name}-{time.monotonic_ns()}.txt"
    err_file = ctx.tmp / f"strace-{t.name}.log"
    argv = ["strace", "-c", "-f", "-o", str(out_file)] + [a for p in pids for a in ("-p", str(p))]
    with open(err_file, "w") as err:
        tracer = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True,
                                  preexec_fn=_child_setup)
    problems: list[str] = []
    try:
        # strace says "Process N attached" for every thread it attaches (-f: all of them).
        deadline = time.monotonic() + 10
        while err_file.read_text().count("attached") < len(pids) and time.monotonic() < deadline:
            if tracer.poll() is not None:
                raise RuntimeError(f"strace exited {tracer.returncode}: {err_file.read_text()[-300:]}")
            time.sleep(0.1)
        time.sleep(0.3)
        w = wrk_load(ctx, t, COUNT_CONCURRENCY, seconds)
    finally:
        if tracer.poll() is None:
            tracer.send_signal(signal.SIGINT)  # detaches and writes the summary
        try:
            tracer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(tracer.pid, signal.SIGKILL)
            tracer.wait()
    problems += _wrk_problems(w)
    summary = parse_strace_summary(out_file.read_text())
    n = int(w["requests"])
    top = sorted(summary["syscalls"].items(), key=lambda kv: -kv[1])[:3]
    return {"requests": n, "syscalls": summary["total"], "syscall_errors": summary["errors"],
            "syscalls_per_req": summary["total"] / n if n else None,
            "top": [{"syscall": k, "per_req": v / n if n else None} for k, v in top],
            "valid": not problems, "problems": problems}


def callgrind(args: list[str]) -> str:
    r = subprocess.run(["callgrind_control", *args], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"callgrind_control {' '.join(args)} failed: {(r.stdout + r.stderr)[-300:]}")
    return r.stdout


def count_instructions(ctx: Context, t: Target) -> dict:
    """`t`'s proxy started again under callgrind (same configuration, another port): a
    warm-up, counters zeroed, one wrk run, counters dumped; instructions per completed
    request, and the functions that took most (self cost)."""
    import dataclasses
    seconds = ctx.settings.count_seconds
    name = f"{t.name}-callgrind"
    prefix = ctx.tmp / f"callgrind.{t.name}"
    wrapper = ["valgrind", "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={prefix}.%p"]
    if t.kind == "gateway":
        wrapper = ["env", f"LD_PRELOAD={valgrind_sigsuspend_shim(ctx)}"] + wrapper
    port = free_port()
    before = list(REGISTRY.items)
    try:
        m = t.launch(name, port, wrapper)
    except BaseException:
        for started in [x for x in REGISTRY.items if x not in before]:  # one that never listened
            REGISTRY.stop(started)
        raise
    try:
        ct = dataclasses.replace(t, port=port, process=m, admin_port=0)
        wrk_load(ctx, ct, 2, 2)  # warm-up under callgrind (slow): pools and caches filled
        pids = proc_tree(m.pid)
        for p in pids:
            callgrind(["-z", str(p)])
        w = wrk_load(ctx, ct, COUNT_CONCURRENCY, seconds)
        for p in pids:
            callgrind(["-d", str(p)])
        problems = _wrk_problems(w)
        if not m.alive():
            problems.append(f"{name} exited (status {m.popen.returncode})")
        total = 0
        dumps = []
        for p in pids:
            # The dump after -z: callgrind.<name>.<pid>.<n>, the highest n.
            parts = sorted(prefix.parent.glob(f"{prefix.name}.{p}.*"), key=lambda f: int(f.suffix[1:]))
            if not parts:
                raise RuntimeError(f"callgrind wrote no dump for process {p}")
            dumps.append(parts[-1])
            total += parse_callgrind_total(parts[-1].read_text(errors="replace"))
        # Where the instructions went: the process that did the work (nginx has one here).
        top = parse_callgrind_functions(max(dumps, key=lambda f: f.stat().st_size).read_text(errors="replace"))
        for f, readable in zip(top, demangle([f["function"] for f in top])):
            f["function"] = shorten(readable)
        n = int(w["requests"])
        return {"requests": n, "instructions": total, "instructions_per_req": total / n if n else None,
                "top_functions": top, "valid": not problems, "problems": problems}
    finally:
        REGISTRY.stop(m)


PERF_LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.+?)\s*$")


def parse_perf_report(symbols_text: str, dso_text: str, top: int = 8) -> dict:
    """`perf report --no-children --stdio` sorted by `dso,symbol` (the `top` symbols) and by
    `dso` (each object's share, all samples counted; the kernel's as "[kernel]"), in % of
    the samples."""
    by_dso: dict[str, float] = {}
    for line in dso_text.splitlines():
        m = re.match(r"^\s*([\d.]+)%\s+(\S+)\s*$", line)
        if m:
            dso = "[kernel]" if m.group(2).startswith("[kernel") else m.group(2)
            by_dso[dso] = by_dso.get(dso, 0.0) + float(m.group(1))
    symbols = []
    for line in symbols_text.splitlines():
        m = PERF_LINE.match(line)
        if not m:
            continue
        # Columns after the symbol (IPC, "-" without hardware counters) are 2+ spaces away.
        percent, dso, mode, symbol = float(m.group(1)), m.group(2), m.group(3), re.split(r"\s{2,}", m.group(4))[0]
        if mode == "k" or dso.startswith("[kernel"):
            dso = "[kernel]"
        symbols.append({"symbol": symbol, "dso": dso, "percent": percent})
    symbols.sort(key=lambda e: -e["percent"])
    return {"kernel_percent": by_dso.get("[kernel]", 0.0),
            "dso_percent": dict(sorted(by_dso.items(), key=lambda kv: -kv[1])), "top_symbols": symbols[:top]}


def profile_gateway(ctx: Context, t: Target) -> dict:
    """`perf record -e cpu-clock` (a software event: no hardware counters needed) on the
    gateway's processes during one wrk run at the scenario's first concurrency: where its
    CPU time goes, kernel included."""
    data = ctx.tmp / f"perf-{t.name}.data"
    concurrency = ctx.settings.concurrency[0]
    wrk_load(ctx, t, concurrency, 1)  # warm
    pids = proc_tree(t.process.pid)
    with open(ctx.tmp / f"perf-{t.name}.log", "w") as log_file:
        recorder = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-o", str(data), "-p",
                                     ",".join(map(str, pids))], stdin=subprocess.DEVNULL, stdout=log_file,
                                    stderr=log_file, start_new_session=True, preexec_fn=_child_setup)
    try:
        time.sleep(0.5)
        if recorder.poll() is not None:
            raise RuntimeError(f"perf record exited {recorder.returncode}: "
                               f"{(ctx.tmp / f'perf-{t.name}.log').read_text()[-300:]}")
        w = wrk_load(ctx, t, concurrency, ctx.settings.count_seconds)
    finally:
        if recorder.poll() is None:
            recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(recorder.pid, signal.SIGKILL)
            recorder.wait()
    reports = []
    for sort in ("dso,symbol", "dso"):
        r = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", sort, "--stdio",
                            "--percent-limit", "0.3"], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"perf report --sort {sort} failed: {r.stderr[-300:]}")
        reports.append(r.stdout)
    out = parse_perf_report(*reports)
    for e, readable in zip(out["top_symbols"], demangle([e["symbol"] for e in out["top_symbols"]])):
        e["symbol"] = shorten(readable)
    problems = _wrk_problems(w)
    out.update(concurrency=concurrency, requests=int(w["requests"]), valid=not problems, problems=problems)
    return out


def shorten(name: str, limit: int = 100) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


def count_runs(ctx: Context, s: Scenario, targets: list[Target]) -> list[dict]:
    """Syscalls and instructions per request for each proxy of the scenario (what
    Settings.counts asks; instructions only in INSTRUCTION_SCENARIOS)."""
    out = []
    for t in targets:
        if t.redis_variant:
            continue
        entry: dict = {"proxy": t.name}
        if "syscalls" in ctx.settings.counts:
            try:
                entry["syscalls"] = count_syscalls(ctx, t)
            except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as e:
                entry["syscalls"] = {"valid": False, "problems": [str(e)]}
        if ("instructions" in ctx.settings.counts and s.id in INSTRUCTION_SCENARIOS and t.launch is not None
                and not t.helpers and (t.name == "gateway" or t.kind != "gateway")):
            try:
                entry["instructions"] = count_instructions(ctx, t)
            except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as e:
                entry["instructions"] = {"valid": False, "problems": [str(e)]}
        if "profile" in ctx.settings.counts and t.name == "gateway":
            try:
                entry["profile"] = profile_gateway(ctx, t)
            except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as e:
                entry["profile"] = {"valid": False, "problems": [str(e)]}
            if not entry["profile"]["valid"]:
                log(f"  profile {t.name}: INVALID: " + "; ".join(entry["profile"]["problems"]))
        for key in ("syscalls", "instructions"):
            c = entry.get(key)
            if c:
                per = c.get(f"{key}_per_req")
                log(f"  counts {t.name:>9}: {key} per request " + (f"{per:,.1f}" if per is not None else "–")
                    + ("" if c["valid"] else "  INVALID: " + "; ".join(c["problems"])))
        out.append(entry)
    return out


# --------------------------------------------------------------------------------------
# Report


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ratio_cell(values: list[float]) -> str:
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.2f}x"
    return f"{med:.2f}x ({min(values):.2f}–{max(values):.2f})"


def summarize(scenario: dict, concurrency: list[int]) -> dict:
    """Medians per proxy and concurrency, and gateway ratios computed round by round."""
    runs = scenario["runs"]
    proxies = list(dict.fromkeys(r["proxy"] for r in runs))
    summary: dict = {"per_proxy": [], "ratios": []}
    metrics = ("req_per_s", "cpu_us_per_req", "cpu_user_us_per_req", "cpu_sys_us_per_req", "latency_p50_us",
               "latency_p90_us", "latency_p99_us", "peak_rss_kib", "proxy_cpu_percent", "load_core_cpu_percent",
               "other_cpu_percent", "steal_percent")
    for c in concurrency:
        for p in proxies:
            rs = [r for r in runs if r["proxy"] == p and r["concurrency"] == c]
            if not rs:
                continue
            entry = {"proxy": p, "concurrency": c, "repetitions": len(rs),
                     "valid": all(r["valid"] for r in rs),
                     "errors": sum(r["errors"] for r in rs), "non_2xx": sum(r["non_2xx"] for r in rs)}
            for m in metrics:
                vals = [r[m] for r in rs]
                entry[m] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
            for m in ("helper_cpu_us_per_req", "redis_cpu_us_per_req"):  # only where they apply
                vals = [r[m] for r in rs if r.get(m) is not None]
                if vals:
                    entry[m] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
            hits = [r["cache_hits"] for r in rs if r.get("cache_hits") is not None]
            if hits:
                entry["cache_hits"] = sum(hits)
                entry["cache_misses"] = sum(r["cache_misses"] for r in rs if r.get("cache_misses") is not None)
            decisions = [r["rate_limit_decisions"] for r in rs if r.get("rate_limit_decisions") is not None]
            if decisions:
                entry["rate_limit_decisions"] = {k: sum(d.get(k, 0) for d in decisions) for k in decisions[0]}
            summary["per_proxy"].append(entry)
        gw = {r["repetition"]: r for r in runs if r["proxy"] == "gateway" and r["concurrency"] == c}
        for p in proxies:
            if p == "gateway":
                continue
            peer = {r["repetition"]: r for r in runs if r["proxy"] == p and r["concurrency"] == c}
            reps = sorted(set(gw) & set(peer))
            if not reps:
                continue
            def ratios(key: str) -> list[float]:
                return [gw[i][key] / peer[i][key] for i in reps if peer[i][key] > 0]
            entry = {"concurrency": c, "versus": p, "rounds": len(reps),
                     "valid": all(gw[i]["valid"] and peer[i]["valid"] for i in reps)}
            for key, name in (("req_per_s", "req_per_s"), ("cpu_us_per_req", "cpu_us_per_req"),
                              ("latency_p99_us", "latency_p99")):
                vals = ratios(key)
                entry[name] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "values": vals} if vals else None
            summary["ratios"].append(entry)
    summary["redis_modes"] = summarize_redis_modes(scenario, concurrency)
    return summary


def summarize_redis_modes(scenario: dict, concurrency: list[int]) -> list[dict]:
    """For a scenario with Redis mode variants (scenario["redis_modes"]: proxy -> mode): per
    concurrency, the single-Redis gateway and each variant with its medians and the
    variant ÷ gateway ratios computed round by round (req/s, the gateway's CPU µs/req, p99,
    and the CPU its Redis deployment spent per request)."""
    modes = scenario.get("redis_modes") or {}
    runs = scenario["runs"]
    out = []
    for c in concurrency:
        gw = {r["repetition"]: r for r in runs if r["proxy"] == "gateway" and r["concurrency"] == c}
        if not modes or not gw:
            continue
        for proxy, mode in modes.items():
            mine = {r["repetition"]: r for r in runs if r["proxy"] == proxy and r["concurrency"] == c}
            if not mine:
                continue
            entry: dict = {"concurrency": c, "proxy": proxy, "mode": mode, "rounds": len(mine),
                           "valid": all(r["valid"] for r in mine.values())}
            for key in ("req_per_s", "cpu_us_per_req", "latency_p99_us", "redis_cpu_us_per_req"):
                vals = [r[key] for r in mine.values() if r.get(key) is not None]
                entry[key] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)} if vals else None
            entry["versus_single"] = None
            if proxy != "gateway":
                reps = sorted(set(gw) & set(mine))
                entry["valid"] = entry["valid"] and all(gw[i]["valid"] for i in reps)
                ratios = {}
                for key in ("req_per_s", "cpu_us_per_req", "latency_p99_us", "redis_cpu_us_per_req"):
                    vals = [mine[i][key] / gw[i][key] for i in reps
                            if mine[i].get(key) is not None and gw[i].get(key)]
                    ratios[key] = ({"median": statistics.median(vals), "min": min(vals), "max": max(vals),
                                    "values": vals} if vals else None)
                entry["versus_single"] = ratios
            out.append(entry)
    return out


# --------------------------------------------------------------------------------------
# Targets (issue 15): each a ratio gateway ÷ peer measured in the same run (median of the
# round-by-round ratios), or the gateway's RSS with the idle connections open.


@dataclass(frozen=True)
class PerfTarget:
    """One target of issue 15: a figure of one scenario (a gateway ÷ peer ratio, or the idle
    RSS), the bound it must meet and how the report words it."""
    scenario: str
    versus: Optional[str]  # the peer the gateway is divided by; None: an absolute figure (idle RSS)
    metric: str  # "req_per_s", "cpu_us_per_req", "latency_p99" (ratios) or "rss_mib"
    op: str  # ">=" or "<="
    threshold: float
    text: str  # what the report prints as the target

    @property
    def key(self) -> str:
        return f"{self.scenario}|{self.versus or '-'}|{self.metric}"


TARGETS: tuple[PerfTarget, ...] = (
    PerfTarget("plain", "nginx", "req_per_s", ">=", 0.9, "req/s ≥ 0.9x nginx"),
    PerfTarget("plain", "nginx", "cpu_us_per_req", "<=", 1.15, "CPU µs/req ≤ 1.15x nginx"),
    PerfTarget("plain", "nginx", "latency_p99", "<=", 1.0, "p99 ≤ nginx's"),
    PerfTarget("api-key-redis", "nginx", "req_per_s", ">=", 0.85, "req/s ≥ 0.85x nginx plain"),
    PerfTarget("jwt-rs256", "nginx", "req_per_s", ">=", 0.85, "req/s ≥ 0.85x nginx plain"),
    PerfTarget("jwt-rs256", "haproxy-jwt", "req_per_s", ">=", 2.0, "req/s ≥ 2x HAProxy jwt_verify"),
    PerfTarget("api-key-redis-bucket", "nginx", "req_per_s", ">=", 0.7, "req/s ≥ 0.7x nginx plain"),
    PerfTarget("jwt-redis-bucket", "nginx", "req_per_s", ">=", 0.7, "req/s ≥ 0.7x nginx plain"),
    PerfTarget("api-key-miss", "nginx-auth-redis", "req_per_s", ">=", 1.5,
               "req/s ≥ 1.5x nginx auth_request + Redis auth service"),
    PerfTarget("tls", "nginx-tls", "req_per_s", ">=", 0.9, "req/s ≥ 0.9x nginx TLS"),
    PerfTarget("idle-connections", None, "rss_mib", "<=", IDLE_RSS_TARGET_MIB,
               f"RSS ≤ {IDLE_RSS_TARGET_MIB} MiB with the idle connections open"),
)


def target_met(t: PerfTarget, value: float) -> bool:
    return value >= t.threshold if t.op == ">=" else value <= t.threshold


def evaluate_targets(report: dict) -> list[dict]:
    """One row per target and concurrency (the idle target: one row): the measured value
    (median ratio, or MiB), its rounds, and MET / MISSED, or NOT MEASURED with why (the
    scenario was not run, skipped, failed its pre-flight, or had invalid runs)."""
    scenarios = {sc["id"]: sc for sc in report.get("scenarios", [])}
    rows = []
    for t in TARGETS:
        sc = scenarios.get(t.scenario)
        concurrencies = [None] if t.versus is None else report["settings"]["concurrency"]
        for c in concurrencies:
            row = {"key": t.key, "scenario": t.scenario, "versus": t.versus, "metric": t.metric, "concurrency": c,
                   "target": t.text, "op": t.op, "threshold": t.threshold, "value": None, "values": [],
                   "verdict": "NOT MEASURED", "why": ""}
            rows.append(row)
            if sc is None:
                row["why"] = "not run"
                continue
            if sc["status"] in ("skipped", "start_failed", "preflight_failed"):
                row["why"] = sc["status"].replace("_", " ")
                continue
            if t.versus is None:
                idle = next((r for r in sc.get("idle", []) if r["proxy"] == "gateway"), None)
                if idle is None or not idle["valid"] or idle.get("rss_mib") is None:
                    row["why"] = "invalid" if idle else "no gateway figure"
                    continue
                row["value"], row["values"] = idle["rss_mib"], [idle["rss_mib"]]
                row["connections"] = idle["connections"]
            else:
                ratio = next((e for e in (sc.get("summary") or {}).get("ratios", [])
                              if e["concurrency"] == c and e["versus"] == t.versus), None)
                if ratio is None or not ratio.get(t.metric):
                    row["why"] = f"no gateway ÷ {t.versus} figure"
                    continue
                if not ratio["valid"]:
                    row["why"] = "invalid runs"
                    continue
                row["value"], row["values"] = ratio[t.metric]["median"], ratio[t.metric]["values"]
            row["verdict"] = "MET" if target_met(t, row["value"]) else "MISSED"
    return rows


# --------------------------------------------------------------------------------------
# History: bench/results/history.jsonl, one JSON line per run (committed), so a change in
# a ratio or a count shows up next to the run before it.


def history_entry(report: dict) -> dict:
    """The summary of a run kept in the history: per scenario and concurrency each proxy's
    req/s, CPU µs/req and p99 (medians), the gateway ÷ peer ratios, the counts per request,
    the idle RSS, and the target verdicts."""
    env = report.get("environment", {})
    scenarios = {}
    for sc in report.get("scenarios", []):
        entry: dict = {"status": sc["status"]}
        summ = sc.get("summary") or {}
        for e in summ.get("per_proxy", []):
            entry.setdefault("proxies", {}).setdefault(str(e["concurrency"]), {})[e["proxy"]] = {
                "req_per_s": round(e["req_per_s"]["median"], 1), "cpu_us_per_req": round(e["cpu_us_per_req"]["median"], 2),
                "latency_p99_us": round(e["latency_p99_us"]["median"], 1), "valid": e["valid"]}
        for e in summ.get("ratios", []):
            entry.setdefault("ratios", {}).setdefault(str(e["concurrency"]), {})[e["versus"]] = {
                k: (round(e[k]["median"], 4) if e.get(k) else None) for k in ("req_per_s", "cpu_us_per_req", "latency_p99")
            } | {"valid": e["valid"]}
        for c in sc.get("counts", []):
            entry.setdefault("counts", {})[c["proxy"]] = {
                k: (round(c[kind][k], 1) if c.get(kind, {}).get(k) is not None and c[kind]["valid"] else None)
                for kind, k in (("instructions", "instructions_per_req"), ("syscalls", "syscalls_per_req"))
                if kind in c}
        for r in sc.get("idle", []):
            entry.setdefault("idle", {})[r["proxy"]] = {"rss_mib": round(r["rss_mib"], 2) if r.get("rss_mib") else None,
                                                        "connections": r["connections"], "valid": r["valid"]}
        scenarios[sc["id"]] = entry
    return {
        "date": report.get("started_at"), "commit": env.get("gateway_commit"), "mode": report["settings"]["mode"],
        "concurrency": report["settings"]["concurrency"], "repetitions": report["settings"]["repetitions"],
        "duration_s": report["settings"]["duration_s"], "pinned": env.get("pinned"), "scenarios": scenarios,
        "targets": [{k: r[k] for k in ("key", "concurrency", "value", "verdict")} for r in evaluate_targets(report)],
    }


def read_history(path: Path) -> list[dict]:
    """The runs recorded so far, oldest first (a line that is not JSON is skipped)."""
    out = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def append_history(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n")


def previous_figures(history: list[dict]) -> dict:
    """For each target (key and concurrency) and each scenario's counts: the figure of the
    most recent earlier run that measured it, with that run's commit, date and mode."""
    targets: dict = {}
    counts: dict = {}
    for run in history:  # oldest first: later runs overwrite
        where = {"commit": run.get("commit"), "date": run.get("date"), "mode": run.get("mode")}
        for t in run.get("targets", []):
            if t.get("value") is not None:
                targets[f"{t['key']}@{t['concurrency']}"] = {"value": t["value"], "verdict": t["verdict"], **where}
        for sid, sc in run.get("scenarios", {}).items():
            for proxy, c in (sc.get("counts") or {}).items():
                for k, v in c.items():
                    if v is not None:
                        counts[f"{sid}|{proxy}|{k}"] = {"value": v, **where}
    return {"targets": targets, "counts": counts}


def markdown_targets(report: dict) -> list[str]:
    rows = evaluate_targets(report)
    previous = (report.get("previous") or {}).get("targets", {})
    out = ["## Targets (issue 15)", "",
           "Gateway ÷ peer in this run (median of the round-by-round ratios) or the gateway's RSS; the previous run is "
           "the latest earlier run in bench/results/history.jsonl that measured the same figure.", "",
           "| scenario | c | measured | target | verdict | previous run |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["value"] is None:
            measured = "–"
        elif r["metric"] == "rss_mib":
            measured = f"{r['value']:.1f} MiB ({r.get('connections', 0):,} idle connections)"
        else:
            label = {"req_per_s": "req/s", "cpu_us_per_req": "CPU µs/req", "latency_p99": "p99"}[r["metric"]]
            measured = f"{label} {ratio_cell(r['values'])} {r['versus']}"
        verdict = f"**{r['verdict']}**" if r["verdict"] != "NOT MEASURED" else f"NOT MEASURED ({r['why']})"
        prev = previous.get(f"{r['key']}@{r['concurrency']}")
        if prev:
            value = f"{prev['value']:.1f} MiB" if r["metric"] == "rss_mib" else f"{prev['value']:.2f}x"
            prev_cell = f"{value} {prev['verdict']} ({prev.get('commit') or '?'}, {prev.get('mode')}, {(prev.get('date') or '')[:10]})"
        else:
            prev_cell = "–"
        c = "idle" if r["concurrency"] is None else str(r["concurrency"])
        out.append(f"| `{r['scenario']}` | {c} | {measured} | {r['target']} | {verdict} | {prev_cell} |")
    met = sum(r["verdict"] == "MET" for r in rows)
    missed = sum(r["verdict"] == "MISSED" for r in rows)
    out += ["", f"{met} met, {missed} missed, {len(rows) - met - missed} not measured.", ""]
    return out


def markdown_counts(sc: dict, previous: dict) -> list[str]:
    """The per-request counts of a scenario: instructions (callgrind) and syscalls (strace)
    per proxy, gateway ÷ that proxy, the three most frequent syscalls, and the previous run's
    gateway figures."""
    counts = sc.get("counts") or []
    if not counts:
        return []
    gw = next((c for c in counts if c["proxy"] == "gateway"), {})

    def per(c: dict, kind: str) -> Optional[float]:
        d = c.get(kind)
        return d.get(f"{kind}_per_req") if d and d.get("valid") else None

    def cell(c: dict, kind: str, fmt: str) -> str:
        d = c.get(kind)
        if not d:
            return "–"
        v = per(c, kind)
        if v is not None:
            return format(v, fmt)
        why = "; ".join(p.splitlines()[0] if p else "" for p in d.get("problems", []))  # the log tail is in the JSON
        return f"**INVALID** ({why[:200]})"
    out = ["", f"Per request (one wrk run of {COUNT_CONCURRENCY} connections per count, after the timed runs; "
               "instructions: the proxy again under callgrind; syscalls: strace -c -f attached):", "",
           "| proxy | instructions/req | syscalls/req | top syscalls per req | gateway ÷ proxy (instr / syscalls) | "
           "previous run (instr / syscalls) |", "|---|---|---|---|---|---|"]
    for c in counts:
        top = ", ".join(f"{t['syscall']} {t['per_req']:.2f}" for t in (c.get("syscalls") or {}).get("top", [])
                        if t.get("per_req") is not None) or "–"
        ratios = []
        for kind in ("instructions", "syscalls"):
            a, b = per(gw, kind), per(c, kind)
            ratios.append(f"{a / b:.2f}x" if a is not None and b else "–")
        prev = []
        for k, fmt in (("instructions_per_req", ",.0f"), ("syscalls_per_req", ".2f")):
            p = previous.get(f"{sc['id']}|{c['proxy']}|{k}")
            prev.append(format(p["value"], fmt) if p else "–")
        out.append(f"| {c['proxy']} | {cell(c, 'instructions', ',.0f')} | {cell(c, 'syscalls', '.2f')} | {top} | "
                   f"{' / '.join(ratios) if c['proxy'] != 'gateway' else '1 (reference)'} | {' / '.join(prev)} |")
    tops = [(c["proxy"], c["instructions"]["top_functions"]) for c in counts
            if (c.get("instructions") or {}).get("top_functions")]
    for proxy, fns in tops:
        if proxy != "gateway":
            continue
        out += ["", f"Where the gateway's instructions went (callgrind, self cost, top {len(fns)}): " +
                "; ".join(f"`{f['function']}` {f['percent']:.1f}%" for f in fns) + "."]
    profile = gw.get("profile")
    if profile and profile.get("valid"):
        dsos = ", ".join(f"{d} {p:.0f}%" for d, p in list(profile["dso_percent"].items())[:5])
        out += ["", f"Where the gateway's CPU time went (perf record -e cpu-clock, c={profile['concurrency']}, "
                    f"{profile['requests']:,} requests; % of samples): kernel {profile['kernel_percent']:.0f}%; by "
                    f"object: {dsos}; top symbols: " +
                "; ".join(f"`{e['symbol']}` ({e['dso']}) {e['percent']:.1f}%" for e in profile["top_symbols"]) + "."]
    elif profile:
        out += ["", "Profile of the gateway: **INVALID** (" + "; ".join(p.splitlines()[0] for p in profile["problems"]
                                                                    if p) + ")."]
    return out


def markdown_idle(sc: dict) -> list[str]:
    out = ["| proxy | idle connections | ESTABLISHED (proxy side, before / after the reading) | RSS before MiB | "
           "RSS with them open MiB | KiB per connection | open s | valid |", "|---|---|---|---|---|---|---|---|"]
    for r in sc.get("idle", []):
        out.append(f"| {r['proxy']} | {r.get('opened', 0):,} of {r['connections']:,} | "
                   f"{r.get('established_before', 0):,} / {r.get('established_after', 0):,} | "
                   f"{r['rss_before_kib'] / 1024:.1f} | {r.get('rss_kib', 0) / 1024:.1f} | "
                   f"{r.get('kib_per_connection', 0):.1f} | {r.get('open_s', 0):.1f} | "
                   f"{'yes' if r['valid'] else '**INVALID**: ' + '; '.join(r['problems'])} |")
    for why in sc.get("idle_not_run", []):
        out += ["", f"Not run: {why}."]
    return out


def markdown(report: dict) -> str:
    s = report["settings"]
    env = report["environment"]
    out = [f"# dbaudit-gateway benchmark ({s['mode']})", ""]
    out.append(f"{report['started_at']} · {env['cpu_model']} · kernel {env['kernel']} · "
               f"{'proxy under test on CPU %s, wrk + upstream on CPU %s' % (env['proxy_cpu'], env['load_cpu']) if env['pinned'] else 'NOT pinned (fewer than 2 CPUs or --no-pin): numbers are not comparable to pinned runs'}")
    out.append(f"gateway {env['gateway_commit']} ({env['gateway_binary_relative']}, built {env['gateway_binary_mtime']}) · "
               f"{env['nginx']} · {env['haproxy']} · {env['wrk']}" + (f" · {env['redis']}" if env.get("redis") else ""))
    out.append(f"wrk -t1 -c{' and -c'.join(map(str, s['concurrency']))} -d{s['duration_s']}s --latency, "
               f"{s['warmup_s']} s untimed warm-up before each run, {s['repetitions']} interleaved round(s); "
               f"medians with (min–max) over rounds; a run disturbed by other processes on these cores is "
               f"rerun up to {s['retries']} time(s)")
    out.append("")
    out.extend(markdown_targets(report))
    for sc in report["scenarios"]:
        if sc["status"] == "skipped":
            continue
        out.append(f"## {sc['title']}" + ("" if sc["status"] == "ok" else f" — {sc['status'].upper().replace('_', ' ')}"))
        out.append("")
        if sc["status"] == "start_failed":
            out.append("Not timed: a proxy of the scenario did not start.")
            out.append("")
            out.append("```")
            out.append(sc["detail"])
            out.append("```")
            out.append("")
            continue
        if sc["status"] == "preflight_failed":
            out.append("Not timed: a pre-flight check failed.")
            out.append("")
            for c in sc["preflight"]:
                if not c["ok"]:
                    out.append(f"- {c['proxy']}: {c['check']}: {c['detail']}")
            out.append("")
            continue
        if "idle" in sc:
            out.extend(markdown_idle(sc))
            if sc.get("notes"):
                out += ["", sc["notes"]]
            out.append("")
            continue
        summ = sc["summary"]
        out.append("| c | proxy | req/s | CPU µs/req | user µs/req | p50 µs | p99 µs | peak RSS MiB | errors / non-2xx | proxy core % | load core % | other % | valid |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for e in summ["per_proxy"]:
            def mr(key, fmt):
                d = e[key]
                return format(d["median"], fmt) if e["repetitions"] == 1 else f"{format(d['median'], fmt)} ({format(d['min'], fmt)}–{format(d['max'], fmt)})"
            out.append(f"| {e['concurrency']} | {e['proxy']} | {mr('req_per_s', ',.0f')} | {mr('cpu_us_per_req', '.1f')} | "
                       f"{e['cpu_user_us_per_req']['median']:.1f} | "
                       f"{mr('latency_p50_us', ',.0f')} | {mr('latency_p99_us', ',.0f')} | "
                       f"{e['peak_rss_kib']['max'] / 1024:.1f} | {e['errors']} / {e['non_2xx']} | "
                       f"{e['proxy_cpu_percent']['median']:.0f} | {e['load_core_cpu_percent']['median']:.0f} | "
                       f"{e['other_cpu_percent']['max']:.0f} | "
                       f"{'yes' if e['valid'] else '**INVALID**'} |")
        out.append("")
        out.append("Gateway ÷ peer, computed round by round (same run), median (min–max). "
                   "req/s: higher is better for the gateway; CPU µs/req and p99: lower is better.")
        out.append("")
        out.append("| c | gateway vs | req/s | CPU µs/req | p99 latency | valid |")
        out.append("|---|---|---|---|---|---|")
        variants = {p for p, m in (sc.get("redis_modes") or {}).items() if m != "single"}
        for e in summ["ratios"]:
            if e["versus"] in variants:  # in the Redis modes table, the other way round
                continue
            def rc(key):
                d = e[key]
                if not d:
                    return "–"
                return ratio_cell(d["values"])
            out.append(f"| {e['concurrency']} | {e['versus']} | {rc('req_per_s')} | {rc('cpu_us_per_req')} | "
                       f"{rc('latency_p99')} | {'yes' if e['valid'] else '**INVALID**'} |")
        out.extend(markdown_redis_modes(sc))
        out.extend(markdown_counts(sc, (report.get("previous") or {}).get("counts", {})))
        invalid = [r for r in sc["runs"] if not r["valid"]]
        if invalid:
            out.append("")
            out.append("Invalid runs (not to be quoted):")
            for r in invalid:
                out.append(f"- c={r['concurrency']} round {r['repetition']} {r['proxy']}: {'; '.join(r['problems'])}")
        helpers = [e for e in summ["per_proxy"] if "helper_cpu_us_per_req" in e]
        if helpers:
            out.append("")
            out.append("Of the CPU µs/req above, the auth service behind the peer (bench/peers/auth-service.py, same core): " +
                       "; ".join(f"c={e['concurrency']} {e['proxy']} {e['helper_cpu_us_per_req']['median']:.1f} µs/req "
                                 f"of {e['cpu_us_per_req']['median']:.1f}" for e in helpers) + ".")
        redis_cpu = [e for e in summ["per_proxy"] if "redis_cpu_us_per_req" in e]
        if redis_cpu:
            out.append("")
            out.append("Redis CPU µs/req (on the load core, in load core %): " +
                       "; ".join(f"c={e['concurrency']} {e['proxy']} {e['redis_cpu_us_per_req']['median']:.1f}"
                                 for e in redis_cpu) + ".")
        cache = [e for e in summ["per_proxy"] if "cache_hits" in e]
        if cache:
            out.append("")
            kind = "verified-token (JWT)" if sc.get("cache_metric") == "jwt" else "credential"
            out.append(f"Gateway {kind} cache during the timed runs: " +
                       "; ".join(f"c={e['concurrency']} {e['proxy']} {e['cache_hits']:,} hits, {e['cache_misses']:,} misses"
                                 for e in cache) + ".")
        limits = [e for e in summ["per_proxy"] if "rate_limit_decisions" in e]
        if limits:
            out.append("")
            out.append("Gateway rate-limit decisions during the timed runs, by store: " +
                       "; ".join(f"c={e['concurrency']} {e['proxy']} " +
                                 (", ".join(f"{k} {v:,}" for k, v in e["rate_limit_decisions"].items())
                                  if any(e["rate_limit_decisions"].values()) else "none")
                                 for e in limits) + ".")
        token_runs = sc.get("token_endpoint")
        if token_runs:
            out.append("")
            out.append(f"Token endpoint: POST {TOKEN_PATH} (client_credentials, client_secret_basic), the gateway alone, "
                       "median (min–max) over rounds:")
            out.append("")
            out.append("| c | tokens/s | CPU µs/token | p50 µs | p99 µs | proxy-path probe p50 / p99 µs | errors / non-2xx | "
                       "proxy core % | other % | valid |")
            out.append("|---|---|---|---|---|---|---|---|---|---|")
            for c in sorted({r["concurrency"] for r in token_runs}):
                rs = [r for r in token_runs if r["concurrency"] == c]

                def med(key, fmt):
                    v = [r[key] for r in rs]
                    m = format(statistics.median(v), fmt)
                    return m if len(v) == 1 else f"{m} ({format(min(v), fmt)}–{format(max(v), fmt)})"
                out.append(f"| {c} | {med('req_per_s', ',.0f')} | {med('cpu_us_per_req', ',.0f')} | "
                           f"{med('latency_p50_us', ',.0f')} | {med('latency_p99_us', ',.0f')} | "
                           f"{statistics.median(r['probe_p50_us'] for r in rs):,.0f} / "
                           f"{statistics.median(r['probe_p99_us'] for r in rs):,.0f} | "
                           f"{sum(r['errors'] for r in rs)} / {sum(r['non_2xx'] for r in rs)} | "
                           f"{statistics.median(r['proxy_cpu_percent'] for r in rs):.0f} | "
                           f"{max(r['other_cpu_percent'] for r in rs):.0f} | "
                           f"{'yes' if all(r['valid'] for r in rs) else '**INVALID**'} |")
        if sc.get("notes"):
            out.append("")
            out.append(sc["notes"])
        sat = [e for e in summ["per_proxy"] if e["load_core_cpu_percent"]["median"] >= 95]
        if sat:
            out.append("")
            out.append("Load core at >= 95% for " + ", ".join(sorted({e['proxy'] for e in sat})) +
                       ": those req/s are capped by wrk + upstream, compare CPU µs/req instead.")
        busy = [r for r in sc["runs"] if r["other_cpu_percent"] > OTHER_LOAD_WARN or r["steal_percent"] > OTHER_LOAD_WARN]
        if busy:
            out.append("")
            out.append(f"**Disturbed:** {len(busy)} of {len(sc['runs'])} runs had more than {OTHER_LOAD_WARN:.0f}% of a core "
                       f"used by other processes (or stolen by the hypervisor) on the benchmark cores (worst "
                       f"{max(max(r['other_cpu_percent'], r['steal_percent']) for r in busy):.0f}%): "
                       "absolute numbers are low and ratios noisy; rerun on a quiet machine.")
        if sc.get("targets"):
            out.append("")
            out.append(f"Target: {sc['targets']}.")
        out.append("")
    skipped = [sc for sc in report["scenarios"] if sc["status"] == "skipped"]
    if skipped:
        out.append("## Not timed")
        out.append("")
        for sc in skipped:
            out.append(f"- {sc['title']}: {sc['reason']}")
        out.append("")
    return "\n".join(out)


def markdown_redis_modes(sc: dict) -> list[str]:
    """The Redis modes table of a scenario with variants: the same request path on one
    redis-server, a Sentinel-discovered primary and a cluster, side by side, each ÷ the
    single-Redis gateway; then what Redis ran and where."""
    entries = (sc.get("summary") or {}).get("redis_modes") or []
    if not entries:
        return []
    out = ["", "Redis modes: the gateway under test's config on each Redis deployment, same scenario, same run "
               "(interleaved). Each ÷ the single-Redis gateway, computed round by round, median (min–max). "
               "CPU µs/req is the gateway's own; Redis CPU µs/req is that of every process of its deployment.", "",
           "| c | Redis | proxy | req/s | CPU µs/req | p99 µs | Redis CPU µs/req | req/s ÷ single | CPU µs/req ÷ single "
           "| p99 ÷ single | Redis CPU ÷ single | valid |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def med(d, fmt):
        if not d:
            return "–"
        m = format(d["median"], fmt)
        return m if d["min"] == d["max"] else f"{m} ({format(d['min'], fmt)}–{format(d['max'], fmt)})"

    for e in entries:
        vs = e.get("versus_single")

        def ratio(key):
            if vs is None:
                return "1 (reference)"
            d = vs.get(key)
            return ratio_cell(d["values"]) if d else "–"
        out.append(f"| {e['concurrency']} | {REDIS_MODE_LABELS.get(e['mode'], e['mode'])} | {e['proxy']} | "
                   f"{med(e['req_per_s'], ',.0f')} | {med(e['cpu_us_per_req'], '.1f')} | "
                   f"{med(e['latency_p99_us'], ',.0f')} | {med(e['redis_cpu_us_per_req'], '.1f')} | "
                   f"{ratio('req_per_s')} | {ratio('cpu_us_per_req')} | {ratio('latency_p99_us')} | "
                   f"{ratio('redis_cpu_us_per_req')} | {'yes' if e['valid'] else '**INVALID**'} |")
    deployments = sc.get("redis_deployments") or {}
    if deployments:
        parts = []
        for mode, d in deployments.items():
            roles = ", ".join(f"{n} {role if n == 1 else PLURAL.get(role, role + 's')}" for role, n in d["roles"].items())
            parts.append(f"{REDIS_MODE_LABELS.get(mode, mode)}: {d['processes']} ({roles})")
        total = sum(d["processes"] for d in deployments.values())
        cpus = sorted({d["cpu"] for d in deployments.values()}, key=str)
        where = (f"all {total} pinned to CPU {', '.join(map(str, cpus))} (`taskset`) with wrk and the upstream"
                 if cpus != [None] else f"all {total} not pinned")
        out.append("")
        out.append(f"Redis processes: {'; '.join(parts)}; {where}; on 127.0.0.1 only, `--save \"\" --appendonly no`.")
    seen = [c for c in sc.get("preflight", []) if c["ok"] and c.get("detail") and c["check"].startswith("Redis ")]
    if seen:
        out.append("")
        out.append("Redis mode pre-flight (passed, before timing): " +
                   "; ".join(f"{c['proxy']}: {c['detail']}" for c in seen) + ".")
    return out


def describe_environment(ctx: Context) -> dict:
    def first_line(argv: list[str]) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    cpu_model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "Sources", "Package.swift"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
    binary = ctx.settings.binary
    return {
        "cpu_model": cpu_model,
        "cpus_available": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "pinned": ctx.proxy_cpu is not None,
        "proxy_cpu": ctx.proxy_cpu,
        "load_cpu": ctx.load_cpu,
        "gateway_binary": str(binary),
        "gateway_binary_relative": str(binary.relative_to(ROOT)) if binary.is_relative_to(ROOT) else str(binary),
        "gateway_binary_mtime": _dt.datetime.fromtimestamp(binary.stat().st_mtime).isoformat(timespec="seconds"),
        "gateway_commit": commit + ("+uncommitted changes" if dirty else ""),
        "nginx": first_line(["nginx", "-v"]),
        "haproxy": first_line(["haproxy", "-v"]).split(" - ")[0],
        "wrk": first_line(["wrk", "-v"]).split(" Copyright")[0],
        "redis": first_line(["redis-server", "--version"]).split(" sha=")[0] if shutil.which("redis-server") else "?",
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------------------
# Main


def _on_signal(signum, frame):
    raise Interrupted(f"stopped by signal {signal.Signals(signum).name}")


def main(argv: list[str]) -> int:
    settings = parse_args(argv)
    if settings.report is not None:
        print(markdown(json.loads(settings.report.read_text())))
        return 0
    tools = ["nginx", "haproxy", "wrk", "taskset", "redis-server", "redis-cli"]
    tools += ["strace"] if "syscalls" in settings.counts else []
    tools += ["valgrind", "callgrind_control", "strip", "cc"] if "instructions" in settings.counts else []
    tools += ["perf"] if "profile" in settings.counts else []
    for tool in tools:
        if shutil.which(tool) is None:
            log(f"bench: {tool} is not installed (make bench installs it: scripts/install-deps.sh nginx haproxy "
                "redis-server wrk strace valgrind linux-perf gcc binutils; --counts none needs none of the last five)")
            return 2
    if not settings.binary.exists():
        log(f"bench: {settings.binary} not found: build it with `swift build -c release` (make bench does)")
        return 2

    # Every process started here inherits the descriptor limit: as high as allowed, for the
    # idle-connections scenario (the client and each proxy hold one per connection).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    history = read_history(settings.history) if settings.history else []

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    # Watchdogs: set-up, then each scenario, are bounded (generously); nothing hangs forever.
    signal.signal(signal.SIGALRM, _on_signal)
    signal.alarm(300)

    cpus = sorted(os.sched_getaffinity(0))
    pin = settings.pin and len(cpus) >= 2
    tmp = Path(tempfile.mkdtemp(prefix="dbaudit-bench-"))
    (tmp / "tmp").mkdir()
    os.chmod(tmp, 0o755)  # nginx workers may drop to nobody; they only read here
    ctx = Context(settings=settings, tmp=tmp, load_cpu=cpus[0] if pin else None, proxy_cpu=cpus[1] if pin else None,
                  quiet_budget_s=4 * settings.quiet_wait_s)
    started = time.monotonic()
    report: dict = {
        "started_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "settings": {"mode": settings.mode, "repetitions": settings.repetitions, "duration_s": settings.duration_s,
                     "warmup_s": settings.warmup_s, "concurrency": settings.concurrency,
                     "quiet_wait_s": settings.quiet_wait_s, "retries": settings.retries},
        "scenarios": [],
        "counts": sorted(settings.counts),
        # The figures of earlier runs the report puts beside this run's (kept here so that
        # --report prints the same thing later).
        "previous": previous_figures(history),
    }
    exit_code = 0
    ok = False
    try:
        report["environment"] = describe_environment(ctx)
        log(f"bench: {settings.mode} run in {tmp}; "
            + (f"proxy under test on CPU {ctx.proxy_cpu}, wrk + upstream on CPU {ctx.load_cpu}" if pin
               else "processes NOT pinned (fewer than 2 CPUs or --no-pin)"))
        start_upstream(ctx)
        for s in SCENARIOS:
            if settings.only is not None and s.id not in settings.only:
                continue
            available, reason = feature_available(s, settings.binary, tmp)
            if not available:
                log(f"scenario {s.title}: {reason}")
                report["scenarios"].append({"id": s.id, "title": s.title, "status": "skipped", "reason": reason,
                                            "targets": s.targets})
                continue
            log(f"scenario {s.title}")
            per_run = (settings.warmup_s + settings.duration_s + 5) * (1 + settings.retries) + 2
            runs = (1 + len(s.peers) + int(s.token_endpoint)) * len(settings.concurrency) * settings.repetitions
            proxies = 1 + len(s.peers)
            extra = 0
            if s.kind == "idle":
                extra = proxies * 300  # opening, holding and closing the connections, per proxy
            else:
                if "syscalls" in settings.counts:
                    extra += proxies * (settings.count_seconds + 45)
                if "instructions" in settings.counts and s.id in INSTRUCTION_SCENARIOS:
                    extra += proxies * (settings.count_seconds + 300)  # a start under valgrind is slow
            signal.alarm(int(180 + runs * per_run + ctx.quiet_budget_s + extra))
            sc = run_scenario(ctx, s)
            signal.alarm(300)
            if sc["runs"]:
                sc["summary"] = summarize(sc, settings.concurrency)
            report["scenarios"].append(sc)
            if sc["status"] != "ok":
                exit_code = 1
        ok = True
    except Interrupted as e:
        log(f"bench: {e}; stopping everything")
        exit_code = 130
    except Exception as e:  # report, clean up, exit non-zero
        log(f"bench: {type(e).__name__}: {e}")
        exit_code = 2
    finally:
        signal.alarm(0)
        # Ignore further Ctrl-C while stopping what was started.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        REGISTRY.stop_all()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    report["elapsed_s"] = round(time.monotonic() - started, 1)
    report["exit_code"] = exit_code
    if ok and "environment" in report:
        report["targets"] = evaluate_targets(report)
        settings.out.parent.mkdir(parents=True, exist_ok=True)
        settings.out.write_text(json.dumps(report, indent=2) + "\n")
        if settings.history and settings.record:
            append_history(settings.history, history_entry(report))
            log(f"bench: summary appended to {settings.history}")
        print(markdown(report))
        log(f"bench: results in {settings.out.relative_to(ROOT) if settings.out.is_relative_to(ROOT) else settings.out}; "
            f"{report['elapsed_s']:.0f} s")
    count_failed = any(not c[k]["valid"] for sc in report["scenarios"] for c in sc.get("counts", [])
                       for k in ("syscalls", "instructions", "profile") if k in c)
    if count_failed:
        log("bench: a count per request failed (INVALID in the report); the proxies' logs are in the temp dir")
    if settings.keep_tmp or exit_code != 0 or count_failed:
        log(f"bench: configs and logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
