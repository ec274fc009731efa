"""README claims that had no end-to-end test (issue 21, item 4): SIGINT drains like SIGTERM,
/readyz answers 503 while draining, the refused-connection and reload counters move, the
watchdog stops while an event loop is stalled, a `keys create --test` key works, and
`forward_authorization = true` forwards the header."""

import ctypes
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

import requests

from conftest import admitted_connection, bearer, create_key, redis_keys_tail, scaled, wait_until
from test_admin import admin_port, metrics, sample
from test_systemd import NotifySocket, has, notify_dir  # noqa: F401 - notify_dir is a fixture

KEY_ROUTES = """
[[routes]]
method = "GET"
path = "/v1/databases"
scopes = ["read:databases"]
"""

ADMIN = '\n[admin]\nlisten = "127.0.0.1:0"\n'


def admin_url(gateway) -> str:
    return f"http://127.0.0.1:{admin_port(gateway)}"


def counter(admin: str, name: str, **labels) -> float:
    port = int(admin.rsplit(":", 1)[1])
    return sample(metrics(port), name.removesuffix("_total"), name, **labels)


def held_request(url: str, results: list) -> threading.Thread:
    def run():
        try:
            r = requests.get(url, timeout=scaled(15))
            results.append((r.status_code, r.json().get("upstream")))
        except Exception as error:  # recorded for the assertion
            results.append(("error", repr(error)))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_sigint_drains_in_flight_request_and_exits_zero(make_gateway, upstream):
    gateway = make_gateway(upstream.url)
    results = []
    thread = held_request(f"{gateway.url}/slow?ms=1500", results)
    upstream.wait_for_path("/slow?ms=1500")
    gateway.signal(signal.SIGINT)
    assert wait_until(lambda: refuses_connections(gateway.port), 2), "still accepting after SIGINT"
    thread.join(timeout=scaled(15))
    assert results == [(200, "primary")]
    assert gateway.proc.wait(timeout=scaled(10)) == 0
    gateway.wait_for_log(lambda l: l.get("msg") == "stopped")


def test_readyz_answers_503_while_draining(make_gateway, upstream):
    gateway = make_gateway(upstream.url, tail=ADMIN)
    admin = admin_url(gateway)
    assert requests.get(f"{admin}/readyz", timeout=5).status_code == 200
    results = []
    thread = held_request(f"{gateway.url}/slow?ms=3000", results)
    upstream.wait_for_path("/slow?ms=3000")
    gateway.signal(signal.SIGTERM)
    gateway.wait_for_log(lambda l: l.get("msg") == "draining")
    r = requests.get(f"{admin}/readyz", timeout=5)
    assert r.status_code == 503, r.text
    assert r.json()["status"] == "not_ready"
    assert r.json()["checks"]["lifecycle"] == "draining"
    thread.join(timeout=scaled(15))
    assert results == [(200, "primary")]
    assert gateway.proc.wait(timeout=scaled(10)) == 0


def test_refused_connection_and_reload_counters_move(make_gateway, upstream):
    gateway = make_gateway(upstream.url, server="max_connections = 1", tail=ADMIN)
    admin = admin_url(gateway)
    refused_before = counter(admin, "dbgw_connections_refused_total")
    held = wait_until(lambda: admitted_connection(gateway.port, then="/slow?ms=10000"), 5)
    assert held is not None
    upstream.wait_for_path("/slow?ms=10000")
    refused_while_waiting = counter(admin, "dbgw_connections_refused_total") - refused_before
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=scaled(3)) as extra:
        try:
            extra.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            assert extra.recv(100) == b""
        except (ConnectionResetError, BrokenPipeError):
            pass
    held.close()
    assert counter(admin, "dbgw_connections_refused_total") - refused_before == refused_while_waiting + 1

    applied = counter(admin, "dbgw_config_reloads_total", result="applied")
    refused = counter(admin, "dbgw_config_reloads_total", result="refused")
    gateway.signal(signal.SIGHUP)
    gateway.wait_for_log(lambda l: l.get("msg") == "configuration reloaded")
    assert counter(admin, "dbgw_config_reloads_total", result="applied") == applied + 1
    good = gateway.config_path.read_text()
    gateway.config_path.write_text("[server\nnot toml")
    gateway.signal(signal.SIGHUP)
    gateway.wait_for_log(lambda l: l.get("msg") == "reload failed; keeping the previous configuration")
    assert counter(admin, "dbgw_config_reloads_total", result="refused") == refused + 1
    assert counter(admin, "dbgw_config_reloads_total", result="applied") == applied + 1
    gateway.config_path.write_text(good)


def test_test_key_works_end_to_end(make_gateway, upstream, redis_server, pepper):
    gateway = make_gateway(upstream.url, routes=KEY_ROUTES, tail=redis_keys_tail(redis_server.port, pepper))
    created = create_key(gateway, ["read:databases"], name="sandbox", extra=("--test",))
    assert re.fullmatch(r"dbaudit_test_[0-9A-Za-z]{38}", created["key"]), created["key"]
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(created["key"]), timeout=5)
    assert r.status_code == 200, r.text
    record = upstream.requests()[-1]
    assert record["path"] == "/v1/databases"
    assert [v for k, v in record["headers"] if k.lower() == "x-dbaudit-key-id"] == [created["id"]]
    # A test key is checked like a live one: one changed character is refused.
    tampered = created["key"][:-1] + ("A" if created["key"][-1] != "A" else "B")
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(tampered), timeout=5).status_code == 401


def test_forward_authorization_true_forwards_the_header(make_gateway, upstream, redis_server, pepper):
    tail = redis_keys_tail(redis_server.port, pepper) + "forward_authorization = true\n"
    gateway = make_gateway(upstream.url, routes=KEY_ROUTES, tail=tail)
    created = create_key(gateway, ["read:databases"])
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(created["key"]), timeout=5)
    assert r.status_code == 200, r.text
    record = upstream.requests()[-1]
    assert [v for k, v in record["headers"] if k.lower() == "authorization"] == [f"Bearer {created['key']}"]


def test_authorization_is_not_forwarded_by_default(make_gateway, upstream, redis_server, pepper):
    gateway = make_gateway(upstream.url, routes=KEY_ROUTES, tail=redis_keys_tail(redis_server.port, pepper))
    created = create_key(gateway, ["read:databases"])
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(created["key"]), timeout=5).status_code == 200
    record = upstream.requests()[-1]
    assert not [v for k, v in record["headers"] if k.lower() == "authorization"]


class StoppedThread:
    """Stops one thread of another process (not the whole process) with ptrace
    PTRACE_SEIZE + PTRACE_INTERRUPT, like an event loop wedged in a long computation, until
    `resume`. Every ptrace call must come from the thread that made the first one."""

    PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT, WALL = 17, 0x4206, 0x4207, 0x40000000

    def __init__(self, tid: int):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        self.libc.ptrace.restype = ctypes.c_long
        self.tid = tid
        if self.libc.ptrace(self.PTRACE_SEIZE, tid, None, None) != 0:
            pytest.skip(f"ptrace is not permitted here (errno {ctypes.get_errno()}): cannot stall one thread")
        assert self.libc.ptrace(self.PTRACE_INTERRUPT, tid, None, None) == 0, ctypes.get_errno()
        status = ctypes.c_int()
        assert self.libc.waitpid(tid, ctypes.byref(status), self.WALL) == tid, ctypes.get_errno()

    def resume(self) -> None:
        assert self.libc.ptrace(self.PTRACE_DETACH, self.tid, None, None) == 0, ctypes.get_errno()


def event_loop_threads(pid: int) -> list:
    tasks = Path(f"/proc/{pid}/task")
    return sorted(int(t.name) for t in tasks.iterdir() if (t / "comm").read_text().startswith("NIO-ELT-"))


def test_watchdog_stops_while_an_event_loop_is_stalled_and_resumes_after(make_gateway, upstream, notify_dir):
    notify = NotifySocket(str(notify_dir / "notify"))
    try:
        gateway = make_gateway(upstream.url, wait=False,
                               env={"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "400000", "WATCHDOG_PID": None})
        notify.set_probe_port(gateway.port)
        notify.wait_for(has("READY", "1"), timeout=scaled(20))
        notify.wait_for(has("WATCHDOG", "1"), after=len(notify.snapshot()), timeout=scaled(3))
        loops = event_loop_threads(gateway.proc.pid)
        assert len(loops) == 2, loops  # event_loops = 2
        stopped = StoppedThread(loops[-1])
        try:
            stalled_at = time.monotonic()
            # A ping whose probe had already passed the stalled loop may still arrive; after
            # that, nothing for as long as the loop stays stalled (systemd would restart us).
            time.sleep(scaled(0.5) + 1.5)
            late = [round(m.at - stalled_at, 3) for m in notify.snapshot()
                    if m.fields.get("WATCHDOG") == "1" and m.at > stalled_at + scaled(0.5)]
            assert late == [], f"watchdog pings {late} s after one event loop stalled"
        finally:
            stopped.resume()
        resumed = len(notify.snapshot())
        notify.wait_for(has("WATCHDOG", "1"), after=resumed, timeout=scaled(3))
        assert requests.get(gateway.url + "/after", timeout=5).status_code == 200
    finally:
        notify.close()
