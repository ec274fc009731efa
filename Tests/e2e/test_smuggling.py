"""Request smuggling and malformed framing: each gets a 400 JSON error and nothing reaches
the upstream (a recording upstream proves it)."""

import json
import re

import pytest

from conftest import parse_response, raw_exchange

CASES = {
    "cl_then_te": b"POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_then_cl": b"POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "differing_duplicate_cl": b"POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "cl_list_differing": b"POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "plus_cl": b"POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
    "negative_cl": b"POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\nhello",
    "chunk_size_hex_prefix": b"POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\naaaaaaaaaaaaaaaa\r\n0\r\n\r\n",
    "chunk_size_underscore": b"POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\naaaaaaaaaaaaaaaa\r\n0\r\n\r\n",
    "bare_lf_request_line": b"GET /v1 HTTP/1.1\nHost: a\n\n",
    "bare_lf_in_headers": b"GET /v1 HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n",
    "bare_lf_chunks": b"POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
    "obs_fold": b"GET /v1 HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "space_before_colon": b"GET /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "te_not_chunked": b"POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te_identity": b"POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello",
    "missing_host": b"GET /v1 HTTP/1.1\r\n\r\n",
    "two_hosts": b"GET /v1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "host_with_space": b"GET /v1 HTTP/1.1\r\nHost: a b\r\n\r\n",
    "host_with_slash": b"GET /v1 HTTP/1.1\r\nHost: a/b\r\n\r\n",
    "host_with_userinfo": b"GET /v1 HTTP/1.1\r\nHost: u@a\r\n\r\n",
    "absolute_form": b"GET http://internal/v1 HTTP/1.1\r\nHost: a\r\n\r\n",
    "nul_in_header": b"GET /v1 HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
    "http_0_9": b"GET /v1\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_request_is_refused_before_the_upstream(gateway, upstream, name):
    raw = raw_exchange(gateway.port, CASES[name])
    status, headers, body = parse_response(raw)
    assert status == 400, (name, raw[:200])
    assert headers["content-type"] == "application/json"
    assert headers.get("connection") == "close"
    error = json.loads(body)
    assert error["error"] == "invalid_request"
    assert error["request_id"]
    assert upstream.requests() == [], name


def test_smuggled_second_request_never_reaches_upstream(gateway, upstream):
    # A classic CL.TE payload: if the gateway used Content-Length and the upstream
    # chunked framing, "GET /admin" would be smuggled.
    payload = (
        b"POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    raw = raw_exchange(gateway.port, payload)
    assert raw.startswith(b"HTTP/1.1 400")
    assert len(re.findall(rb"HTTP/1\.1 \d{3} ", raw)) == 1
    assert upstream.requests() == []


def test_valid_requests_still_pass(gateway, upstream):
    raw = raw_exchange(
        gateway.port,
        b"POST /v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 200")
    assert upstream.requests()[-1]["body_bytes"] == 5
