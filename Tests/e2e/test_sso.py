"""Issue 22: users sign in through an OpenID Connect provider on the gateway's sign-in
pages. A small provider (oidc_provider.py) runs on loopback; the gateway is its relying
party (PKCE S256, state and nonce, ID token checked with the provider's JWKS), creates
users just in time keyed by provider + sub, and maps groups to scopes at every sign-in."""

import json
import secrets
import signal
import subprocess
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from conftest import (AUDIENCE, OAUTH_PUBLIC_CLIENT, HTMLForms, USER_ROUTES, bearer, free_port, gateway_binary, header,
                      oauth_clients_text, redis_keys_tail, scaled, wait_until, write_pepper)
from jwks_server import SigningKey
from oidc_provider import OIDCProvider

SCOPES = ["read:databases", "read:logs"]
CALLBACK = "http://127.0.0.1:9/callback"  # a loopback redirect URI of the public client; never reached


def provider_block(provider: OIDCProvider, name: str, secret_file, extra: str = "") -> str:
    return f"""
[[sso.providers]]
name = "{name}"
display_name = "{name.capitalize()} SSO"
issuer = "{provider.issuer}"
client_id = "{provider.client_id}"
client_secret_file = "{secret_file}"
allowed_domains = ["example.com"]
{extra}

[[sso.providers.scope_rules]]
claim = "groups"
value = "dba"
scopes = ["read:databases"]

[[sso.providers.scope_rules]]
claim = "groups"
value = "auditors"
scopes = ["read:logs"]
"""


class SSOSetup:
    """An OAuth gateway whose issuer is its own loopback URL (the provider sends browsers to
    `<issuer>/sso/callback`), with `[sso]` naming each provider of `providers` (name -> OIDCProvider)."""

    def __init__(self, tmp_path, make_gateway, upstream_url: str, redis_port: int, providers: dict,
                 sso_settings: str = "", provider_extra: str = ""):
        self.providers = providers
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        pepper = write_pepper(tmp_path / "sso-pepper")
        key = SigningKey("RS256", kid="gw-rs256")
        key_file = tmp_path / "sso-signing-key.pem"
        key_file.write_bytes(key.private_pem())
        client_secret_file = tmp_path / "oauth-client-secret"
        client_secret_file.write_text("e2e-secret-" + secrets.token_hex(24) + "\n")
        blocks = []
        for name, provider in providers.items():
            secret_file = tmp_path / f"sso-{name}-secret"
            secret_file.write_text(provider.client_secret + "\n")
            blocks.append(provider_block(provider, name, secret_file, provider_extra))
        tail = redis_keys_tail(redis_port, pepper) + f"""
[auth.jwt]
issuer = "{self.url}"
audience = "{AUDIENCE}"
password_hash_cost = 10

[[auth.jwt.signing_keys]]
kid = "gw-rs256"
algorithm = "RS256"
private_key_file = "{key_file}"
active = true

[oauth]
{oauth_clients_text(client_secret_file)}

[sso]
{sso_settings}
{"".join(blocks)}
"""
        self.upstream_url = upstream_url
        self.gateway = make_gateway(upstream_url, routes=USER_ROUTES, tail=tail, port=port)

    def add_provider_and_reload(self, tmp_path, name: str, provider: OIDCProvider) -> None:
        """Appends a `[[sso.providers]]` to the file and reloads (SIGHUP)."""
        secret_file = tmp_path / f"sso-{name}-secret"
        secret_file.write_text(provider.client_secret + "\n")
        self.providers[name] = provider
        self.gateway.tail += provider_block(provider, name, secret_file)
        self.gateway.write_config(self.upstream_url)
        before = self.reloads()
        self.gateway.signal(signal.SIGHUP)
        assert wait_until(lambda: self.reloads() > before, 10), "the reload was not applied"

    def reloads(self) -> int:
        return sum(1 for line in self.gateway.log_lines() if line.get("msg") == "configuration reloaded")

    def authorize_url(self, verifier: str, state: str = "client-state", scopes=SCOPES) -> str:
        """`scopes=None`: no `scope` parameter (the client's scopes the user holds)."""
        query = {"response_type": "code", "client_id": OAUTH_PUBLIC_CLIENT, "redirect_uri": CALLBACK, "state": state,
                 "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"}
        if scopes is not None:
            query["scope"] = " ".join(scopes)
        return f"{self.url}/oauth/authorize?{urlencode(query)}"

    def users(self) -> list:
        result = subprocess.run([gateway_binary(), "users", "list", "--config", str(self.gateway.config_path), "--json"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def redeem(self, code: str, verifier: str) -> dict:
        r = requests.post(f"{self.url}/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "client_id": OAUTH_PUBLIC_CLIENT, "code_verifier": verifier}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def provider():
    p = OIDCProvider()
    p.users["alice"] = {"email": "alice@example.com", "email_verified": True, "groups": ["dba", "auditors"]}
    p.auto_login = "alice"
    yield p
    p.stop()


@pytest.fixture
def sso(tmp_path, make_gateway, upstream, redis_server, provider) -> SSOSetup:
    return SSOSetup(tmp_path, make_gateway, upstream.url, redis_server.port, {"corp": provider})


def follow(session: requests.Session, response: requests.Response, stop_outside: str):
    """Follows 302/303s with `session` until a page or a redirect leaving for a URL starting
    with `stop_outside`; returns (last response, its Location or None)."""
    for _ in range(10):
        if response.status_code not in (302, 303):
            return response, None
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(stop_outside):
            return response, location
        response = session.get(location, allow_redirects=False, timeout=10)
    raise AssertionError("too many redirects")


def start_sso(setup: SSOSetup, session: requests.Session, name: str = "corp", verifier: str = "v" * 50, scopes=SCOPES):
    """Opens the client's authorization request, clicks "Sign in with ..." (its link), and
    returns the provider's redirect back to the gateway's callback (not yet followed)."""
    page = session.get(setup.authorize_url(verifier, scopes=scopes), timeout=10)
    assert page.status_code == 200, page.text
    link = page.text.split(f'id="sso-{name}" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    response = session.get(urljoin(page.url, link), allow_redirects=False, timeout=10)
    assert response.status_code == 303, response.text
    provider_location = response.headers["Location"]
    assert provider_location.startswith(setup.providers[name].issuer + "/authorize?"), provider_location
    query = parse_qs(urlsplit(provider_location).query)
    assert query["code_challenge_method"] == ["S256"] and query["redirect_uri"] == [setup.url + "/sso/callback"], query
    assert query["nonce"][0] and query["state"][0] and "openid" in query["scope"][0].split()
    back = requests.get(provider_location, allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    callback = back.headers["Location"]
    assert callback.startswith(setup.url + "/sso/callback?"), callback
    return callback


def sso_code(setup: SSOSetup, session: requests.Session, name: str = "corp", verifier: str = "v" * 50, scopes=SCOPES) -> str:
    """SSO sign-in, then consent: returns the authorization code the client gets."""
    callback = start_sso(setup, session, name, verifier, scopes)
    response, _ = follow(session, session.get(callback, allow_redirects=False, timeout=10), CALLBACK)
    assert response.status_code == 200, response.text
    consent = HTMLForms(response.text).with_field("decision")
    assert consent is not None, response.text
    posted = session.post(urljoin(response.url, consent["action"]), data=HTMLForms.hidden(consent) | {"decision": "allow"},
                          allow_redirects=False, timeout=10)
    _, location = follow(session, posted, CALLBACK)
    assert location is not None, posted.text
    return parse_qs(urlsplit(location).query)["code"][0]


def refused(setup: SSOSetup, session: requests.Session, callback: str, status: int, code: str) -> str:
    r = session.get(callback, allow_redirects=False, timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("text/html"), r.headers
    assert code in r.text, r.text
    return r.text


# --- acceptance 1: a real browser -------------------------------------------------------------

def test_chromium_signs_in_with_sso_consents_and_calls_the_api_as_the_sso_user(sso, provider, chromium, upstream):
    provider.auto_login = None  # the provider's own login form, in the browser
    verifier = secrets.token_urlsafe(48)
    driver = chromium
    driver.get(sso.authorize_url(verifier))
    wait = WebDriverWait(driver, scaled(15))
    # Beside the password form.
    assert driver.find_element(By.ID, "password").is_displayed()
    wait.until(expected_conditions.element_to_be_clickable((By.ID, "sso-corp"))).click()
    wait.until(expected_conditions.element_to_be_clickable((By.ID, "username"))).send_keys("alice")
    driver.find_element(By.ID, "signin").click()
    allow = wait.until(expected_conditions.element_to_be_clickable((By.ID, "allow")))
    assert "alice@example.com" in driver.find_element(By.TAG_NAME, "body").text
    allow.click()
    wait.until(lambda d: d.current_url.startswith(CALLBACK))
    code = parse_qs(urlsplit(driver.current_url).query)["code"][0]

    tokens = sso.redeem(code, verifier)
    assert tokens["scope"] == " ".join(SCOPES)
    r = requests.get(f"{sso.url}/v1/databases", headers=bearer(tokens["access_token"]), timeout=10)
    assert r.status_code == 200, r.text
    record = upstream.wait_for_path("/v1/databases")
    [user] = sso.users()
    assert user["provider"] == "corp" and user["contact_email"] == "alice@example.com"
    assert header(record, "X-DBAudit-Subject") == [user["id"]]
    # The provider got the code with client_secret_basic and the PKCE verifier.
    [exchange] = provider.token_requests
    assert exchange["authorization"].startswith("Basic ") and exchange["form"]["code_verifier"]
    assert exchange["form"]["redirect_uri"] == sso.url + "/sso/callback"


def test_the_settings_sign_in_page_offers_the_provider_and_signs_in(sso):
    session = requests.Session()
    page = session.get(f"{sso.url}/settings/login", timeout=10)
    assert page.status_code == 200 and 'id="sso-corp"' in page.text and "Sign in with Corp SSO" in page.text
    assert 'id="password"' in page.text
    link = page.text.split('id="sso-corp" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    r = session.get(urljoin(page.url, link), allow_redirects=False, timeout=10)
    back = requests.get(r.headers["Location"], allow_redirects=False, timeout=10)
    landed, _ = follow(session, session.get(back.headers["Location"], allow_redirects=False, timeout=10), "http://none")
    assert landed.status_code == 200 and landed.url.endswith("/settings/api-keys"), landed.url
    assert "alice@example.com" in landed.text


def test_password_login_off_hides_the_form_and_refuses_passwords(tmp_path, make_gateway, upstream, redis_server, provider):
    setup = SSOSetup(tmp_path, make_gateway, upstream.url, redis_server.port, {"corp": provider},
                     sso_settings="password_login = false")
    session = requests.Session()
    page = session.get(setup.authorize_url("v" * 50), timeout=10)
    assert page.status_code == 200 and 'id="sso-corp"' in page.text
    assert 'id="password"' not in page.text
    flow = parse_qs(urlsplit(page.url).query).get("flow") or [page.text.split('flow=', 1)[1].split('"', 1)[0]]
    r = session.post(f"{setup.url}/oauth/authorize/login", data={"flow": flow[0], "csrf_token": "x", "email": "a@example.com",
                                                                 "password": "password-at-least-12"}, allow_redirects=False, timeout=10)
    assert r.status_code == 403, r.text


# --- acceptance 2: negative cases ---------------------------------------------------------

def test_wrong_state_is_refused(sso):
    session = requests.Session()
    callback = start_sso(sso, session)
    forged = callback.replace("state=", "state=x", 1)
    refused(sso, session, forged, 400, "sso_state_invalid")
    assert sso.users() == []


def test_replayed_state_is_refused(sso):
    session = requests.Session()
    callback = start_sso(sso, session)
    first = session.get(callback, allow_redirects=False, timeout=10)
    assert first.status_code == 303, first.text
    refused(sso, session, callback, 400, "sso_state_invalid")


def test_state_from_another_browser_is_refused(sso):
    callback = start_sso(sso, requests.Session())
    refused(sso, requests.Session(), callback, 400, "sso_state_invalid")


def test_wrong_nonce_is_refused(sso, provider):
    provider.tamper = {"nonce": "not-the-nonce"}
    session = requests.Session()
    refused(sso, session, start_sso(sso, session), 502, "sso_token_invalid")
    assert sso.users() == []


def test_id_token_signed_by_an_unknown_key_is_refused(sso, provider):
    provider.sign_with = SigningKey("RS256")
    session = requests.Session()
    refused(sso, session, start_sso(sso, session), 502, "sso_token_invalid")
    assert sso.users() == []


def test_expired_id_token_is_refused(sso, provider):
    provider.tamper = {"exp": 1_000_000_000, "iat": 999_999_000}
    session = requests.Session()
    refused(sso, session, start_sso(sso, session), 502, "sso_token_invalid")


def test_id_token_for_another_audience_is_refused(sso, provider):
    provider.tamper = {"aud": "someone-else"}
    session = requests.Session()
    refused(sso, session, start_sso(sso, session), 502, "sso_token_invalid")


def test_azp_mismatch_is_refused(sso, provider):
    provider.tamper = {"aud": [provider.client_id, "other-app"], "azp": "other-app"}
    session = requests.Session()
    refused(sso, session, start_sso(sso, session), 502, "sso_token_invalid")


def test_unverified_email_is_refused(sso, provider):
    provider.users["alice"]["email_verified"] = False
    session = requests.Session()
    text = refused(sso, session, start_sso(sso, session), 403, "sso_email_unverified")
    assert "verif" in text
    assert sso.users() == []


def test_email_outside_allowed_domains_is_refused(sso, provider):
    provider.users["alice"]["email"] = "alice@elsewhere.org"
    session = requests.Session()
    text = refused(sso, session, start_sso(sso, session), 403, "sso_domain_not_allowed")
    assert "elsewhere.org" in text


def test_no_scopes_granted_is_refused(sso, provider):
    provider.users["alice"]["groups"] = ["marketing"]
    session = requests.Session()
    refused(sso, session, start_sso(sso, session), 403, "sso_no_scopes")


def test_provider_down_shows_a_page_not_a_500(sso, provider):
    provider.stop()
    session = requests.Session()
    page = session.get(sso.authorize_url("v" * 50), timeout=10)
    link = page.text.split('id="sso-corp" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    r = session.get(urljoin(page.url, link), allow_redirects=False, timeout=30)
    assert r.status_code == 502, r.text
    assert r.headers["Content-Type"].startswith("text/html")
    assert "sso_provider_unavailable" in r.text and "cannot be reached" in r.text
    assert requests.get(f"{sso.url}/settings/login", timeout=10).status_code == 200  # still healthy


def test_two_providers_with_the_same_sub_and_email_are_two_users(tmp_path, make_gateway, upstream, redis_server):
    first, second = OIDCProvider(), OIDCProvider()
    try:
        for p in (first, second):
            p.users["same"] = {"email": "same@example.com", "email_verified": True, "groups": ["dba", "auditors"]}
            p.auto_login = "same"
        setup = SSOSetup(tmp_path, make_gateway, upstream.url, redis_server.port, {"one": first, "two": second})
        for name in ("one", "two"):
            verifier = secrets.token_urlsafe(48)
            code = sso_code(setup, requests.Session(), name, verifier)
            token = setup.redeem(code, verifier)["access_token"]
            r = requests.get(f"{setup.url}/v1/databases", headers=bearer(token), timeout=10)
            assert r.status_code == 200, r.text
        users = setup.users()
        assert len(users) == 2, users
        assert {u["provider"] for u in users} == {"one", "two"}
        assert {u["contact_email"] for u in users} == {"same@example.com"}
        assert users[0]["id"] != users[1]["id"] and users[0]["email"] != users[1]["email"]
        subjects = [header(r, "X-DBAudit-Subject")[0] for r in upstream.requests() if r["path"] == "/v1/databases"]
        assert len(subjects) == 2 and set(subjects) == {u["id"] for u in users}, subjects
    finally:
        first.stop()
        second.stop()


# --- acceptance 3: groups -> scopes at every sign-in ------------------------------------------

def test_group_change_at_the_provider_changes_the_scopes(sso, provider):
    verifier = secrets.token_urlsafe(48)
    token = sso.redeem(sso_code(sso, requests.Session(), verifier=verifier), verifier)["access_token"]
    assert requests.get(f"{sso.url}/v1/databases", headers=bearer(token), timeout=10).status_code == 200
    [user] = sso.users()
    assert user["scopes"] == ["read:databases", "read:logs"]

    provider.users["alice"]["groups"] = ["auditors"]  # removed from dba
    verifier = secrets.token_urlsafe(48)
    code = sso_code(sso, requests.Session(), verifier=verifier, scopes=None)
    tokens = sso.redeem(code, verifier)
    assert tokens["scope"] == "read:logs"
    assert requests.get(f"{sso.url}/v1/databases", headers=bearer(tokens["access_token"]), timeout=10).status_code == 403
    assert requests.get(f"{sso.url}/v1/logs", headers=bearer(tokens["access_token"]), timeout=10).status_code == 200
    [again] = sso.users()
    assert again["id"] == user["id"] and again["scopes"] == ["read:logs"]


def test_users_disable_stops_sso_sign_in(sso):
    verifier = secrets.token_urlsafe(48)
    sso_code(sso, requests.Session(), verifier=verifier)
    [user] = sso.users()
    listing = subprocess.run([gateway_binary(), "users", "list", "--config", str(sso.gateway.config_path)],
                             capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    assert f"{user['id']}  {user['email']}  enabled" in listing.stdout and "provider corp <alice@example.com>" in listing.stdout
    result = subprocess.run([gateway_binary(), "users", "disable", "--config", str(sso.gateway.config_path), "--email", user["email"]],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    session = requests.Session()
    refused(sso, session, start_sso(sso, session), 403, "account_disabled")
    [after] = sso.users()
    assert after["disabled"] is True and after["scopes"] == user["scopes"]


def test_a_provider_added_by_a_reload_signs_users_in(sso, tmp_path):
    second = OIDCProvider()
    try:
        second.users["bob"] = {"email": "bob@example.com", "email_verified": True, "groups": ["auditors"]}
        second.auto_login = "bob"
        page = requests.get(sso.authorize_url("v" * 50), timeout=10)
        assert 'id="sso-corp"' in page.text and 'id="sso-later"' not in page.text
        sso.add_provider_and_reload(tmp_path, "later", second)
        verifier = secrets.token_urlsafe(48)
        code = sso_code(sso, requests.Session(), "later", verifier, scopes=None)
        assert sso.redeem(code, verifier)["scope"] == "read:logs"
        assert [u["provider"] for u in sso.users()] == ["later"]
    finally:
        second.stop()


# --- check-config ------------------------------------------------------------------------------

def test_check_config_online_fetches_each_discovery_document(sso, provider):
    command = [gateway_binary(), "check-config", "--config", str(sso.gateway.config_path)]
    offline = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert offline.returncode == 0, offline.stderr
    assert "discovery" not in offline.stderr
    assert provider.client_secret not in offline.stdout + offline.stderr
    online = subprocess.run(command + ["--online"], capture_output=True, text=True, timeout=30)
    assert online.returncode == 0, online.stderr
    assert "sso.providers corp: discovery OK" in online.stderr and f"{provider.issuer}/token" in online.stderr
    provider.stop()
    down = subprocess.run(command + ["--online"], capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and "cannot be fetched" in down.stderr, down.stderr


def test_check_config_refuses_bad_provider_settings(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    config = tmp_path / "bad.conf"
    config.write_text(f"""
[upstream]
url = "http://127.0.0.1:9"

[sso]
password_login = false

[[sso.providers]]
name = "Bad Name"
issuer = "http://idp.example.com"
client_id = "gw"
client_secret_file = "{secret}"
scopes = ["email"]

[[sso.providers.scope_rules]]
claim = "groups"
value = "dba"
scopes = ["root"]
""")
    result = subprocess.run([gateway_binary(), "check-config", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    for expected in ("sso: users signed in through a provider get the gateway's sessions", "sso: users and sign-in state are kept in Redis",
                     "sso.providers[0].name: must be 1-32 characters", "sso.providers[0].issuer: must be an https:// URL"):
        assert expected in result.stderr, result.stderr
    assert "s3cret" not in result.stderr
