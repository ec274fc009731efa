"""Request-side hardening (issue 20): pipelined answers survive a later refusal, request
trailers and method-override headers never reach the upstream, `100 Continue` only after
the decision, bounded chunk extensions, an encoded ";" refused. Real binary, real redis,
recording upstream, raw sockets."""

import json
import socket

import pytest

from conftest import header, parse_response, raw_exchange
from test_api_keys import auth_tail, create_key

ROUTES = """
[[routes]]
method = "GET"
path = "/v1/databases/**"
scopes = ["read:databases"]

[[routes]]
method = "POST"
path = "/v1/policies"
scopes = ["write:policies"]

[[routes]]
method = "POST"
path = "/v1/admin/**"
scopes = ["admin"]

[[routes]]
method = "POST"
path = "/public/**"
public = true
"""

# Shaped like a key, but its checksum is wrong: refused before the store is asked.
BAD_KEY = "dbaudit_live_" + "A" * 38


@pytest.fixture
def gw(make_gateway, upstream, redis_server, pepper):
    return make_gateway(upstream.url, routes=ROUTES, tail=auth_tail(redis_server.port, pepper))


def responses(raw: bytes):
    """Every Content-Length framed response in raw: [(status, headers, body)]."""
    out = []
    while raw:
        status, headers, body = parse_response(raw)
        out.append((status, headers, body))
        head_length = raw.index(b"\r\n\r\n") + 4
        raw = raw[head_length + int(headers.get("content-length", 0)):]
    return out


def get(path, key):
    return f"GET {path} HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {key}\r\n\r\n".encode()


def refused_post():
    return (f"POST /v1/policies HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {BAD_KEY}\r\n"
            "Content-Length: 50\r\n\r\n").encode() + b"x" * 50


def test_pipelined_response_survives_a_refused_request(gw, upstream):
    key = create_key(gw, ["read:databases"])["key"]
    raw = raw_exchange(gw.port, get("/v1/databases", key) + refused_post() + get("/v1/databases", key))
    got = responses(raw)
    assert [status for status, _, _ in got] == [200, 401], raw[:400]
    assert got[1][1].get("connection") == "close"
    assert json.loads(got[1][2])["error"]
    assert len(upstream.requests()) == 1


def test_three_pipelined_responses_then_the_refusal(gw, upstream):
    key = create_key(gw, ["read:databases"])["key"]
    good = get("/v1/databases", key)
    raw = raw_exchange(gw.port, good * 3 + refused_post() + good)
    got = responses(raw)
    assert [status for status, _, _ in got] == [200, 200, 200, 401], raw[:400]
    assert got[3][1].get("connection") == "close"
    assert len(upstream.requests()) == 3


def test_admin_post_that_ran_upstream_is_always_answered(gw, upstream):
    admin = create_key(gw, ["admin"], name="admin")["key"]
    post = (f"POST /v1/admin/rotate HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {admin}\r\n"
            "Content-Length: 2\r\n\r\nhi").encode()
    raw = raw_exchange(gw.port, post + refused_post() + get("/v1/databases", admin))
    got = responses(raw)
    assert [status for status, _, _ in got] == [200, 401], raw[:400]
    assert json.loads(got[0][2])["path"] == "/v1/admin/rotate"
    assert [r["path"] for r in upstream.requests()] == ["/v1/admin/rotate"]


FORGED_TRAILERS = (b"X-DBAudit-Subject: admin-user\r\nX-DBAudit-Scopes: admin\r\n"
                   b"X-Forwarded-For: 6.6.6.6\r\nAuthorization: Bearer stolen\r\n\r\n")


@pytest.mark.parametrize("authenticated", [False, True])
def test_request_trailers_never_reach_the_upstream(gw, upstream, authenticated):
    if authenticated:
        key = create_key(gw, ["write:policies"])["key"]
        head = f"POST /v1/policies HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {key}\r\n".encode()
    else:
        head = b"POST /public/upload HTTP/1.1\r\nHost: g\r\n"
    raw = raw_exchange(gw.port, head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                       b"5\r\nhello\r\n0\r\n" + FORGED_TRAILERS)
    assert parse_response(raw)[0] == 200, raw[:300]
    record = upstream.requests()[-1]
    assert record["body_bytes"] == 5
    assert record["trailers"] == []
    flat = json.dumps(record)
    assert "admin-user" not in flat and "6.6.6.6" not in flat and "stolen" not in flat


def test_method_override_headers_are_stripped(gw, upstream):
    key = create_key(gw, ["read:databases"])["key"]
    overrides = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL"]
    extra = "".join(f"{name}: {'/v1/admin/x' if 'URL' in name else 'DELETE'}\r\n" for name in overrides)
    raw = raw_exchange(gw.port, (f"GET /v1/databases HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {key}\r\n"
                                 f"{extra}Connection: close\r\n\r\n").encode())
    assert parse_response(raw)[0] == 200
    sent = {name.lower() for name, _ in upstream.requests()[-1]["headers"]}
    assert sent.isdisjoint(name.lower() for name in overrides), sent


def test_continue_comes_only_after_authentication(gw, upstream):
    raw = raw_exchange(gw.port, (f"POST /v1/policies HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {BAD_KEY}\r\n"
                                 "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n").encode())
    status, headers, _ = parse_response(raw)
    assert status == 401, raw[:200]
    assert headers.get("connection") == "close"
    assert b"100 Continue" not in raw
    assert upstream.requests() == []


def test_continue_comes_only_after_the_body_limit(gw, upstream):
    admin = create_key(gw, ["admin"], name="admin")["key"]
    # Under server.max_body_bytes, over the built-in endpoint's own limit.
    raw = raw_exchange(gw.port, (f"POST /v1/api-keys HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {admin}\r\n"
                                 "Content-Type: application/json\r\nContent-Length: 1000000\r\n"
                                 "Expect: 100-continue\r\n\r\n").encode())
    status, _, body = parse_response(raw)
    assert status == 413, raw[:200]
    assert b"100 Continue" not in raw
    assert json.loads(body)["error"]


def test_continue_is_still_sent_to_an_authorized_request(gw, upstream):
    key = create_key(gw, ["write:policies"])["key"]
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall((f"POST /v1/policies HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {key}\r\n"
                   "Content-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").encode())
        interim = s.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        s.sendall(b"hi")
        rest = b""
        while chunk := s.recv(65536):
            rest += chunk
    assert parse_response(rest[rest.index(b"HTTP/1.1 200"):] if b"HTTP/1.1 200" in rest else rest)[0] == 200
    assert upstream.requests()[-1]["body_bytes"] == 2


def test_huge_chunk_extension_is_refused_quickly_with_bounded_memory(gw, upstream):
    rss_before = gw.rss_kib()
    block = b"e" * (64 * 1024)
    sent = 0
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"POST /public/upload HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=")
        try:
            while sent < 200 * 1024 * 1024:
                s.sendall(block)
                sent += len(block)
        except OSError:
            pass  # the gateway answered and closed
        raw = b""
        try:
            while chunk := s.recv(65536):
                raw += chunk
        except OSError:
            pass
    assert raw, f"no answer after {sent} bytes of chunk extension"
    status, headers, body = parse_response(raw)
    assert status == 400, raw[:300]
    assert json.loads(body)["error"] == "invalid_request"
    assert sent < 16 * 1024 * 1024, sent
    assert gw.rss_kib() - rss_before < 64 * 1024
    assert upstream.requests() == [] or upstream.requests()[-1]["body_bytes"] == 0


HUGE_EXTENSION_POST = (b"POST /public/upload HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n5;ext="
                       + b"e" * (1024 * 1024) + b"\r\nhello\r\n0\r\n\r\n")


@pytest.mark.parametrize("framing", [
    "Upgrade: x\r\n",
    "Content-Length: 0" + " " * 600 + "\r\n",
    "Content-Length:" + " " * 600 + "0\r\n",
])
def test_chunk_extension_bound_survives_an_earlier_request(gw, upstream, framing):
    """An earlier request on the connection (an `Upgrade` without `Connection: upgrade`,
    a padded length) must not switch the bound off for the requests behind it."""
    first = f"POST /public/first HTTP/1.1\r\nHost: g\r\n{framing}\r\n".encode()
    if "Content-Length" not in framing:
        first = first[:-2] + b"Content-Length: 0\r\n\r\n"
    raw = b""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        try:
            s.sendall(first + HUGE_EXTENSION_POST)
        except OSError:
            pass  # the gateway answered and closed
        try:
            while chunk := s.recv(65536):
                raw += chunk
                if raw.count(b"\r\n\r\n") >= 2:
                    s.settimeout(0.5)
        except OSError:
            pass
    got = responses(raw)
    assert [status for status, _, _ in got] == [200, 400], raw[:600]
    assert json.loads(got[1][2])["error"] == "invalid_request"
    assert [r["path"] for r in upstream.requests()] == ["/public/first"]


@pytest.mark.parametrize("first, status", [
    (b"POST /public/ws HTTP/1.1\r\nHost: g\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Content-Length: 0\r\n\r\n", 200),
    (b"CONNECT g:443 HTTP/1.1\r\nHost: g:443\r\n\r\n", 405),
])
def test_connection_ends_after_a_request_the_guard_cannot_follow(gw, upstream, first, status):
    """After a real upgrade or CONNECT the parser reads no further, and neither can the
    chunk-extension guard: that request is answered and the connection closes."""
    raw = b""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(first + b"POST /public/next HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5;ext=x\r\nhello\r\n0\r\n\r\n")
        while chunk := s.recv(65536):  # a connection left open fails on the timeout
            raw += chunk
    got = responses(raw)
    assert [code for code, _, _ in got] == [status], raw[:600]
    assert got[0][1].get("connection") == "close"
    seen = upstream.requests()
    assert [r["path"] for r in seen] == (["/public/ws"] if status == 200 else [])
    assert all(header(r, "upgrade") == [] for r in seen)


def test_encoded_semicolon_in_the_path_is_refused(gw, upstream):
    key = create_key(gw, ["read:databases"])["key"]
    for path in ("/v1/databases%3Bx", "/v1/databases/a%3bb"):
        raw = raw_exchange(gw.port, (f"GET {path} HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {key}\r\n"
                                     "Connection: close\r\n\r\n").encode())
        status, _, body = parse_response(raw)
        assert status == 400, (path, raw[:200])
        assert json.loads(body)["error"] == "invalid_request"
    assert upstream.requests() == []
