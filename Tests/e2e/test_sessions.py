"""Issue 5 acceptance, end to end: users, login, refresh-token rotation and reuse
detection, logout (also seen by a second instance through Redis pub/sub), login throttling,
and user sessions managing their own API keys. Real redis-server, gateway binary, its CLI
and a recording upstream."""

import json
import os
import re
import signal
import statistics
import subprocess
import threading
import time

import jwt as pyjwt
import pytest
import requests

from conftest import (AUDIENCE, OWN_ISSUER, USER_ROUTES, Gateway, add_user, bearer, create_key, gateway_binary, header,
                      jwt_session_tail, login, scaled, seconds_until_refused, set_user_disabled, wait_until,
                      write_pepper)
from jwks_server import SigningKey, b64url_json

ROUTES = USER_ROUTES

PASSWORD = "password-at-least-12"
SCOPES = ["read:databases", "read:logs"]


class Secrets:
    def __init__(self, tmp_path):
        self.pepper = write_pepper(tmp_path / "pepper")
        self.signing_key = SigningKey("RS256", kid="gw-rs256")
        self.signing_key_file = tmp_path / "signing-key.pem"
        self.signing_key_file.write_bytes(self.signing_key.private_pem())


@pytest.fixture
def secrets(tmp_path):
    return Secrets(tmp_path)


@pytest.fixture
def session_tail(redis_server, secrets):
    def make(jwt_settings=""):
        return jwt_session_tail(redis_server.port, secrets.pepper, secrets.signing_key_file, "RS256", jwt_settings)
    return make


@pytest.fixture
def sessions_gateway(make_gateway, upstream, session_tail):
    return make_gateway(upstream.url, routes=ROUTES, tail=session_tail())


def refresh(gateway, token, session=None):
    client = session or requests
    return client.post(f"{gateway.url}/v1/auth/refresh", json={"refresh_token": token}, timeout=10)


def assert_token_response(r, scopes=SCOPES):
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == " ".join(scopes)
    assert body["access_token"].count(".") == 2 and body["refresh_token"] and body["refresh_token"] != body["access_token"]
    return body


def assert_invalid_grant(r):
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_grant"


# Without the retry grace: the first re-presentation of a rotated token is reuse (the grace
# has tests of its own in test_oauth_token.py).
NO_GRACE = 'refresh_reuse_grace = "0s"\n'


def test_login_call_refresh_and_reuse_kills_the_family(make_gateway, upstream, session_tail):
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=session_tail(NO_GRACE))
    user = add_user(gateway, "ada@example.test", SCOPES)
    first = assert_token_response(login(gateway, "ada@example.test"))
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(first["access_token"]), timeout=5)
    assert r.status_code == 200
    record = upstream.requests()[-1]
    assert header(record, "X-DBAudit-Credential") == ["jwt"]
    assert header(record, "X-DBAudit-Subject") == [user["id"]]
    assert header(record, "X-DBAudit-Scopes") == ["read:databases read:logs"]
    assert requests.post(f"{gateway.url}/v1/policies", headers=bearer(first["access_token"]), json={}, timeout=5).status_code == 403

    second = assert_token_response(refresh(gateway, first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert requests.get(f"{gateway.url}/v1/logs", headers=bearer(second["access_token"]), timeout=5).status_code == 200
    claims = pyjwt.decode(second["access_token"], options={"verify_signature": False})
    assert claims["sub"] == user["id"] and claims["iss"] == OWN_ISSUER and claims["aud"] == AUDIENCE

    # The rotated token presented again: refused, and the newer token of its family dies too.
    assert_invalid_grant(refresh(gateway, first["refresh_token"]))
    assert_invalid_grant(refresh(gateway, second["refresh_token"]))
    # Garbage and unknown tokens are the same invalid_grant, a malformed body a 400.
    assert_invalid_grant(refresh(gateway, "dbaudit_rt_" + "A" * 43))
    assert_invalid_grant(refresh(gateway, "not-a-refresh-token"))
    r = requests.post(f"{gateway.url}/v1/auth/refresh", data=b"{nope", timeout=5)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    # A refresh token is not an access token.
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(second["refresh_token"]), timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    # A fresh login starts a new family that works.
    third = assert_token_response(login(gateway, "ada@example.test"))
    assert_token_response(refresh(gateway, third["refresh_token"]))
    # The auth endpoints were answered by the gateway, never proxied.
    assert all(not rec["path"].startswith("/v1/auth/") for rec in upstream.requests())


# Tests that log one account in many times lift the attempt limits (they count successes too).
GENEROUS = """
login_attempts_per_address = 1000
login_attempts_per_account = 1000
"""


def test_concurrent_refreshes_of_one_token_at_most_one_succeeds(make_gateway, upstream, session_tail):
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=session_tail(GENEROUS + NO_GRACE))
    add_user(gateway, "race@example.test", SCOPES)
    outcomes = []
    for _ in range(10):
        token = assert_token_response(login(gateway, "race@example.test"))["refresh_token"]
        barrier = threading.Barrier(2)
        statuses = []
        lock = threading.Lock()
        # Each racer holds its own connection, opened before the barrier, so the two requests
        # leave at the same instant (and may land on different event loops).
        sessions = [requests.Session() for _ in range(2)]
        for session in sessions:
            assert session.get(f"{gateway.url}/.well-known/jwks.json", timeout=5).status_code == 200

        def race(session):
            barrier.wait(timeout=5)
            status = refresh(gateway, token, session).status_code
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=race, args=(s,)) for s in sessions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=15)
        for session in sessions:
            session.close()
        assert len(statuses) == 2
        assert set(statuses) <= {200, 401}, statuses
        outcomes.append(statuses.count(200))
    print(f"\nconcurrent refresh winners per round: {outcomes}")
    # Exactly one of the two concurrent refreshes wins each round: never both, never neither.
    assert outcomes == [1] * len(outcomes), outcomes


def test_logout_revokes_access_and_refresh_tokens_on_every_instance(make_gateway, upstream, session_tail):
    tail = session_tail()
    a = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    b = make_gateway(upstream.url, routes=ROUTES, tail=tail)
    add_user(a, "leaving@example.test", SCOPES)
    tokens = assert_token_response(login(a, "leaving@example.test"))
    access = tokens["access_token"]
    for gateway in (a, b):
        for _ in range(4):  # warm both event loops' verified-token caches on both instances
            assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(access), timeout=5).status_code == 200
    r = requests.post(f"{a.url}/v1/auth/logout", headers=bearer(access),
                      json={"refresh_token": tokens["refresh_token"]}, timeout=5)
    assert r.status_code == 200, r.text
    elapsed = seconds_until_refused(f"{b.url}/v1/databases", access, 3, since=time.monotonic())
    print(f"\nlogout on A refused on B after {elapsed * 1000 if elapsed else -1:.0f} ms")
    assert elapsed is not None and elapsed < scaled(1.0)
    for gateway in (a, b):
        for _ in range(4):  # every loop of both instances
            r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(access), timeout=5)
            assert r.status_code == 401 and r.json()["error"] == "invalid_token"
            assert "revoked" in r.json()["error_description"]
        assert_invalid_grant(refresh(gateway, tokens["refresh_token"]))


def test_logout_needs_a_credential(sessions_gateway):
    gateway = sessions_gateway
    add_user(gateway, "someone@example.test", SCOPES)
    tokens = assert_token_response(login(gateway, "someone@example.test"))
    assert requests.post(f"{gateway.url}/v1/auth/logout", timeout=5).status_code == 400
    # The refresh token alone: its family is revoked.
    assert requests.post(f"{gateway.url}/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}, timeout=5).status_code == 200
    assert_invalid_grant(refresh(gateway, tokens["refresh_token"]))
    # The access token alone: refused afterwards.
    assert requests.post(f"{gateway.url}/v1/auth/logout", headers=bearer(tokens["access_token"]), timeout=5).status_code == 200
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(tokens["access_token"]), timeout=5).status_code == 401


class OneLoopGateway(Gateway):
    def config_text(self, *args, **kwargs):
        return super().config_text(*args, **kwargs).replace("event_loops = 2", "event_loops = 1", 1)


THROTTLE = """
login_attempts_per_address = 20
login_attempts_per_account = 5
login_window = "1m"
"""


def assert_throttled(r):
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "too_many_attempts"
    retry_after = int(r.headers["Retry-After"])
    assert 1 <= retry_after <= 60


def test_brute_force_hits_429_with_retry_after(tmp_path, upstream, session_tail):
    gateway = OneLoopGateway(tmp_path, upstream.url, routes=ROUTES, tail=session_tail(THROTTLE))
    try:
        add_user(gateway, "target@example.test", SCOPES)
        for attempt in range(5):
            r = login(gateway, "target@example.test", "wrong-password-guess")
            assert r.status_code == 401 and r.json()["error"] == "invalid_credentials", attempt
        assert_throttled(login(gateway, "target@example.test", "wrong-password-guess"))
        # Even the right password waits now: the account is locked for the window.
        assert_throttled(login(gateway, "target@example.test"))
        # Per address: 20 attempts from 127.0.0.1 in the window (7 so far), whatever the account.
        for attempt in range(13):
            r = login(gateway, f"nobody{attempt}@example.test", "wrong-password-guess")
            assert r.status_code == 401, (attempt, r.text)
        assert_throttled(login(gateway, "another@example.test", "wrong-password-guess"))
    finally:
        gateway.stop()


def test_login_throttle_is_shared_by_all_event_loops(make_gateway, upstream, session_tail):
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=session_tail(THROTTLE))
    add_user(gateway, "target@example.test", SCOPES)
    # A new connection per attempt: accepted connections alternate between the 2 event loops.
    statuses = [login(gateway, "target@example.test", "wrong-password-guess").status_code for _ in range(8)]
    assert statuses[:5] == [401] * 5, statuses
    assert statuses[5:] == [429] * 3, statuses


def test_disabled_user_cannot_log_in_or_refresh(sessions_gateway):
    gateway = sessions_gateway
    add_user(gateway, "gone@example.test", SCOPES)
    tokens = assert_token_response(login(gateway, "gone@example.test"))
    wrong_password = login(gateway, "gone@example.test", "wrong-password-guess")
    set_user_disabled(gateway, "gone@example.test", True)
    r = login(gateway, "gone@example.test")
    assert r.status_code == 401
    # Indistinguishable from a wrong password.
    assert {k: v for k, v in r.json().items() if k != "request_id"} == \
        {k: v for k, v in wrong_password.json().items() if k != "request_id"}
    assert_invalid_grant(refresh(gateway, tokens["refresh_token"]))
    set_user_disabled(gateway, "gone@example.test", False)
    assert_token_response(login(gateway, "gone@example.test"))


def test_unknown_email_and_wrong_password_are_indistinguishable(make_gateway, upstream, session_tail):
    # scrypt cost 14 (~16 MiB, tens of ms) so the password hash dominates the timing.
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=session_tail("password_hash_cost = 14\n" + GENEROUS))
    add_user(gateway, "real@example.test", SCOPES)
    timings = {"unknown": [], "wrong": []}
    answers = {"unknown": [], "wrong": []}
    with requests.Session() as session:
        login(gateway, "real@example.test", session=session)  # warm up
        for _ in range(5):
            for kind, email in (("unknown", "ghost@example.test"), ("wrong", "real@example.test")):
                started = time.perf_counter()
                r = login(gateway, email, "wrong-password-guess", session=session)
                timings[kind].append(time.perf_counter() - started)
                body = r.json()
                body.pop("request_id")
                names = sorted(k.lower() for k in r.headers if k.lower() not in ("x-request-id", "date"))
                answers[kind].append((r.status_code, body, names))
    assert answers["unknown"][0][0] == 401 and answers["unknown"][0][1]["error"] == "invalid_credentials"
    assert all(answer == answers["unknown"][0] for answer in answers["unknown"] + answers["wrong"]), answers
    unknown, wrong = statistics.median(timings["unknown"]), statistics.median(timings["wrong"])
    print(f"\nmedian login time: unknown e-mail {unknown * 1000:.1f} ms, wrong password {wrong * 1000:.1f} ms")
    assert 1 / scaled(2.0) <= unknown / wrong <= scaled(2.0)


def test_user_session_manages_only_its_own_api_keys(sessions_gateway, upstream):
    gateway = sessions_gateway
    alice = add_user(gateway, "alice@example.test", SCOPES)
    bob = add_user(gateway, "bob@example.test", ["read:databases"])
    operator = create_key(gateway, ["admin"], name="operator")
    alice_token = assert_token_response(login(gateway, "alice@example.test"))["access_token"]
    bob_token = assert_token_response(login(gateway, "bob@example.test"), ["read:databases"])["access_token"]
    base = f"{gateway.url}/v1/api-keys"

    r = requests.post(base, headers=bearer(alice_token), json={"name": "alice ci", "scopes": ["read:databases"]}, timeout=5)
    assert r.status_code == 201, r.text
    assert r.headers["Cache-Control"] == "no-store"
    made = r.json()
    assert made["owner"] == alice["id"] and made["scopes"] == ["read:databases"]
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(made["key"]), timeout=5).status_code == 200
    record = upstream.requests()[-1]
    assert header(record, "X-DBAudit-Credential") == ["api_key"] and header(record, "X-DBAudit-Key-Id") == [made["id"]]

    for scopes in (["admin"], ["write:policies"], ["read:databases", "admin"]):
        r = requests.post(base, headers=bearer(alice_token), json={"name": "escalate", "scopes": scopes}, timeout=5)
        assert r.status_code == 403, (scopes, r.text)
        assert r.json()["error"] == "insufficient_scope"
    r = requests.post(base, headers=bearer(bob_token), json={"name": "bob's", "scopes": ["read:databases"]}, timeout=5)
    assert r.status_code == 201
    bobs = r.json()

    r = requests.get(base, headers=bearer(alice_token), timeout=5)
    assert r.status_code == 200
    assert [k["id"] for k in r.json()["api_keys"]] == [made["id"]]
    assert made["key"] not in r.text
    r = requests.get(base, headers=bearer(bob_token), timeout=5)
    assert [k["id"] for k in r.json()["api_keys"]] == [bobs["id"]]
    # The operator's admin key sees everybody's.
    r = requests.get(base, headers=bearer(operator["key"]), timeout=5)
    assert {made["id"], bobs["id"], operator["id"]} <= {k["id"] for k in r.json()["api_keys"]}

    # Someone else's key is "not found"; one's own is revoked.
    assert requests.delete(f"{base}/{bobs['id']}", headers=bearer(alice_token), timeout=5).status_code == 404
    assert requests.delete(f"{base}/{operator['id']}", headers=bearer(alice_token), timeout=5).status_code == 404
    r = requests.delete(f"{base}/{made['id']}", headers=bearer(alice_token), timeout=5)
    assert r.status_code == 200 and r.json()["revoked"] is True
    deadline = time.monotonic() + 1
    while requests.get(f"{gateway.url}/v1/databases", headers=bearer(made["key"]), timeout=5).status_code != 401:
        assert time.monotonic() < deadline, "revoked key still accepted after 1 s"
        time.sleep(0.02)
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(bobs["key"]), timeout=5).status_code == 200
    assert bob["scopes"] == ["read:databases"] and made["owner"] != bob["id"]


def test_own_issuer_demands_an_access_token_type(sessions_gateway, secrets):
    """RFC 9068: a token signed with our key but without typ at+jwt (an ID token, say) is not
    an access token; with it, the same claims pass."""
    gateway = sessions_gateway
    now = int(time.time())
    claims = {"iss": OWN_ISSUER, "sub": "usr_forged", "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 300,
              "jti": os.urandom(8).hex(), "scope": "read:databases"}
    key = secrets.signing_key
    good = pyjwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.kid, "typ": "at+jwt"})
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(good), timeout=5).status_code == 200
    for typ in ("JWT", None):
        head = {"alg": "RS256", "kid": key.kid, **({"typ": typ} if typ else {})}
        token = key.sign_raw(head, b64url_json(dict(claims, jti=os.urandom(8).hex())))
        r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5)
        assert r.status_code == 401, (typ, r.text)
        assert r.json()["error"] == "invalid_token"


def test_issued_token_and_jwks_keep_their_exact_bytes(sessions_gateway, secrets):
    """What clients may compare or cache byte for byte stays as it was when the JSON was
    spliced by hand: compact JSON, members in a fixed order, integers for times, "/" not
    escaped (the issuer URL), for the JWT header, its claims and the JWKS document."""
    import base64

    def raw(segment):
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()

    gateway = sessions_gateway
    add_user(gateway, "bytes@example.com", SCOPES)
    token = assert_token_response(login(gateway, "bytes@example.com"))["access_token"]
    head, claims, _ = token.split(".")
    assert raw(head) == '{"alg":"RS256","kid":"gw-rs256","typ":"at+jwt"}'
    assert re.fullmatch(
        r'\{"iss":"https://gateway\.test","sub":"usr_[A-Za-z0-9_-]+","aud":"dbaudit-api","iat":(\d+),"nbf":\1,'
        r'"exp":\d+,"jti":"[A-Za-z0-9_-]{22}","scope":"read:databases read:logs","sid":"[A-Za-z0-9_-]{22}"\}',
        raw(claims)), raw(claims)
    document = requests.get(f"{gateway.url}/.well-known/jwks.json", timeout=5).text
    public = secrets.signing_key.public_jwk
    assert document == ('{"keys":[{"kid":"gw-rs256","alg":"RS256","use":"sig","kty":"RSA",'
                        f'"n":"{public["n"]}","e":"{public["e"]}"}}]}}'), document


def test_signing_key_rotation_keeps_tokens_of_the_previous_key_valid(make_gateway, upstream, redis_server, secrets, tmp_path):
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=jwt_session_tail(
        redis_server.port, secrets.pepper, secrets.signing_key_file, "RS256", GENEROUS))
    add_user(gateway, "rotating@example.test", SCOPES)
    used = assert_token_response(login(gateway, "rotating@example.test"))
    unused = assert_token_response(login(gateway, "rotating@example.test"))
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(used["access_token"]), timeout=5).status_code == 200
    # New active ES256 key; the RS256 one stays, verify-only.
    new_key = SigningKey("ES256")
    new_file = tmp_path / "new-signing-key.pem"
    new_file.write_bytes(new_key.private_pem())
    previous = f"""
[[auth.jwt.signing_keys]]
kid = "gw-rs256"
algorithm = "RS256"
private_key_file = "{secrets.signing_key_file}"
active = false
"""
    gateway.tail = jwt_session_tail(redis_server.port, secrets.pepper, new_file, "ES256", GENEROUS, issuers=previous)
    gateway.write_config(upstream.url)
    gateway.signal(signal.SIGHUP)
    gateway.wait_for_log(lambda line: line.get("msg") == "configuration reloaded")
    published = requests.get(f"{gateway.url}/.well-known/jwks.json", timeout=5).json()["keys"]
    assert sorted(k["kid"] for k in published) == ["gw-es256", "gw-rs256"]
    for _ in range(4):  # both event loops, a cached and a never-seen token of the previous key
        for token in (used["access_token"], unused["access_token"]):
            assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5).status_code == 200
    fresh = assert_token_response(login(gateway, "rotating@example.test"))
    assert pyjwt.get_unverified_header(fresh["access_token"])["kid"] == "gw-es256"
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(fresh["access_token"]), timeout=5).status_code == 200
    # A refresh token issued before the rotation still rotates, into a token of the new key.
    renewed = assert_token_response(refresh(gateway, unused["refresh_token"]))
    head = pyjwt.get_unverified_header(renewed["access_token"])
    assert head["kid"] == "gw-es256" and head["alg"] == "ES256"


def test_redis_outage_gives_503_never_401_and_cached_tokens_keep_working(make_gateway, upstream, redis_server, session_tail):
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=session_tail(GENEROUS))
    add_user(gateway, "outage@example.test", SCOPES)
    seen = assert_token_response(login(gateway, "outage@example.test"))
    unseen = assert_token_response(login(gateway, "outage@example.test"))
    for _ in range(4):  # both event loops have verified it
        assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(seen["access_token"]), timeout=5).status_code == 200
    redis_server.kill9()
    checks = {
        "login": lambda: login(gateway, "outage@example.test"),
        "refresh": lambda: refresh(gateway, unseen["refresh_token"]),
        # First sight of a token of ours needs the deny list (revoked jti) in Redis.
        "unseen access token": lambda: requests.get(f"{gateway.url}/v1/databases", headers=bearer(unseen["access_token"]), timeout=5),
    }
    for name, call in checks.items():
        started = time.monotonic()
        r = call()
        assert time.monotonic() - started < 2, name
        assert r.status_code == 503, (name, r.text)
        assert r.json()["error"] == "auth_unavailable" and "Retry-After" in r.headers, name
    for _ in range(4):
        assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(seen["access_token"]), timeout=5).status_code == 200
    redis_server.start()
    assert wait_until(lambda: refresh(gateway, unseen["refresh_token"]).status_code == 200, 5), \
        "refresh did not recover within 5 s of Redis restarting"


def test_disabling_a_user_revokes_the_api_keys_it_created(sessions_gateway, upstream):
    gateway = sessions_gateway
    carol = add_user(gateway, "carol@example.test", ["read:databases"])
    dave = add_user(gateway, "dave@example.test", ["read:databases"])
    carol_token = assert_token_response(login(gateway, "carol@example.test"), ["read:databases"])["access_token"]
    dave_token = assert_token_response(login(gateway, "dave@example.test"), ["read:databases"])["access_token"]
    base = f"{gateway.url}/v1/api-keys"
    carols = requests.post(base, headers=bearer(carol_token), json={"name": "c", "scopes": ["read:databases"]}, timeout=5).json()
    daves = requests.post(base, headers=bearer(dave_token), json={"name": "d", "scopes": ["read:databases"]}, timeout=5).json()
    # Both keys work (and are now in the gateway's cache).
    for key in (carols["key"], daves["key"]):
        assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(key), timeout=5).status_code == 200
    result = subprocess.run(
        [gateway_binary(), "users", "disable", "--config", str(gateway.config_path), "--email", "carol@example.test"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "Revoked 1 API key" in result.stdout, result.stdout
    # Offboarding leaves nothing behind: Carol's key is refused on every loop (pub/sub drops
    # it from the caches), Dave's keeps working.
    assert seconds_until_refused(f"{gateway.url}/v1/databases", carols["key"], 2, probes=4) is not None
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(daves["key"]), timeout=5).status_code == 200
    assert carol["id"] != dave["id"]


def _users_add(gateway, email, scopes="read:databases,read:logs", *extra):
    return subprocess.run(
        [gateway_binary(), "users", "add", "--config", str(gateway.config_path), "--email", email, "--scopes", scopes,
         *extra], input=PASSWORD + "\n", capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("email", [
    'm","scopes":["admin"],"z":"@example.com',
    'a\\"b@example.com',
    "x@exa,mple.com",
    "<x>@example.com",
    "x@example.com\u2028",
])
def test_users_add_refuses_an_email_that_is_not_an_address(email, sessions_gateway, redis_server):
    result = _users_add(sessions_gateway, email, "read:databases", "--json")
    assert result.returncode == 1, result.stdout
    assert result.stdout == ""
    assert "--email must be an e-mail address" in result.stderr
    # Nothing was stored, under any spelling.
    assert redis_server.command("KEYS", "*user*").startswith(b"*0\r\n")


def test_users_add_json_has_exactly_the_expected_members(sessions_gateway):
    result = _users_add(sessions_gateway, "O'Brien+ops@Example.test", "read:logs,read:databases", "--json")
    assert result.returncode == 0, result.stderr
    members = json.loads(result.stdout, object_pairs_hook=lambda pairs: pairs)
    names = [name for name, _ in members]
    assert names == ["id", "email", "scopes"], result.stdout
    document = dict(members)
    assert document["email"] == "o'brien+ops@example.test"
    assert document["scopes"] == ["read:logs", "read:databases"]
    assert document["id"].startswith("usr_")


def test_users_add_refuses_scopes_that_are_not_scope_tokens(sessions_gateway):
    for scopes in ("read:databases,x\tadmin", "read:databases,x admin", 'read:databases,a"b'):
        result = _users_add(sessions_gateway, "scopes@example.test", scopes)
        assert result.returncode == 1, (scopes, result.stdout)
        assert "--scopes" in result.stderr


def test_user_record_with_a_scope_that_is_not_a_scope_token_gets_no_token(sessions_gateway, redis_server, upstream):
    """A hostile or damaged Redis gives a user the scope value "x admin": neither login nor
    refresh signs a token with it (our own tokens carry only scope tokens), and it is logged."""
    gateway = sessions_gateway
    add_user(gateway, "tampered@example.test", SCOPES)
    first = login(gateway, "tampered@example.test")
    assert first.status_code == 200, first.text
    keys = [k for k in redis_server.command("KEYS", "*user:tampered@example.test").split(b"\r\n") if b"user:" in k]
    assert len(keys) == 1, keys
    raw = redis_server.command("GET", keys[0]).split(b"\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
    record = json.loads(raw)
    record["scopes"] = ["read:databases", "x admin"]
    assert redis_server.command("SET", keys[0], json.dumps(record)).startswith(b"+OK")
    for response in (login(gateway, "tampered@example.test"), refresh(gateway, first.json()["refresh_token"])):
        assert response.status_code == 500, response.text
        assert "access_token" not in response.text
    gateway.wait_for_log(lambda line: line.get("msg") == "unreadable user record in the store")
    assert upstream.requests() == []


def test_users_list_shows_every_user_without_password_hashes(sessions_gateway, redis_server):
    bob = add_user(sessions_gateway, "bob@example.com", ["read:logs"], password="bob-password-1234")
    alice = add_user(sessions_gateway, "Alice@Example.com", ["read:databases", "read:logs"])
    set_user_disabled(sessions_gateway, "bob@example.com", True)
    # Another gateway's users under another prefix are not ours to list.
    redis_server.command("SET", "other:user:eve@example.com", '{"id":"usr_eve"}')
    command = [gateway_binary(), "users", "list", "--config", str(sessions_gateway.config_path)]

    listed = subprocess.run(command + ["--json"], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    users = json.loads(listed.stdout)
    assert [u["email"] for u in users] == ["alice@example.com", "bob@example.com"]
    assert users[0]["id"] == alice["id"] and users[0]["disabled"] is False
    assert users[0]["scopes"] == ["read:databases", "read:logs"]
    assert users[1]["id"] == bob["id"] and users[1]["disabled"] is True
    assert isinstance(users[0]["created_at"], int)

    text = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert text.returncode == 0, text.stderr
    assert "alice@example.com" in text.stdout and "bob@example.com  disabled" in text.stdout
    for output in (listed.stdout, text.stdout):
        assert "scrypt" not in output and "password" not in output


def test_cli_prints_its_version_and_names_every_users_subcommand():
    version = subprocess.run([gateway_binary(), "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0
    assert re.fullmatch(r"\d+\.\d+\.\d+\n", version.stdout)
    help_text = subprocess.run([gateway_binary(), "users", "--help"], capture_output=True, text=True, timeout=30).stdout
    for subcommand in ("add", "list", "disable", "enable"):
        assert re.search(rf"^\s+{subcommand}\s", help_text, re.MULTILINE), help_text
