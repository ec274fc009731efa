"""Issue 12, the token side of the OAuth 2.0 authorization server, end to end with plain
`requests`: the token endpoint's three grants and client authentication, code reuse and the
revocation it triggers, PKCE, redirect URI and client binding, refresh rotation with the
retry grace (also for /v1/auth/refresh), revocation, introspection, metadata and the JSON
errors. Codes are written into Redis exactly as the store writes them (the authorize pages
have their own tests); everything else goes through the real binary, Redis and CLI."""

import base64
import hashlib
import json
import os
import threading
import time
import urllib.parse

import jwt as pyjwt
import pytest
import requests

from conftest import (AUDIENCE, OWN_ISSUER, USER_ROUTES, add_user, bearer, header, jwt_session_tail, login, scaled,
                      set_user_disabled, wait_until, write_pepper)
from jwks_server import SigningKey

PREFIX = "dbgw:"
SCOPES = ["read:databases", "read:logs"]
CALLBACK = "https://app.example.test/callback"
LOOPBACK = "http://127.0.0.1:43117/cb"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_pair():
    verifier = b64url(os.urandom(32))
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


class OAuth:
    """A gateway with [oauth] and four clients, its Redis and a user."""

    SECRET = "cs-" + "a1B2" * 10
    OTHER_SECRET = "cs-" + "z9Y8" * 10
    MACHINE_SECRET = "cs-" + "m7N6" * 10

    def __init__(self, tmp_path, make_gateway, upstream, redis_server, jwt_settings="", oauth_settings="", issuer=OWN_ISSUER):
        self.redis = redis_server
        pepper = write_pepper(tmp_path / "pepper")
        key = SigningKey("RS256", kid="gw-rs256")
        key_file = tmp_path / "signing-key.pem"
        key_file.write_bytes(key.private_pem())
        for name, secret in [("app", self.SECRET), ("other", self.OTHER_SECRET), ("machine", self.MACHINE_SECRET)]:
            (tmp_path / f"{name}.secret").write_text(secret + "\n")
        tail = jwt_session_tail(redis_server.port, pepper, key_file, "RS256", jwt_settings).replace(
            f'issuer = "{OWN_ISSUER}"', f'issuer = "{issuer}"') + f"""
[oauth]
{oauth_settings}

[[oauth.clients]]
id = "app"
name = "Reports app"
redirect_uris = ["{CALLBACK}", "http://127.0.0.1/cb"]
grant_types = ["authorization_code", "refresh_token", "client_credentials"]
scopes = ["read:databases", "read:logs", "write:policies"]
secret_file = "{tmp_path / 'app.secret'}"

[[oauth.clients]]
id = "spa"
name = "Browser app"
public = true
redirect_uris = ["http://127.0.0.1/cb"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["read:databases", "read:logs"]

[[oauth.clients]]
id = "other"
name = "Other app"
redirect_uris = ["{CALLBACK}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["read:databases", "read:logs"]
secret_file = "{tmp_path / 'other.secret'}"

[[oauth.clients]]
id = "machine"
name = "Nightly export"
grant_types = ["client_credentials"]
scopes = ["read:logs", "read:reports"]
resource_server = true
secret_file = "{tmp_path / 'machine.secret'}"

[[oauth.clients]]
id = "opaque-app"
name = "Opaque tokens"
grant_types = ["client_credentials"]
scopes = ["read:logs"]
token_format = "opaque"
secret_file = "{tmp_path / 'machine.secret'}"
"""
        self.gateway = make_gateway(upstream.url, routes=USER_ROUTES, tail=tail)
        self.url = self.gateway.url
        self.user = add_user(self.gateway, "ada@example.test", SCOPES)

    def code(self, client_id="app", redirect_uri=CALLBACK, challenge=None, scopes=SCOPES, expires_in=60, user=None):
        """A code record written under P oauth-code:<sha256> exactly as storeCode writes it."""
        user = user or self.user
        code = b64url(os.urandom(32))
        now = int(time.time())
        record = {"client_id": client_id, "redirect_uri": redirect_uri, "user_id": user["id"], "email": user["email"],
                  "scopes": scopes, "issued_at": now, "expires_at": now + expires_in}
        if challenge is not None:
            record["code_challenge"] = challenge
        digest = hashlib.sha256(code.encode()).hexdigest()
        reply = self.redis.command("SET", f"{PREFIX}oauth-code:{digest}", json.dumps(record, sort_keys=True, separators=(",", ":")),
                                   "EX", str(max(1, expires_in + 5)), "NX")
        assert reply.startswith(b"+OK"), reply
        return code

    def token(self, data, auth=None, session=None):
        client = session or requests
        return client.post(f"{self.url}/oauth/token", data=data, auth=auth, timeout=15)

    def exchange(self, code, verifier=None, client=("app", SECRET), redirect_uri=CALLBACK, session=None):
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if verifier is not None:
            data["code_verifier"] = verifier
        if client[1] is None:
            data["client_id"] = client[0]
            return self.token(data, session=session)
        return self.token(data, auth=client, session=session)

    def refresh(self, token, client=("app", SECRET), scope=None, session=None):
        data = {"grant_type": "refresh_token", "refresh_token": token}
        if scope is not None:
            data["scope"] = scope
        return self.token(data, auth=client, session=session)

    def tokens(self, client=("app", SECRET), scopes=SCOPES):
        verifier, challenge = pkce_pair()
        r = self.exchange(self.code(client_id=client[0], challenge=challenge, scopes=scopes), verifier, client=client)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def oauth(tmp_path, make_gateway, upstream, redis_server):
    return OAuth(tmp_path, make_gateway, upstream, redis_server)


def assert_error(r, status, code):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code, body
    assert body["request_id"] == r.headers["X-Request-Id"]
    return body


def assert_invalid_client(r):
    assert_error(r, 401, "invalid_client")
    assert r.headers["WWW-Authenticate"] == 'Basic realm="dbaudit-gateway"'


def databases(oauth, access):
    return requests.get(f"{oauth.url}/v1/databases", headers=bearer(access), timeout=5).status_code


# --- authorization_code -------------------------------------------------------------------

def test_authorization_code_with_pkce_issues_a_jwt_pair_with_no_store_headers(oauth, upstream):
    verifier, challenge = pkce_pair()
    r = oauth.exchange(oauth.code(challenge=challenge), verifier)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "read:databases read:logs"
    assert body["refresh_token"].startswith("dbaudit_rt_")
    assert pyjwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    claims = pyjwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["iss"] == OWN_ISSUER and claims["aud"] == AUDIENCE and claims["client_id"] == "app"
    assert claims["sub"] == oauth.user["id"] and claims["scope"] == "read:databases read:logs" and claims["jti"]
    assert databases(oauth, body["access_token"]) == 200
    assert header(upstream.requests()[-1], "X-DBAudit-Subject") == [oauth.user["id"]]


def test_a_public_client_exchanges_with_client_id_and_pkce_only(oauth):
    verifier, challenge = pkce_pair()
    r = oauth.exchange(oauth.code("spa", "http://127.0.0.1/cb", challenge), verifier, client=("spa", None), redirect_uri="http://127.0.0.1/cb")
    assert r.status_code == 200, r.text
    assert oauth.refresh(r.json()["refresh_token"], client=None).status_code == 401  # needs client identification
    r2 = oauth.token({"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"], "client_id": "spa"})
    assert r2.status_code == 200, r2.text


def test_code_reuse_is_refused_and_revokes_the_tokens_it_issued(oauth):
    verifier, challenge = pkce_pair()
    code = oauth.code(challenge=challenge)
    first = oauth.exchange(code, verifier)
    assert first.status_code == 200
    tokens = first.json()
    assert databases(oauth, tokens["access_token"]) == 200
    refreshed = oauth.refresh(tokens["refresh_token"]).json()
    body = assert_error(oauth.exchange(code, verifier), 400, "invalid_grant")
    assert "already used" in body["error_description"]
    # What the first redemption issued is dead: the refresh family, the access token, and the
    # access tokens refreshed from it since.
    assert_error(oauth.refresh(refreshed["refresh_token"]), 400, "invalid_grant")
    assert wait_until(lambda: databases(oauth, tokens["access_token"]) == 401, timeout=scaled(2))
    assert wait_until(lambda: databases(oauth, refreshed["access_token"]) == 401, timeout=scaled(2))


def test_twenty_parallel_redemptions_exactly_one_succeeds(oauth):
    verifier, challenge = pkce_pair()
    code = oauth.code(challenge=challenge)
    sessions = [requests.Session() for _ in range(20)]
    for session in sessions:
        assert session.get(f"{oauth.url}/.well-known/oauth-authorization-server", timeout=5).status_code == 200
    barrier = threading.Barrier(20)
    statuses, lock = [], threading.Lock()

    def redeem(session):
        barrier.wait(timeout=10)
        r = oauth.exchange(code, verifier, session=session)
        with lock:
            statuses.append((r.status_code, r.text))

    threads = [threading.Thread(target=redeem, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for session in sessions:
        session.close()
    assert sorted(status for status, _ in statuses) == [200] + [400] * 19, statuses
    # The 19 reuses revoked what the one redemption issued.
    tokens = next(json.loads(text) for status, text in statuses if status == 200)
    assert_error(oauth.refresh(tokens["refresh_token"]), 400, "invalid_grant")
    assert wait_until(lambda: databases(oauth, tokens["access_token"]) == 401, timeout=scaled(2))


def test_an_expired_code_is_refused(oauth):
    verifier, challenge = pkce_pair()
    assert_error(oauth.exchange(oauth.code(challenge=challenge, expires_in=-1), verifier), 400, "invalid_grant")
    # And an unknown one.
    assert_error(oauth.exchange(b64url(os.urandom(32)), verifier), 400, "invalid_grant")


@pytest.mark.parametrize("case", ["missing-for-public", "plain", "challenge-without-verifier", "downgrade", "wrong-verifier",
                                  "verifier-too-short", "verifier-too-long", "verifier-bad-alphabet"])
def test_pkce_failures_are_invalid_grant_and_burn_the_code(oauth, case):
    verifier, challenge = pkce_pair()
    client, redirect = ("app", OAuth.SECRET), CALLBACK
    presented = verifier
    if case == "missing-for-public":
        client, redirect, stored, presented = ("spa", None), "http://127.0.0.1/cb", None, None
    elif case == "plain":
        stored = verifier  # what a `plain` challenge would have stored: the verifier itself
    elif case == "challenge-without-verifier":
        stored, presented = challenge, None
    elif case == "downgrade":
        stored = None  # code issued without a challenge, verifier sent anyway
    elif case == "wrong-verifier":
        stored, presented = challenge, pkce_pair()[0]
    elif case == "verifier-too-short":
        presented = verifier[:42]
        stored = b64url(hashlib.sha256(presented.encode()).digest())
    elif case == "verifier-too-long":
        presented = (verifier * 3)[:129]
        stored = b64url(hashlib.sha256(presented.encode()).digest())
    else:
        presented = verifier[:-1] + "+"
        stored = b64url(hashlib.sha256(presented.encode()).digest())
    code = oauth.code(client[0], redirect, stored)
    assert_error(oauth.exchange(code, presented, client=client, redirect_uri=redirect), 400, "invalid_grant")
    # The failed check burned the code: not even the right verifier redeems it now.
    right = verifier if stored == challenge else None
    assert_error(oauth.exchange(code, right, client=client, redirect_uri=redirect), 400, "invalid_grant")


def test_a_token_request_with_another_redirect_uri_fails(oauth):
    verifier, challenge = pkce_pair()
    code = oauth.code(challenge=challenge)
    for other in [CALLBACK + "/", CALLBACK.upper(), "http://127.0.0.1/cb"]:
        assert_error(oauth.exchange(code, verifier, redirect_uri=other), 400, "invalid_grant")
    assert_error(oauth.exchange(code, verifier), 400, "invalid_grant")  # burned by the first attempt
    r = oauth.token({"grant_type": "authorization_code", "code": oauth.code(challenge=challenge), "code_verifier": verifier},
                    auth=("app", OAuth.SECRET))
    assert_error(r, 400, "invalid_request")


def test_codes_and_refresh_tokens_are_bound_to_their_client(oauth):
    verifier, challenge = pkce_pair()
    # Another client presenting app's code.
    code = oauth.code(challenge=challenge)
    assert_error(oauth.exchange(code, verifier, client=("other", OAuth.OTHER_SECRET)), 400, "invalid_grant")
    # Another client presenting app's refresh token: refused, and app's token still works.
    tokens = oauth.tokens()
    assert_error(oauth.refresh(tokens["refresh_token"], client=("other", OAuth.OTHER_SECRET)), 400, "invalid_grant")
    assert oauth.refresh(tokens["refresh_token"]).status_code == 200
    # A first-party session's refresh token is no OAuth grant, and the reverse.
    session = login(oauth.gateway, "ada@example.test").json()
    assert_error(oauth.refresh(session["refresh_token"]), 400, "invalid_grant")
    oauth_refresh = oauth.tokens()["refresh_token"]
    r = requests.post(f"{oauth.url}/v1/auth/refresh", json={"refresh_token": oauth_refresh}, timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid_grant"
    assert oauth.refresh(oauth_refresh).status_code == 200


def test_refresh_cannot_broaden_the_scope(oauth):
    tokens = oauth.tokens(scopes=["read:databases"])
    assert_error(oauth.refresh(tokens["refresh_token"], scope="read:databases read:logs"), 400, "invalid_scope")
    assert_error(oauth.refresh(tokens["refresh_token"], scope="admin"), 400, "invalid_scope")
    # The refusal spent nothing; narrowing (here: the same) is fine.
    r = oauth.refresh(tokens["refresh_token"], scope="read:databases")
    assert r.status_code == 200 and r.json()["scope"] == "read:databases"


def test_a_narrowed_refresh_keeps_the_grant_and_a_scope_at_the_code_exchange_is_ignored(oauth):
    verifier, challenge = pkce_pair()
    r = oauth.token({"grant_type": "authorization_code", "code": oauth.code(challenge=challenge), "redirect_uri": CALLBACK,
                     "code_verifier": verifier, "scope": "read:databases read:logs write:policies admin"}, auth=("app", OAuth.SECRET))
    assert r.status_code == 200 and r.json()["scope"] == "read:databases read:logs"
    narrowed = oauth.refresh(r.json()["refresh_token"], scope="read:logs").json()
    assert narrowed["scope"] == "read:logs"
    # RFC 6749 §6: the new refresh token carries the original grant, not the narrowed one.
    full = oauth.refresh(narrowed["refresh_token"]).json()
    assert full["scope"] == "read:databases read:logs"


def test_altered_refresh_tokens_and_credentials_in_the_query_get_nothing(oauth):
    tokens = oauth.tokens()
    altered = tokens["refresh_token"][:-1] + ("A" if tokens["refresh_token"][-1] != "A" else "B")
    assert_error(oauth.refresh(altered), 400, "invalid_grant")
    assert oauth.refresh(tokens["refresh_token"]).status_code == 200
    # Client credentials in the URL are not credentials.
    r = requests.post(f"{oauth.url}/oauth/token?client_id=machine&client_secret={OAuth.MACHINE_SECRET}",
                      data={"grant_type": "client_credentials"}, timeout=5)
    assert_invalid_client(r)


# --- refresh rotation and the retry grace ---------------------------------------------------

def test_a_refresh_token_presented_again_inside_the_grace_gets_the_same_pair(oauth):
    first = oauth.tokens()
    second = oauth.refresh(first["refresh_token"])
    assert second.status_code == 200
    again = oauth.refresh(first["refresh_token"])
    assert again.status_code == 200, again.text
    assert again.json() == second.json()
    # The successor works; once it is used, the old token is plain reuse and kills the family.
    third = oauth.refresh(second.json()["refresh_token"])
    assert third.status_code == 200
    assert_error(oauth.refresh(first["refresh_token"]), 400, "invalid_grant")
    assert_error(oauth.refresh(third.json()["refresh_token"]), 400, "invalid_grant")


def test_a_refresh_token_reused_outside_the_grace_revokes_the_family(tmp_path, make_gateway, upstream, redis_server):
    oauth = OAuth(tmp_path, make_gateway, upstream, redis_server, jwt_settings='refresh_reuse_grace = "1s"')
    first = oauth.tokens()
    second = oauth.refresh(first["refresh_token"]).json()
    grace_key = f"{PREFIX}refresh-grace:" + hashlib.sha256(first["refresh_token"].encode()).hexdigest()
    assert oauth.redis.command("EXISTS", grace_key) == b":1\r\n"
    # The grace window is over when its key is gone.
    assert wait_until(lambda: oauth.redis.command("EXISTS", grace_key) == b":0\r\n", timeout=scaled(5))
    assert databases(oauth, second["access_token"]) == 200
    assert_error(oauth.refresh(first["refresh_token"]), 400, "invalid_grant")
    assert_error(oauth.refresh(second["refresh_token"]), 400, "invalid_grant")
    # The reuse revoked the grant's access tokens too.
    assert wait_until(lambda: databases(oauth, second["access_token"]) == 401, timeout=scaled(2))
    assert introspect(oauth, first["access_token"]) == {"active": False}


def test_the_grace_answer_is_kept_only_sealed(oauth):
    first = oauth.tokens()
    second = oauth.refresh(first["refresh_token"]).json()
    grace_key = f"{PREFIX}refresh-grace:" + hashlib.sha256(first["refresh_token"].encode()).hexdigest()
    stored = oauth.redis.command("GET", grace_key)
    assert second["refresh_token"].encode() not in stored and second["access_token"].encode()[:40] not in stored
    ttl = int(oauth.redis.command("TTL", grace_key).split(b"\r\n")[0][1:])
    assert 0 < ttl <= 10


def test_concurrent_refreshes_mint_at_most_one_pair_and_lose_no_session(oauth):
    token = oauth.tokens()["refresh_token"]
    sessions = [requests.Session() for _ in range(8)]
    for session in sessions:
        assert session.get(f"{oauth.url}/.well-known/oauth-authorization-server", timeout=5).status_code == 200
    barrier = threading.Barrier(len(sessions))
    answers, lock = [], threading.Lock()

    def race(session):
        barrier.wait(timeout=10)
        r = oauth.refresh(token, session=session)
        with lock:
            answers.append((r.status_code, r.text))

    threads = [threading.Thread(target=race, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(status == 200 for status, _ in answers), answers
    pairs = {json.loads(text)["refresh_token"] for _, text in answers}
    assert len(pairs) == 1, pairs
    assert oauth.refresh(pairs.pop()).status_code == 200


# --- client authentication and the grants' rules --------------------------------------------

def test_invalid_client_is_401_with_a_basic_challenge(oauth):
    cc = {"grant_type": "client_credentials"}
    assert_invalid_client(oauth.token(cc, auth=("machine", "wrong-" + OAuth.MACHINE_SECRET)))
    assert_invalid_client(oauth.token(cc, auth=("nobody", OAuth.MACHINE_SECRET)))
    assert_invalid_client(oauth.token({**cc, "client_id": "machine"}))
    assert_invalid_client(oauth.token({**cc, "client_id": "machine", "client_secret": "nope"}))
    assert_invalid_client(oauth.token(cc))
    assert_invalid_client(oauth.token({"grant_type": "refresh_token", "refresh_token": "x", "client_id": "spa", "client_secret": "s" * 40}))
    assert_invalid_client(requests.post(f"{oauth.url}/oauth/token", data=cc, headers={"Authorization": "Bearer abc"}, timeout=5))
    # Both methods at once is a malformed request.
    r = oauth.token({**cc, "client_secret": OAuth.MACHINE_SECRET}, auth=("machine", OAuth.MACHINE_SECRET))
    assert_error(r, 400, "invalid_request")


def test_client_credentials_with_both_authentication_methods(oauth, upstream):
    basic = oauth.token({"grant_type": "client_credentials"}, auth=("machine", OAuth.MACHINE_SECRET))
    post = oauth.token({"grant_type": "client_credentials", "client_id": "machine", "client_secret": OAuth.MACHINE_SECRET})
    # RFC 6749 §2.3.1: Basic with the id and secret form-urlencoded (here every character).
    encoded = "".join(f"%{b:02X}" for b in b"machine") + ":" + "".join(f"%{b:02X}" for b in OAuth.MACHINE_SECRET.encode())
    urlencoded = requests.post(f"{oauth.url}/oauth/token", data={"grant_type": "client_credentials"}, timeout=5,
                               headers={"Authorization": "Basic " + base64.b64encode(encoded.encode()).decode()})
    for r in (basic, post, urlencoded):
        assert r.status_code == 200, r.text
        assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
        body = r.json()
        assert "refresh_token" not in body and body["scope"] == "read:logs read:reports"
        claims = pyjwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["sub"] == "client:machine" and claims["client_id"] == "machine"
    narrowed = oauth.token({"grant_type": "client_credentials", "scope": "read:logs"}, auth=("machine", OAuth.MACHINE_SECRET))
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "read:logs"
    assert requests.get(f"{oauth.url}/v1/logs", headers=bearer(narrowed.json()["access_token"]), timeout=5).status_code == 200
    assert header(upstream.requests()[-1], "X-DBAudit-Subject") == ["client:machine"]
    assert header(upstream.requests()[-1], "X-DBAudit-Credential") == ["oauth"]
    assert header(upstream.requests()[-1], "X-DBAudit-Client-Id") == ["machine"]
    assert_error(oauth.token({"grant_type": "client_credentials", "scope": "read:logs admin"}, auth=("machine", OAuth.MACHINE_SECRET)),
                 400, "invalid_scope")
    # A public client, and a client without the grant, may not use it.
    assert_error(oauth.token({"grant_type": "client_credentials", "client_id": "spa"}), 400, "unauthorized_client")
    assert_error(oauth.token({"grant_type": "client_credentials"}, auth=("other", OAuth.OTHER_SECRET)), 400, "unauthorized_client")
    assert_error(oauth.token({"grant_type": "authorization_code", "code": "x", "redirect_uri": CALLBACK},
                             auth=("machine", OAuth.MACHINE_SECRET)), 400, "unauthorized_client")


def test_duplicate_parameters_and_malformed_requests_are_refused(oauth):
    auth = ("machine", OAuth.MACHINE_SECRET)
    for body in ["grant_type=client_credentials&grant_type=client_credentials",
                 "grant_type=client_credentials&scope=read:logs&scope=read:logs",
                 f"grant_type=client_credentials&client_id=machine&client_id=machine&client_secret={OAuth.MACHINE_SECRET}",
                 "grant_type=client_credentials&scope=%ZZ",
                 "grant_type=client_credentials&" + "&".join(f"p{i}=v" for i in range(40))]:
        r = requests.post(f"{oauth.url}/oauth/token", data=body, auth=auth, timeout=5,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert_error(r, 400, "invalid_request")
    r = requests.post(f"{oauth.url}/oauth/token", json={"grant_type": "client_credentials"}, auth=auth, timeout=5)
    assert_error(r, 400, "invalid_request")
    assert_error(oauth.token({"client_id": "machine"}, auth=None), 400, "invalid_request")
    for grant in ["password", "implicit", "urn:ietf:params:oauth:grant-type:device_code"]:
        assert_error(oauth.token({"grant_type": grant, "username": "a", "password": "b"}, auth=auth), 400, "unsupported_grant_type")
    r = requests.get(f"{oauth.url}/oauth/token", timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


# --- revocation, introspection, metadata, other paths ----------------------------------------

def introspect(oauth, token, auth=("machine", OAuth.MACHINE_SECRET)):
    r = requests.post(f"{oauth.url}/oauth/introspect", data={"token": token}, auth=auth, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def revoke(oauth, token, auth=("app", OAuth.SECRET), hint=None):
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    r = requests.post(f"{oauth.url}/oauth/revoke", data=data, auth=auth, timeout=5)
    assert r.status_code == 200, r.text
    return r


def test_revoke_and_introspect(oauth):
    tokens = oauth.tokens()
    active = introspect(oauth, tokens["access_token"])
    assert active["active"] is True and active["client_id"] == "app" and active["sub"] == oauth.user["id"]
    assert active["scope"] == "read:databases read:logs" and active["iss"] == OWN_ISSUER and active["exp"] > time.time()
    # A refresh token is described to its own client only.
    assert introspect(oauth, tokens["refresh_token"], auth=("app", OAuth.SECRET))["active"] is True
    assert introspect(oauth, tokens["refresh_token"]) == {"active": False}
    # Unknown, garbage: inactive; no client authentication: 401.
    assert introspect(oauth, "dbaudit_rt_" + "A" * 43) == {"active": False}
    assert introspect(oauth, "nonsense") == {"active": False}
    assert_invalid_client(requests.post(f"{oauth.url}/oauth/introspect", data={"token": tokens["access_token"]}, timeout=5))
    assert_invalid_client(requests.post(f"{oauth.url}/oauth/introspect", data={"token": "x", "client_id": "spa"}, timeout=5))

    # Another client cannot revoke app's tokens (same 200, nothing happens).
    revoke(oauth, tokens["refresh_token"], auth=("other", OAuth.OTHER_SECRET))
    assert introspect(oauth, tokens["refresh_token"], auth=("app", OAuth.SECRET))["active"] is True
    # The refresh token (with a misleading hint): its family, its access tokens and consent go.
    revoke(oauth, tokens["refresh_token"], hint="access_token")
    assert introspect(oauth, tokens["refresh_token"], auth=("app", OAuth.SECRET)) == {"active": False}
    assert_error(oauth.refresh(tokens["refresh_token"]), 400, "invalid_grant")
    assert introspect(oauth, tokens["access_token"]) == {"active": False}
    assert wait_until(lambda: databases(oauth, tokens["access_token"]) == 401, timeout=scaled(2))
    # An access token alone: its jti is denied, here and at the proxy; its refresh token lives on.
    tokens = oauth.tokens()
    assert databases(oauth, tokens["access_token"]) == 200
    revoke(oauth, tokens["access_token"], hint="access_token")
    assert introspect(oauth, tokens["access_token"]) == {"active": False}
    assert wait_until(lambda: databases(oauth, tokens["access_token"]) == 401, timeout=scaled(2))
    assert oauth.refresh(tokens["refresh_token"]).status_code == 200
    # Unknown tokens: 200 as RFC 7009 says, also twice.
    revoke(oauth, "whatever")
    revoke(oauth, "whatever")


def test_revoking_a_grant_forgets_the_consent(oauth):
    tokens = oauth.tokens()
    key = f"{PREFIX}oauth-consent:{oauth.user['id']}:app"
    assert oauth.redis.command("SET", key, '["read:databases","read:logs"]').startswith(b"+OK")
    revoke(oauth, tokens["refresh_token"])
    assert oauth.redis.command("EXISTS", key) == b":0\r\n"


def test_opaque_access_tokens_are_introspected_and_revoked(oauth, upstream):
    r = oauth.token({"grant_type": "client_credentials"}, auth=("opaque-app", OAuth.MACHINE_SECRET))
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert token.startswith("dbaudit_at_") and token.count(".") == 0
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert oauth.redis.command("EXISTS", f"{PREFIX}oauth-at:{digest}") == b":1\r\n"
    described = introspect(oauth, token)
    assert described["active"] is True and described["client_id"] == "opaque-app" and described["sub"] == "client:opaque-app"
    assert requests.get(f"{oauth.url}/v1/logs", headers=bearer(token), timeout=5).status_code == 200
    assert header(upstream.requests()[-1], "X-DBAudit-Client-Id") == ["opaque-app"]
    revoke(oauth, token, auth=("opaque-app", OAuth.MACHINE_SECRET))
    assert introspect(oauth, token) == {"active": False}
    assert wait_until(lambda: requests.get(f"{oauth.url}/v1/logs", headers=bearer(token), timeout=5).status_code == 401,
                      timeout=scaled(2))
    assert oauth.redis.command("EXISTS", f"{PREFIX}oauth-at:{digest}") == b":0\r\n"


def test_metadata_names_the_issuer_of_every_token(oauth):
    r = requests.get(f"{oauth.url}/.well-known/oauth-authorization-server", timeout=5)
    assert r.status_code == 200
    meta = r.json()
    assert meta["issuer"] == OWN_ISSUER
    tokens = oauth.tokens()
    assert pyjwt.decode(tokens["access_token"], options={"verify_signature": False})["iss"] == meta["issuer"]
    assert meta["token_endpoint"] == OWN_ISSUER + "/oauth/token"
    assert meta["authorization_endpoint"] == OWN_ISSUER + "/oauth/authorize"
    assert meta["revocation_endpoint"] == OWN_ISSUER + "/oauth/revoke"
    assert meta["introspection_endpoint"] == OWN_ISSUER + "/oauth/introspect"
    assert meta["jwks_uri"] == OWN_ISSUER + "/.well-known/jwks.json"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert set(meta["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post", "none"}
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert "read:databases" in meta["scopes_supported"] and "admin" in meta["scopes_supported"]


def test_an_issuer_with_a_path_serves_its_metadata_under_that_path_too(tmp_path, make_gateway, upstream, redis_server):
    issuer = OWN_ISSUER + "/gw"
    oauth = OAuth(tmp_path, make_gateway, upstream, redis_server, issuer=issuer)
    for path in ["/.well-known/oauth-authorization-server/gw", "/.well-known/oauth-authorization-server"]:
        r = requests.get(f"{oauth.url}{path}", timeout=5)
        assert r.status_code == 200, path
        assert r.json()["issuer"] == issuer and r.json()["token_endpoint"] == issuer + "/oauth/token"
    assert "[]" not in r.text


def test_introspection_of_a_jwt_names_its_audience(oauth):
    tokens = oauth.tokens()
    described = introspect(oauth, tokens["access_token"])
    assert described["aud"] == AUDIENCE and described["token_type"] == "Bearer"
    # A wrong hint does not hide the token.
    r = requests.post(f"{oauth.url}/oauth/introspect", data={"token": tokens["access_token"], "token_type_hint": "refresh_token"},
                      auth=("machine", OAuth.MACHINE_SECRET), timeout=5)
    assert r.json()["active"] is True


def test_unsupported_oauth_paths_answer_json_naming_what_is_supported(oauth):
    for path in ["/oauth/device", "/oauth/token/extra", "/oauth/userinfo", "/oauth"]:
        r = requests.get(f"{oauth.url}{path}", timeout=5)
        body = assert_error(r, 404, "unsupported_endpoint")
        assert "/oauth/token" in body["error_description"] and "/oauth/authorize" in body["error_description"]


def test_secret_guessing_is_rate_limited_per_address(tmp_path, make_gateway, upstream, redis_server):
    oauth = OAuth(tmp_path, make_gateway, upstream, redis_server, oauth_settings="token_requests_per_address = 3")
    statuses = [oauth.token({"grant_type": "client_credentials"}, auth=("machine", "wrong" * 8)).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429], statuses
    # Through introspection too: the endpoints share the address's budget.
    r = requests.post(f"{oauth.url}/oauth/introspect", data={"token": "x"}, auth=("machine", "wrong" * 8), timeout=5)
    assert r.status_code == 429


def test_the_token_endpoint_is_rate_limited_per_client(tmp_path, make_gateway, upstream, redis_server):
    oauth = OAuth(tmp_path, make_gateway, upstream, redis_server, oauth_settings="token_requests_per_client = 3")
    auth = ("machine", OAuth.MACHINE_SECRET)
    statuses = [oauth.token({"grant_type": "client_credentials"}, auth=auth).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429], statuses
    r = oauth.token({"grant_type": "client_credentials"}, auth=auth)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    # The other client endpoints share the budget...
    r = requests.post(f"{oauth.url}/oauth/introspect", data={"token": "x"}, auth=auth, timeout=5)
    assert r.status_code == 429
    # ...but only a request with the right secret is charged to it: knowing the client id is
    # not enough to lock the client out (guessing is bounded per address instead).
    r = requests.post(f"{oauth.url}/oauth/introspect", data={"token": "x"}, auth=("machine", "wrong" * 8), timeout=5)
    assert r.status_code == 401
    # Another client is counted apart.
    assert oauth.token({"grant_type": "client_credentials"}, auth=("app", OAuth.SECRET)).status_code == 200


def test_a_reload_applies_new_declared_clients_on_every_loop(oauth, upstream, tmp_path):
    import signal
    (tmp_path / "late.secret").write_text("late-" + "q" * 40 + "\n")
    oauth.gateway.tail += f"""
[[oauth.clients]]
id = "late"
name = "Added by a reload"
grant_types = ["client_credentials"]
scopes = ["read:logs"]
secret_file = "{tmp_path / 'late.secret'}"
"""
    auth = ("late", "late-" + "q" * 40)
    assert_invalid_client(oauth.token({"grant_type": "client_credentials"}, auth=auth))
    oauth.gateway.write_config(upstream.url)
    oauth.gateway.signal(signal.SIGHUP)
    oauth.gateway.wait_for_log(lambda line: line.get("msg") == "configuration reloaded")
    # Every event loop (two here) answers for the new client: fresh connections land on both.
    for _ in range(6):
        with requests.Session() as session:
            assert oauth.token({"grant_type": "client_credentials"}, auth=auth, session=session).status_code == 200


# --- the same retry grace on /v1/auth/refresh -----------------------------------------------

def session_refresh(oauth, token, session=None):
    client = session or requests
    return client.post(f"{oauth.url}/v1/auth/refresh", json={"refresh_token": token}, timeout=10)


def test_first_party_refresh_inside_the_grace_gets_the_same_pair(oauth):
    first = login(oauth.gateway, "ada@example.test").json()
    second = session_refresh(oauth, first["refresh_token"])
    assert second.status_code == 200
    again = session_refresh(oauth, first["refresh_token"])
    assert again.status_code == 200 and again.json() == second.json()
    assert session_refresh(oauth, second.json()["refresh_token"]).status_code == 200
    assert session_refresh(oauth, first["refresh_token"]).status_code == 401


def test_first_party_refresh_outside_the_grace_revokes_the_family(tmp_path, make_gateway, upstream, redis_server):
    oauth = OAuth(tmp_path, make_gateway, upstream, redis_server, jwt_settings='refresh_reuse_grace = "1s"')
    first = login(oauth.gateway, "ada@example.test").json()
    second = session_refresh(oauth, first["refresh_token"]).json()
    grace_key = f"{PREFIX}refresh-grace:" + hashlib.sha256(first["refresh_token"].encode()).hexdigest()
    assert wait_until(lambda: oauth.redis.command("EXISTS", grace_key) == b":0\r\n", timeout=scaled(5))
    assert session_refresh(oauth, first["refresh_token"]).status_code == 401
    assert session_refresh(oauth, second["refresh_token"]).status_code == 401


def test_concurrent_first_party_refreshes_mint_one_pair(oauth):
    token = login(oauth.gateway, "ada@example.test").json()["refresh_token"]
    sessions = [requests.Session() for _ in range(6)]
    for session in sessions:
        assert session.get(f"{oauth.url}/.well-known/jwks.json", timeout=5).status_code == 200
    barrier = threading.Barrier(len(sessions))
    answers, lock = [], threading.Lock()

    def race(session):
        barrier.wait(timeout=10)
        r = session_refresh(oauth, token, session)
        with lock:
            answers.append((r.status_code, r.text))

    threads = [threading.Thread(target=race, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(status == 200 for status, _ in answers), answers
    pairs = {json.loads(text)["refresh_token"] for _, text in answers}
    assert len(pairs) == 1
    assert session_refresh(oauth, pairs.pop()).status_code == 200


def test_item5_users_disable_revokes_the_users_oauth_access_tokens_too(tmp_path, make_gateway, upstream,
                                                                        redis_server):
    """Issue 18 item 5: `users disable` refuses the user's OAuth JWT access tokens (their
    `sub` is the user) on the proxy path and at introspection; a client-credentials token of
    the same client is not the user's and keeps working."""
    oauth = OAuth(tmp_path, make_gateway, upstream, redis_server)
    tokens = oauth.tokens()
    machine = oauth.token({"grant_type": "client_credentials", "scope": "read:databases"},
                          auth=("app", OAuth.SECRET)).json()["access_token"]
    for _ in range(4):
        assert databases(oauth, tokens["access_token"]) == 200
    assert introspect(oauth, tokens["access_token"])["active"] is True
    set_user_disabled(oauth.gateway, "ada@example.test", True)
    assert wait_until(lambda: all(databases(oauth, tokens["access_token"]) == 401 for _ in range(4)),
                      timeout=scaled(1))
    assert introspect(oauth, tokens["access_token"]) == {"active": False}
    assert databases(oauth, machine) == 200
    assert_error(oauth.refresh(tokens["refresh_token"]), 400, "invalid_grant")
