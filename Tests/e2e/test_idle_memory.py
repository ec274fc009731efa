"""Issue 15: what an idle keep-alive client connection costs the gateway's memory. 2,000
connections each send one proxied request, read the 200 and stay open and idle (the
benchmark's client, bench/idle-clients.py); the gateway's RSS growth per connection must
stay under a bound set from the measured cost (docs/operations.md, "Memory").

Run with `pytest -s` to see the figures."""

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import requests

from conftest import ROOT, scaled, wait_until

CONNECTIONS = 2000
# Measured RSS growth per idle connection in this test (debug build, two event loops, 2,000
# connections): 8.5 KiB before the memory work of issue 15, 7.2 KiB after (three runs each,
# within 0.02 KiB). The release build at 10,000 connections, one event loop: 8.4 KiB before,
# 7.2 KiB after. Most of that saving was the receive buffer NIO keeps per connection (2 KiB
# by default, 1 KiB for accepted connections now). Then, on another machine: 6.1 KiB before
# and 5.3 KiB after the idle and header deadlines moved from a timer per connection to one
# sweep per loop, one front handler replaced three (read-ahead, head timeouts, drain gate),
# the waiting list lost its dictionaries and the proxy's body timer became lazy (three runs
# each, within 0.02 KiB). This bound, 0.7 KiB above the measured cost, fails when the
# per-connection timers or handlers come back.
PER_CONNECTION_KIB = 6.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_idle_keep_alive_connections_cost_little_memory(make_gateway, upstream):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * CONNECTIONS + 1000  # the client's sockets and the gateway's, both inherit it
    assert hard >= need, f"RLIMIT_NOFILE hard limit {hard} < {need}"
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    gateway = make_gateway(
        upstream.url,
        server=f'max_connections = {CONNECTIONS + 500}\nidle_timeout = "300s"',
        upstream='max_idle_connections_per_loop = 64\nidle_timeout = "300s"',
    )
    # One exchange first: what the first request sets up once (upstream pool, caches) is
    # not a cost per connection.
    assert requests.get(f"{gateway.url}/warm-up", timeout=10).status_code == 200
    before_kib = gateway.rss_kib()
    fds_before = open_fds(gateway.proc.pid)

    client = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "idle-clients.py"), "--port", str(gateway.port),
         "--connections", str(CONNECTIONS), "--parallel", "20", "--path", "/idle",
         "--timeout", str(scaled(30)), "--max-seconds", str(scaled(300))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = client.stdout.readline().strip()
        assert line == f"OPEN {CONNECTIONS} FAILED 0", line
        # Every connection is still open on the gateway's side when its memory is read.
        wait_until(lambda: open_fds(gateway.proc.pid) >= fds_before + CONNECTIONS, 10)
        after_kib = gateway.rss_kib()
        assert open_fds(gateway.proc.pid) >= fds_before + CONNECTIONS
    finally:
        client.stdin.write("\n")
        client.stdin.flush()
        client.wait(timeout=scaled(60))
    per_connection = (after_kib - before_kib) / CONNECTIONS
    print(json.dumps({"connections": CONNECTIONS, "rss_kib_before": before_kib, "rss_kib_after": after_kib,
                      "kib_per_connection": round(per_connection, 2), "bound_kib": PER_CONNECTION_KIB}))
    assert per_connection <= PER_CONNECTION_KIB, (before_kib, after_kib)
