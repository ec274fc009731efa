"""OAuth tokens as credentials on the request path (issue 12): the gateway's own JWT access
tokens minted for a client, opaque access tokens stored in Redis, and tokens of another
authorization server checked by RFC 7662 introspection against a stub server in this test.
Real redis-server, gateway binary and recording upstream."""

import base64
import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt as pyjwt
import pytest
import requests

from conftest import (AUDIENCE, OWN_ISSUER, USER_ROUTES, bearer, free_port, header, jwt_session_tail, scaled,
                      seconds_until_refused, wait_until)
from test_sessions import Secrets

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
