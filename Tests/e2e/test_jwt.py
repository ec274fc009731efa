"""Issue 5 acceptance, end to end: JWT verification through the gateway binary.

1. RFC 7515 A.1-A.3 tokens are refused as expired (their keys configured as a jwks_file).
2. Interop: PyJWT and joserfc tokens of every supported algorithm pass; forged, expired,
   misdirected and algorithm-confused tokens get 401 with RFC 6750 headers; tokens the
   gateway issues verify in PyJWT against its /.well-known/jwks.json.
3. JWKS behaviour against a real JWKS HTTP server run by the test: rotation picked up by
   an unknown-kid refetch, refetch rate cap under a storm of random kids, keys kept while
   the provider is down."""

import json
import os
import threading
import time
import uuid

import jwt as pyjwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import (AUDIENCE, OWN_ISSUER, USER_ROUTES, Gateway, Upstream, add_user, bearer, header, jwt_session_tail, login,
                      write_pepper)
from jwks_server import (ASYMMETRIC_ALGORITHMS, SYMMETRIC_ALGORITHMS, JWKSServer, SigningKey, b64url, b64url_json)

ROUTES = USER_ROUTES

IDP = "https://idp.test"
HS_IDP = "https://hs.test"


def claims(issuer=IDP, subject="someone", lifetime=300, **extra):
    now = int(time.time())
    base = {"iss": issuer, "sub": subject, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + lifetime,
            "jti": uuid.uuid4().hex, "scope": "read:databases read:logs"}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def assert_auth_unavailable(response):
    """503 auth_unavailable with Retry-After: the token could not be checked (an outage)."""
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "auth_unavailable"
    assert response.headers["Retry-After"] == "1"


def assert_invalid_token(response, description_contains=None):
    """401 with the JSON error body and the RFC 6750 challenge naming invalid_token."""
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_token"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="dbaudit", error="invalid_token", error_description="'), challenge
    assert challenge.endswith('"')
    description = challenge.split('error_description="', 1)[1][:-1]
    assert description == body["error_description"]
    if description_contains:
        assert description_contains in description.lower(), description
    return description


# ---------------------------------------------------------------------------------------------
# 1. RFC 7515 Appendix A.1-A.3, byte for byte from the RFC.

RFC7515_PAYLOAD = ("eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
                   "cnVlfQ")
RFC7515 = {
    "A.1 HS256": {
        "token": "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." + RFC7515_PAYLOAD + ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        "jwk": {"kty": "oct", "alg": "HS256",
                "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"},
    },
    "A.2 RS256": {
        "token": "eyJhbGciOiJSUzI1NiJ9." + RFC7515_PAYLOAD + "."
                 "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9"
                 "uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB"
                 "_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rq"
                 "Vt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw",
        "jwk": {"kty": "RSA", "alg": "RS256", "e": "AQAB",
                "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4Ql"
                     "L-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUs"
                     "LA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoud"
                     "F8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"},
        # The private exponent the RFC prints, for a control token signed with the same key.
        "d": "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46su"
             "i395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4"
             "qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB"
             "4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ",
    },
    "A.3 ES256": {
        "token": "eyJhbGciOiJFUzI1NiJ9." + RFC7515_PAYLOAD + "."
                 "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
        "jwk": {"kty": "EC", "alg": "ES256", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI",
    },
}


def _b64int(text):
    import base64

    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def _rfc_private_key(case):
    """The RFC's own private key (to mint a control token the gateway must accept)."""
    jwk = case["jwk"]
    if jwk["kty"] == "oct":
        return pyjwt.PyJWK(jwk).key
    if jwk["kty"] == "RSA":
        n, e, d = _b64int(jwk["n"]), _b64int(jwk["e"]), _b64int(case["d"])
        p, q = rsa.rsa_recover_prime_factors(n, e, d)
        return rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
                                     rsa.RSAPublicNumbers(e, n)).private_key()
    public = ec.EllipticCurvePublicNumbers(_b64int(jwk["x"]), _b64int(jwk["y"]), ec.SECP256R1())
    return ec.EllipticCurvePrivateNumbers(_b64int(case["d"]), public).private_key()


@pytest.mark.parametrize("name", sorted(RFC7515))
def test_rfc7515_appendix_tokens_are_refused_as_expired(name, tmp_path, upstream, make_gateway):
    case = RFC7515[name]
    algorithm = case["jwk"]["alg"]
    # The vector is genuine: it verifies with the RFC key when the clock is ignored.
    assert pyjwt.decode(case["token"], pyjwt.PyJWK(case["jwk"]).key, algorithms=[algorithm],
                        options={"verify_exp": False})["iss"] == "joe"
    jwks_file = tmp_path / "rfc7515.jwks.json"
    jwks_file.write_text(json.dumps({"keys": [case["jwk"]]}))
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=f"""
[auth.jwt]
[[auth.jwt.issuers]]
issuer = "joe"
jwks_file = "{jwks_file}"
audiences = ["{AUDIENCE}"]
""")
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(case["token"]), timeout=5)
    assert_invalid_token(r, "expired")
    assert upstream.requests() == []
    # Control: a fresh token from the same RFC key, with the claims the gateway requires, passes;
    # so "expired" above is the clock, not a key the gateway failed to load.
    fresh = pyjwt.encode(claims(issuer="joe", subject="joe"), _rfc_private_key(case), algorithm=algorithm)
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(fresh), timeout=5)
    assert r.status_code == 200, r.text
    assert header(upstream.requests()[-1], "X-DBAudit-Subject") == ["joe"]


# ---------------------------------------------------------------------------------------------
# 2. Interop with PyJWT and joserfc, every supported algorithm.

class Interop:
    """One gateway trusting two external issuers: IDP (a JWKS URL served by the test, one key
    per asymmetric algorithm) and HS_IDP (a jwks_file of HMAC secrets)."""

    def __init__(self, tmp_path):
        self.keys = {alg: SigningKey(alg) for alg in ASYMMETRIC_ALGORITHMS + SYMMETRIC_ALGORITHMS}
        self.jwks = JWKSServer()
        self.jwks.set_keys([k for k in self.keys.values() if not k.symmetric])
        hs_file = tmp_path / "hs.jwks.json"
        hs_file.write_text(json.dumps({"keys": [k.public_jwk for k in self.keys.values() if k.symmetric]}))
        self.upstream = Upstream("interop")
        self.gateway = None
        try:
            self.gateway = Gateway(tmp_path, self.upstream.url, routes=ROUTES, tail=f"""
[auth.jwt]
[[auth.jwt.issuers]]
issuer = "{IDP}"
jwks_url = "{self.jwks.url}"
audiences = ["{AUDIENCE}"]

[[auth.jwt.issuers]]
issuer = "{HS_IDP}"
jwks_file = "{hs_file}"
""")
            self.jwks.wait_for_fetches(1)
        except BaseException:
            self.stop()
            raise

    def issuer_of(self, key):
        return HS_IDP if key.symmetric else IDP

    def stop(self):
        if self.gateway:
            self.gateway.stop()
        self.upstream.stop()
        self.jwks.stop()


@pytest.fixture(scope="module")
def interop(tmp_path_factory):
    env = Interop(tmp_path_factory.mktemp("interop"))
    yield env
    env.stop()


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("library", ["pyjwt", "joserfc"])
@pytest.mark.parametrize("algorithm", ASYMMETRIC_ALGORITHMS + SYMMETRIC_ALGORITHMS)
def test_interop_tokens_of_every_algorithm_are_accepted(interop, library, algorithm):
    key = interop.keys[algorithm]
    subject = f"{library}-{algorithm}-{uuid.uuid4().hex[:8]}"
    if library == "pyjwt":
        token = key.sign_pyjwt(claims(interop.issuer_of(key), subject))
    else:
        # joserfc with `scp` as a list (the other scope form), `aud` as a list holding ours
        # among others, and joserfc's default typ "JWT".
        token = key.sign_joserfc(claims(interop.issuer_of(key), subject, scope=None, scp=["read:databases", "read:logs"],
                                        aud=["another-api", AUDIENCE]))
    assert json.loads(pyjwt.utils.base64url_decode(token.split(".")[0]))["alg"] == algorithm
    r = requests.get(f"{interop.gateway.url}/v1/databases", headers=bearer(token), timeout=5)
    assert r.status_code == 200, r.text
    records = [rec for rec in interop.upstream.requests() if header(rec, "X-DBAudit-Subject") == [subject]]
    assert len(records) == 1
    assert header(records[0], "X-DBAudit-Credential") == ["jwt"]
    assert header(records[0], "X-DBAudit-Scopes") == ["read:databases read:logs"]
    assert header(records[0], "Authorization") == []
    # The principal's scopes are enforced: no write:policies in the token.
    r = requests.post(f"{interop.gateway.url}/v1/policies", headers=bearer(token), json={}, timeout=5)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"


def _tampered(interop):
    token = interop.keys["RS256"].sign_pyjwt(claims())
    head, _, signature = token.split(".")
    forged = b64url_json(claims(scope="admin write:policies"))
    return f"{head}.{forged}.{signature}"


def _alg_none(interop):
    return f"{b64url_json({'alg': 'none', 'typ': 'JWT', 'kid': interop.keys['RS256'].kid})}.{b64url_json(claims())}."


def _rsa_public_pem_as_hmac_secret(interop, with_kid=True):
    import hashlib
    import hmac

    rsa_key = interop.keys["RS256"]
    head = {"alg": "HS256", "typ": "JWT"}
    if with_kid:
        head["kid"] = rsa_key.kid
    signing_input = f"{b64url_json(head)}.{b64url_json(claims())}"
    mac = hmac.new(rsa_key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _crit(interop):
    key = interop.keys["RS256"]
    head = {"alg": "RS256", "kid": key.kid, "crit": ["https://example.invalid/ext"], "https://example.invalid/ext": True}
    return key.sign_raw(head, b64url_json(claims()))


def _kid_of_other_algorithm(interop):
    # A valid ES256 signature by the ES256 key, but naming the RS256 key's kid.
    es = interop.keys["ES256"]
    return es.sign_raw({"alg": "ES256", "kid": interop.keys["RS256"].kid}, b64url_json(claims()))


def _rsa_key_used_with_pss(interop):
    # A valid PS256 signature made with the RS256 key: the key is pinned to RS256.
    rs = interop.keys["RS256"]
    import jwt.algorithms

    signing_input = f"{b64url_json({'alg': 'PS256', 'kid': rs.kid})}.{b64url_json(claims())}".encode()
    signature = jwt.algorithms.RSAPSSAlgorithm(jwt.algorithms.RSAPSSAlgorithm.SHA256).sign(signing_input, rs.private)
    return f"{signing_input.decode()}.{b64url(signature)}"


NEGATIVE_CASES = {
    "tampered payload": (_tampered, "signature"),
    "expired": (lambda i: i.keys["RS256"].sign_pyjwt(claims(lifetime=-600, iat=int(time.time()) - 1200,
                                                             nbf=int(time.time()) - 1200)), "expired"),
    "wrong aud": (lambda i: i.keys["ES256"].sign_pyjwt(claims(aud="another-api")), "audience"),
    "wrong iss": (lambda i: i.keys["ES256"].sign_pyjwt(claims(issuer="https://evil.test")), "issuer"),
    "alg none": (_alg_none, None),
    "rsa public key pem as hmac secret (kid of the RSA key)": (_rsa_public_pem_as_hmac_secret, None),
    "rsa public key pem as hmac secret (no kid)": (lambda i: _rsa_public_pem_as_hmac_secret(i, with_kid=False), None),
    "crit header": (_crit, None),
    "kid of a key of another algorithm": (_kid_of_other_algorithm, None),
    "rsa key used with PS256": (_rsa_key_used_with_pss, None),
    "no exp": (lambda i: i.keys["EdDSA"].sign_pyjwt(claims(exp=None)), "exp"),
    "not yet valid": (lambda i: i.keys["EdDSA"].sign_pyjwt(claims(nbf=int(time.time()) + 3600)), None),
    "lifetime beyond max_token_lifetime": (lambda i: i.keys["PS256"].sign_pyjwt(claims(lifetime=3 * 86400)), "lifetime"),
    "no sub": (lambda i: i.keys["ES384"].sign_pyjwt(claims(subject=None)), "sub"),
    "hs256 with a wrong secret": (lambda i: pyjwt.encode(claims(issuer=HS_IDP), os.urandom(32), algorithm="HS256",
                                                         headers={"kid": i.keys["HS256"].kid}), "signature"),
}


@pytest.mark.parametrize("case", list(NEGATIVE_CASES))
def test_forged_and_misdirected_tokens_get_401_with_rfc6750_challenge(interop, case):
    make, description = NEGATIVE_CASES[case]
    token = make(interop)
    interop.upstream.reset()
    r = requests.get(f"{interop.gateway.url}/v1/databases", headers=bearer(token), timeout=5)
    assert_invalid_token(r, description)
    assert interop.upstream.requests() == []


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_gateway_issued_tokens_verify_in_pyjwt_against_its_jwks(algorithm, tmp_path, upstream, redis_server, make_gateway):
    key = SigningKey(algorithm)
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(key.private_pem())
    pepper = write_pepper(tmp_path / "pepper")
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=jwt_session_tail(redis_server.port, pepper, key_file, algorithm))
    user = add_user(gateway, f"{algorithm.lower()}@example.test", ["read:databases", "read:logs"])
    r = login(gateway, f"{algorithm.lower()}@example.test")
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    head = pyjwt.get_unverified_header(token)
    assert head["alg"] == algorithm and head["typ"] == "at+jwt" and head["kid"] == f"gw-{algorithm.lower()}"
    client = pyjwt.PyJWKClient(f"{gateway.url}/.well-known/jwks.json", cache_keys=False)
    signing_key = client.get_signing_key_from_jwt(token)
    decoded = pyjwt.decode(token, signing_key.key, algorithms=[algorithm], audience=AUDIENCE, issuer=OWN_ISSUER,
                           options={"require": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]})
    assert decoded["sub"] == user["id"] and decoded["sub"].startswith("usr_")
    assert decoded["scope"] == "read:databases read:logs"
    assert decoded["exp"] - decoded["iat"] == 3600
    # A wrong audience or issuer is noticed by PyJWT too (the claims are really checked).
    with pytest.raises(pyjwt.InvalidAudienceError):
        pyjwt.decode(token, signing_key.key, algorithms=[algorithm], audience="someone-else", issuer=OWN_ISSUER)
    with pytest.raises(pyjwt.InvalidIssuerError):
        pyjwt.decode(token, signing_key.key, algorithms=[algorithm], audience=AUDIENCE, issuer="https://other.test")
    # The published key is the public half of the configured key, nothing more.
    published = requests.get(f"{gateway.url}/.well-known/jwks.json", timeout=5).json()["keys"]
    assert len(published) == 1
    material = ("kty", "crv", "n", "e", "x", "y", "alg")
    assert {k: published[0].get(k) for k in material} == {k: key.public_jwk.get(k) for k in material}
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(published[0])
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5)
    assert r.status_code == 200
    assert header(upstream.requests()[-1], "X-DBAudit-Subject") == [user["id"]]


# ---------------------------------------------------------------------------------------------
# 3. JWKS behaviour against the test's JWKS server.

def jwks_gateway(make_gateway, upstream, server, **settings):
    lines = "\n".join(f'{name} = "{value}"' for name, value in settings.items())
    return make_gateway(upstream.url, routes=ROUTES, tail=f"""
[auth.jwt]
[[auth.jwt.issuers]]
issuer = "{IDP}"
jwks_url = "{server.url}"
{lines}
""")


@pytest.fixture
def jwks_server():
    server = JWKSServer()
    yield server
    server.stop()


def test_rotation_is_picked_up_by_unknown_kid_refetch(jwks_server, upstream, make_gateway):
    old, new = SigningKey("RS256"), SigningKey("ES256")
    jwks_server.set_keys([old])
    gateway = jwks_gateway(make_gateway, upstream, jwks_server, unknown_kid_refetch_interval="1s")
    jwks_server.wait_for_fetches(1)
    old_token = old.sign_pyjwt(claims(subject="old"))
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(old_token), timeout=5).status_code == 200
    # The rate cap counts from the last fetch: be past it (it is the configured 1 s, not a guess).
    time.sleep(max(0.0, jwks_server.last_fetch() + 1.2 - time.monotonic()))
    jwks_server.set_keys([old, new])
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(new.sign_pyjwt(claims(subject="new"))), timeout=5)
    assert r.status_code == 200, r.text
    assert jwks_server.fetches == 2
    # Installed on every event loop (fresh connections alternate loops), the old key still works.
    for _ in range(4):
        assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(new.sign_pyjwt(claims())), timeout=5).status_code == 200
        assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(old.sign_pyjwt(claims())), timeout=5).status_code == 200
    assert jwks_server.fetches == 2


@pytest.mark.parametrize("interval", [30, 1])
def test_random_kids_cause_at_most_the_configured_fetches(interval, jwks_server, upstream, make_gateway):
    known = SigningKey("RS256")
    jwks_server.set_keys([known])
    gateway = jwks_gateway(make_gateway, upstream, jwks_server, unknown_kid_refetch_interval=f"{interval}s")
    jwks_server.wait_for_fetches(1)
    started = jwks_server.last_fetch()
    payload = b64url_json(claims())
    statuses = []
    lock = threading.Lock()

    def storm(count):
        got = []
        with requests.Session() as session:
            for _ in range(count):
                token = f"{b64url_json({'alg': 'RS256', 'kid': uuid.uuid4().hex})}.{payload}.{b64url(os.urandom(256))}"
                got.append(session.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=10).status_code)
        with lock:
            statuses.extend(got)

    workers = [threading.Thread(target=storm, args=(250,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    if interval == 1:
        # Keep asking until past the first interval (plus the 1 s a loop may wait after its
        # last refused attempt), so the refetch path has surely been due.
        with requests.Session() as session:
            while time.monotonic() < started + 2.6:
                token = f"{b64url_json({'alg': 'RS256', 'kid': uuid.uuid4().hex})}.{payload}.{b64url(os.urandom(256))}"
                assert session.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=10).status_code == 401
                time.sleep(0.01)
    elapsed = time.monotonic() - started
    fetches = jwks_server.fetches
    print(f"\n1000 random-kid requests, refetch interval {interval}s: {elapsed:.1f}s since the first fetch, "
          f"JWKS fetched {fetches} times")
    assert len(statuses) == 1000
    assert set(statuses) == {401}
    # The initial fetch, then at most one refetch per interval (one in flight at a time).
    assert fetches <= 1 + int(elapsed // interval) + 1
    if interval == 30:
        assert elapsed < 30 and fetches <= 2
    else:
        # The refetch path really ran (and was capped): past the first interval, a loop
        # asks again at most 1 s after its last refused attempt.
        assert elapsed > 2.5 and fetches >= 2, (elapsed, fetches)
    assert upstream.requests() == []
    # The storm did not hurt the known key.
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(known.sign_pyjwt(claims())), timeout=5).status_code == 200


def test_provider_down_after_warm_up_keeps_known_keys(jwks_server, upstream, make_gateway):
    a, b = SigningKey("RS256"), SigningKey("EdDSA")
    jwks_server.set_keys([a, b])
    gateway = jwks_gateway(make_gateway, upstream, jwks_server, min_refresh_interval="1s", max_refresh_interval="1s",
                           unknown_kid_refetch_interval="1s", fetch_timeout="1s")
    jwks_server.wait_for_fetches(1)
    seen = a.sign_pyjwt(claims(subject="seen"))
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(seen), timeout=5).status_code == 200
    jwks_server.stop()
    # The background refresh (every 1 s here) has failed at least once.
    gateway.wait_for_log(lambda line: line.get("msg") == "JWKS refresh failed; keeping the previous keys", timeout=5)
    for _ in range(2):  # both event loops
        assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(seen), timeout=5).status_code == 200
        assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(a.sign_pyjwt(claims())), timeout=5).status_code == 200
        assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(b.sign_pyjwt(claims())), timeout=5).status_code == 200
    # An unknown kid while the provider is down: a refetch fails, the answer is a prompt 503
    # (the token may be signed with a key published since: an outage, not the caller's fault).
    stranger = SigningKey("ES256")
    started = time.monotonic()
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(stranger.sign_pyjwt(claims())), timeout=5)
    assert_auth_unavailable(r)
    assert time.monotonic() - started < 2
    # ...and did not throw away the keys it had.
    for _ in range(2):
        assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(b.sign_pyjwt(claims())), timeout=5).status_code == 200


def _forged_e1_signature(signing_input: bytes, modulus_bytes: int) -> bytes:
    """With e = 1 the "signature" is the PKCS#1 v1.5 encoded digest itself: anyone can make it."""
    import hashlib

    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(signing_input).digest()
    return b"\x00\x01" + b"\xff" * (modulus_bytes - 3 - len(digest_info)) + b"\x00" + digest_info


def test_weak_and_ambiguous_keys_in_a_remote_jwks_are_ignored(jwks_server, upstream, make_gateway):
    good = SigningKey("RS256")
    weak = SigningKey("RS256", kid="weak-1024", rsa_key=rsa.generate_private_key(public_exponent=65537, key_size=1024))
    e_one = dict(good.public_jwk, kid="e-one", e="AQ")
    on_curve = SigningKey("ES256", kid="off-curve")
    off_curve = dict(on_curve.public_jwk)
    y = bytearray(pyjwt.utils.base64url_decode(off_curve["y"]))
    y[-1] ^= 1
    off_curve["y"] = b64url(bytes(y))
    twins = [SigningKey("ES256", kid="twin"), SigningKey("ES256", kid="twin")]
    jwks_server.set_document({"keys": [good.public_jwk, weak.public_jwk, e_one, off_curve] + [t.public_jwk for t in twins]})
    gateway = jwks_gateway(make_gateway, upstream, jwks_server)
    jwks_server.wait_for_fetches(1)
    assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(good.sign_pyjwt(claims())), timeout=5).status_code == 200
    signing_input = f"{b64url_json({'alg': 'RS256', 'kid': 'e-one'})}.{b64url_json(claims())}".encode()
    forged = f"{signing_input.decode()}.{b64url(_forged_e1_signature(signing_input, 256))}"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about the 1024-bit key: that is the point
        refused = {"weak-1024": weak.sign_pyjwt(claims()), "e-one": forged, "off-curve": on_curve.sign_pyjwt(claims()),
                   "twin": twins[0].sign_pyjwt(claims())}
    for kid, token in refused.items():
        assert_invalid_token(requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5)), kid
    ignored = [line.get("reason", "") for line in gateway.log_lines() if line.get("msg") == "JWKS key ignored"]
    for kid in refused:
        assert any(f'"{kid}"' in reason for reason in ignored), (kid, ignored)
    assert [rec for rec in upstream.requests() if header(rec, "X-DBAudit-Subject")] and len(upstream.requests()) == 1


@pytest.mark.parametrize("extra", ["oct key", "private RSA key"])
def test_remote_jwks_ignores_symmetric_and_private_keys_one_by_one(extra, jwks_server, upstream, make_gateway):
    good = SigningKey("ES256")
    if extra == "oct key":
        odd = SigningKey("HS256").public_jwk
    else:
        other = SigningKey("RS256")
        odd = private_rsa_jwk(other)
    jwks_server.set_document({"keys": [good.public_jwk, odd]})
    gateway = jwks_gateway(make_gateway, upstream, jwks_server)
    jwks_server.wait_for_fetches(1)
    r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(good.sign_pyjwt(claims())), timeout=5)
    assert r.status_code == 200, r.text
    if extra == "oct key":
        # ...and the oct key itself never verifies anything from a remote set.
        token = pyjwt.encode(claims(), pyjwt.utils.base64url_decode(odd["k"]), algorithm="HS256", headers={"kid": odd["kid"]})
        assert_invalid_token(requests.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5))


def private_rsa_jwk(key):
    from jwt.algorithms import RSAAlgorithm

    jwk = RSAAlgorithm.to_jwk(key.private, as_dict=True)
    jwk.update({"kid": key.kid, "alg": "RS256"})
    return jwk


def test_background_refresh_follows_cache_control_within_bounds(upstream, make_gateway):
    server = JWKSServer(cache_control="public, max-age=1")
    try:
        a, b = SigningKey("RS256"), SigningKey("ES384")
        server.set_keys([a])
        # No unknown-kid refetch can happen within the test: only the background refresh can
        # bring key b.
        gateway = jwks_gateway(make_gateway, upstream, server, min_refresh_interval="1s", max_refresh_interval="1h",
                               unknown_kid_refetch_interval="1h")
        server.wait_for_fetches(1)
        assert requests.get(f"{gateway.url}/v1/databases", headers=bearer(b.sign_pyjwt(claims())), timeout=5).status_code == 401
        server.set_keys([a, b])
        server.wait_for_fetches(2, timeout=5)
        deadline = time.monotonic() + 2
        while True:
            r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(b.sign_pyjwt(claims())), timeout=5)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert r.status_code == 200, r.text
        # max-age=1 within [1s, 1h]: about one fetch a second, not a hammering.
        gaps = [later - earlier for earlier, later in zip(server.fetch_times, server.fetch_times[1:])]
        assert gaps and min(gaps) >= 0.9, gaps
    finally:
        server.stop()


@pytest.mark.parametrize("named_issuer, accepted", [(IDP, True), ("https://impostor.test", False)])
def test_keys_from_oidc_discovery(named_issuer, accepted, jwks_server, upstream, make_gateway):
    key = SigningKey("PS384")
    jwks_server.set_keys([key])
    jwks_server.set_path("/.well-known/openid-configuration", {"issuer": named_issuer, "jwks_uri": jwks_server.url})
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=f"""
[auth.jwt]
[[auth.jwt.issuers]]
issuer = "{IDP}"
discovery_url = "{jwks_server.url_of('/.well-known/openid-configuration')}"
""")
    deadline = time.monotonic() + 5
    while jwks_server.path_hits.get("/.well-known/openid-configuration", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    if accepted:
        jwks_server.wait_for_fetches(1)
        r = requests.get(f"{gateway.url}/v1/databases", headers=bearer(key.sign_pyjwt(claims())), timeout=5)
        assert r.status_code == 200, r.text
    else:
        # A discovery document naming another issuer is not trusted: its jwks_uri is never fetched,
        # so the issuer has no keys and its tokens cannot be checked (503, never a 200).
        gateway.wait_for_log(lambda line: line.get("msg") == "JWKS refresh failed; keeping the previous keys")
        assert jwks_server.fetches == 0
        assert_auth_unavailable(requests.get(f"{gateway.url}/v1/databases", headers=bearer(key.sign_pyjwt(claims())),
                                             timeout=5))
        assert jwks_server.fetches == 0


def test_token_answers_do_not_flip_between_exp_and_exp_plus_leeway(jwks_server, upstream, make_gateway):
    key = SigningKey("RS256")
    jwks_server.set_keys([key])
    gateway = jwks_gateway(make_gateway, upstream, jwks_server)  # default leeway: 60 s
    jwks_server.wait_for_fetches(1)
    exp = int(time.time()) + 2
    token = key.sign_pyjwt(claims(exp=exp))
    with requests.Session() as session:  # one connection: one event loop, one cache
        assert session.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5).status_code == 200
        # Wait for the token's own exp to pass (its clock, not a synchronisation guess).
        time.sleep(max(0.0, exp + 0.5 - time.time()))
        statuses = [session.get(f"{gateway.url}/v1/databases", headers=bearer(token), timeout=5).status_code
                    for _ in range(4)]
    # Within the leeway the token is accepted, every time.
    assert statuses == [200] * 4, statuses


def test_issuer_policy_required_type_and_algorithms(tmp_path, upstream, make_gateway):
    rs, ps = SigningKey("RS256"), SigningKey("PS256")
    jwks_file = tmp_path / "policy.jwks.json"
    jwks_file.write_text(json.dumps({"keys": [rs.public_jwk, ps.public_jwk]}))
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=f"""
[auth.jwt]
[[auth.jwt.issuers]]
issuer = "{IDP}"
jwks_file = "{jwks_file}"
required_type = "at+jwt"
algorithms = ["RS256"]
""")
    url = f"{gateway.url}/v1/databases"
    for typ in ("at+jwt", "application/at+jwt", "AT+JWT"):
        assert requests.get(url, headers=bearer(rs.sign_pyjwt(claims(), {"typ": typ})), timeout=5).status_code == 200, typ
    assert_invalid_token(requests.get(url, headers=bearer(rs.sign_pyjwt(claims(), {"typ": "JWT"})), timeout=5), "access token")
    assert_invalid_token(requests.get(url, headers=bearer(ps.sign_pyjwt(claims(), {"typ": "at+jwt"})), timeout=5), "algorithm")


@pytest.mark.parametrize("scope_claims", [
    {"scope": "read:databases x\tadmin"},
    {"scope": "read:databases,admin"},
    {"scope": 'read:databases a"b'},
    {"scope": "read:databases a\\b"},
    {"scope": None, "scp": ["read:databases", "x admin"]},
    {"scope": None, "scp": ["read:databases", "read:logs,admin"]},
    {"scope": None, "scp": ["read:databases", ""]},
])
def test_scope_values_that_are_not_scope_tokens_refuse_the_token(scope_claims, tmp_path, upstream, make_gateway):
    """An issuer's token whose `scope` or `scp` holds something other than RFC 6749 scope
    tokens is refused as a whole (401 invalid_token): the upstream never sees the values in
    X-DBAudit-Scopes."""
    key = SigningKey("RS256")
    jwks_file = tmp_path / "scopes.jwks.json"
    jwks_file.write_text(json.dumps({"keys": [key.public_jwk]}))
    gateway = make_gateway(upstream.url, routes=ROUTES, tail=f"""
[auth.jwt]
[[auth.jwt.issuers]]
issuer = "{IDP}"
jwks_file = "{jwks_file}"
""")
    url = f"{gateway.url}/v1/databases"
    # The same issuer's well-formed token passes, with exactly its scopes forwarded.
    r = requests.get(url, headers=bearer(key.sign_pyjwt(claims(scope=None, scp=["read:databases", "read:logs"]))), timeout=5)
    assert r.status_code == 200, r.text
    assert header(upstream.requests()[-1], "X-DBAudit-Scopes") == ["read:databases read:logs"]
    upstream.reset()
    assert_invalid_token(requests.get(url, headers=bearer(key.sign_pyjwt(claims(**scope_claims))), timeout=5), "scope")
    assert upstream.requests() == []
