"""Issue 19, acceptance line 1: `dbaudit-gateway explain` runs the request path's own
decision code. Every case of the API-key, JWT and OAuth request suites is sent both through
the proxy and through `explain`: same status, same `error`, same `WWW-Authenticate`. Plus the
refusals each named by their failing step, a rate-limited principal at zero tokens (and
explaining takes no token), the `--json` document checked against the schema printed in
docs/operations.md, a secret canary, and the usage errors (exit 2)."""

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import (OWN_ISSUER, Gateway, add_user, bearer, login, RedisServer, Upstream, create_key, gateway_binary, parse_response, raw_exchange,
                      wait_until, write_pepper)
from test_admin import admin_port
from test_sessions import session_tail, sessions_gateway  # noqa: F401
from jwks_server import ASYMMETRIC_ALGORITHMS, SYMMETRIC_ALGORITHMS, SigningKey
from test_api_keys import PATH_CASES, ROUTES as KEY_ROUTES, auth_tail, make_api_key
from test_jwt import NEGATIVE_CASES, Interop, claims
from test_oauth_requests import (external_token, introspecting_gateway, oauth_tail, opaque_token, own_access_token,  # noqa: F401
                                 revoke_opaque_token, secrets, store_opaque_token, stub)

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"

LIMITED_ROUTE = """
[[rate_limits]]
name = "tight"
rate = 1
per = "hour"
burst = 2

[[routes]]
method = "GET"
path = "/v1/limited"
scopes = ["read:databases"]
rate_limit = "tight"
"""


# --- running both ---------------------------------------------------------------------------

def explain(config_path, method, path, token=None, headers=(), source="stdin", as_json=True, client_address=None):
    """(exit status, parsed JSON or text, stdout, stderr) of `explain`; the token goes in by
    standard input unless `source` says "argument" or names a file."""
    args = [gateway_binary(), "explain", "--config", str(config_path), "--method", method, "--path", path]
    stdin = None
    if token is not None:
        if source == "stdin":
            args.append("--token-stdin")
            stdin = token + "\n"
        elif source == "argument":
            args += ["--token", token]
        else:
            Path(source).write_text(token + "\n")
            args += ["--token-file", str(source)]
    for field in headers:
        args += ["--header", field]
    if client_address:
        args += ["--client-address", client_address]
    if as_json:
        args.append("--json")
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60)
    output = json.loads(result.stdout) if as_json and result.returncode in (0, 1) and result.stdout else result.stdout
    return result.returncode, output, result.stdout, result.stderr


def through_proxy(port, method, path, token=None):
    """(status, error code or None, WWW-Authenticate or None) of the real gateway. Raw bytes:
    the path goes out exactly as written (no client-side normalisation)."""
    auth = f"Authorization: Bearer {token}\r\n" if token is not None else ""
    body = "Content-Length: 0\r\n" if method in ("POST", "PUT") else ""
    raw = raw_exchange(port, f"{method} {path} HTTP/1.1\r\nHost: g\r\n{auth}{body}Connection: close\r\n\r\n".encode())
    status, headers, payload = parse_response(raw)
    error = None
    if status >= 400:
        error = json.loads(payload)["error"]
    return status, error, headers.get("www-authenticate")


def assert_agrees(config_path, port, method, path, token=None):
    """Explain first (it must not change what the gateway then answers), then the proxy:
    the same decision. Returns the explain document."""
    code, doc, stdout, stderr = explain(config_path, method, path, token)
    assert code in (0, 1), stderr
    check_schema(doc)
    status, error, challenge = through_proxy(port, method, path, token)
    decision = doc["decision"]
    if status < 400:
        assert code == 0 and decision["outcome"] == "allow", (status, doc)
        assert decision["status"] is None and decision["error"] is None
    else:
        assert code == 1 and decision["outcome"] == "deny", (status, error, doc)
        assert (decision["status"], decision["error"], decision["www_authenticate"]) == (status, error, challenge), doc
        assert decision["failing_step"], doc
        assert any(step["name"] == decision["failing_step"] and step["result"] == "fail" for step in doc["steps"])
    return doc


# --- the documented schema, checked by hand (no schema library in the requirements) ---------

def documented_schema() -> dict:
    text = OPERATIONS.read_text()
    section = text.split("### explain --json", 1)[1]
    return json.loads(re.search(r"```json\n(.*?)\n```", section, re.S)[1])


SCHEMA = documented_schema()
JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value, name):
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, JSON_TYPES[name])


def validate(value, schema, where="$"):
    """The subset of JSON Schema the documented schema uses: type (one or a list), enum,
    required, properties, additionalProperties false, items."""
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        assert any(_is(value, name) for name in names), f"{where}: {value!r} is not {names}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, dict):
        for name in schema.get("required", []):
            assert name in value, f"{where}: {name} missing"
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            extra = set(value) - set(properties)
            assert not extra, f"{where}: undocumented members {extra}"
        for name, member in value.items():
            if name in properties:
                validate(member, properties[name], f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{index}]")


def check_schema(doc):
    validate(doc, SCHEMA)
    allowed = doc["decision"]["outcome"] == "allow"
    assert (doc["decision"]["status"] is None) == allowed
    assert (doc["decision"]["destination"] is None) != allowed


def test_the_schema_checker_refuses_what_the_schema_does_not_allow():
    good = {"version": 1, "request": {"method": "GET", "path": "/", "normalized_path": None, "client_address": "x",
                                      "token_sha256_prefix": None},
            "steps": [], "principal": None, "rate_limits": [],
            "decision": {"outcome": "deny", "status": 404, "error": "not_found", "error_description": "d",
                         "www_authenticate": None, "failing_step": "route", "destination": None}}
    validate(good, SCHEMA)
    for broken in ({**good, "extra": 1}, {**good, "version": 2}, {k: v for k, v in good.items() if k != "steps"},
                   {**good, "steps": [{"name": "x", "result": "maybe", "detail": ""}]},
                   {**good, "decision": {**good["decision"], "status": "404"}}):
        with pytest.raises(AssertionError):
            validate(broken, SCHEMA)


# --- API keys: the cases of test_api_keys.py -------------------------------------------------

class KeyEnv:
    """One Redis, upstream and gateway with test_api_keys' routes (plus a rate-limited one)
    and one key of each kind the request path tells apart."""

    def __init__(self, tmp_path):
        self.redis = RedisServer(tmp_path)
        self.upstream = Upstream("explain")
        self.gateway = None
        try:
            pepper = write_pepper(tmp_path / "pepper")
            self.gateway = Gateway(tmp_path, self.upstream.url, routes=KEY_ROUTES + LIMITED_ROUTE,
                                   tail=auth_tail(self.redis.port, pepper))
            self.pepper = pepper
            expiring = create_key(self.gateway, ["read:databases"], name="expiring", extra=("--expires-in", "1s"))
            revoked = create_key(self.gateway, ["read:databases"], name="revoked")
            result = subprocess.run([gateway_binary(), "keys", "revoke", "--config", str(self.gateway.config_path),
                                     revoked["id"]], capture_output=True, text=True, timeout=30)
            assert result.returncode == 0, result.stderr
            reader = create_key(self.gateway, ["read:databases"], name="reader")["key"]
            last = reader[-1]
            self.tokens = {
                "none": None,
                "reader": reader,
                "admin": create_key(self.gateway, ["admin"], name="admin")["key"],
                "writer": create_key(self.gateway, ["write:policies"], name="writer")["key"],
                "expired": expiring["key"],
                "revoked": revoked["key"],
                "unknown": make_api_key(),
                "bad checksum": reader[:-1] + ("A" if last != "A" else "B"),
                "not a credential": "not-a-key",
            }
            # Expiry is stored in whole seconds: past it for sure.
            time.sleep(2.2)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.gateway:
            self.gateway.stop()
        self.upstream.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    env = KeyEnv(tmp_path_factory.mktemp("explain-keys"))
    yield env
    env.stop()


KEY_REQUESTS = [("GET", "/v1/databases"), ("POST", "/v1/policies"), ("GET", "/v1/admin/users"), ("GET", "/v1/unlisted"),
                ("GET", "/health"), ("GET", "/v1/databases/abc")]
KEY_CREDENTIALS = ["none", "reader", "admin", "writer", "expired", "revoked", "unknown", "bad checksum", "not a credential"]
KEY_CASES = ([(credential, method, path) for credential in KEY_CREDENTIALS for method, path in KEY_REQUESTS]
             + [("reader", "GET", path) for path, _, _ in PATH_CASES]
             + [("reader", "GET", "/v1/databases?access_token=x")])


@pytest.mark.parametrize("credential, method, path", KEY_CASES)
def test_explain_agrees_with_the_proxy_on_api_keys(keys, credential, method, path):
    assert_agrees(keys.gateway.config_path, keys.gateway.port, method, path, keys.tokens[credential])


# --- JWTs: the cases of test_jwt.py --------------------------------------------------------

@pytest.fixture(scope="module")
def interop(tmp_path_factory):
    env = Interop(tmp_path_factory.mktemp("explain-jwt"))
    yield env
    env.stop()


def _valid(algorithm):
    return lambda i: i.keys[algorithm].sign_pyjwt(claims(i.issuer_of(i.keys[algorithm]), f"user-{algorithm}"))


def _unknown_kid(interop):
    return SigningKey("RS256").sign_pyjwt(claims())


JWT_TOKENS = {**{f"valid {alg}": _valid(alg) for alg in ASYMMETRIC_ALGORITHMS + SYMMETRIC_ALGORITHMS},
              **{name: make for name, (make, _) in NEGATIVE_CASES.items()},
              "unknown kid": _unknown_kid}
JWT_CASES = ([(name, "GET", "/v1/databases") for name in JWT_TOKENS]
             + [(f"valid {alg}", "POST", "/v1/policies") for alg in ("RS256", "ES256", "HS256")])


@pytest.mark.parametrize("credential, method, path", JWT_CASES)
def test_explain_agrees_with_the_proxy_on_jwts(interop, credential, method, path):
    token = JWT_TOKENS[credential](interop)
    doc = assert_agrees(interop.gateway.config_path, interop.gateway.port, method, path, token)
    if credential.startswith("valid") and method == "GET":
        names = [step["name"] for step in doc["steps"]]
        for step in ("jwt.header", "jwt.signature", "jwt.claim.iss", "jwt.claim.exp", "jwt.claim.aud", "jwt.claim.sub"):
            assert step in names, names
        assert doc["principal"]["kind"] == "jwt" and doc["principal"]["subject"] == credential.replace("valid ", "user-")


# --- OAuth tokens: the cases of test_oauth_requests.py ---------------------------------------

def _oauth_case(name, gateway, secrets, redis, stub):
    if name == "own jwt with client_id":
        return own_access_token(secrets)
    if name == "own jwt with client_id, missing scope":
        return own_access_token(secrets, scope="read:logs")
    if name == "own jwt for another audience":
        return own_access_token(secrets, audience="another-api")
    token = opaque_token()
    if name == "opaque stored":
        store_opaque_token(redis, token)
    elif name == "opaque revoked":
        store_opaque_token(redis, token)
        revoke_opaque_token(redis, token)
    elif name == "opaque expired":
        record = store_opaque_token(redis, token, lifetime=1)
        wait_until(lambda: time.time() > record["expires_at"] + 0.1, 5)
    elif name == "opaque malformed":
        token = "dbaudit_at_!"
    elif name == "introspected active":
        token = external_token()
        stub.active(token)
    elif name == "introspected inactive":
        token = external_token()
    return token


OAUTH_CASES = ["own jwt with client_id", "own jwt with client_id, missing scope", "own jwt for another audience",
               "opaque stored", "opaque revoked", "opaque expired", "opaque unknown", "introspected active",
               "introspected inactive"]


@pytest.mark.parametrize("credential", OAUTH_CASES)
def test_explain_agrees_with_the_proxy_on_oauth_tokens(introspecting_gateway, secrets, redis_server, stub, credential):
    gateway = introspecting_gateway()
    token = _oauth_case(credential, gateway, secrets, redis_server, stub)
    doc = assert_agrees(gateway.config_path, gateway.port, "GET", "/v1/databases", token)
    if credential in ("own jwt with client_id", "opaque stored"):
        assert doc["principal"]["kind"] == "oauth" and doc["principal"]["client_id"] == "cid_reports"
    if credential == "own jwt with client_id":
        assert doc["principal"]["issuer"] == OWN_ISSUER
    if credential == "introspected active":
        assert doc["principal"]["issuer"] == "https://login.partner.test"


# --- user sessions (test_sessions.py): our own login tokens, and the deny list -------------

SESSION_CASES = [("GET", "/v1/databases"), ("GET", "/v1/logs"), ("POST", "/v1/policies"), ("GET", "/v1/unlisted")]


@pytest.mark.parametrize("logged_out", [False, True])
@pytest.mark.parametrize("method, path", SESSION_CASES)
def test_explain_agrees_with_the_proxy_on_user_sessions(sessions_gateway, method, path, logged_out):
    gateway = sessions_gateway
    add_user(gateway, "ana@example.com", ["read:databases", "read:logs"])
    access = login(gateway, "ana@example.com").json()["access_token"]
    if logged_out:
        r = requests.post(f"{gateway.url}/v1/auth/logout", headers=bearer(access), timeout=5)
        assert r.status_code == 200
    doc = assert_agrees(gateway.config_path, gateway.port, method, path, access)
    names = [step["name"] for step in doc["steps"]]
    if path != "/v1/unlisted":
        assert "jwt.revocation" in names, names
    if logged_out and path != "/v1/unlisted":
        assert doc["decision"]["failing_step"] == "jwt.revocation"


# --- each refusal names its failing step ---------------------------------------------------

REFUSALS = [
    # (credential, method, path, status, error, failing step)
    ("expired", "GET", "/v1/databases", 401, "invalid_token", "api_key.expiry"),
    ("revoked", "GET", "/v1/databases", 401, "invalid_token", "api_key.revocation"),
    ("reader", "POST", "/v1/policies", 403, "insufficient_scope", "scopes"),
    ("unknown", "GET", "/v1/databases", 401, "invalid_token", "api_key.lookup"),
    ("bad checksum", "GET", "/v1/databases", 401, "invalid_token", "api_key.format"),
    ("admin", "GET", "/v1/unlisted", 404, "not_found", "route"),
    ("reader", "GET", "/v1/databases%2fx", 400, "invalid_request", "path"),
    ("none", "GET", "/v1/databases", 401, "missing_credential", "credential"),
]


@pytest.mark.parametrize("credential, method, path, status, error, step", REFUSALS)
def test_each_refusal_names_its_failing_step(keys, credential, method, path, status, error, step):
    code, doc, _, _ = explain(keys.gateway.config_path, method, path, keys.tokens[credential])
    assert code == 1
    assert (doc["decision"]["status"], doc["decision"]["error"], doc["decision"]["failing_step"]) == (status, error, step)
    code, text, _, _ = explain(keys.gateway.config_path, method, path, keys.tokens[credential], as_json=False)
    assert code == 1
    assert re.search(rf"^\s+FAIL {re.escape(step)}\s", text, re.M), text
    assert f"decision: DENY {status} {error} (failing step: {step})" in text


@pytest.mark.parametrize("case, step", [("wrong aud", "jwt.claim.aud"), ("unknown kid", "jwt.key")])
def test_jwt_refusals_name_their_failing_step(interop, case, step):
    token = JWT_TOKENS[case](interop)
    code, doc, _, _ = explain(interop.gateway.config_path, "GET", "/v1/databases", token)
    assert code == 1 and doc["decision"]["failing_step"] == step, doc
    assert doc["decision"]["status"] == 401 and doc["decision"]["error"] == "invalid_token"
    if case == "wrong aud":
        aud = next(s for s in doc["steps"] if s["name"] == "jwt.claim.aud")
        assert "another-api" in aud["detail"] and "dbaudit-api" in aud["detail"], aud


def test_rate_limited_principal_at_zero_tokens_and_explain_takes_none(keys):
    key = create_key(keys.gateway, ["read:databases"], name="limited")["key"]
    config, port = keys.gateway.config_path, keys.gateway.port
    for _ in range(3):
        code, doc, _, _ = explain(config, "GET", "/v1/limited", key)
        assert code == 0, doc
        assert [(r["policy"], r["remaining"], r["would_admit"]) for r in doc["rate_limits"]] == [("tight", 1, True)]
    # Three explanations took nothing: the burst of 2 is still there for the proxy.
    assert through_proxy(port, "GET", "/v1/limited", key)[0] == 200
    assert through_proxy(port, "GET", "/v1/limited", key)[0] == 200
    doc = assert_agrees(config, port, "GET", "/v1/limited", key)
    assert doc["decision"]["status"] == 429 and doc["decision"]["error"] == "rate_limited"
    assert doc["decision"]["failing_step"] == "rate_limit.tight"
    assert [(r["policy"], r["remaining"], r["would_admit"]) for r in doc["rate_limits"]] == [("tight", 0, False)]


# --- secrets, usage ------------------------------------------------------------------------

def test_no_secret_in_any_output(keys, interop, tmp_path):
    canary_key = create_key(keys.gateway, ["read:databases"], name="canary")["key"]
    jwt = JWT_TOKENS["valid RS256"](interop)
    pepper = keys.pepper.read_text().strip()
    runs = []
    for token, config in ((canary_key, keys.gateway.config_path), (jwt, interop.gateway.config_path),
                          (canary_key[:-1] + "Z", keys.gateway.config_path)):
        for source in ("stdin", "argument", str(tmp_path / "token")):
            for as_json in (True, False):
                for path in ("/v1/databases", "/v1/policies"):
                    runs.append((token, explain(config, "GET", path, token, source=source, as_json=as_json)))
    for token, (code, _, stdout, stderr) in runs:
        assert code in (0, 1), stderr
        for secret in (token, token.split(".")[-1], token[13:] if token.startswith("dbaudit_") else token, pepper):
            assert secret not in stdout and secret not in stderr
        assert re.search(r"[0-9a-f]{12}", stdout), "the token is shown by its hash prefix"


@pytest.mark.parametrize("args", [
    ["--method", "GET"],
    ["--method", "GET", "--path", "/v1/databases", "--token", "a", "--token-stdin"],
    ["--method", "GET", "--path", "/v1/databases", "--header", "no colon"],
    ["--method", "GET", "--path", "/v1/databases", "--no-such-flag"],
    ["--method", "GET", "--path", "relative"],
    ["--method", "GET", "--path", "/x", "--token", "a", "--header", "Authorization: Bearer b"],
])
def test_usage_errors_exit_2(keys, args):
    result = subprocess.run([gateway_binary(), "explain", "--config", str(keys.gateway.config_path), *args],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""


def test_help_names_every_option():
    result = subprocess.run([gateway_binary(), "explain", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for flag in ("--config", "--method", "--path", "--token", "--token-file", "--token-stdin", "--header",
                 "--client-address", "--json"):
        assert flag in result.stdout


# --- the admin listener: POST /explain -----------------------------------------------------

ADMIN_TOKEN = "explain-admin-token-0123456789"


@pytest.fixture
def admin_keys(make_gateway, upstream, redis_server, tmp_path):
    """A gateway with test_api_keys' routes, the rate-limited route and an admin listener
    with a token; returns (gateway, admin port)."""
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    pepper = write_pepper(tmp_path / "pepper")
    gateway = make_gateway(upstream.url, routes=KEY_ROUTES + LIMITED_ROUTE,
                           tail=auth_tail(redis_server.port, pepper)
                           + f'\n[admin]\nlisten = "127.0.0.1:0"\ntoken_file = "{token_file}"\n')
    return gateway, admin_port(gateway)


def admin_explain(port, body, token=ADMIN_TOKEN, method="POST"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"http://127.0.0.1:{port}/explain", headers=headers,
                            data=body if isinstance(body, (bytes, str)) else json.dumps(body), timeout=30)


def test_admin_explain_gives_the_clis_decision_and_takes_no_token(admin_keys):
    gateway, port = admin_keys
    reader = create_key(gateway, ["read:databases"], name="reader")["key"]
    cases = [("GET", "/v1/databases", reader), ("POST", "/v1/policies", reader), ("GET", "/v1/unlisted", reader),
             ("GET", "/v1/databases%2fx", reader), ("GET", "/v1/databases", None), ("GET", "/v1/databases", make_api_key()),
             ("GET", "/v1/limited", reader)]
    for method, path, token in cases:
        body = {"method": method, "path": path, **({"token": token} if token else {})}
        r = admin_explain(port, body)
        assert r.status_code == 200, r.text
        assert r.headers["Cache-Control"] == "no-store"
        doc = r.json()
        check_schema(doc)
        code, cli, _, _ = explain(gateway.config_path, method, path, token)
        assert code == (0 if doc["decision"]["outcome"] == "allow" else 1)
        assert doc["decision"] == cli["decision"], (doc, cli)
        assert [s["name"] for s in doc["steps"] if s["result"] == "fail"] == \
            [s["name"] for s in cli["steps"] if s["result"] == "fail"]
        assert reader not in r.text and reader[13:] not in r.text
    # The limited route's burst of 2 is untouched by the explanations above and below.
    for _ in range(3):
        assert admin_explain(port, {"method": "GET", "path": "/v1/limited", "token": reader}).json()["decision"]["outcome"] == "allow"
    assert [through_proxy(gateway.port, "GET", "/v1/limited", reader)[0] for _ in range(3)] == [200, 200, 429]
    doc = admin_explain(port, {"method": "GET", "path": "/v1/limited", "token": reader}).json()
    assert (doc["decision"]["status"], doc["decision"]["failing_step"]) == (429, "rate_limit.tight")


def test_admin_explain_needs_the_admin_token_and_a_well_formed_body(admin_keys, make_gateway, upstream):
    gateway, port = admin_keys
    assert admin_explain(port, {"method": "GET", "path": "/"}, token=None).status_code == 401
    assert admin_explain(port, {"method": "GET", "path": "/"}, token="wrong-token-wrong-token").status_code == 401
    r = admin_explain(port, b"", method="GET")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    for body in (b"not json", b"[]", {"method": "GET"}, {"method": "get", "path": "/"}, {"method": "GET", "path": "x"},
                 {"method": "GET", "path": "/", "extra": 1}, {"method": "GET", "path": "/", "headers": ["no colon"]},
                 {"method": "GET", "path": "/", "token": "a", "headers": ["Authorization: Bearer b"]}):
        r = admin_explain(port, body)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", (body, r.text)
    r = admin_explain(port, b"{" + b" " * (40 * 1024) + b"}")
    assert r.status_code == 413
    # Without a token on the admin listener, the endpoint is not offered at all.
    open_admin = make_gateway(upstream.url, routes=KEY_ROUTES, tail='[admin]\nlisten = "127.0.0.1:0"\n')
    r = admin_explain(admin_port(open_admin), {"method": "GET", "path": "/v1/databases"}, token=None)
    assert r.status_code == 403 and r.json()["error"] == "explain_disabled"
