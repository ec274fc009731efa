"""OAuth tokens as credentials on the request path (issue 12): the gateway's own JWT access
tokens minted for a client, opaque access tokens stored in Redis, and tokens of another
authorization server checked by RFC 7662 introspection against a stub server in this test.
Real redis-server, gateway binary and recording upstream."""

import base64
import hashlib
import json
import os
import re
import signal
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt as pyjwt
import pytest
import requests

from conftest import (AUDIENCE, OWN_ISSUER, USER_ROUTES, bearer, free_port, header, jwt_session_tail, scaled,
                      seconds_until_refused, wait_until)
from test_admin import admin_port
from test_sessions import Secrets
from test_tls import PKI

ROUTES = USER_ROUTES
PREFIX = "dbgw:"


@pytest.fixture
def secrets(tmp_path):
    return Secrets(tmp_path)


@pytest.fixture
def oauth_tail(redis_server, secrets):
    def make(extra: str = ""):
        return jwt_session_tail(redis_server.port, secrets.pepper, secrets.signing_key_file, "RS256") + extra
    return make


def opaque_token() -> str:
    return "dbaudit_at_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def store_opaque_token(redis_server, token: str, client_id="cid_reports", subject="client:cid_reports",
                       scopes=("read:databases",), lifetime=600) -> dict:
    """Writes the record exactly as RedisOpaqueAccessTokenStore does: JSON under
    P oauth-at:<sha256 hex>, expiring with the token."""
    now = int(time.time())
    record = {"client_id": client_id, "subject": subject, "scopes": list(scopes), "token_id": os.urandom(8).hex(),
              "issued_at": now, "expires_at": now + lifetime}
    reply = redis_server.command("SET", f"{PREFIX}oauth-at:{sha256_hex(token)}", json.dumps(record), "EX",
                                 str(lifetime), "NX")
    assert reply == b"+OK\r\n", reply
    return record


def revoke_opaque_token(redis_server, token: str) -> None:
    """What the store's revocation does: delete the record, then announce it."""
    digest = sha256_hex(token)
    redis_server.command("DEL", f"{PREFIX}oauth-at:{digest}")
    redis_server.command("PUBLISH", f"{PREFIX}events", f"revoke oauth-at {digest}")


def own_access_token(secrets, client_id="cid_reports", sub="client:cid_reports", scope="read:databases",
                     audience=AUDIENCE, lifetime=300, jti=None) -> str:
    """An access token as our token endpoint mints it for a client (RFC 9068), signed with
    the configured signing key."""
    now = int(time.time())
    claims = {"iss": OWN_ISSUER, "sub": sub, "aud": audience, "iat": now, "nbf": now, "exp": now + lifetime,
              "jti": jti or os.urandom(12).hex(), "scope": scope, "client_id": client_id}
    key = secrets.signing_key
    return pyjwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.kid, "typ": "at+jwt"})


def last_request(upstream, path="/v1/databases") -> dict:
    return [r for r in upstream.requests() if r["path"] == path][-1]


# --- Own JWT access tokens of a client --------------------------------------------------------


def test_own_jwt_with_client_id_is_an_oauth_principal(make_gateway, upstream, oauth_tail, secrets):
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=oauth_tail())
    token = own_access_token(secrets)
    r = requests.get(f"{gateway.url}/v1/databases", headers={**bearer(token), "X-DBAudit-Client-Id": "forged",
                                                             "X-DBAudit-Credential": "api_key"}, timeout=5)
    assert r.status_code == 200, r.text
    seen = last_request(upstream)
    assert header(seen, "X-DBAudit-Credential") == ["oauth"]
    assert header(seen, "X-DBAudit-Client-Id") == ["cid_reports"]
    assert header(seen, "X-DBAudit-Subject") == ["client:cid_reports"]
    assert header(seen, "X-DBAudit-Scopes") == ["read:databases"]
    # Scopes still decide.
    r = requests.get(f"{gateway.url}/v1/logs", headers=bearer(token), timeout=5)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"


def test_own_jwt_for_another_audience_is_401(make_gateway, upstream, oauth_tail, secrets):
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=oauth_tail())
    token = own_access_token(secrets, audience="another-api")
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert "audience" in r.json()["error_description"]
    assert not [x for x in upstream.requests() if x["path"] == "/v1/databases"]


def test_revoked_access_token_jti_is_refused_on_a_second_instance_within_1s(make_gateway, upstream, oauth_tail,
                                                                             secrets, redis_server):
    tail = oauth_tail()
    a = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    b = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    jti = os.urandom(12).hex()
    exp = int(time.time()) + 300
    token = own_access_token(secrets, jti=jti)
    for gateway in (a, b):
        for _ in range(4):  # both event loops of both instances have verified and cached it
            assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5).status_code == 200
    # What the revocation endpoint does for an access token: deny its jti everywhere.
    redis_server.command("SET", f"{PREFIX}jti:{jti}", "1", "EX", "600")
    start = time.monotonic()
    redis_server.command("PUBLISH", f"{PREFIX}events", f"revoke jti {exp} {jti}")
    elapsed = seconds_until_refused(f"{b.url}/v1/databases", token, 3, since=start, probes=4)
    print(f"\nrevoked access token refused on B after {elapsed * 1000 if elapsed else -1:.0f} ms")
    assert elapsed is not None and elapsed < scaled(1.0)
    assert seconds_until_refused(f"{a.url}/v1/databases", token, 1, probes=4) is not None


# --- Opaque access tokens of ours ----------------------------------------------------------------


def test_opaque_access_token_is_an_oauth_principal(make_gateway, upstream, oauth_tail, redis_server):
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=oauth_tail())
    token = opaque_token()
    store_opaque_token(redis_server, token, scopes=["read:databases"])
    r = requests.get(f"{gateway.url}/v1/databases", headers={**bearer(token), "X-DBAudit-Client-Id": "forged"},
                     timeout=5)
    assert r.status_code == 200, r.text
    seen = last_request(upstream)
    assert header(seen, "X-DBAudit-Credential") == ["oauth"]
    assert header(seen, "X-DBAudit-Client-Id") == ["cid_reports"]
    assert header(seen, "X-DBAudit-Subject") == ["client:cid_reports"]
    r = requests.get(f"{gateway.url}/v1/logs", headers=bearer(token), timeout=5)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    # Unknown and malformed tokens of our prefix: 401.
    for other in (opaque_token(), "dbaudit_at_short"):
        r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(other), timeout=5)
        assert r.status_code == 401 and r.json()["error"] == "invalid_token", r.text


def test_revoked_opaque_token_is_refused_on_a_second_instance_within_1s(make_gateway, upstream, oauth_tail,
                                                                         redis_server):
    tail = oauth_tail()
    a = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    b = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    token = opaque_token()
    store_opaque_token(redis_server, token)
    for gateway in (a, b):
        for _ in range(4):  # cached on both event loops of both instances
            assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5).status_code == 200
    lookups = redis_server.command_calls("get")
    assert requests.get(f"{b.url}/v1/databases", headers=bearer(token), timeout=5).status_code == 200
    assert redis_server.command_calls("get") == lookups, "a cached opaque token was looked up again"
    start = time.monotonic()
    revoke_opaque_token(redis_server, token)
    elapsed = seconds_until_refused(f"{b.url}/v1/databases", token, 3, since=start, probes=4)
    print(f"\nrevoked opaque token refused on B after {elapsed * 1000 if elapsed else -1:.0f} ms")
    assert elapsed is not None and elapsed < scaled(1.0)


def test_opaque_token_with_redis_down_is_503_never_401(make_gateway, upstream, oauth_tail, redis_server):
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=oauth_tail())
    token = opaque_token()
    store_opaque_token(redis_server, token)
    redis_server.kill9()
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5)
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "auth_unavailable" and r.headers["Retry-After"] == "1"


# --- Tokens of another authorization server: RFC 7662 introspection ---------------------------

STUB_CLIENT_ID = "gateway client"
STUB_SECRET = "s3cret:with/odd&chars"


class IntrospectionStub:
    """A small authorization server's introspection endpoint on 127.0.0.1: answers per token
    from `answers`, counts the calls per token, checks client_secret_basic (form-encoded
    id and secret, RFC 6749 §2.3.1). `mode` "slow" answers after 3 s, "garbage" with a
    non-JSON body; `stop()` takes the port down."""

    def __init__(self, tls: tuple | None = None):
        self.answers = {}
        self.scheme = "https" if tls else "http"
        self.calls = {}
        self.mode = "normal"
        self.bad_auth = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                form = parse_qs(body, strict_parsing=True)
                token = form["token"][0]
                expected = "Basic " + base64.b64encode(
                    b"gateway+client:s3cret%3Awith%2Fodd%26chars").decode()
                if self.headers.get("Authorization") != expected \
                        or self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
                    stub.bad_auth += 1
                    return self.answer(401, b'{"error":"invalid_client"}')
                stub.calls[token] = stub.calls.get(token, 0) + 1
                if stub.mode == "slow":
                    time.sleep(3)
                if stub.mode == "garbage":
                    return self.answer(200, b"<html>not json</html>")
                self.answer(200, json.dumps(stub.answers.get(token, {"active": False})).encode())

            def answer(self, status, payload):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/oauth2/introspect"

    def active(self, token: str, scope="read:databases", lifetime=300, **extra) -> None:
        now = int(time.time())
        self.answers[token] = {"active": True, "sub": "ext-user-7", "client_id": "partner-app", "scope": scope,
                               "iss": "https://login.partner.test", "exp": now + lifetime, "iat": now, **extra}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    server = IntrospectionStub()
    yield server
    server.stop()


@pytest.fixture
def introspecting_gateway(make_gateway, upstream, oauth_tail, stub, tmp_path):
    def make(cache_max="60s", negative_ttl="10s", timeout="300ms", url=None, ca_file=None):
        secret = tmp_path / "introspection-secret"
        secret.write_text(STUB_SECRET + "\n")
        block = f"""
[[auth.oauth.introspection]]
endpoint = "{url or stub.url}"
client_id = "{STUB_CLIENT_ID}"
client_secret_file = "{secret}"
timeout = "{timeout}"
cache_max = "{cache_max}"
negative_ttl = "{negative_ttl}"
{f'ca_file = "{ca_file}"' if ca_file else ""}

[admin]
listen = "127.0.0.1:0"
"""
        return make_gateway(upstream.url, routes=ROUTES, tail=oauth_tail(block))
    return make


def metric(gateway, name: str) -> int:
    text = requests.get(f"http://127.0.0.1:{admin_port(gateway)}/metrics", timeout=5).text
    return int(re.search(rf"^{name} (\d+)$", text, re.M)[1])


def external_token() -> str:
    return "ext." + base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")


def test_active_token_is_admitted_and_introspected_once(introspecting_gateway, stub, upstream, redis_server):
    gateway = introspecting_gateway()
    token = external_token()
    stub.active(token)
    for _ in range(4):  # new connections: both event loops, the second one from Redis
        r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5)
        assert r.status_code == 200, r.text
    assert stub.calls == {token: 1}, stub.calls
    assert stub.bad_auth == 0
    assert metric(gateway, "dbgw_introspection_requests_total") == 1
    assert metric(gateway, "dbgw_introspection_cache_hits_total") >= 1
    seen = last_request(upstream)
    assert header(seen, "X-DBAudit-Credential") == ["oauth"]
    assert header(seen, "X-DBAudit-Subject") == ["ext-user-7"]
    assert header(seen, "X-DBAudit-Client-Id") == ["partner-app"]
    assert header(seen, "X-DBAudit-Scopes") == ["read:databases"]
    assert header(seen, "X-DBAudit-Issuer") == ["https://login.partner.test"]
    # Shared by every instance under P introspect:<sha256>, never longer than cache_max.
    key = f"{PREFIX}introspect:{sha256_hex(token)}"
    ttl = int(redis_server.command("TTL", key).split(b"\r\n")[0][1:])
    assert 0 < ttl <= 60, ttl
    assert token.encode() not in redis_server.command("GET", key)


def test_a_second_instance_uses_the_shared_answer(introspecting_gateway, stub):
    a = introspecting_gateway()
    b = introspecting_gateway()
    token = external_token()
    stub.active(token)
    assert requests.get(f"{a.url}/v1/databases", headers=bearer(token), timeout=5).status_code == 200
    for _ in range(4):
        assert requests.get(f"{b.url}/v1/databases", headers=bearer(token), timeout=5).status_code == 200
    assert stub.calls == {token: 1}, stub.calls


def test_scopes_come_from_the_introspection_answer(introspecting_gateway, stub):
    gateway = introspecting_gateway()
    token = external_token()
    stub.active(token, scope="read:logs")
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope", r.text
    assert requests.get(f"{gateway.url}/v1/logs", headers=bearer(token), timeout=5).status_code == 200
    assert stub.calls == {token: 1}


def test_inactive_token_is_401_and_remembered(introspecting_gateway, stub, redis_server):
    gateway = introspecting_gateway(negative_ttl="10s")
    token = external_token()  # the stub knows nothing of it: active false
    for _ in range(3):
        r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5)
        assert r.status_code == 401 and r.json()["error"] == "invalid_token", r.text
    assert stub.calls == {token: 1}
    ttl = int(redis_server.command("TTL", f"{PREFIX}introspect:{sha256_hex(token)}").split(b"\r\n")[0][1:])
    assert 0 < ttl <= 10, ttl
    # A token of our own prefix is never sent to another server.
    ours = opaque_token()
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(ours), timeout=5)
    assert r.status_code == 401 and ours not in stub.calls


def test_expired_token_is_401(introspecting_gateway, stub):
    gateway = introspecting_gateway()
    expired = external_token()
    stub.active(expired, lifetime=-5)  # the server says active, but exp has passed
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(expired), timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token", r.text
    no_exp = external_token()
    stub.active(no_exp)
    del stub.answers[no_exp]["exp"]
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(no_exp), timeout=5).status_code == 401


def test_a_cached_answer_never_outlives_the_tokens_exp(introspecting_gateway, stub):
    gateway = introspecting_gateway(cache_max="300s")
    token = external_token()
    stub.active(token, lifetime=2)
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5).status_code == 200
    assert seconds_until_refused(f"{gateway.url}/v1/databases", token, 5, probes=4) is not None
    assert stub.calls[token] <= 2  # refused from the cache's exp, not by asking again and again


def test_introspection_endpoint_down_slow_or_garbage_is_503_never_401(introspecting_gateway, stub):
    gateway = introspecting_gateway(timeout="300ms")
    for mode in ("garbage", "slow"):
        stub.mode = mode
        token = external_token()
        stub.active(token)
        start = time.monotonic()
        r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=10)
        assert r.status_code == 503, (mode, r.text)
        assert r.json()["error"] == "auth_unavailable" and r.headers["Retry-After"] == "1"
        if mode == "slow":
            assert time.monotonic() - start < scaled(2.5), "the gateway waited past its timeout"
        # A failure is never remembered: with the endpoint healthy again, the token works.
        stub.mode = "normal"
        r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=10)
        assert r.status_code == 200, (mode, r.text)
    token = external_token()
    stub.active(token)
    stub.stop()
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5)
    assert r.status_code == 503 and r.json()["error"] == "auth_unavailable", r.text


def test_wrong_client_credentials_at_the_endpoint_are_503(make_gateway, upstream, oauth_tail, stub, tmp_path):
    secret = tmp_path / "wrong-secret"
    secret.write_text("not-the-secret\n")
    block = f"""
[[auth.oauth.introspection]]
endpoint = "{stub.url}"
client_id = "{STUB_CLIENT_ID}"
client_secret_file = "{secret}"
"""
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=oauth_tail(block))
    token = external_token()
    stub.active(token)
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5)
    assert r.status_code == 503 and r.json()["error"] == "auth_unavailable", r.text
    assert stub.bad_auth == 1


def test_https_endpoint_is_verified_against_its_ca_file(introspecting_gateway, tmp_path):
    directory = tmp_path / "pki"
    directory.mkdir()
    pki = PKI(directory)
    tls_stub = IntrospectionStub(tls=(pki.path("server.pem"), pki.path("server.key")))
    try:
        token = external_token()
        tls_stub.active(token)
        trusted = introspecting_gateway(url=tls_stub.url, ca_file=pki.path("ca.pem"), timeout="2s")
        r = requests.get(f"{trusted.url}/v1/databases", headers=bearer(token), timeout=10)
        assert r.status_code == 200, r.text
        # A certificate from a CA the gateway was not told to trust: the endpoint is not
        # asked at all, and the request is a 503, never a 401.
        other = external_token()
        tls_stub.active(other)
        untrusted = introspecting_gateway(url=tls_stub.url, ca_file=pki.path("other-ca.pem"), timeout="2s")
        r = requests.get(f"{untrusted.url}/v1/databases", headers=bearer(other), timeout=10)
        assert r.status_code == 503 and r.json()["error"] == "auth_unavailable", r.text
        assert other not in tls_stub.calls
    finally:
        tls_stub.stop()



def test_a_reload_turns_introspection_on(make_gateway, upstream, oauth_tail, stub, tmp_path):
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=oauth_tail())
    token = external_token()
    stub.active(token)
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5)
    assert r.status_code == 401 and "not recognised" in r.json()["error_description"], r.text
    secret = tmp_path / "reload-secret"
    secret.write_text(STUB_SECRET + "\n")
    gateway.tail = oauth_tail(f"""
[[auth.oauth.introspection]]
endpoint = "{stub.url}"
client_id = "{STUB_CLIENT_ID}"
client_secret_file = "{secret}"
""")
    gateway.write_config(upstream.url)
    gateway.signal(signal.SIGHUP)
    gateway.wait_for_log(lambda line: line.get("msg") == "configuration reloaded")
    for _ in range(4):  # every event loop took the new setup
        assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5).status_code == 200
    assert stub.calls[token] >= 1
