"""What the proxy path costs the kernel, counted with strace on the real binary, and the
ordering that keeping a client socket readable while the gateway holds its reads must not
change (issue 15: no interest-set change per request, one flush per connection per
request)."""

import re
import shutil
import signal
import socket
import subprocess
import threading

import pytest

from conftest import scaled

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"


class OneWriteUpstream:
    """A keep-alive upstream that answers every GET with one `sendall` (head and body in one
    segment), so the gateway's reads and writes per request do not depend on how a Python
    HTTP server splits its writes."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    @staticmethod
    def _connection(conn):
        with conn:
            pending = b""
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                pending += chunk
                while b"\r\n\r\n" in pending:
                    _, _, pending = pending.partition(b"\r\n\r\n")
                    conn.sendall(RESPONSE)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.listener.close()


def keep_alive_get(sock, state):
    """One GET on `sock` and its complete 200 response (`state` keeps bytes read past it)."""
    sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    while b"\r\n\r\n" not in state["buffer"]:
        chunk = sock.recv(65536)
        assert chunk, "the gateway closed the connection"
        state["buffer"] += chunk
    head, _, rest = state["buffer"].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head).group(1))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the gateway closed the connection"
        rest += chunk
    state["buffer"] = rest[length:]


def syscall_counts(summary: str) -> dict:
    """`strace -c`'s table as {name: calls}."""
    counts = {}
    for line in summary.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[-1] != "total" and fields[3].isdigit() and re.fullmatch(r"[a-z0-9_]+", fields[-1]):
            counts[fields[-1]] = int(fields[3])
    return counts


def test_keep_alive_requests_change_no_epoll_interest_and_write_once_per_leg(make_gateway, tmp_path):
    """N keep-alive requests on one client connection through a pooled upstream connection,
    the gateway under `strace -f -c` from the first to the last: no `epoll_ctl` per request
    (the client socket stays in the interest set while the gateway holds its reads; NIO
    used to take it out and put it back, two calls per request), one write per leg (the
    response head and body in one `writev`, the request in one `write`) and one read per
    leg."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is not installed: scripts/install-deps.sh installs it (make test runs it)")
    upstream = OneWriteUpstream()
    gateway = make_gateway(upstream.url, extra="access_log = false")
    requests_sent = 500
    summary_path = tmp_path / "strace-summary"
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=scaled(10)) as sock:
        state = {"buffer": b""}
        # Warm: the connection and the pooled upstream connection exist before counting.
        for _ in range(5):
            keep_alive_get(sock, state)
        tracer = subprocess.Popen([strace, "-f", "-c", "-o", str(summary_path), "-p", str(gateway.proc.pid)],
                                  stderr=subprocess.PIPE)
        try:
            # "Process N attached with M threads": every thread is traced from here on.
            attached = tracer.stderr.readline()
            assert b"attached" in attached, attached
            for _ in range(requests_sent):
                keep_alive_get(sock, state)
        finally:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(timeout=scaled(30))
    upstream.stop()
    counts = syscall_counts(summary_path.read_text())
    print({name: round(calls / requests_sent, 3) for name, calls in sorted(counts.items())})
    assert counts.get("epoll_ctl", 0) < requests_sent / 10, counts
    writes = sum(counts.get(name, 0) for name in ("write", "writev", "sendmsg", "sendto", "sendmmsg"))
    # The client's response and the upstream's request: two per request, plus a few
    # wake-ups of the loop (eventfd) that scheduled work may cause.
    assert writes <= 2 * requests_sent + requests_sent / 50, counts
    reads = sum(counts.get(name, 0) for name in ("read", "readv", "recvfrom", "recvmsg", "recvmmsg"))
    assert reads <= 2 * requests_sent + requests_sent / 50, counts
    assert counts.get("writev", 0) >= requests_sent, "the client's responses were not written with writev"


def test_requests_sent_while_the_previous_is_at_the_upstream_keep_their_order(gateway, upstream):
    """The gateway does not read a request while the previous one is in flight; the socket
    stays readable and what arrives meanwhile waits. The second request and a POST body
    sent while the first request waits at the upstream are answered after it, in order,
    complete."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=scaled(10)) as sock:
        sock.sendall(b"GET /slow?ms=400 HTTP/1.1\r\nHost: x\r\n\r\n")
        upstream.wait_for_path("/slow?ms=400")
        sock.sendall(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\nPOST /third HTTP/1.1\r\nHost: x\r\n")
        sock.sendall(b"Content-Length: 5\r\n\r\n")
        sock.sendall(b"hello")
        sock.sendall(b"GET /fourth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    assert re.findall(rb'"path": "([^"]+)"', raw) == [b"/slow?ms=400", b"/second", b"/third", b"/fourth"]
    assert raw.count(b"HTTP/1.1 200 OK") == 4
    third = next(r for r in upstream.requests() if r["path"] == "/third")
    assert third["body_bytes"] == 5, third

