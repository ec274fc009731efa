"""The OAuth 2.0 Security BCP (RFC 9700 §2, §4) and the RFCs it builds on, as black-box
tests of the gateway's authorization server: the requirements implementers most often miss
(state and iss in redirects, the token endpoint's redirect_uri and client binding, PKCE
verifier shape, refresh scope rules, retry grace bound to the client, revocation and
introspection semantics, metadata defaults, remembered consent for public clients, security
headers on every page, tokens that are not bearer credentials at the proxy)."""

import base64
import hashlib
import json
import secrets
import subprocess
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from conftest import (OAUTH_PASSWORD, OAUTH_SCOPES, OWN_ISSUER, HTMLForms, bearer, free_port, gateway_binary, header,
                      oauth_authorize)

SCOPE = " ".join(OAUTH_SCOPES)
EMAIL = "bcp@example.test"


def pkce(verifier: str | None = None):
    verifier = verifier or secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def loopback() -> str:
    return f"http://127.0.0.1:{free_port()}/callback"


def authorize_url(setup, client: str, redirect_uri: str, challenge: str | None, scope: str | None = SCOPE,
                  state: str | None = "st-1", extra: dict | None = None) -> str:
    params = {"response_type": "code", "client_id": client, "redirect_uri": redirect_uri}
    if scope is not None:
        params["scope"] = scope
    if state is not None:
        params["state"] = state
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    params |= extra or {}
    return setup.endpoint("authorize") + "?" + urlencode(params)


def query_of(location: str) -> dict:
    values = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in values.values()), location
    return {k: v[0] for k, v in values.items()}


def code_for(setup, client: str, *, session=None, scope: str | None = SCOPE, redirect_uri=None, with_pkce=True):
    """A code through the real login and consent pages: (code, redirect_uri, verifier)."""
    redirect_uri = redirect_uri or loopback()
    verifier, challenge = pkce() if with_pkce else (None, None)
    location = oauth_authorize(setup.url, authorize_url(setup, client, redirect_uri, challenge, scope=scope), EMAIL,
                               session=session)
    params = query_of(location)
    assert "code" in params, location
    return params["code"], redirect_uri, verifier


def token(setup, data: dict, auth=None, url_query: str = ""):
    return requests.post(setup.endpoint("token") + url_query, data=data, auth=auth, timeout=10)


def confidential_auth(setup):
    return (setup.confidential_client, setup.client_secret)


def redeem(setup, client, code, redirect_uri, verifier, auth=None):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    if auth is None:
        data["client_id"] = client
    return token(setup, data, auth=auth)


def refresh(setup, client, refresh_token, scope=None, auth=None):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope is not None:
        data["scope"] = scope
    if auth is None:
        data["client_id"] = client
    return token(setup, data, auth=auth)


def introspect(setup, value, hint=None):
    data = {"token": value} | ({"token_type_hint": hint} if hint else {})
    return requests.post(setup.endpoint("introspect"), data=data, auth=confidential_auth(setup), timeout=10)


@pytest.fixture
def setup(oauth_setup):
    oauth_setup.add_user(EMAIL)
    return oauth_setup


def public_tokens(setup, scope=SCOPE):
    code, redirect_uri, verifier = code_for(setup, setup.public_client, scope=scope)
    r = redeem(setup, setup.public_client, code, redirect_uri, verifier)
    assert r.status_code == 200, r.text
    return r.json()


# --- authorization endpoint -------------------------------------------------------------

def test_state_comes_back_byte_for_byte_and_is_absent_when_not_sent(setup):
    redirect_uri = loopback()
    odd = "a b&c=d#e/\u00e9%"
    _, challenge = pkce()
    location = oauth_authorize(setup.url, authorize_url(setup, setup.public_client, redirect_uri, challenge, state=odd), EMAIL)
    params = query_of(location)
    assert params["state"] == odd and params["iss"] == OWN_ISSUER
    assert location.count("?") == 1 and "#" not in location

    location = oauth_authorize(setup.url, authorize_url(setup, setup.public_client, redirect_uri, challenge, state=None), EMAIL)
    assert "state" not in query_of(location)


def test_error_redirects_carry_iss_and_state_and_escape_nothing_from_the_request(setup):
    session = requests.Session()
    redirect_uri = loopback()
    _, challenge = pkce()
    # Logged in first, so every answer below is about the request itself.
    oauth_authorize(setup.url, authorize_url(setup, setup.public_client, redirect_uri, challenge), EMAIL, session=session)
    for scope, error in (("admin", "invalid_scope"), ("<script>x</script>", "invalid_scope")):
        r = session.get(authorize_url(setup, setup.public_client, redirect_uri, challenge, scope=scope, state="s&1"),
                        allow_redirects=False, timeout=10)
        assert r.status_code in (302, 303), r.text
        params = query_of(r.headers["Location"])
        assert params["error"] == error and params["state"] == "s&1" and params["iss"] == OWN_ISSUER, params
        assert "<" not in r.headers["Location"] and "<" not in params.get("error_description", "")
    r = session.get(authorize_url(setup, setup.public_client, redirect_uri, challenge, extra={"response_type": "token"}),
                    allow_redirects=False, timeout=10)
    params = query_of(r.headers["Location"])
    assert params["error"] == "unsupported_response_type" and params["iss"] == OWN_ISSUER
    assert "#" not in r.headers["Location"]


def test_repeated_parameters_are_refused_and_a_second_redirect_uri_never_redirects(setup):
    _, challenge = pkce()
    good = loopback()
    base = authorize_url(setup, setup.public_client, good, challenge)
    r = requests.get(base + "&redirect_uri=" + requests.utils.quote("https://evil.example/cb", safe=""),
                     allow_redirects=False, timeout=10)
    assert "Location" not in r.headers and r.status_code == 400
    assert "text/html" in r.headers["Content-Type"]
    assert 'href="https://evil.example' not in r.text


def test_no_cors_on_the_authorization_server(setup):
    _, challenge = pkce()
    for method, url in (("GET", authorize_url(setup, setup.public_client, loopback(), challenge)),
                        ("OPTIONS", setup.endpoint("authorize")), ("OPTIONS", setup.endpoint("token")),
                        ("POST", setup.endpoint("token"))):
        r = requests.request(method, url, headers={"Origin": "https://evil.example"}, allow_redirects=False, timeout=10)
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], (method, url, dict(r.headers))


def test_remembered_consent_skips_the_page_for_a_confidential_client_only(setup):
    session = requests.Session()
    verifier, challenge = pkce()
    for client in (setup.public_client, setup.confidential_client):
        oauth_authorize(setup.url, authorize_url(setup, client, loopback(), challenge), EMAIL, session=session)
    # Confidential: its code is useless without the secret, a remembered consent answers at once.
    r = session.get(authorize_url(setup, setup.confidential_client, loopback(), challenge), allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303) and "code" in query_of(r.headers["Location"]), r.text[:500]
    # Public: anyone on this machine can claim its loopback redirect; the user is asked again.
    r = session.get(authorize_url(setup, setup.public_client, loopback(), challenge), allow_redirects=False, timeout=10)
    assert r.status_code == 200 and HTMLForms(r.text).with_field("decision") is not None, r.status_code


def test_pages_and_page_errors_carry_every_security_header(setup):
    _, challenge = pkce()
    responses = [
        requests.get(authorize_url(setup, setup.public_client, loopback(), challenge), timeout=10),  # login page
        requests.get(authorize_url(setup, "no-such-client", loopback(), challenge), timeout=10),  # HTML error
        requests.post(setup.url + "/oauth/authorize/consent", data={"flow": "x", "csrf_token": "y"}, timeout=10),  # 403
    ]
    for r in responses:
        assert "text/html" in r.headers["Content-Type"], (r.status_code, r.headers)
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "no-store" in r.headers["Cache-Control"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "<script" not in r.text.lower() and " style=" not in r.text.lower()


def test_login_and_consent_answer_303_and_never_follow_a_next_parameter(setup):
    _, challenge = pkce()
    session = requests.Session()
    r = session.get(authorize_url(setup, setup.public_client, loopback(), challenge), timeout=10)
    form = HTMLForms(r.text).with_field("password")
    data = HTMLForms.hidden(form) | {"email": EMAIL, "password": OAUTH_PASSWORD, "next": "https://evil.example/",
                                     "return_to": "https://evil.example/", "redirect_uri": "https://evil.example/"}
    r = session.post(setup.url + form["action"] if form["action"].startswith("/") else form["action"], data=data,
                     allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text[:300]
    assert "evil.example" not in r.headers["Location"]


# --- token endpoint -----------------------------------------------------------------------

def test_token_redirect_uri_must_equal_the_authorize_one_including_the_loopback_port(setup):
    for bad in (None, "other-port"):
        code, redirect_uri, verifier = code_for(setup, setup.public_client)
        data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "client_id": setup.public_client}
        if bad == "other-port":
            data["redirect_uri"] = loopback()
        r = token(setup, data)
        assert r.status_code == 400 and r.json()["error"] in ("invalid_grant", "invalid_request"), (bad, r.text)


def test_a_verifier_of_bad_shape_fails_even_when_its_hash_matches(setup):
    short = "a" * 42
    verifier, challenge = pkce(short)
    redirect_uri = loopback()
    location = oauth_authorize(setup.url, authorize_url(setup, setup.public_client, redirect_uri, challenge), EMAIL)
    code = query_of(location)["code"]
    r = redeem(setup, setup.public_client, code, redirect_uri, short)
    assert r.status_code == 400 and r.json()["error"] in ("invalid_grant", "invalid_request"), r.text


def test_a_scope_sent_with_the_code_exchange_never_broadens_the_grant(setup):
    code, redirect_uri, verifier = code_for(setup, setup.public_client, scope="read:logs")
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier,
            "client_id": setup.public_client, "scope": "read:logs read:databases admin"}
    r = token(setup, data)
    if r.status_code == 200:
        assert r.json()["scope"] == "read:logs", r.text
    else:
        assert r.json()["error"] == "invalid_scope", r.text


def test_two_client_authentication_methods_or_credentials_in_the_url_are_refused(setup):
    data = {"grant_type": "client_credentials", "client_secret": setup.client_secret}
    r = token(setup, data, auth=confidential_auth(setup))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    query = "?" + urlencode({"client_id": setup.confidential_client, "client_secret": setup.client_secret})
    r = token(setup, {"grant_type": "client_credentials"}, url_query=query)
    assert r.status_code in (400, 401), r.text


def test_grant_errors_use_the_rfc_codes_and_client_credentials_tokens_name_the_client(setup):
    r = token(setup, {"grant_type": "password", "username": EMAIL, "password": OAUTH_PASSWORD}, auth=confidential_auth(setup))
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type", r.text
    r = token(setup, {"grant_type": "client_credentials", "client_id": setup.public_client})
    assert r.status_code in (400, 401) and r.json()["error"] in ("unauthorized_client", "invalid_client"), r.text
    r = token(setup, {"grant_type": "client_credentials", "scope": "admin"}, auth=confidential_auth(setup))
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text
    r = token(setup, {"grant_type": "client_credentials"}, auth=confidential_auth(setup))
    assert r.status_code == 200, r.text
    issued = r.json()
    assert "refresh_token" not in issued and issued["scope"] == SCOPE
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    claims = json.loads(base64.urlsafe_b64decode(issued["access_token"].split(".")[1] + "=="))
    assert claims["sub"] == "client:" + setup.confidential_client and claims["client_id"] == setup.confidential_client
    r = requests.get(setup.endpoint("token"), timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_a_narrowed_refresh_keeps_the_original_scope_for_the_next_one(setup):
    issued = public_tokens(setup)
    r = refresh(setup, setup.public_client, issued["refresh_token"], scope="read:logs")
    assert r.status_code == 200 and r.json()["scope"] == "read:logs", r.text
    r = refresh(setup, setup.public_client, r.json()["refresh_token"])
    assert r.status_code == 200 and r.json()["scope"] == SCOPE, r.text
    r = refresh(setup, setup.public_client, r.json()["refresh_token"], scope="read:logs admin")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text


def test_retry_grace_is_bound_to_the_client(setup):
    issued = public_tokens(setup)
    first = refresh(setup, setup.public_client, issued["refresh_token"])
    assert first.status_code == 200
    # Another client presenting the just-rotated token inside the grace gets nothing.
    r = refresh(setup, setup.confidential_client, issued["refresh_token"], auth=confidential_auth(setup))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    again = refresh(setup, setup.public_client, issued["refresh_token"])
    assert again.status_code == 200 and again.json()["refresh_token"] == first.json()["refresh_token"], again.text


def test_tokens_of_the_authorization_server_are_not_bearer_credentials_at_the_proxy(setup):
    code, redirect_uri, verifier = code_for(setup, setup.public_client)
    issued = redeem(setup, setup.public_client, code, redirect_uri, verifier).json()
    for value in (issued["refresh_token"], code, setup.client_secret):
        r = requests.get(setup.url + "/v1/databases", headers=bearer(value), timeout=10)
        assert r.status_code == 401, (value[:12], r.status_code)
    r = requests.get(setup.url + "/v1/databases?access_token=" + issued["access_token"], timeout=10)
    assert r.status_code in (400, 401)


def test_client_sent_identity_headers_never_reach_the_upstream(setup, upstream):
    issued = public_tokens(setup)
    r = requests.get(setup.url + "/v1/databases", timeout=10,
                     headers=bearer(issued["access_token"]) | {"X-DBAudit-Client-Id": "evil", "X-DBAudit-Credential": "api_key"})
    assert r.status_code == 200, r.text
    seen = upstream.wait_for_path("/v1/databases")
    assert header(seen, "X-DBAudit-Client-Id") == [setup.public_client]
    assert header(seen, "X-DBAudit-Credential") == ["oauth"]


# --- revocation and introspection -------------------------------------------------------------

def test_revocation_answers_200_for_anything_and_ignores_a_wrong_hint(setup):
    code, redirect_uri, verifier = code_for(setup, setup.confidential_client)
    issued = redeem(setup, setup.confidential_client, code, redirect_uri, verifier, auth=confidential_auth(setup)).json()
    for value, hint in (("garbage", None), (issued["refresh_token"], "access_token"), (issued["refresh_token"], None),
                        ("x", "foo")):
        data = {"token": value} | ({"token_type_hint": hint} if hint else {})
        r = requests.post(setup.endpoint("revoke"), data=data, auth=confidential_auth(setup), timeout=10)
        assert r.status_code == 200, (value[:10], hint, r.text)
    r = refresh(setup, setup.confidential_client, issued["refresh_token"], auth=confidential_auth(setup))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_a_client_cannot_revoke_another_clients_tokens(setup):
    issued = public_tokens(setup)
    r = requests.post(setup.endpoint("revoke"), data={"token": issued["refresh_token"]}, auth=confidential_auth(setup), timeout=10)
    assert r.status_code in (200, 400)
    r = refresh(setup, setup.public_client, issued["refresh_token"])
    assert r.status_code == 200, r.text


def confidential_tokens(setup, scope=SCOPE):
    code, redirect_uri, verifier = code_for(setup, setup.confidential_client, scope=scope)
    r = redeem(setup, setup.confidential_client, code, redirect_uri, verifier, auth=confidential_auth(setup))
    assert r.status_code == 200, r.text
    return r.json()


def test_introspection_of_inactive_tokens_says_only_active_false_and_a_wrong_hint_still_finds_tokens(setup):
    issued = confidential_tokens(setup)
    for value in ("garbage", "dbaudit_at_" + "A" * 43, issued["refresh_token"] + "x"):
        r = introspect(setup, value)
        assert r.status_code == 200 and r.json() == {"active": False}, r.text
    r = introspect(setup, issued["access_token"], hint="refresh_token")
    body = r.json()
    assert body["active"] is True and body["client_id"] == setup.confidential_client and body["iss"] == OWN_ISSUER, body
    assert isinstance(body["exp"], int) and body["scope"] == SCOPE
    assert r.headers["Cache-Control"] == "no-store"
    r = requests.post(setup.endpoint("introspect"), data={"token": issued["access_token"], "client_id": setup.public_client},
                      timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_only_a_resource_server_learns_about_other_clients_tokens(setup):
    others = public_tokens(setup)
    # A client learns nothing about another client's token...
    assert introspect(setup, others["access_token"]).json() == {"active": False}
    # ...unless it is registered as a resource server.
    added = subprocess.run(
        [gateway_binary(), "clients", "add", "--config", str(setup.gateway.config_path), "--name", "Audit API",
         "--grant-types", "client_credentials", "--scopes", "read:logs", "--resource-server", "--json"],
        capture_output=True, text=True, timeout=30)
    assert added.returncode == 0, added.stderr
    server = json.loads(added.stdout)
    assert server["resource_server"] is True
    r = requests.post(setup.endpoint("introspect"), data={"token": others["access_token"]},
                      auth=(server["client_id"], server["client_secret"]), timeout=10)
    body = r.json()
    assert body["active"] is True and body["client_id"] == setup.public_client, body
    # A public client cannot be one: it could not authenticate.
    refused = subprocess.run(
        [gateway_binary(), "clients", "add", "--config", str(setup.gateway.config_path), "--name", "x", "--public",
         "--redirect-uri", "http://127.0.0.1/cb", "--scopes", "read:logs", "--resource-server"],
        capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "--resource-server" in refused.stderr


# --- metadata ----------------------------------------------------------------------------

def test_metadata_lists_what_defaults_would_get_wrong(setup):
    metadata = setup.metadata()
    assert metadata["issuer"] == OWN_ISSUER
    assert set(metadata["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert metadata["response_types_supported"] == ["code"]
    assert metadata.get("response_modes_supported", ["query"]) == ["query"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post", "none"}
    assert "none" not in metadata.get("introspection_endpoint_auth_methods_supported", ["client_secret_basic"])
    assert metadata["jwks_uri"].endswith("/.well-known/jwks.json")
    assert "registration_endpoint" not in metadata
    assert not [name for name, value in metadata.items() if value == []]
