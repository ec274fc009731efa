"""Issue 2 acceptance, end to end: the gateway binary between real clients and a real
upstream process, all on loopback."""

import json
import re
import select
import socket
import time

import pytest
import requests

from conftest import admitted_connection, free_port, header, parse_response, raw_exchange, scaled, wait_until


def header_names(record):
    return {name.lower() for name, _ in record["headers"]}


def header_value(record, name):
    """The value of a header the upstream saw once, or the list of its values otherwise."""
    values = header(record, name)
    return values[0] if len(values) == 1 else values


def assert_json_error(response_or_body, code):
    body = response_or_body.json() if hasattr(response_or_body, "json") else json.loads(response_or_body)
    assert body["error"] == code
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert re.fullmatch(r"[0-9a-f]{32}|[A-Za-z0-9._:@+=-]{1,128}", body["request_id"])
    return body


def test_get_is_forwarded_with_forwarding_headers(gateway, upstream):
    r = requests.get(f"{gateway.url}/v1/databases?limit=5", headers={"X-DBAudit-Subject": "forged"}, timeout=5)
    assert r.status_code == 200
    record = upstream.requests()[-1]
    assert record["path"] == "/v1/databases?limit=5"
    assert header_value(record, "X-Forwarded-For") == "127.0.0.1"
    assert header_value(record, "X-Forwarded-Proto") == "http"
    assert header_value(record, "X-Forwarded-Host") == f"127.0.0.1:{gateway.port}"
    assert header_value(record, "Host") == f"127.0.0.1:{upstream.port}"
    assert "x-dbaudit-subject" not in header_names(record)
    assert r.headers["X-Request-Id"] == header_value(record, "X-Request-Id")


def test_keep_alive_reuses_upstream_connections(gateway, upstream):
    with requests.Session() as session:
        for i in range(60):
            assert session.get(f"{gateway.url}/v1/databases/{i}", timeout=5).status_code == 200
    records = upstream.requests()
    assert len(records) == 60
    # One client connection lives on one event loop, which keeps one upstream connection.
    connections = {r["connection"] for r in records}
    assert len(connections) == 1, connections


def test_hop_by_hop_and_connection_named_headers_are_removed(gateway, upstream):
    raw = raw_exchange(
        gateway.port,
        b"GET /v1/x HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, X-Private\r\nX-Private: p\r\n"
        b"Keep-Alive: timeout=9\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Authorization: Basic eA==\r\n"
        b"Trailer: X-T\r\nX-Kept: yes\r\n\r\n",
    )
    status, headers, _ = parse_response(raw)
    assert status == 200
    names = header_names(upstream.requests()[-1])
    for removed in ["connection", "x-private", "keep-alive", "te", "upgrade", "proxy-authorization", "trailer"]:
        assert removed not in names, removed
    assert "x-kept" in names
    # ... and in the other direction: the upstream's Keep-Alive and Connection-named X-Hop.
    assert "keep-alive" not in headers and "x-hop" not in headers
    assert headers["x-upstream-name"] == "primary"


def test_request_id_is_kept_when_valid_and_minted_otherwise(gateway, upstream):
    r = requests.get(f"{gateway.url}/a", headers={"X-Request-Id": "client-id.123"}, timeout=5)
    assert r.headers["X-Request-Id"] == "client-id.123"
    assert header_value(upstream.requests()[-1], "X-Request-Id") == "client-id.123"
    r = requests.get(f"{gateway.url}/a", headers={"X-Request-Id": "bad id\"with quote"}, timeout=5)
    minted = r.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", minted)
    assert header_value(upstream.requests()[-1], "X-Request-Id") == minted
    r = requests.get(f"{gateway.url}/a", timeout=5)
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-Id"])
    assert r.headers["X-Request-Id"] != minted


def test_post_body_and_chunked_bodies_are_forwarded(gateway, upstream):
    r = requests.post(f"{gateway.url}/v1/policies", data=b"x" * 100_000, timeout=10)
    assert r.status_code == 200 and r.json()["body_bytes"] == 100_000

    def gen():
        for _ in range(10):
            yield b"y" * 1000

    r = requests.post(f"{gateway.url}/v1/policies", data=gen(), timeout=10)
    assert r.status_code == 200
    record = upstream.requests()[-1]
    assert record["body_bytes"] == 10_000
    assert header_value(record, "Transfer-Encoding") == "chunked"
    assert "content-length" not in header_names(record)
    r = requests.get(f"{gateway.url}/chunked?parts=4", timeout=5)
    assert r.text == "part0;part1;part2;part3;"


def test_upstream_down_gives_502_json(make_gateway):
    gateway = make_gateway(f"http://127.0.0.1:{free_port()}")
    r = requests.get(f"{gateway.url}/v1/databases", timeout=10)
    assert r.status_code == 502
    assert r.headers["Content-Type"] == "application/json"
    body = assert_json_error(r, "upstream_unavailable")
    assert body["request_id"] == r.headers["X-Request-Id"]


def test_upstream_silent_gives_504_within_timeout(make_gateway, upstream):
    gateway = make_gateway(upstream.url, upstream='response_timeout = "1s"')
    started = time.monotonic()
    r = requests.get(f"{gateway.url}/silent", timeout=10)
    elapsed = time.monotonic() - started
    assert r.status_code == 504
    assert_json_error(r, "upstream_timeout")
    # response_timeout is 1 s: not before it, and not much after it.
    assert 1.0 <= elapsed < 1.0 + scaled(0.5), elapsed
    # The client connection stays usable after a gateway-made error.
    assert requests.get(f"{gateway.url}/ok", timeout=5).status_code == 200


def test_oversized_headers_give_431(make_gateway, upstream):
    gateway = make_gateway(upstream.url, server='max_header_bytes = "8KiB"')
    r = requests.get(f"{gateway.url}/v1", headers={"X-Big": "a" * 9000}, timeout=5)
    assert r.status_code == 431
    assert_json_error(r, "request_header_fields_too_large")
    r = requests.get(f"{gateway.url}/v1", headers={f"X-H{i}": "b" * 100 for i in range(100)}, timeout=5)
    assert r.status_code == 431
    assert upstream.requests() == []


def test_oversized_body_gives_413(make_gateway, upstream):
    gateway = make_gateway(upstream.url, server="max_body_bytes = 1000")
    r = requests.post(f"{gateway.url}/v1", data=b"z" * 1001, timeout=5)
    assert r.status_code == 413
    assert_json_error(r, "request_too_large")
    assert upstream.requests() == []

    def gen():
        for _ in range(20):
            yield b"z" * 100

    r = requests.post(f"{gateway.url}/v1", data=gen(), timeout=5)
    assert r.status_code == 413
    assert_json_error(r, "request_too_large")
    assert requests.post(f"{gateway.url}/v1", data=b"z" * 1000, timeout=5).status_code == 200


def test_slow_header_sender_is_dropped_while_others_are_served(make_gateway, upstream):
    gateway = make_gateway(upstream.url, server='header_timeout = "1s"')
    slow = socket.create_connection(("127.0.0.1", gateway.port))
    slow.settimeout(5)
    started = time.monotonic()
    closed_after = None
    answer = b""
    for piece in [b"GET /v1/slow", b"loris HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n", b"X-B: 2\r\n", b"X-C: 3\r\n"]:
        try:
            slow.sendall(piece)
        except OSError:
            break
        # Another client is served normally meanwhile.
        assert requests.get(f"{gateway.url}/fast", timeout=5).status_code == 200
        # Stop sending once the gateway has answered, so the close is timed from its answer.
        if select.select([slow], [], [], 0.35)[0]:
            break
    try:
        while True:
            data = slow.recv(4096)
            if not data:
                break
            answer += data
    except OSError:
        pass
    closed_after = time.monotonic() - started
    slow.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    # header_timeout is 1 s from the connection's start.
    assert 1.0 <= closed_after < 1.0 + scaled(0.6), closed_after
    assert all(r["path"] != "/v1/slowloris" for r in upstream.requests())


def test_idle_keep_alive_connection_is_closed(make_gateway, upstream):
    gateway = make_gateway(upstream.url, server='idle_timeout = "1s"')
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as s:
        s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        data = s.recv(65536)
        assert data.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        while s.recv(65536):
            pass
        # idle_timeout is 1 s from the end of the last response.
        idle = time.monotonic() - started
        assert 0.9 < idle < 1.0 + scaled(0.5), idle


def test_pipelined_requests_are_answered_in_order(gateway, upstream):
    raw = raw_exchange(
        gateway.port,
        b"GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    paths = re.findall(rb'"path": "([^"]+)"', raw)
    assert paths == [b"/slow?ms=300", b"/second", b"/third"]
    assert raw.count(b"HTTP/1.1 200 OK") == 3


def test_head_request_and_upstream_connection_close(gateway, upstream):
    r = requests.head(f"{gateway.url}/v1/databases", timeout=5)
    assert r.status_code == 200 and r.content == b""
    with requests.Session() as session:
        for _ in range(3):
            r = session.get(f"{gateway.url}/close", timeout=5)
            assert r.status_code == 200
            assert r.json()["path"] == "/close"


def test_max_connections_refuses_extra_connections(make_gateway, upstream):
    gateway = make_gateway(upstream.url, server="max_connections = 2")
    held = []
    for index in range(2):
        # Inside an exchange: a connection waiting for a request would be closed instead.
        s = wait_until(lambda: admitted_connection(gateway.port, then=f"/slow?ms=10000&held={index}"), 5)
        assert s is not None, "no connection admitted"
        upstream.wait_for_path(f"/slow?ms=10000&held={index}")
        held.append(s)
    a, b = held
    c = socket.create_connection(("127.0.0.1", gateway.port))
    c.settimeout(scaled(3))
    try:
        c.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        # Refused means closed (EOF or reset); a receive timeout raises and fails the test.
        refused = c.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        refused = True
    assert refused
    for s in (a, b, c):
        s.close()

    def served_after():
        try:
            return requests.get(f"{gateway.url}/after", timeout=5).status_code == 200
        except requests.exceptions.ConnectionError:
            return False

    assert wait_until(served_after, 5), "a slot was not freed after the held connections closed"
    gateway.wait_for_log(lambda l: l.get("msg") == "connection refused: max_connections reached")


def test_max_connections_closes_a_connection_waiting_for_a_request_to_admit_a_new_one(make_gateway, upstream):
    gateway = make_gateway(upstream.url, server="max_connections = 2")
    held = []
    for _ in range(2):
        s = wait_until(lambda: admitted_connection(gateway.port), 5)
        assert s is not None, "no connection admitted"
        held.append(s)
    # Both slots hold idle keep-alive connections: the newcomer is served, and one of them
    # (the one waiting longest on the newcomer's event loop) is closed.
    r = requests.get(f"{gateway.url}/newcomer", headers={"Connection": "close"}, timeout=5)
    assert r.status_code == 200

    def closed(s):
        s.settimeout(0.05)
        try:
            return s.recv(100) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    assert wait_until(lambda: sum(1 for s in held if closed(s)) == 1, 5)
    for s in held:
        s.close()
    gateway.wait_for_log(lambda l: l.get("msg") == "connection waiting for a request closed: max_connections reached")
    assert not any(l.get("msg") == "connection refused: max_connections reached" for l in gateway.log_lines())


def test_access_log_has_one_json_line_per_request(gateway, upstream):
    r = requests.get(f"{gateway.url}/v1/reports?token=secret-value", timeout=5)
    request_id = r.headers["X-Request-Id"]
    line = gateway.wait_for_log(lambda l: l.get("request_id") == request_id)
    assert line["msg"] == "request" and line["log"] == "access"
    assert line["status"] == 200 and line["method"] == "GET" and line["path"] == "/v1/reports"
    assert isinstance(line["total_us"], int) and isinstance(line["upstream_us"], int)
    assert "secret-value" not in (gateway.log_path.read_text())
    assert "time" in line and line["level"] == "info"
