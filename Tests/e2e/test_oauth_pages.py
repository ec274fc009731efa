"""The browser pages of the OAuth authorization server, end to end with form posts:
GET /oauth/authorize validation (redirect-URI tricks answered by a page, never a redirect;
PKCE refusals; errors redirected with state and iss), the sign-in and consent pages (CSRF per
flow, security headers, cookie attributes, 303s), login throttling shared with
/v1/auth/login, remembered consent, and browser sessions ended by `users disable`.
Real redis-server, gateway binary, its CLI and a recording upstream."""

import base64
import hashlib
import html
import re
import secrets as pysecrets
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import (USER_ROUTES, add_user, bearer, jwt_session_tail, login, parse_response, raw_exchange,
                      set_user_disabled)
from jwks_server import SigningKey
from test_sessions import OneLoopGateway, Secrets
from test_tls import https_url, pki, tls_section  # noqa: F401 (pki is a fixture)

OWN_ISSUER = "https://gateway.test"
PASSWORD = "password-at-least-12"
USER_SCOPES = ["read:databases", "read:logs"]
PUBLIC_REDIRECTS = ["http://127.0.0.1/callback", "https://app.example.com/cb"]
WEB_REDIRECT = "https://web.example.com/oauth/callback"
WEB_SECRET = "w" * 40

CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"


def oauth_tail(web_secret_file) -> str:
    return f"""
[oauth]

[[oauth.clients]]
id = "cli-app"
name = "Reporting <CLI> & Co"
redirect_uris = ["http://127.0.0.1/callback", "http://[::1]/callback", "https://app.example.com/cb"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["read:databases", "read:logs", "read:reports"]
public = true

[[oauth.clients]]
id = "web-app"
name = "Web App"
redirect_uris = ["{WEB_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["read:logs"]
secret_file = "{web_secret_file}"
"""


@pytest.fixture
def secrets(tmp_path):
    return Secrets(tmp_path)


@pytest.fixture
def pages_tail(redis_server, secrets, tmp_path):
    web_secret = tmp_path / "web-secret"
    web_secret.write_text(WEB_SECRET + "\n")

    def make(jwt_settings="", ui=""):
        return (jwt_session_tail(redis_server.port, secrets.pepper, secrets.signing_key_file, "RS256", jwt_settings)
                + oauth_tail(web_secret) + (f"\n[ui]\n{ui}\n" if ui else ""))
    return make


@pytest.fixture
def pages_gateway(make_gateway, upstream, pages_tail):
    gateway = make_gateway(upstream.url, routes=USER_ROUTES, tail=pages_tail())
    add_user(gateway, "user@example.test", USER_SCOPES)
    return gateway


def redis_keys(redis_server, pattern: str) -> list:
    """KEYS `pattern` as a list of key names (bytes)."""
    lines = redis_server.command("KEYS", pattern).split(b"\r\n")
    return [line for line in lines[1:] if line and not line.startswith(b"$")]


def redis_get(redis_server, key) -> bytes | None:
    raw = redis_server.command("GET", key)
    if raw.startswith(b"$-1"):
        return None
    return raw.split(b"\r\n", 1)[1].rsplit(b"\r\n", 1)[0]


def pkce_pair():
    verifier = base64.urlsafe_b64encode(pysecrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(**overrides):
    _, challenge = pkce_pair()
    params = {
        "response_type": "code", "client_id": "cli-app", "redirect_uri": "http://127.0.0.1:51234/callback",
        "state": "st-" + pysecrets.token_hex(4), "code_challenge": challenge, "code_challenge_method": "S256",
        "scope": "read:logs",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def authorize(gateway, session=None, params=None, raw_query=None):
    client = session or requests
    url = f"{gateway.url}/oauth/authorize"
    if raw_query is not None:
        return client.get(url + "?" + raw_query, allow_redirects=False, timeout=10)
    return client.get(url, params=params if params is not None else authorize_params(), allow_redirects=False, timeout=10)


def hidden(page: str, name: str) -> str:
    match = re.search(r'<input type="hidden" name="%s" value="([^"]*)">' % re.escape(name), page)
    assert match, f"no hidden {name} in page:\n{page}"
    return html.unescape(match[1])


def start_flow(gateway, session, **overrides):
    r = authorize(gateway, session, authorize_params(**overrides))
    assert r.status_code == 200, r.text
    assert 'id="login"' in r.text
    return hidden(r.text, "flow"), hidden(r.text, "csrf_token"), r


def post_login(gateway, session, flow, csrf, email="user@example.test", password=PASSWORD):
    return session.post(f"{gateway.url}/oauth/authorize/login",
                        data={"flow": flow, "csrf_token": csrf, "email": email, "password": password},
                        allow_redirects=False, timeout=15)


def follow(gateway, session, response):
    """Follows a 303 that stays on the gateway."""
    assert response.status_code == 303, response.text
    location = response.headers["Location"]
    assert location.startswith("/"), location
    return session.get(gateway.url + location, allow_redirects=False, timeout=10)


def signed_in_consent(gateway, session, **overrides):
    """Starts a flow, signs in; returns (flow, csrf, consent page response)."""
    flow, csrf, _ = start_flow(gateway, session, **overrides)
    page = follow(gateway, session, post_login(gateway, session, flow, csrf))
    return flow, csrf, page


def signed_in_session(gateway) -> requests.Session:
    """A browser that has signed in (through one flow it leaves at the consent page)."""
    session = requests.Session()
    signed_in_consent(gateway, session)
    return session


def follow_to_client(gateway, session, response):
    """Follows the gateway's own 303s; returns the response that leaves for the client."""
    for _ in range(5):
        location = response.headers.get("Location", "")
        if response.status_code != 303 or not location.startswith("/"):
            return response
        response = session.get(gateway.url + location, allow_redirects=False, timeout=10)
    return response


def decide(gateway, session, flow, csrf, decision="allow"):
    return session.post(f"{gateway.url}/oauth/authorize/consent",
                        data={"flow": flow, "csrf_token": csrf, "decision": decision}, allow_redirects=False, timeout=10)


def redirect_query(response) -> dict:
    assert response.status_code == 303, response.text
    location = response.headers["Location"]
    query = urllib.parse.urlsplit(location).query
    return dict(urllib.parse.parse_qsl(query, keep_blank_values=True))


# --- GET /oauth/authorize: refusals before the redirect URI is trusted are pages -----------

REDIRECT_TRICKS = [
    ("prefix", "https://app.example.com/c"),
    ("suffix", "https://app.example.com/cb/extra"),
    ("trailing slash", "https://app.example.com/cb/"),
    ("path traversal", "https://app.example.com/cb/../cb"),
    ("encoded traversal", "https://app.example.com/cb/%2e%2e/cb"),
    ("added query", "https://app.example.com/cb?next=https://evil.example"),
    ("fragment", "https://app.example.com/cb#frag"),
    ("other port, non-loopback", "https://app.example.com:8443/cb"),
    ("userinfo", "https://evil.example@app.example.com/cb"),
    ("userinfo on loopback", "http://user@127.0.0.1:5000/callback"),
    ("host case change", "https://APP.example.com/cb"),
    ("path case change", "https://app.example.com/CB"),
    ("scheme case change", "HTTPS://app.example.com/cb"),
    ("percent-encoded path", "https://app.example.com/%63b"),
    ("http for a non-loopback URI", "http://app.example.com/cb"),
    ("other host", "https://evil.example/cb"),
    ("host suffix", "https://app.example.com.evil.example/cb"),
    ("unregistered loopback path", "http://127.0.0.1:5000/other"),
    ("loopback host suffix", "http://127.0.0.1.evil.example/callback"),
    ("localhost is not the loopback literal", "http://localhost:5000/callback"),
    ("other loopback address", "http://127.0.0.2:5000/callback"),
    ("https on a registered http loopback", "https://127.0.0.1:5000/callback"),
    ("empty port", "http://127.0.0.1:/callback"),
    ("port out of range", "http://127.0.0.1:70000/callback"),
    ("backslash", "https://app.example.com\\@evil.example/cb"),
]


def assert_error_page(r, status=400):
    assert r.status_code == status, r.text
    assert "Location" not in r.headers
    assert r.headers["Content-Type"].startswith("text/html"), r.headers
    assert r.headers["Content-Security-Policy"] == CSP
    assert "<!doctype html>" in r.text


@pytest.mark.parametrize("name,uri", REDIRECT_TRICKS, ids=[name for name, _ in REDIRECT_TRICKS])
def test_redirect_uri_tricks_get_a_page_never_a_redirect(pages_gateway, name, uri):
    r = authorize(pages_gateway, params=authorize_params(redirect_uri=uri))
    assert_error_page(r)
    assert "not registered" in r.text


def test_unknown_client_missing_or_duplicate_redirect_uri_are_pages(pages_gateway):
    assert_error_page(authorize(pages_gateway, params=authorize_params(client_id="nobody")))
    assert_error_page(authorize(pages_gateway, params=authorize_params(client_id=None)))
    assert_error_page(authorize(pages_gateway, params=authorize_params(redirect_uri=None)))
    query = urllib.parse.urlencode(authorize_params(redirect_uri="https://app.example.com/cb"))
    assert_error_page(authorize(pages_gateway, raw_query=query + "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"))
    assert_error_page(authorize(pages_gateway, raw_query=query + "&client_id=web-app"))


def test_loopback_redirect_uri_matches_any_port(pages_gateway):
    for port in (1024, 51234, 65535):
        r = authorize(pages_gateway, params=authorize_params(redirect_uri=f"http://127.0.0.1:{port}/callback"))
        assert r.status_code == 200, (port, r.text)


@pytest.mark.parametrize("overrides,description", [
    ({"code_challenge": None, "code_challenge_method": None}, "public client without PKCE"),
    ({"code_challenge_method": "plain"}, "plain"),
    ({"code_challenge_method": None}, "challenge without method"),
    ({"code_challenge": None}, "method without challenge"),
    ({"code_challenge": "a" * 42}, "challenge too short"),
    ({"code_challenge": "a" * 129}, "challenge too long"),
    ({"code_challenge": "a" * 42 + "+"}, "challenge outside the alphabet"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_pkce_refusals_redirect_with_invalid_request(pages_gateway, overrides, description):
    params = authorize_params(redirect_uri="https://app.example.com/cb", state="keep me", **overrides)
    r = authorize(pages_gateway, signed_in_session(pages_gateway), params=params)
    query = redirect_query(r)
    assert r.headers["Location"].startswith("https://app.example.com/cb?"), r.headers["Location"]
    assert query["error"] == "invalid_request", (description, query)
    assert query["state"] == "keep me"
    assert query["iss"] == OWN_ISSUER


def test_other_errors_after_the_redirect_uri_redirect_with_state_and_iss(pages_gateway):
    cases = [
        (authorize_params(scope="read:logs bogus:scope"), "invalid_scope"),
        (authorize_params(scope="write:policies"), "invalid_scope"),
        (authorize_params(response_type="token"), "unsupported_response_type"),
        (authorize_params(response_type=None), "invalid_request"),
    ]
    session = signed_in_session(pages_gateway)
    for params, error in cases:
        query = redirect_query(authorize(pages_gateway, session, params=params))
        assert query["error"] == error, (params, query)
        assert query["state"] == params["state"]
        assert query["iss"] == OWN_ISSUER
    duplicate = urllib.parse.urlencode(authorize_params(state="s1")) + "&scope=read%3Alogs"
    query = redirect_query(authorize(pages_gateway, session, raw_query=duplicate))
    assert query["error"] == "invalid_request" and query["state"] == "s1" and query["iss"] == OWN_ISSUER


def test_a_signed_out_browser_signs_in_before_any_error_goes_back_to_the_client(pages_gateway):
    # RFC 9700 §4.11.2: an erroneous request must not make the gateway redirect a browser
    # that nobody has authenticated (a phishing redirector through a registered client).
    session = requests.Session()
    r = authorize(pages_gateway, session, authorize_params(scope="write:policies", state="st-9"))
    assert r.status_code == 200 and "Location" not in r.headers and 'id="login"' in r.text
    forms = re.findall(r'name="(flow|csrf_token)" value="([^"]+)"', r.text)
    fields = dict(forms)
    signed_in = post_login(pages_gateway, session, fields["flow"], fields["csrf_token"])
    query = redirect_query(follow_to_client(pages_gateway, session, signed_in))
    assert query["error"] == "invalid_scope" and query["state"] == "st-9" and query["iss"] == OWN_ISSUER


def test_confidential_client_may_send_s256_or_nothing_but_never_plain(pages_gateway):
    _, challenge = pkce_pair()
    session = signed_in_session(pages_gateway)
    base = {"response_type": "code", "client_id": "web-app", "redirect_uri": WEB_REDIRECT, "state": "s"}
    assert authorize(pages_gateway, session, params=base).status_code == 200
    assert authorize(pages_gateway, session, params={**base, "code_challenge": challenge, "code_challenge_method": "S256"}).status_code == 200
    query = redirect_query(authorize(pages_gateway, session, params={**base, "code_challenge": challenge, "code_challenge_method": "plain"}))
    assert query["error"] == "invalid_request"


# --- sign-in, consent, code ------------------------------------------------------------------

def test_full_flow_issues_a_code_bound_to_the_request(pages_gateway, redis_server):
    session = requests.Session()
    flow, csrf, page = signed_in_consent(pages_gateway, session, scope="read:logs read:databases")
    assert page.status_code == 200, page.text
    assert 'id="allow"' in page.text and 'id="deny"' in page.text
    # The client's name is escaped; each scope is shown with its description.
    assert "Reporting &lt;CLI&gt; &amp; Co" in page.text
    assert "<code>read:logs</code> <span>Access audit logs and activity history</span>" in page.text
    assert "<code>read:databases</code> <span>View database connections and metadata</span>" in page.text
    r = decide(pages_gateway, session, flow, csrf)
    assert r.headers["Location"].startswith("http://127.0.0.1:51234/callback?code="), r.headers["Location"]
    query = redirect_query(r)
    assert set(query) == {"code", "state", "iss"}
    assert query["iss"] == OWN_ISSUER
    code = query["code"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", code)
    # Only the code's SHA-256 is stored, bound to client, redirect URI, challenge, user, scopes.
    digest = hashlib.sha256(code.encode()).hexdigest()
    stored = redis_get(redis_server, f"dbgw:oauth-code:{digest}")
    assert stored, "the code is not stored under its SHA-256"
    assert code.encode() not in stored
    assert b'"client_id":"cli-app"' in stored
    assert b"127.0.0.1:51234/callback" in stored
    assert b"read:logs" in stored and b"read:databases" in stored
    # The flow is over: its form cannot be posted again.
    again = decide(pages_gateway, session, flow, csrf)
    assert again.status_code == 400 and "Location" not in again.headers


def test_a_code_from_the_pages_is_exchanged_at_the_token_endpoint(pages_gateway, upstream):
    session = requests.Session()
    verifier, challenge = pkce_pair()
    flow, csrf, _ = signed_in_consent(pages_gateway, session, code_challenge=challenge, scope="read:logs")
    code = redirect_query(decide(pages_gateway, session, flow, csrf))["code"]
    r = requests.post(f"{pages_gateway.url}/oauth/token", timeout=15, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1:51234/callback",
        "client_id": "cli-app", "code_verifier": verifier})
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["scope"] == "read:logs"
    assert requests.get(f"{pages_gateway.url}/v1/logs", headers=bearer(tokens["access_token"]), timeout=5).status_code == 200
    assert requests.get(f"{pages_gateway.url}/v1/databases", headers=bearer(tokens["access_token"]), timeout=5).status_code == 403


def test_a_flow_answers_once_even_when_its_form_is_posted_twice_at_once(pages_gateway):
    session = requests.Session()
    flow, csrf, _ = signed_in_consent(pages_gateway, session)
    cookies = session.cookies.get_dict()
    barrier = threading.Barrier(6)

    def post(_):
        barrier.wait()
        return requests.post(f"{pages_gateway.url}/oauth/authorize/consent", cookies=cookies, allow_redirects=False,
                             data={"flow": flow, "csrf_token": csrf, "decision": "allow"}, timeout=15)

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(r.status_code for r in pool.map(post, range(6)))
    assert statuses == [303] + [400] * 5, statuses


def test_deny_redirects_access_denied_with_state_and_iss(pages_gateway):
    session = requests.Session()
    flow, csrf, _ = signed_in_consent(pages_gateway, session, state="deny-state")
    query = redirect_query(decide(pages_gateway, session, flow, csrf, "deny"))
    assert query["error"] == "access_denied"
    assert query["state"] == "deny-state"
    assert query["iss"] == OWN_ISSUER
    assert "code" not in query


def test_user_lacking_a_requested_scope_gets_invalid_scope(pages_gateway):
    session = requests.Session()
    flow, csrf, _ = start_flow(pages_gateway, session, scope="read:reports")
    r = follow(pages_gateway, session, post_login(pages_gateway, session, flow, csrf))
    query = redirect_query(r)
    assert query["error"] == "invalid_scope" and query["iss"] == OWN_ISSUER


def test_no_scope_parameter_grants_the_clients_scopes_the_user_holds(pages_gateway):
    session = requests.Session()
    flow, csrf, page = signed_in_consent(pages_gateway, session, scope=None)
    assert "<code>read:databases</code>" in page.text and "<code>read:logs</code>" in page.text
    assert "<code>read:reports</code>" not in page.text


def test_wrong_password_returns_to_the_sign_in_form(pages_gateway):
    session = requests.Session()
    flow, csrf, _ = start_flow(pages_gateway, session)
    r = post_login(pages_gateway, session, flow, csrf, password="wrong-password-guess")
    page = follow(pages_gateway, session, r)
    assert page.status_code == 200
    assert 'id="login-error"' in page.text and 'id="login"' in page.text
    assert not any(c.name.endswith("dbgw_session") for c in session.cookies)


def test_consent_page_headers_are_exactly_as_listed(pages_gateway):
    session = requests.Session()
    _, _, page = signed_in_consent(pages_gateway, session)
    assert page.status_code == 200
    # form-action also names the client's redirect origin: Chromium checks the 303 after the
    # form against it.
    assert page.headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' http://127.0.0.1:51234; frame-ancestors 'none'")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<script" not in page.text and "style=" not in page.text
    # An IPv6 literal cannot be a CSP source: the [::1] loopback is any host on its port.
    _, _, page = signed_in_consent(pages_gateway, requests.Session(), redirect_uri="http://[::1]:40404/callback")
    assert "form-action 'self' http://*:40404;" in page.headers["Content-Security-Policy"]


def test_stylesheet_is_served_with_long_cache(pages_gateway):
    r = requests.get(f"{pages_gateway.url}/oauth/static/gateway.css", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/css")
    assert r.headers["Cache-Control"] == "public, max-age=86400"
    assert ".card" in r.text


def test_session_cookie_attributes_on_a_plain_listener(pages_gateway):
    session = requests.Session()
    flow, csrf, first = start_flow(pages_gateway, session)
    browser_cookie = first.headers["Set-Cookie"]
    assert browser_cookie.startswith("dbgw_browser=")
    r = post_login(pages_gateway, session, flow, csrf)
    assert r.status_code == 303
    cookie = r.headers["Set-Cookie"]
    match = re.fullmatch(r"dbgw_session=([A-Za-z0-9_-]{43}); Path=/; Max-Age=43200; HttpOnly; SameSite=Lax", cookie)
    assert match, cookie
    assert "Secure" not in cookie and "__Host-" not in cookie


def test_cookies_on_a_tls_listener_are_host_prefixed_and_secure(make_gateway, upstream, pages_tail, pki):
    gateway = make_gateway(upstream.url, server=tls_section(pki), routes=USER_ROUTES, tail=pages_tail())
    add_user(gateway, "user@example.test", USER_SCOPES)
    session = requests.Session()
    ca = pki.path("ca.pem")
    base = https_url(gateway)
    r = session.get(f"{base}/oauth/authorize", params=authorize_params(), allow_redirects=False, timeout=10, verify=ca)
    assert r.status_code == 200, r.text
    assert re.fullmatch(r"__Host-dbgw_browser=[A-Za-z0-9_-]{43}; Path=/; Max-Age=\d+; HttpOnly; SameSite=Lax; Secure",
                        r.headers["Set-Cookie"]), r.headers["Set-Cookie"]
    r = session.post(f"{base}/oauth/authorize/login", allow_redirects=False, timeout=15, verify=ca, data={
        "flow": hidden(r.text, "flow"), "csrf_token": hidden(r.text, "csrf_token"), "email": "user@example.test",
        "password": PASSWORD})
    assert r.status_code == 303, r.text
    assert re.fullmatch(r"__Host-dbgw_session=[A-Za-z0-9_-]{43}; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax; Secure",
                        r.headers["Set-Cookie"]), r.headers["Set-Cookie"]
    page = session.get(base + r.headers["Location"], allow_redirects=False, timeout=10, verify=ca)
    assert page.status_code == 200 and 'id="allow"' in page.text
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")


def test_post_answers_303_and_wrong_methods_get_an_html_405(pages_gateway):
    r = requests.get(f"{pages_gateway.url}/oauth/authorize/login", timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert r.headers["Content-Type"].startswith("text/html")
    r = requests.post(f"{pages_gateway.url}/oauth/authorize", timeout=5)
    assert r.status_code == 405 and r.headers["Content-Type"].startswith("text/html")
    # Refused before the page runs (a body over 16 KiB): still an HTML page, never JSON.
    r = requests.post(f"{pages_gateway.url}/oauth/authorize/login", data={"email": "x" * 20000}, timeout=5)
    assert r.status_code == 413 and r.headers["Content-Type"].startswith("text/html"), (r.status_code, r.headers)
    assert "request_too_large" in r.text and r.headers["Content-Security-Policy"] == CSP


def test_a_request_the_parser_refuses_on_a_browser_route_gets_an_html_page(pages_gateway):
    # Two Host fields: refused by the strict parser after the request line, before routing. A
    # browser route still answers with its HTML page, under the client's request id, as every
    # other refusal there; an API route answers the JSON error.
    raw = raw_exchange(pages_gateway.port, b"GET /oauth/authorize?client_id=x HTTP/1.1\r\n"
                       b"X-Request-Id: dup-host-1\r\nHost: a\r\nHost: b\r\n\r\n")
    status, headers, body = parse_response(raw)
    assert status == 400 and headers["content-type"].startswith("text/html"), raw
    assert headers["x-request-id"] == "dup-host-1" and headers["content-security-policy"] == CSP
    assert headers["connection"] == "close"
    assert b"invalid_request" in body and b"exactly one Host" in body
    raw = raw_exchange(pages_gateway.port, b"GET /v1/databases HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    status, headers, body = parse_response(raw)
    assert status == 400 and headers["content-type"].startswith("application/json"), raw
    assert b'"error":"invalid_request"' in body.replace(b" ", b"")


# --- CSRF ------------------------------------------------------------------------------------

def test_csrf_missing_wrong_or_from_another_flow_is_403(pages_gateway):
    session = requests.Session()
    flow_a, csrf_a, _ = start_flow(pages_gateway, session)
    flow_b, csrf_b, _ = start_flow(pages_gateway, session)
    url = f"{pages_gateway.url}/oauth/authorize/login"
    attempts = [
        {"flow": flow_a, "email": "user@example.test", "password": PASSWORD},
        {"flow": flow_a, "csrf_token": "", "email": "user@example.test", "password": PASSWORD},
        {"flow": flow_a, "csrf_token": csrf_b, "email": "user@example.test", "password": PASSWORD},
        {"flow": flow_a, "csrf_token": csrf_a[:-1] + ("A" if csrf_a[-1] != "A" else "B"), "email": "user@example.test", "password": PASSWORD},
    ]
    for data in attempts:
        r = session.post(url, data=data, allow_redirects=False, timeout=10)
        assert r.status_code == 403, (data, r.text)
        assert "Location" not in r.headers and "Set-Cookie" not in r.headers
        assert r.headers["Content-Type"].startswith("text/html")
    # The consent form likewise: sign in through flow B, then post A's decision with B's token.
    page = follow(pages_gateway, session, post_login(pages_gateway, session, flow_b, csrf_b))
    assert 'id="allow"' in page.text
    r = decide(pages_gateway, session, flow_a, csrf_b)
    assert r.status_code == 403 and "Location" not in r.headers
    r = session.post(f"{pages_gateway.url}/oauth/authorize/consent", data={"flow": flow_b, "decision": "allow"},
                     allow_redirects=False, timeout=10)
    assert r.status_code == 403 and "Location" not in r.headers


def test_a_flow_cannot_be_continued_from_another_browser(pages_gateway):
    attacker = requests.Session()
    flow, csrf, _ = start_flow(pages_gateway, attacker)
    victim = requests.Session()
    # Login CSRF: the attacker's flow and token posted from the victim's browser.
    r = post_login(pages_gateway, victim, flow, csrf)
    assert r.status_code == 403 and "Set-Cookie" not in r.headers
    # Nor does a signed-in victim consent to the attacker's flow.
    victim_flow, victim_csrf, _ = signed_in_consent(pages_gateway, victim)
    assert decide(pages_gateway, victim, flow, csrf).status_code == 403


# --- remembered consent, sessions -------------------------------------------------------------

def test_remembered_consent_skips_the_page_for_a_confidential_client_and_the_same_scopes_only(pages_gateway):
    session = requests.Session()
    web = {"client_id": "web-app", "redirect_uri": WEB_REDIRECT, "scope": "read:logs"}
    flow, csrf, _ = signed_in_consent(pages_gateway, session, **web)
    assert "code" in redirect_query(decide(pages_gateway, session, flow, csrf))
    # Same client, same scopes, signed in: straight back with a code and the new state.
    r = authorize(pages_gateway, session, authorize_params(**web, state="second"))
    query = redirect_query(r)
    assert set(query) == {"code", "state", "iss"} and query["state"] == "second"


def test_remembered_consent_never_skips_the_page_for_a_public_client(pages_gateway):
    session = requests.Session()
    flow, csrf, _ = signed_in_consent(pages_gateway, session, scope="read:logs")
    assert "code" in redirect_query(decide(pages_gateway, session, flow, csrf))
    # Any program on this machine could claim the loopback redirect: the user is asked again.
    r = authorize(pages_gateway, session, authorize_params(scope="read:logs", state="second"))
    assert r.status_code == 200 and 'id="allow"' in r.text and "Location" not in r.headers


def test_signed_in_browser_skips_the_sign_in_form(pages_gateway):
    session = requests.Session()
    signed_in_consent(pages_gateway, session)
    r = authorize(pages_gateway, session)
    assert r.status_code == 200 and 'id="allow"' in r.text and 'id="login"' not in r.text


def test_sign_out_ends_the_session(pages_gateway, redis_server):
    session = requests.Session()
    flow, _, page = signed_in_consent(pages_gateway, session)
    session_csrf = re.search(r'action="/oauth/logout".*?name="csrf_token" value="([^"]+)"', page.text, re.S)[1]
    assert redis_keys(redis_server, "dbgw:browser-session:*")
    # Without the session's token: refused.
    r = session.post(f"{pages_gateway.url}/oauth/logout", data={"flow": flow}, allow_redirects=False, timeout=10)
    assert r.status_code == 403
    r = session.post(f"{pages_gateway.url}/oauth/logout", data={"flow": flow, "csrf_token": session_csrf},
                     allow_redirects=False, timeout=10)
    assert r.status_code == 303 and "Max-Age=0" in r.headers["Set-Cookie"]
    assert not redis_keys(redis_server, "dbgw:browser-session:*")
    page = follow(pages_gateway, session, r)
    assert 'id="login"' in page.text


def test_disabled_user_browser_session_no_longer_works(pages_gateway, redis_server):
    session = requests.Session()
    signed_in_consent(pages_gateway, session)
    assert redis_keys(redis_server, "dbgw:browser-session:*")
    set_user_disabled(pages_gateway, "user@example.test", True)
    # `users disable` deleted the session; the next request asks to sign in again.
    assert not redis_keys(redis_server, "dbgw:browser-session:*")
    r = authorize(pages_gateway, session)
    assert r.status_code == 200 and 'id="login"' in r.text and 'id="allow"' not in r.text


def test_session_of_a_disabled_user_is_refused_even_if_its_record_survives(pages_gateway, redis_server):
    session = requests.Session()
    signed_in_consent(pages_gateway, session)
    (key,) = redis_keys(redis_server, "dbgw:browser-session:*")
    record = redis_get(redis_server, key)
    set_user_disabled(pages_gateway, "user@example.test", True)
    # Put the session back, as if the deletion had been missed: each use re-checks the user.
    redis_server.command("SET", key, record, "EX", "600")
    r = authorize(pages_gateway, session)
    assert r.status_code == 200 and 'id="login"' in r.text and 'id="allow"' not in r.text
    assert redis_get(redis_server, key) is None


def test_idle_session_expires(make_gateway, upstream, pages_tail, redis_server):
    gateway = make_gateway(upstream.url, routes=USER_ROUTES, tail=pages_tail(ui='session_idle_timeout = "1m"\nsession_lifetime = "5m"'))
    add_user(gateway, "user@example.test", USER_SCOPES)
    session = requests.Session()
    signed_in_consent(gateway, session)
    (key,) = redis_keys(redis_server, "dbgw:browser-session:*")
    ttl = int(redis_server.command("TTL", key)[1:].strip())
    assert 0 < ttl <= 60, ttl  # the idle limit, not the 5m lifetime
    # Make it idle for longer than the limit (last_seen far in the past).
    record = redis_get(redis_server, key).decode()
    record = re.sub(r'"last_seen":\d+', '"last_seen":1', record)
    redis_server.command("SET", key, record, "EX", "600")
    r = authorize(gateway, session)
    assert 'id="login"' in r.text


# --- login throttling: the same buckets as /v1/auth/login -------------------------------------

THROTTLE = """
login_attempts_per_address = 20
login_attempts_per_account = 5
login_window = "1m"
"""


def test_sign_in_form_is_throttled_like_the_login_endpoint(tmp_path, upstream, pages_tail):
    gateway = OneLoopGateway(tmp_path, upstream.url, routes=USER_ROUTES, tail=pages_tail(THROTTLE))
    try:
        add_user(gateway, "user@example.test", USER_SCOPES)
        session = requests.Session()
        flow, csrf, _ = start_flow(gateway, session)
        # Three wrong passwords on the form, two on the JSON endpoint: one account bucket.
        for _ in range(3):
            r = post_login(gateway, session, flow, csrf, password="wrong-password-guess")
            assert r.status_code == 303 and r.headers["Location"].endswith("&error=credentials")
        for _ in range(2):
            assert login(gateway, "user@example.test", "wrong-password-guess").status_code == 401
        # Now even the right password waits, on the form (an HTML 429) and on the endpoint.
        r = post_login(gateway, session, flow, csrf)
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert r.headers["Content-Type"].startswith("text/html")
        assert "Set-Cookie" not in r.headers
        assert login(gateway, "user@example.test").status_code == 429
    finally:
        gateway.stop()


def test_new_flows_are_bounded_per_address_in_buckets_of_their_own(make_gateway, upstream, pages_tail):
    gateway = make_gateway(upstream.url, routes=USER_ROUTES, tail=pages_tail(THROTTLE))
    add_user(gateway, "user@example.test", USER_SCOPES)
    # Each flow is a record in Redis for ten minutes: login_attempts_per_address per window.
    for attempt in range(20):
        assert authorize(gateway).status_code == 200, attempt
    r = authorize(gateway)
    assert r.status_code == 429, r.text
    assert r.headers["Content-Type"].startswith("text/html") and "Location" not in r.headers
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # Refusals that create no flow are not counted, and sign-in keeps its own buckets.
    assert_error_page(authorize(gateway, params=authorize_params(client_id="nobody")))
    assert login(gateway, "user@example.test").status_code == 200
