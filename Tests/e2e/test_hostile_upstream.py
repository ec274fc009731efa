"""A hostile or broken upstream, end to end: one table, one row per attack.

Each row scripts the raw-socket upstream (hostile_upstream.py) per connection, sends
client A's request through the gateway and checks A's answer; then two fresh clients
("B", other users) each send a request. With two event loops and round-robin accept,
one of them shares A's loop and so A's pooled upstream connection: whatever A's
upstream left behind must never reach them. A new attack is a new row.
"""

import gzip
import socket
import time
from dataclasses import dataclass, field

import pytest

from conftest import parse_head, scaled
from hostile_upstream import GENUINE, HostileUpstream, Step, respond

RESPONSE_TIMEOUT = 2.0

# An incomplete second head: completed by the upstream's next (genuine) answer, it would
# become a 302 to the attacker's site with the attacker's cookie.
TORN_HEAD = (
    b"HTTP/1.1 302 Found\r\nLocation: https://evil.example/phish\r\n"
    b"Set-Cookie: session=attacker; Path=/\r\nX-Pad: "
)
FORBIDDEN = (b"evil.example", b"session=attacker", b"302 Found")

GET = b"GET /v1/a HTTP/1.1\r\nHost: gw\r\n\r\n"
HEAD = b"HEAD /v1/a HTTP/1.1\r\nHost: gw\r\n\r\n"


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


@dataclass
class Row:
    name: str
    #: The first upstream connection's script (A's); later connections answer honestly.
    script: list
    request: bytes = GET
    status: int = 502
    body: bytes | None = None
    #: Seconds (widened by GATEWAY_TEST_TIME_SCALE) within which A's complete answer must arrive.
    within: float = 1.5
    #: Whether A's client connection must be closed after the answer (None: not checked).
    client_closed: bool | None = None
    #: Expected header values on A's answer (None: the header must be absent).
    headers: dict = field(default_factory=dict)
    #: A's upstream connection must be closed by the gateway and serve nobody else.
    poisoned: bool = True
    #: Before the B clients, wait until A's upstream connection finished its script.
    wait_for_script: bool = False


ROWS = [
    # --- bytes after a complete response never reach the next client (finding 1) -------
    Row("head_response_then_torn_head",
        [Step(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + TORN_HEAD), *GENUINE],
        request=HEAD, status=200, body=b""),
    Row("no_content_then_torn_head",
        [Step(b"HTTP/1.1 204 No Content\r\n\r\n" + TORN_HEAD), *GENUINE], status=204, body=b""),
    Row("not_modified_then_torn_head",
        [Step(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n" + TORN_HEAD), *GENUINE], status=304, body=b""),
    Row("length_response_then_torn_head",
        [Step(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + TORN_HEAD), *GENUINE], status=200, body=b"hello"),
    Row("chunked_response_then_torn_head",
        [Step(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"hello") + TORN_HEAD), *GENUINE],
        status=200, body=b"hello"),
    Row("torn_head_300ms_after_a_complete_response",
        [respond(b"hello"), Step(TORN_HEAD, wait=False, delay=0.3), *GENUINE],
        status=200, body=b"hello", wait_for_script=True),
    Row("complete_extra_response",
        [Step(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
              b"HTTP/1.1 302 Found\r\nLocation: https://evil.example/\r\nContent-Length: 0\r\n\r\n"), *GENUINE],
        status=200, body=b"hello"),
    Row("junk_after_response",
        [Step(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\x00\x01junk"), *GENUINE], status=200, body=b"hello"),
    # --- an unrequested protocol switch is refused at once (finding 7) ------------------
    Row("unrequested_switching_protocols",
        [Step(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), *GENUINE],
        within=1.0),
    Row("unrequested_switching_protocols_without_upgrade",
        [Step(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"), *GENUINE], within=1.0),
    # --- keep-alive is decided from the head the client gets (finding 8) ----------------
    Row("http10_keep_alive_with_length_named_in_connection",
        [Step(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello"), *GENUINE],
        request=b"GET /v1/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", status=200, body=b"hello",
        client_closed=True, headers={"connection": "close", "content-length": None}, poisoned=False),
    # --- transfer codings the gateway cannot pass on --------------------------------------
    Row("gzip_then_chunked_transfer_coding",
        [Step(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunked(gzip.compress(b"secret"))),
         *GENUINE]),
    Row("gzip_transfer_coding_alone",
        [Step(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n" + gzip.compress(b"x"))]),
    # --- framing the parser already refuses (kept here so they stay refused) ------------
    Row("length_and_chunked",
        [Step(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"hello")),
         *GENUINE]),
    Row("differing_duplicate_lengths",
        [Step(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), *GENUINE]),
    Row("bare_cr_in_header",
        [Step(b"HTTP/1.1 200 OK\r\nX-A: b\rc\r\nContent-Length: 2\r\n\r\nok"), *GENUINE]),
    Row("obs_fold",
        [Step(b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok"), *GENUINE]),
    Row("http2_status_line",
        [Step(b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"), *GENUINE]),
    Row("informational_flood",
        [Step(b"HTTP/1.1 100 Continue\r\n\r\n", repeat=200, interval=0.02), *GENUINE],
        status=504, within=RESPONSE_TIMEOUT + 1.5),
]


def read_response(sock: socket.socket, head_request: bool):
    """(status, headers, body) of one response; the body is framed like a client would."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head, first_wins=True)
    if head_request or status in (204, 304) or 100 <= status < 200:
        return status, headers, b"", head + b"\r\n\r\n" + rest
    if "chunked" in headers.get("transfer-encoding", ""):
        body = b""
        while True:
            while b"\r\n" not in rest:
                chunk = sock.recv(65536)
                if not chunk:
                    raise AssertionError(f"truncated chunked body: {body!r}")
                rest += chunk
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    raise AssertionError("truncated chunked body")
                rest += chunk
            if size == 0:
                return status, headers, body, head + body
            body += rest[:size]
            rest = rest[size + 2:]
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError("truncated body")
            rest += chunk
        return status, headers, rest[:length], head + rest
    # Close-delimited: read to EOF (or the socket timeout, which the caller reports).
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    except socket.timeout:
        headers["x-test-read"] = "timed out waiting for the close that delimits the body"
    return status, headers, rest, head + rest


def is_closed(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


@pytest.fixture
def hostile(request):
    servers = []

    def start(script):
        server = HostileUpstream([script], lifetime=60)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_hostile_upstream(make_gateway, hostile, row):
    upstream = hostile(row.script)
    gateway = make_gateway(upstream.url, upstream=f'response_timeout = "{RESPONSE_TIMEOUT:g}s"')

    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=scaled(row.within + 3)) as a:
        a.sendall(row.request)
        status, headers, body, raw = read_response(a, head_request=row.request.startswith(b"HEAD"))
        elapsed = time.monotonic() - started
        assert status == row.status, raw[:400]
        assert elapsed < scaled(row.within), f"answer took {elapsed:.2f}s"
        if row.body is not None:
            assert body == row.body, raw[:400]
        for name, value in row.headers.items():
            assert headers.get(name) == value, (name, raw[:400])
        if row.client_closed is not None:
            assert is_closed(a, scaled(1.0)) == row.client_closed
        for bad in FORBIDDEN:
            assert bad not in raw

    if row.wait_for_script:
        assert upstream.wait_for(lambda u: u.connections[0].steps_done >= 2, scaled(5))
    for b_index in range(2):
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=scaled(5)) as b:
            b.sendall(b"GET /v1/b%d HTTP/1.1\r\nHost: gw\r\n\r\n" % b_index)
            b_status, _, b_body, b_raw = read_response(b, head_request=False)
            for bad in FORBIDDEN:
                assert bad not in b_raw, f"client B{b_index} got the attacker's bytes: {b_raw[:400]!r}"
            assert (b_status, b_body) == (200, b"genuine"), b_raw[:400]

    if row.poisoned:
        # The gateway drops the connection rather than keeping it for someone else.
        assert upstream.wait_for(lambda u: u.connections[0].closed_by_peer_at is not None, scaled(3)), \
            "the gateway kept the poisoned upstream connection open"
        first = upstream.connections[0]
        assert len(first.requests) == 1, f"the poisoned connection carried {len(first.requests)} requests"
